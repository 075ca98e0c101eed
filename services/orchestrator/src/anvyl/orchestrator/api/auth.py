"""Bearer API keys (ANVYL_API_KEYS). Without keys auth is off and the server stays on loopback."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, status

from anvyl.orchestrator.settings import Settings


class ApiKeys:
    def __init__(self, settings: Settings) -> None:
        self._keys = [key.get_secret_value().encode() for key in settings.api_keys]

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


async def require_api_key(request: Request) -> None:
    keys: ApiKeys = request.app.state.api_keys
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
