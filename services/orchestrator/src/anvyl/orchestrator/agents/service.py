"""Agents' lifecycle (create, change, start, stop, remove) and what a task of one needs (its model
chain, prompt, policy, limits and workspace). Routes call this; the `agents` table is the store's.

An agent's workspace is its own: the id `agent-NAME` (whatever its repository), and its worker
carries the label anvyl.agent=NAME. Without a repository it gets an empty git repository under the
data directory. Its model router is built once per version of its row (cached by updated_at, so a
PATCH on any replica is seen by the next task).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anvyl.orchestrator.agents.chain import InvalidAgent, Link, endpoints, resolve
from anvyl.orchestrator.agents.health import probe
from anvyl.orchestrator.agents.models import (
    AgentCreate,
    AgentOut,
    AgentUpdate,
    BackupOut,
    ProviderHealth,
    Where,
)
from anvyl.orchestrator.agents.secrets import SecretBox, SecretKeyError
from anvyl.orchestrator.agents.store import AgentExists, AgentStore
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Agent
from anvyl.orchestrator.llm import ModelRouter
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.loop.agent_loop import TaskPolicy
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.agent_runs import AgentRun, AgentUnavailable
from anvyl.orchestrator.tasks.inputs import create_scratch_repo
from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.manager import WorkspaceBusy, WorkspaceManager
from anvyl.orchestrator.workspaces.repos import InvalidRepository, RepoRef, parse_repo

log = get_logger(__name__)
AGENT_LABEL = "anvyl.agent"


class AgentProblem(Exception):
    """A request about an agent that cannot be done as asked: an HTTP status and what to do."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def _no_events(_type: str, _data: dict[str, Any]) -> None:
    return None


