"""Workspace lifecycle against the real Docker daemon (and the local backend where it applies)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from pydantic import ValidationError

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.store import TaskStore
from anvyl.orchestrator.workspaces.base import WorkerEndpoint
from anvyl.orchestrator.workspaces.config import (
    BackendContext,
    CloudRunWorkspaceConfig,
    LocalWorkspaceConfig,
)
from anvyl.orchestrator.workspaces.docker import DockerBackend
from anvyl.orchestrator.workspaces.local import LocalBackend
from anvyl.orchestrator.workspaces.manager import WorkspaceManager, create_backend
from anvyl.orchestrator.workspaces.repos import parse_repo
from anvyl.worker.client import WorkerError
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory

BACKENDS = ["docker", "local"]


async def no_events(_: str, __: dict[str, Any]) -> None:
    return None


def backend_options(name: str, docker_instance: str | None) -> dict[str, Any]:
    return {"workspace_backend": name} | ({"instance": docker_instance} if docker_instance else {})


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "docker":
        request.getfixturevalue("docker_instance")  # removes the test's containers afterwards
    return name


async def kill_worker(orch: Orchestrator, workspace_id: str) -> None:
    backend = orch.services.workspaces.backend
    if isinstance(backend, DockerBackend):
        await asyncio.to_thread(
            backend.client.containers.get(backend.container_name(workspace_id)).kill
        )
    else:
        worker = next(w for w in await backend.list_owned() if w.workspace_id == workspace_id)
        os.killpg(int(worker.handle), signal.SIGKILL)


async def wait_for_event(
    orch: Orchestrator, task_id: str, kind: str, timeout_s: float = 60
) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            events = (
                await orch.http.get(f"/tasks/{task_id}/events", params={"format": "json"})
            ).json()
            if any(e["type"] == kind for e in events):
                return
            await asyncio.sleep(0.05)


async def run_in_background(orch: Orchestrator, query: str, repo: Path) -> str:
    body = {"query": query, "repo_url": str(repo), "mode": "background"}
    return str((await orch.http.post("/orchestrate", json=body)).json()["task_id"])


async def final(orch: Orchestrator, task_id: str, timeout_s: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while (task := (await orch.http.get(f"/tasks/{task_id}")).json())["status"] not in (
            "succeeded", "failed", "cancelled",
        ):  # fmt: skip
            await asyncio.sleep(0.05)
    return task


async def test_a_worker_killed_mid_task_fails_that_task_clearly_and_the_next_one_finds_the_repo(
    make_orchestrator: OrchestratorFactory, backend_name: str, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend=backend_name, workspace_sandbox="none") as orch:
        first = (await orch.orchestrate("list files", str(sample_repo))).json()
        task_id = await run_in_background(orch, "run `sleep 20`", sample_repo)
        await wait_for_event(orch, task_id, "tool.call")
        await asyncio.sleep(0.3)
        await kill_worker(orch, first["workspace_id"])
        killed = await final(orch, task_id)
        after = (await orch.orchestrate("show README.md", str(sample_repo))).json()
    assert killed["status"] == "failed"
    assert "unreachable" in killed["error"], killed["error"]
    assert after["status"] == "succeeded", after["error"]
    assert "# sample" in after["result"]
    assert after["workspace_id"] == first["workspace_id"]


async def test_a_worker_that_died_between_tasks_is_started_again_for_the_next_task(
    make_orchestrator: OrchestratorFactory, backend_name: str, sample_repo: Path
) -> None:
    # The next task skips the health probe of a worker that answered moments ago; when that worker
    # is gone, the checkout's failure must lead to a fresh worker, not to a failed task.
    async with make_orchestrator(workspace_backend=backend_name, workspace_sandbox="none") as orch:
        first = (await orch.orchestrate("list files", str(sample_repo))).json()
        await kill_worker(orch, first["workspace_id"])
        after = (await orch.orchestrate("show README.md", str(sample_repo))).json()
        events = (
            await orch.http.get(f"/tasks/{after['task_id']}/events", params={"format": "json"})
        ).json()
    assert after["status"] == "succeeded", after["error"]
    assert "# sample" in after["result"]
    ready = [e["data"] for e in events if e["type"] == "workspace.ready"]
    assert len(ready) == 1 and ready[0]["reused"] is False, ready


async def test_a_worker_that_stopped_answering_is_replaced_not_waited_for(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    # A worker whose process is still there but answers nothing (frozen here with SIGSTOP; a
    # killed one looks the same for a moment, its port closed before it is a zombie) is replaced
    # after a few seconds instead of failing the task at the end of the whole start timeout.
    async with make_orchestrator(workspace_backend="local", workspace_sandbox="none",
                                 worker_start_timeout_s=60) as orch:  # fmt: skip
        first = (await orch.orchestrate("list files", str(sample_repo))).json()
        backend = orch.services.workspaces.backend
        worker = next(
            w for w in await backend.list_owned() if w.workspace_id == first["workspace_id"]
        )
        os.killpg(int(worker.handle), signal.SIGSTOP)
        try:
            await asyncio.sleep(5.2)  # past the time a worker that just answered is trusted
            started = time.monotonic()
            after = (await orch.orchestrate("show README.md", str(sample_repo))).json()
            took_s = time.monotonic() - started
        finally:
            with contextlib.suppress(ProcessLookupError):  # replaced: the backend ended it
                os.killpg(int(worker.handle), signal.SIGKILL)
    assert after["status"] == "succeeded", after["error"]
    assert took_s < 30, took_s  # the start timeout is 60 s: it was not waited for


async def test_idle_workers_are_stopped_with_files_kept_then_removed_after_retention(
    make_orchestrator: OrchestratorFactory, backend_name: str, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend=backend_name, workspace_idle_timeout_s=0.5,
                                 workspace_retention_s=3600, workspace_sweep_interval_s=3600) as orch:  # fmt: skip
        manager = orch.services.workspaces
        first = (await orch.orchestrate("list files", str(sample_repo))).json()
        workspace_id = first["workspace_id"]
        await asyncio.sleep(0.6)
        swept = await manager.sweep()
        stopped = {w.workspace_id: w.running for w in await manager.backend.list_owned()}
        listed = (await orch.http.get(f"/workspaces/{workspace_id}")).json()
        again = (await orch.orchestrate("show README.md", str(sample_repo))).json()
        events = (
            await orch.http.get(f"/tasks/{again['task_id']}/events", params={"format": "json"})
        ).json()
        manager.settings.workspace_retention_s = 0.5
        await asyncio.sleep(0.6)
        gone = await manager.sweep()
        remaining = await manager.backend.list_owned()
        after_removal = await orch.http.get(f"/workspaces/{workspace_id}")
    assert swept["stopped"] == [workspace_id]
    assert stopped.get(workspace_id) in (False, None)  # stopped container / ended process
    assert listed["status"] == "stopped" and listed["running"] is False
    assert again["status"] == "succeeded" and "# sample" in again["result"]
    synced = next(e["data"] for e in events if e["type"] == "workspace.synced")
    assert synced["action"] == "fetched"  # the files survived the stop
    assert gone["removed"] == [workspace_id]
    assert remaining == [] and after_removal.status_code == 404


async def test_workspaces_are_listed_shown_and_removed_with_their_files_on_purge(
    make_orchestrator: OrchestratorFactory, backend_name: str, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend=backend_name) as orch:
        task = (await orch.orchestrate("list files", str(sample_repo))).json()
        workspace_id = task["workspace_id"]
        listed = (await orch.http.get("/workspaces")).json()
        busy_id = await run_in_background(orch, "run `sleep 10`", sample_repo)
        await wait_for_event(orch, busy_id, "tool.call")
        shown_busy = (await orch.http.get(f"/workspaces/{workspace_id}")).json()
        busy = await orch.http.delete(f"/workspaces/{workspace_id}")
        await orch.http.post(f"/tasks/{busy_id}/cancel")
        await final(orch, busy_id)
        shown_idle = (await orch.http.get(f"/workspaces/{workspace_id}")).json()
        kept = await orch.http.delete(f"/workspaces/{workspace_id}")
        again = (await orch.orchestrate("list files", str(sample_repo))).json()
        synced = next(e["data"] for e in (await orch.http.get(
            f"/tasks/{again['task_id']}/events", params={"format": "json"})).json() if e["type"] == "workspace.synced")  # fmt: skip
        purged = await orch.http.delete(f"/workspaces/{workspace_id}", params={"purge": True})
        missing = await orch.http.delete(f"/workspaces/{workspace_id}")
        fresh = (await orch.orchestrate("list files", str(sample_repo))).json()
        fresh_sync = next(e["data"] for e in (await orch.http.get(
            f"/tasks/{fresh['task_id']}/events", params={"format": "json"})).json() if e["type"] == "workspace.synced")  # fmt: skip
    assert [w["workspace_id"] for w in listed] == [workspace_id] and listed[0]["running"] is True
    assert busy.status_code == 409 and "running a task" in busy.json()["detail"]
    assert shown_busy["status"] == "busy" and shown_idle["status"] == "idle"
    last_used = [datetime.fromisoformat(w["last_used_at"]) for w in (listed[0], shown_idle)]
    assert last_used[1] > last_used[0]  # the cancelled task's end
    assert kept.status_code == 204 and synced["action"] == "fetched"  # files kept without purge
    assert purged.status_code == 204 and missing.status_code == 404
    assert fresh_sync["action"] == "cloned"  # purge deleted the files


async def test_two_managers_creating_the_same_new_workspace_at_once_make_one_container(
    database_url: str, docker_instance: str, docker_client: docker.DockerClient, sample_repo: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = Settings(data_dir=tmp_path, database_url=database_url, instance=docker_instance,
                        workspace_backend="docker")  # fmt: skip
    db = Database(settings.effective_database_url)
    await db.upgrade()
    managers = [
        WorkspaceManager(settings, db, create_backend(settings), tasks=TaskStore(db))
        for _ in range(2)
    ]
    repo = parse_repo(str(sample_repo))

    async def acquire(manager: WorkspaceManager) -> str:
        async with manager.acquire(repo, no_events) as workspace:
            return (await workspace.client.run("git", "rev-parse", "HEAD")).stdout.strip()

    try:
        heads = await asyncio.gather(*(acquire(m) for m in managers))
    finally:
        for manager in managers:
            await manager.close()
        await db.close()
    containers = docker_client.containers.list(
        all=True, filters={"label": f"anvyl.instance={docker_instance}"}
    )
    assert len(containers) == 1
    assert heads[0] == heads[1] and len(heads[0]) == 40


async def test_start_up_adopts_its_containers_and_removes_those_it_cannot_use(
    make_orchestrator: OrchestratorFactory, docker_instance: str, docker_client: docker.DockerClient,
    sample_repo: Path,
) -> None:  # fmt: skip
    async with make_orchestrator(workspace_backend="docker") as orch:
        task = (await orch.orchestrate("list files", str(sample_repo))).json()
    stale = docker_client.containers.create(
        "anvyl/base:bookworm", ["sleep", "600"], name=f"anvyl-{docker_instance}-stale-0000000000",
        labels={"anvyl.managed": "true", "anvyl.instance": docker_instance, "anvyl.workspace": "stale-0000000000"},
    )  # fmt: skip
    async with make_orchestrator(workspace_backend="docker") as orch:
        listed = {w["workspace_id"]: w for w in (await orch.http.get("/workspaces")).json()}
        again = (await orch.orchestrate("list files", str(sample_repo))).json()
    names = [
        c.name
        for c in docker_client.containers.list(
            all=True, filters={"label": f"anvyl.instance={docker_instance}"}
        )
    ]
    assert stale.name not in names
    assert listed[task["workspace_id"]]["running"] is True
    assert again["metadata"]["workspace"]["reused"] is True


def process_ended(pid: int) -> bool:
    """A zombie, or reaped (asyncio's child watcher thread reaps at once; the loop hears later)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_killed_local_worker_is_replaced_even_before_asyncio_has_reaped_it(
    tmp_path: Path, sample_repo: Path
) -> None:
    """asyncio sets a killed worker's returncode only when the loop runs its child watcher's
    callback; on a busy host the next task could get there first and was handed the dead worker
    (then waited 30 s for it to answer)."""
    backend = LocalBackend(
        LocalWorkspaceConfig(sandbox="none"), BackendContext("t", tmp_path / "data")
    )
    repo = parse_repo(str(sample_repo))
    try:
        first = await backend.ensure_running(repo)
        await wait_until_healthy(backend, first)
        os.killpg(int(first.handle), signal.SIGKILL)
        deadline = time.monotonic() + 10
        # Blocking on purpose: without a turn of the event loop, asyncio has not heard of the exit.
        while not process_ended(int(first.handle)) and time.monotonic() < deadline:
            time.sleep(0.01)
        second = await backend.ensure_running(repo)
        assert second.handle != first.handle
        await wait_until_healthy(backend, second)
    finally:
        await backend.close()


