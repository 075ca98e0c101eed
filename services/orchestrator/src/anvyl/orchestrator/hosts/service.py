"""Known hosts: add, list, remove; ask one (remote query); ask all at once (broadcast).

Routes and the host tools of the model call this; the store owns the table, the client speaks HTTP.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from anvyl.orchestrator.agents.secrets import SecretBox, SecretKeyError
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Host, utcnow
from anvyl.orchestrator.hosts.client import HostClient, HostError, Target
from anvyl.orchestrator.hosts.forwarding import REFUSED_HEADER, Forwarded, ForwardingRefused
from anvyl.orchestrator.hosts.identity import host_id, host_name
from anvyl.orchestrator.hosts.models import HOST_ID_PATTERN, HostAnswer, HostCreate, HostOut
from anvyl.orchestrator.hosts.store import HostExists, HostStore
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.settings import Settings

log = get_logger(__name__)
# A query answered on this host (the api layer's task submission): the finished task as a dict.
LocalRunner = Callable[[str, Forwarded, float], Awaitable[dict[str, Any]]]
_FINAL = ("succeeded", "failed", "cancelled")


class HostProblem(Exception):
    """A request about hosts that cannot be served: an HTTP status and what to do."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def _id_from_name(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    return slug or f"host-{secrets.token_hex(4)}"


def answer_of(target: Target, task: dict[str, Any], latency_s: float) -> HostAnswer:
    status = task.get("status")
    return HostAnswer(
        host_id=target.host_id, name=target.name,
        status=status if status in _FINAL else "error",
        result=task.get("result"),
        error=task.get("error") if status in _FINAL else f"{target.label}: task ended as {status!r}",
        latency_s=round(latency_s, 6), task_id=task.get("task_id"),
        metadata={k: v for k, v in (task.get("metadata") or {}).items()
                  if k in ("backend", "model", "latency_s", "forwarded")},
    )  # fmt: skip


