"""Static bearer-token auth for the hub, as plain ASGI middleware in front of every server."""

import hmac
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from anvyl.mcp_hub.audit import CALLER_SCOPE_KEY


class BearerTokenMiddleware:
    """Require `Authorization: Bearer <token>` on every HTTP path except `open_paths`.

    With no token configured every request passes and is marked as unauthenticated; the
    CLI only allows that on a loopback bind.
    """

    def __init__(self, app: ASGIApp, token: str | None, open_paths: Iterable[str] = ()) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._expected is None:
            scope[CALLER_SCOPE_KEY] = "anonymous (auth off)"
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.open_paths:
            scope[CALLER_SCOPE_KEY] = "anonymous (open path)"
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                presented = value
                break
        # Constant-time comparison: the token must not leak through response timing.
        if presented and hmac.compare_digest(presented, self._expected):
            scope[CALLER_SCOPE_KEY] = "bearer-token"
            await self.app(scope, receive, send)
            return
        await _send_unauthorized(send, "missing bearer token" if not presented else "invalid token")


async def _send_unauthorized(send: Send, description: str) -> None:
    body = json.dumps({"error": "invalid_token", "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (
                    b"www-authenticate",
                    f'Bearer error="invalid_token", error_description="{description}"'.encode(),
                ),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
