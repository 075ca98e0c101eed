"""Bearer API keys (ANVYL_API_KEYS). Without keys auth is off and the API answers this machine only:
the server binds loopback, or in a container answers only its published loopback port
(local_clients.py)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, status

from anvyl.orchestrator.settings import Settings


class ApiKeys:
    def __init__(self, settings: Settings, local_peers: frozenset[str] | None = None) -> None:
        self._keys = [key.get_secret_value().encode() for key in settings.api_keys]
        self._local_peers = local_peers  # without keys: the only peers answered (None: any)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None) -> bool:
        if not self._keys:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        # Compare against every key so timing does not tell which key nearly matched.
        matches = [hmac.compare_digest(given.encode(), key) for key in self._keys]
        return any(matches)

    def admits(self, peer: str | None) -> bool:
        """Without keys, whether this peer address is one the API answers (this machine's)."""
        if self._keys or self._local_peers is None:
            return True
        return peer in self._local_peers


async def require_api_key(request: Request) -> None:
    keys: ApiKeys = request.app.state.api_keys
    if not keys.admits(request.client.host if request.client else None):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this orchestrator has no API keys, so it answers this machine only (its port published "
            "on 127.0.0.1); to call it from elsewhere set ANVYL_API_KEYS and send "
            "'Authorization: Bearer <key>'",
        )
    if not keys.check(request.headers.get("authorization")):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong API key: send 'Authorization: Bearer <key>' with a key from ANVYL_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )


def key_fingerprint(request: Request) -> str:
    """Who made a change, for the record: `sha256:` and the first 12 hex digits of the request's
    key's hash (never the key), or `auth-off` when the server has no keys."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled:
        return "auth-off"
    _, _, given = (request.headers.get("authorization") or "").partition(" ")
    return "sha256:" + hashlib.sha256(given.encode()).hexdigest()[:12]