class HostService:
    def __init__(self, settings: Settings, db: Database, client: HostClient | None = None) -> None:
        self.settings = settings
        self.store = HostStore(db)
        self.client = client or HostClient()
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        self.box = SecretBox(secret, settings.data_dir)
        self.self_id = host_id(settings.host_id, settings.data_dir)
        self.self_name = host_name(settings.host_name)
        self.local_runner: LocalRunner | None = None
        # How many hosts are known (the host tools are offered only when some are); kept by add,
        # remove and every check, so a replica's change reaches the others within a check.
        self.known = 0
        self._checks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.known = await self.store.count()

    async def close(self) -> None:
        for task in list(self._checks):
            task.cancel()
        await self.client.aclose()

    # --- the table --------------------------------------------------------------------------------

    async def add(self, body: HostCreate) -> HostOut:
        host_id_ = body.host_id or _id_from_name(body.name)
        if host_id_ == self.self_id:
            raise HostProblem(422, f"host_id: {host_id_!r} is this host's own id; choose another")
        values = {"id": host_id_, "name": body.name, "url": body.url.rstrip("/"), "kind": body.kind,
                  "tags": body.tags,
                  "token_encrypted": self.box.encrypt(body.token.get_secret_value()) if body.token else None}  # fmt: skip
        try:
            host = await self.store.insert(values)
        except HostExists:
            raise HostProblem(409, f"a host with id {host_id_!r} is known already; remove it "
                              "first (DELETE /agent/hosts/ID) or give another host_id") from None  # fmt: skip
        self.known = await self.store.count()
        log.info("hosts.added", host_id=host.id, url=host.url, kind=host.kind)
        # Its first check at once, in the background: the answer does not wait for the host.
        task = asyncio.create_task(self.check_one(host), name=f"host-check-{host.id}")
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        return HostOut.from_row(host)

    async def list_hosts(self) -> list[HostOut]:
        return [HostOut.from_row(h) for h in await self.store.all()]

    async def host(self, host_id_: str) -> Host:
        # An id no host can have is not looked up (PostgreSQL refuses NUL, say).
        host = await self.store.get(host_id_) if re.fullmatch(HOST_ID_PATTERN, host_id_) else None
        if host is None:
            known = [h.id for h in await self.store.all()]
            listed = ", ".join(known) if known else "none (add one with POST /agent/hosts)"
            raise HostProblem(404, f"no host with id {host_id_!r}; known: {listed}")
        return host

    async def remove(self, host_id_: str) -> None:
        await self.host(host_id_)
        await self.store.delete(host_id_)
        self.known = await self.store.count()
        log.info("hosts.removed", host_id=host_id_)

    def target(self, host: Host) -> Target:
        try:
            token = self.box.decrypt(host.token_encrypted) if host.token_encrypted else None
        except SecretKeyError:
            raise HostProblem(409, f"host {host.id!r}: its stored token cannot be decrypted with "
                              "this orchestrator's ANVYL_SECRET_KEY; set the key back, or remove "
                              "the host and add it again with its token") from None  # fmt: skip
        return Target(host.id, host.name, host.url, token)

    # --- asking -----------------------------------------------------------------------------------

    def timeout(self, timeout_s: float | None) -> float:
        return timeout_s if timeout_s is not None else self.settings.host_query_timeout_s

    def guard(self, forwarded: Forwarded) -> None:
        """Refuse (409, `X-Anvyl-Refused: loop`) a query that passed this host already or went
        past the hop limit."""
        try:
            forwarded.check(self.self_id, self.settings.host_max_hops)
        except ForwardingRefused as exc:
            log.warning("hosts.loop_refused", trace_id=forwarded.trace_id, via=list(forwarded.via),
                        hops=forwarded.hops)  # fmt: skip
            raise HostProblem(409, str(exc), {REFUSED_HEADER: "loop"}) from None

    async def ask(
        self, host: Host, query: str, forwarded: Forwarded, timeout_s: float
    ) -> HostAnswer:
        """One host's answer; a HostError names the host when it cannot answer. The one place
        where a host's kind chooses how it is asked."""
        target = self.target(host)
        onward = forwarded.onward(self.self_id)
        started = time.perf_counter()
        match host.kind:
            case "anvyl":
                task = await self.client.process(target, query, onward, timeout_s)
                answer = answer_of(target, task, time.perf_counter() - started)
            case "a2a":
                # Not an Anvyl: no loop guard travels (A2A has no place for it), one hop only.
                text = await self._ask_a2a(target, query, timeout_s)
                answer = HostAnswer(host_id=target.host_id, name=target.name, status="succeeded",
                                    result=text, latency_s=round(time.perf_counter() - started, 6),
                                    metadata={"kind": "a2a"})  # fmt: skip
            case other:
                raise HostError(f"{target.label} has an unknown kind {other!r}", status=409,
                                kind="error")  # fmt: skip
        log.info("hosts.asked", host_id=host.id, trace_id=forwarded.trace_id, status=answer.status,
                 latency_s=answer.latency_s)  # fmt: skip
        return answer

    async def _ask_a2a(self, target: Target, query: str, timeout_s: float) -> str:
        """An A2A agent's answer (a2a/client.py); its A2AError as a HostError naming the host."""
        from anvyl.orchestrator.a2a.client import A2AError, ask_a2a_agent  # the SDK loads lazily

        try:
            return await ask_a2a_agent(target.url, target.token, query, timeout_s)
        except A2AError as exc:
            problem = exc.problem
            if problem.startswith("no answer within"):
                raise HostError(f"{target.label}: {problem}", status=504, kind="timeout") from None
            kind = ("refused" if "refused the token" in problem
                    else "unreachable" if problem.startswith("unreachable") else "error")  # fmt: skip
            raise HostError(f"{target.label} (A2A at {target.url}): {problem}", status=502,
                            kind=kind) from None  # fmt: skip

    async def remote_query(
        self, host_id_: str, query: str, forwarded: Forwarded, timeout_s: float | None
    ) -> HostAnswer:
        """POST /agent/remote-query: a HostProblem (404, 409, 502, 504) when it cannot answer."""
        self.guard(forwarded)
        host = await self.host(host_id_)
        try:
            return await self.ask(host, query, forwarded, self.timeout(timeout_s))
        except HostError as exc:
            raise HostProblem(exc.status, str(exc)) from None

    async def _answer_or_error(
        self, host: Host, query: str, forwarded: Forwarded, timeout_s: float
    ) -> HostAnswer:
        started = time.perf_counter()
        try:
            # A last bound on top of the client's: one host never holds the others back.
            return await asyncio.wait_for(
                self.ask(host, query, forwarded, timeout_s), timeout_s + 1
            )
        except (HostError, HostProblem, TimeoutError) as exc:
            kind = exc.kind if isinstance(exc, HostError) else "error"
            if isinstance(exc, TimeoutError):
                kind = "timeout"
            message = str(exc) or f"host {host.id!r} did not answer within {timeout_s:g}s"
            return HostAnswer(host_id=host.id, name=host.name, status=kind,
                              error=message, latency_s=round(time.perf_counter() - started, 6))  # fmt: skip

    async def _self_answer(self, query: str, forwarded: Forwarded, timeout_s: float) -> HostAnswer:
        started = time.perf_counter()
        me = Target(self.self_id, self.self_name, "this host", None)
        try:
            if self.local_runner is None:
                raise HostError("this host runs no tasks here", status=409, kind="error")
            task = await asyncio.wait_for(
                self.local_runner(query, forwarded.onward(self.self_id), timeout_s), timeout_s + 1
            )
        except TimeoutError:
            return HostAnswer(host_id=me.host_id, name=me.name, status="timeout",
                              error=f"this host ({me.host_id}) did not answer within {timeout_s:g}s",
                              latency_s=round(time.perf_counter() - started, 6))  # fmt: skip
        except (HostError, HostProblem) as exc:
            return HostAnswer(host_id=me.host_id, name=me.name, status="error", error=str(exc),
                              latency_s=round(time.perf_counter() - started, 6))  # fmt: skip
        return answer_of(me, task, time.perf_counter() - started)

    async def broadcast(
        self, query: str, forwarded: Forwarded, timeout_s: float | None, *,
        include_self: bool = False, tags: Sequence[str] = (),
    ) -> list[HostAnswer]:  # fmt: skip
        """Every known host (with these tags) at the same time, each within the timeout; this
        host's own answer first when asked for."""
        self.guard(forwarded)
        limit = self.timeout(timeout_s)
        hosts = [h for h in await self.store.all() if set(tags) <= set(h.tags or [])]
        asked: list[Awaitable[HostAnswer]] = [
            self._answer_or_error(h, query, forwarded, limit) for h in hosts
        ]
        if include_self:
            asked.insert(0, self._self_answer(query, forwarded, limit))
        return list(await asyncio.gather(*asked))

    # --- the periodic check -----------------------------------------------------------------------

    async def check_one(self, host: Host, timeout_s: float = 5.0) -> None:
        """Is it online, how fast, which version: an Anvyl's /agent/info, an A2A agent's card."""
        try:
            target = self.target(host)
            match host.kind:
                case "a2a":
                    response, latency = await self.client.get(target, "/.well-known/agent-card.json",
                                                              timeout_s)  # fmt: skip
                    version = str(response.json().get("version") or "")[:64] or None
                case _:
                    info, latency = await self.client.info(target, timeout_s)
                    version = str(info.get("version") or "")[:64] or None
        except (HostError, HostProblem, ValueError, AttributeError) as exc:
            await self.store.record_check(host.id, online=False, latency_ms=None, version=None,
                                          error=str(exc)[:1000], at=utcnow())  # fmt: skip
            return
        await self.store.record_check(host.id, online=True, latency_ms=round(latency * 1000, 3),
                                      version=version, error=None, at=utcnow())  # fmt: skip

    async def check_all(self) -> None:
        hosts = await self.store.all()
        self.known = len(hosts)
        await asyncio.gather(*(self.check_one(h) for h in hosts))

    async def run_checks(self) -> None:
        """Forever: every known host checked at once, every `hosts_check_interval_s`."""
        while True:
            try:
                await self.check_all()
            except Exception as exc:  # the database away for a while: try again next round
                log.warning("hosts.check_failed", error=repr(exc))
            await asyncio.sleep(self.settings.hosts_check_interval_s)
