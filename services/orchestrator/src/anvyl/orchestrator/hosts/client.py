"""Talking to another Anvyl orchestrator over HTTP (httpx): its info, and a query it answers.

Every call has a hard time limit; every failure is a `HostError` that names the host and says what
went wrong (not reachable, too slow, refused our token, answered an error), never a hang.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from anvyl.orchestrator.hosts.forwarding import REFUSED_HEADER, Forwarded

_CONNECT_TIMEOUT_S = 5.0


class HostError(RuntimeError):
    """A host could not answer. `status` is what the API answers for it, `kind` the answer status."""

    def __init__(self, message: str, *, status: int, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class Target:
    """Where a host is, as the client needs it (its token decrypted, in memory only)."""

    host_id: str
    name: str
    url: str
    token: str | None

    @property
    def label(self) -> str:
        return f"host {self.host_id!r} ({self.url})"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    return str(body.get("detail", body))[:1000] if isinstance(body, dict) else str(body)[:1000]


class HostClient:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        # No environment proxies: hosts are reached directly, like the workers.
        self._http = httpx.AsyncClient(trust_env=False, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, target: Target, method: str, path: str, timeout_s: float,
                    headers: dict[str, str] | None = None, body: Any = None) -> httpx.Response:  # fmt: skip
        sent = dict(headers or {})
        if target.token:
            sent["Authorization"] = f"Bearer {target.token}"
        timeout = httpx.Timeout(timeout_s, connect=min(_CONNECT_TIMEOUT_S, timeout_s))
        url = f"{target.url.rstrip('/')}{path}"
        try:
            # wait_for on top of httpx's per-phase timeouts: a host that trickles bytes is cut too.
            return await asyncio.wait_for(
                self._http.request(method, url, json=body, headers=sent, timeout=timeout), timeout_s
            )
        except (TimeoutError, httpx.TimeoutException):
            raise HostError(f"{target.label} did not answer within {timeout_s:g}s",
                            status=504, kind="timeout") from None  # fmt: skip
        except httpx.InvalidURL as exc:
            raise HostError(f"{target.label}: its URL is not usable ({exc})", status=502,
                            kind="error") from None  # fmt: skip
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise HostError(f"{target.label} is not reachable: {reason}", status=502,
                            kind="unreachable") from None  # fmt: skip

    def _check(self, target: Target, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise HostError(
                f"{target.label} refused our token ({response.status_code}): give it one of its "
                f"ANVYL_API_KEYS (anvyl hosts add {target.name} {target.url} --id {target.host_id} "
                "--token KEY, after anvyl hosts rm)", status=502, kind="refused",
            )  # fmt: skip
        if response.status_code == 409 and response.headers.get(REFUSED_HEADER) == "loop":
            # Its loop guard: the same refusal, passed back.
            raise HostError(f"{target.label}: {_detail(response)}", status=409, kind="refused")
        if response.status_code >= 400:
            raise HostError(f"{target.label} answered {response.status_code}: {_detail(response)}",
                            status=502, kind="error")  # fmt: skip

    async def info(self, target: Target, timeout_s: float) -> tuple[dict[str, Any], float]:
        """Its GET /agent/info, and how long it took (seconds)."""
        started = time.perf_counter()
        response = await self._send(target, "GET", "/agent/info", timeout_s)
        self._check(target, response)
        return response.json(), time.perf_counter() - started

    async def get(
        self, target: Target, path: str, timeout_s: float
    ) -> tuple[httpx.Response, float]:
        """A plain GET (e.g. an A2A agent's card), and how long it took."""
        started = time.perf_counter()
        response = await self._send(target, "GET", path, timeout_s)
        self._check(target, response)
        return response, time.perf_counter() - started

    async def process(
        self, target: Target, query: str, forwarded: Forwarded, timeout_s: float
    ) -> dict[str, Any]:
        """Its POST /agent/process: the finished task (TaskOut) it answers with."""
        # The remote task gets a limit a little shorter than ours, so that it ends (and says so)
        # before we stop waiting.
        body = {"query": query, "timeout_s": max(timeout_s - 0.5, timeout_s * 0.9)}
        response = await self._send(target, "POST", "/agent/process", timeout_s,
                                    headers=forwarded.headers(), body=body)  # fmt: skip
        self._check(target, response)
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            raise HostError(f"{target.label} answered something that is not JSON; is it an Anvyl "
                            "orchestrator (kind anvyl)?", status=502, kind="error") from None  # fmt: skip
        if not isinstance(answer, dict) or "status" not in answer:
            raise HostError(f"{target.label} answered without a task status; is it an Anvyl "
                            "orchestrator (kind anvyl)?", status=502, kind="error")  # fmt: skip
        return answer