async def wait_until_healthy(backend: LocalBackend, endpoint: WorkerEndpoint) -> None:
    client = backend.worker_client(endpoint)
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    await client.health(timeout=1.0)
                    return
                except WorkerError:
                    await asyncio.sleep(0.05)
    finally:
        await client.aclose()


README_SECTION = """
workspace:
  type: cloudrun            # docker | local | auto | cloudrun
  gcp_project: my-project
  gcp_region: europe-west1
  gcs_bucket: my-anvyl-bucket
  ingress: internal
  service_account: anvyl-worker@my-project.iam.gserviceaccount.com
  cpus: 2
  memory: 4g
"""


def test_the_workspace_section_of_the_config_file_and_the_variables_that_win_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "anvyl.yaml"
    config.write_text(README_SECTION)
    monkeypatch.setenv("ANVYL_CONFIG", str(config))
    monkeypatch.setenv("ANVYL_WORKSPACE_SANDBOX", "none")  # the local backend's: ignored here
    section = Settings().workspace
    assert isinstance(section, CloudRunWorkspaceConfig)
    assert (section.gcp_project, section.gcp_region, section.ingress, section.memory) == (
        "my-project", "europe-west1", "internal", "4g",
    )  # fmt: skip
    monkeypatch.setenv("ANVYL_GCP_REGION", "us-east1")
    assert Settings().workspace.model_dump()["gcp_region"] == "us-east1"

    # A variable choosing another backend keeps the keys that backend has (the snapshot bucket).
    monkeypatch.setenv("ANVYL_WORKSPACE_BACKEND", "local")
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.workspace == LocalWorkspaceConfig(
        sandbox="none", gcs_bucket="my-anvyl-bucket", gcp_project="my-project"
    )
    assert settings.masked()["workspace_backend"] == "local"
    assert isinstance(create_backend(settings), LocalBackend)

    config.write_text("workspace:\n  type: docker\n  cpu: 2\n")
    monkeypatch.delenv("ANVYL_WORKSPACE_BACKEND")
    with pytest.raises(ValidationError, match=r"workspace\.docker\.cpu\n  Extra inputs"):
        Settings()
    monkeypatch.setenv("ANVYL_WORKSPACE_BACKEND", "kubernetes")
    with pytest.raises(ValidationError, match="use one of auto, docker, local, cloudrun"):
        Settings()
