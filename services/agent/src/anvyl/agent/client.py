"""The orchestrator's client of a worker: typed calls over HTTP with a bearer token and timeouts."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from anvyl.agent.models import ExecRequest, ExecResult, GitCloneRequest, GitCloneResult, Health

ResponseT = TypeVar("ResponseT", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=30.0, pool=5.0)


class WorkerError(RuntimeError):
    """The worker answered with an error, or could not be reached."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class WorkerUnreachable(WorkerError):
    pass


class WorkerClient:
    def __init__(
        self, base_url: str, token: str, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            # Talk to the worker directly, never through a proxy from the environment.
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        model: type[ResponseT],
        body: BaseModel | None = None,
        timeout: float | None = None,
    ) -> ResponseT:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body.model_dump(mode="json", exclude_none=True)
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise WorkerUnreachable(f"worker at {self.base_url} unreachable: {exc!r}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise WorkerError(f"worker {method} {path}: {detail}", response.status_code)
        return model.model_validate_json(response.content)

    async def health(self, timeout: float = 2.0) -> Health:
        return await self._call("GET", "/health", Health, timeout=timeout)

    async def exec(self, request: ExecRequest) -> ExecResult:
        # The HTTP read timeout follows the command's own timeout, plus room for the answer.
        return await self._call(
            "POST", "/exec", ExecResult, request, timeout=request.timeout_s + 30
        )

    async def run(self, *argv: str, cwd: str = ".", timeout_s: float = 60.0) -> ExecResult:
        return await self.exec(ExecRequest(argv=list(argv), cwd=cwd, timeout_s=timeout_s))

    async def git_clone(self, request: GitCloneRequest) -> GitCloneResult:
        return await self._call("POST", "/git/clone", GitCloneResult, request, timeout=660)
