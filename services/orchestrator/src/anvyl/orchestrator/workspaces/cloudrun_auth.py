"""Reaching a Cloud Run worker: Google ID tokens, and the worker client that sends them.

Requests to a worker carry two credentials: a Google ID token whose audience is the service URL in
`X-Serverless-Authorization` (Cloud Run checks it, strips its signature and forwards the request),
and the worker token in `Authorization: Bearer`, which Cloud Run passes through untouched when
`X-Serverless-Authorization` is present; the worker needs no change.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.worker.client import WorkerClient

ID_TOKEN_HEADER = "X-Serverless-Authorization"
_ID_TOKEN_REFRESH_MARGIN_S = 300.0

CLOUD_EXTRA_HINT = (
    "the cloudrun backend and GCS snapshots need the orchestrator's `cloud` extra: "
    "pip install 'anvyl-orchestrator[cloud]' (or uv sync --all-extras)"
)


class CloudExtraMissing(WorkspaceError):
    """google-cloud-run / google-cloud-storage is not installed."""


def run_v2_module() -> Any:
    """google.cloud.run_v2, or a clear error when the `cloud` extra is missing."""
    try:
        from google.cloud import run_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CloudExtraMissing(CLOUD_EXTRA_HINT) from exc
    return run_v2


class IDTokenSource:
    """Google ID tokens for one audience (the service URL), cached until shortly before expiry.

    Uses google-auth's `fetch_id_token`: a service-account key file named by
    GOOGLE_APPLICATION_CREDENTIALS, or the metadata server on Google Cloud (Cloud Run, GCE, GKE).
    """

    def __init__(self, audience: str, timeout_s: float = 30.0) -> None:
        self.audience = audience
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._expiry = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expiry - _ID_TOKEN_REFRESH_MARGIN_S:
                self._token, self._expiry = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        try:
            import google.auth.exceptions
            import google.auth.transport.requests
            from google.auth import jwt
            from google.oauth2 import id_token
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CloudExtraMissing(CLOUD_EXTRA_HINT) from exc
        request = google.auth.transport.requests.Request()
        try:
            token = id_token.fetch_id_token(request, self.audience)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise WorkspaceError(
                f"cannot get a Google ID token for {self.audience}: {exc} (set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or run on Google Cloud)"
            ) from exc
        claims = jwt.decode(token, verify=False)
        return token, float(claims.get("exp", time.time() + 600))


class CloudRunWorkerClient(WorkerClient):
    """A WorkerClient whose requests also carry a Google ID token for the Cloud Run service.

    The worker token stays `Authorization: Bearer ...` (set by WorkerClient); Cloud Run reads the
    ID token from X-Serverless-Authorization.
    """

    def __init__(
        self, base_url: str, token: str, *, id_tokens: IDTokenSource | None = None
    ) -> None:
        source = id_tokens or IDTokenSource(base_url.rstrip("/"))

        async def id_token_header() -> dict[str, str]:
            # google-auth is synchronous (a token fetch is an HTTP call): off the event loop.
            return {ID_TOKEN_HEADER: f"Bearer {await asyncio.to_thread(source.token)}"}

        super().__init__(base_url, token, extra_headers=id_token_header)