class AgentService:
    def __init__(self, settings: Settings, db: Database, workspaces: WorkspaceManager,
                 environ: Mapping[str, str] = os.environ) -> None:  # fmt: skip
        self.settings = settings
        self.store = AgentStore(db)
        self.workspaces = workspaces
        self.environ = environ
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        self.box = SecretBox(secret, settings.data_dir)
        self._routers: dict[str, tuple[Any, ModelRouter]] = {}  # name -> (updated_at, router)
        self._retired: list[ModelRouter] = []  # replaced while a task may still use them

    # Reading ----------------------------------------------------------------------------------

    async def names(self) -> list[str]:
        return await self.store.names()

    async def require(self, name: str) -> Agent:
        row = await self.store.get(name)
        if row is None:
            known = ", ".join(await self.store.names()) or "none"
            raise AgentProblem(404, f"no agent named {name}; known: {known}")
        return row

    async def get(self, name: str, *, check: bool = False) -> AgentOut:
        row = await self.require(name)
        out = (await self._describe([row]))[0]
        if check:
            try:
                out.provider_health = await probe(self._endpoints(row)[0])
            except AgentUnavailable as exc:  # its key cannot be decrypted here
                out.provider_health = ProviderHealth(ok=False, detail=str(exc), latency_ms=0.0)
        return out

    async def list_agents(self, *, running: bool = False) -> list[AgentOut]:
        found = await self._describe(await self.store.all())
        return [a for a in found if a.status == "running"] if running else found

    async def _describe(self, rows: list[Agent]) -> list[AgentOut]:
        live = {w.workspace_id: w for w in await self.workspaces.backend.list_owned()}
        out = []
        for row in rows:
            worker = live.get(row.workspace_id)
            status = "running" if worker is not None and worker.running else (
                "created" if row.status == "created" else "stopped")  # fmt: skip
            out.append(AgentOut(
                name=row.name, provider=row.provider, model=row.model, base_url=row.base_url,
                api_key_set=row.api_key_encrypted is not None,
                backups=[BackupOut(provider=b["provider"], model=b["model"], base_url=b["base_url"],
                                   api_key_set=b["api_key_encrypted"] is not None)
                         for b in row.backups],
                system_prompt=row.system_prompt, policy=TaskPolicy.model_validate(row.policy),
                repo_url=row.repo_url, max_steps=row.max_steps, timeout_s=row.timeout_s,
                workspace_id=row.workspace_id, status=status,
                container=worker.handle if worker is not None else None,
                created_at=row.created_at, updated_at=row.updated_at,
            ))  # fmt: skip
        return out

    # Creating and changing --------------------------------------------------------------------

    def _links(
        self, primary: Where | None, backups: list[Any], keep: str | None = None
    ) -> list[Link]:
        """The stored form of a primary provider (`keep`: its encrypted key when none is sent) and
        of backups; 422 naming the field when one is wrong."""
        try:
            first = [resolve(primary, self.box, "", keep)] if primary is not None else []
            rest = [resolve(b, self.box, f"backups.{i}.") for i, b in enumerate(backups)]
        except InvalidAgent as exc:
            raise AgentProblem(422, str(exc)) from None
        return [*first, *rest]

    def _check_repo(self, repo_url: str | None) -> None:
        if repo_url is not None:
            try:
                parse_repo(repo_url)
            except InvalidRepository as exc:
                raise AgentProblem(422, f"repo_url: {exc}") from None

    def scratch_dir(self, name: str) -> Path:
        return self.settings.data_dir / "agents" / name

    async def create(self, body: AgentCreate) -> AgentOut:
        links = self._links(body, body.backups)  # every check before anything is made
        self._check_repo(body.repo_url)
        if await self.store.get(body.name) is not None:
            raise AgentProblem(409, f"an agent named {body.name!r} exists; choose another name "
                               "or change it with PATCH /agents/NAME")  # fmt: skip
        made = None
        if body.repo_url is None and not (self.scratch_dir(body.name) / "repo").exists():
            made = self.scratch_dir(body.name)
            try:
                await create_scratch_repo(made / "repo")
            except BaseException:
                shutil.rmtree(made, ignore_errors=True)
                raise
        values = {
            "name": body.name, "provider": links[0].provider, "model": links[0].model,
            "base_url": links[0].base_url, "api_key_encrypted": links[0].api_key_encrypted,
            "backups": [link.stored() for link in links[1:]], "system_prompt": body.system_prompt,
            "policy": body.policy.model_dump(), "repo_url": body.repo_url,
            "max_steps": body.max_steps, "timeout_s": body.timeout_s,
            "workspace_id": f"agent-{body.name}", "status": "created",
        }  # fmt: skip
        try:
            await self.store.insert(values)
        except AgentExists:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            raise AgentProblem(
                409, f"an agent named {body.name!r} exists; choose another name"
            ) from None
        log.info("agent.created", agent=body.name, provider=links[0].provider, model=links[0].model)
        if body.auto_start:
            return await self.start(body.name)
        return await self.get(body.name)

    async def update(self, name: str, body: AgentUpdate) -> AgentOut:
        row = await self.require(name)
        sent = body.model_fields_set
        values: dict[str, Any] = {}
        if sent & {"provider", "model", "provider_host", "provider_port", "base_url", "api_key"}:
            moved = sent & {"provider", "provider_host", "provider_port", "base_url"}
            # Every field checked already (AgentUpdate): the stored ones complete them as they are.
            where = Where.model_construct(
                provider=body.provider or row.provider,  # type: ignore[arg-type]
                model=body.model if "model" in sent else (None if "provider" in sent else row.model),
                provider_host=body.provider_host, provider_port=body.provider_port,
                base_url=body.base_url if moved else row.base_url, api_key=body.api_key,
            )  # fmt: skip
            link = self._links(where, [], keep=row.api_key_encrypted)[0]
            values |= {"provider": link.provider, "model": link.model, "base_url": link.base_url,
                       "api_key_encrypted": link.api_key_encrypted}  # fmt: skip
        if "backups" in sent:
            values["backups"] = [link.stored() for link in self._links(None, body.backups or [])]
        for field in ("system_prompt", "max_steps", "timeout_s"):
            if field in sent:
                values[field] = getattr(body, field)
        if "policy" in sent:
            values["policy"] = (body.policy or TaskPolicy()).model_dump()
        await self.store.update(name, values)
        self._forget_router(name)
        log.info("agent.updated", agent=name, fields=sorted(sent - {"api_key"}))
        return await self.get(name)

    # Lifecycle --------------------------------------------------------------------------------

    def repo_of(self, row: Agent) -> RepoRef:
        url = row.repo_url or str(self.scratch_dir(row.name) / "repo")
        try:
            repo = parse_repo(url)
        except InvalidRepository as exc:
            raise AgentUnavailable(f"agent {row.name!r}: its repository: {exc}") from None
        return dataclasses.replace(repo, workspace_id=row.workspace_id,
                                   labels=((AGENT_LABEL, row.name),))  # fmt: skip

    async def start(self, name: str) -> AgentOut:
        row = await self.require(name)
        try:
            async with self.workspaces.acquire(self.repo_of(row), _no_events):
                pass
        except (WorkspaceError, AgentUnavailable) as exc:
            raise AgentProblem(503, f"agent {name!r} could not start its worker: {exc}") from None
        await self.store.set_status(name, "running")
        log.info("agent.started", agent=name)
        return await self.get(name)

    async def stop(self, name: str) -> AgentOut:
        row = await self.require(name)
        try:
            await self.workspaces.stop(row.workspace_id)
        except WorkspaceBusy:
            raise AgentProblem(409, f"agent {name!r} is running a task; cancel it first") from None
        await self.store.set_status(name, "stopped")
        log.info("agent.stopped", agent=name)
        return await self.get(name)

    async def remove(self, name: str, *, force: bool, purge: bool) -> None:
        row = await self.require(name)
        if not force and (await self._describe([row]))[0].status == "running":
            raise AgentProblem(409, f"agent {name} is running: stop it or pass force")
        try:
            if not await self.workspaces.remove(row.workspace_id, purge=purge):
                await self.workspaces.backend.remove(row.workspace_id, purge=purge)
        except WorkspaceBusy:
            raise AgentProblem(409, f"agent {name!r} is running a task; cancel it first") from None
        await self.store.delete(name)
        self._forget_router(name)
        if purge:
            await asyncio.to_thread(shutil.rmtree, self.scratch_dir(name), True)
        log.info("agent.removed", agent=name, purge=purge)

    # What a task of an agent needs ------------------------------------------------------------

    async def placement(
        self, name: str, *, unknown_status: int = 422
    ) -> tuple[RepoRef, float | None]:
        """Where a new task of the agent runs (its workspace) and its time limit. An unknown name
        lists the known ones: 422 for a field of POST /orchestrate, 404 for a route's path."""
        row = await self.store.get(name)
        if row is None and unknown_status == 404:
            known = ", ".join(await self.store.names()) or "none"
            raise AgentProblem(404, f"no agent named {name}; known: {known}")
        if row is None:
            known = ", ".join(await self.store.names()) or "none (create one with POST /agents)"
            raise AgentProblem(422, f"agent: no agent named {name!r} exists; known agents: {known}")
        try:
            return self.repo_of(row), row.timeout_s
        except AgentUnavailable as exc:
            raise AgentProblem(422, f"agent: {exc}") from None

    def _endpoints(self, row: Agent) -> list[Any]:
        links = [Link(row.provider, row.model, row.base_url, row.api_key_encrypted)]
        links += [Link(b["provider"], b["model"], b["base_url"], b["api_key_encrypted"])
                  for b in row.backups]  # fmt: skip
        try:
            return endpoints(row.name, links, self.box, self.environ)
        except SecretKeyError as exc:
            raise AgentUnavailable(f"agent {row.name!r}: {exc}") from None

    async def for_task(self, name: str) -> AgentRun:
        row = await self.store.get(name)
        if row is None:
            raise AgentUnavailable(f"agent {name!r} no longer exists (it was removed)")
        cached = self._routers.get(name)
        if cached is None or cached[0] != row.updated_at:
            self._forget_router(name)
            cached = (row.updated_at, ModelRouter(self._endpoints(row)))
            self._routers[name] = cached
        return AgentRun(name=name, router=cached[1], system_prompt=row.system_prompt,
                        policy=TaskPolicy.model_validate(row.policy), max_steps=row.max_steps,
                        repo=self.repo_of(row))  # fmt: skip

    def _forget_router(self, name: str) -> None:
        cached = self._routers.pop(name, None)
        if cached is not None:
            self._retired.append(cached[1])  # closed at shutdown: a task may still be using it

    async def close(self) -> None:
        routers = [router for _, router in self._routers.values()] + self._retired
        self._routers, self._retired = {}, []
        for router in routers:
            await router.aclose()
