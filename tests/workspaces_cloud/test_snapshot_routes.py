"""Snapshots through the orchestrator: the routes, the `anvyl workspaces snapshot|restore`
commands against a real server, and a workspace restored on a host that lacks its files; GCS is
gcp-storage-emulator, the backends are the real docker and local ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.conftest import remove_instance_resources
from tests.helpers import running_server
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory

from .conftest import BUCKET, PROJECT

ANVYL = str(Path(sys.executable).parent / "anvyl")
SNAPSHOTS = {"gcs_bucket": BUCKET, "gcp_project": PROJECT}


async def run(orch: Orchestrator, command: str, repo: Path) -> dict[str, Any]:
    task = (await orch.orchestrate(f"run `{command}`", str(repo))).json()
    assert task["status"] == "succeeded", task["error"]
    return dict(task)


async def event_types(orch: Orchestrator, task_id: str) -> list[str]:
    events = (await orch.http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json()
    return [e["type"] for e in events]


async def test_a_snapshot_is_taken_and_restored_through_the_routes(
    make_orchestrator: OrchestratorFactory, gcs_emulator: str, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local", **SNAPSHOTS) as orch:
        workspace_id = (await run(orch, "echo one > notes.txt", sample_repo))["workspace_id"]
        taken = await orch.http.post(f"/workspaces/{workspace_id}/snapshot")
        await run(orch, "echo two > notes.txt && touch extra.txt", sample_repo)
        restored = await orch.http.post(f"/workspaces/{workspace_id}/restore")
        after = await run(orch, "cat notes.txt; ls extra.txt || true", sample_repo)
        missing_workspace = await orch.http.post("/workspaces/nope-0000000000/snapshot")
        missing_snapshot = await orch.http.post(
            f"/workspaces/{workspace_id}/restore", params={"snapshot": "20200101T000000000000Z"}
        )
    assert taken.status_code == 201, taken.text
    snapshot = taken.json()
    assert snapshot["workspace_id"] == workspace_id
    assert snapshot["location"] == (
        f"gs://{BUCKET}/snapshots/{workspace_id}/{snapshot['snapshot']}.tar.gz"
    )
    assert snapshot["size"] > 0 and snapshot["members"] > 3  # notes.txt, README.md, src, .git...
    assert restored.status_code == 200, restored.text
    assert restored.json()["snapshot"] == snapshot["snapshot"]
    assert "one" in after["result"] and "two" not in after["result"]
    assert "No such file" in after["result"]  # extra.txt came after the snapshot
    assert missing_workspace.status_code == 404
    assert "no workspace with id 'nope-0000000000'" in missing_workspace.json()["detail"]
    assert missing_snapshot.status_code == 404
    assert "no snapshot 20200101T000000000000Z" in missing_snapshot.json()["detail"]


async def test_without_a_bucket_a_snapshot_is_refused_saying_what_to_set(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        workspace_id = (await run(orch, "true", sample_repo))["workspace_id"]
        snapshot = await orch.http.post(f"/workspaces/{workspace_id}/snapshot")
        restore = await orch.http.post(f"/workspaces/{workspace_id}/restore")
        unknown = await orch.http.post("/workspaces/nope-0000000000/snapshot")
    assert snapshot.status_code == 409 and restore.status_code == 409
    assert "set ANVYL_GCS_BUCKET" in snapshot.json()["detail"]
    assert unknown.status_code == 404


@pytest.mark.parametrize("backend", ["local", "docker"])
async def test_a_workspace_whose_files_are_missing_on_this_host_is_restored_from_its_snapshot(
    make_orchestrator: OrchestratorFactory, gcs_emulator: str, sample_repo: Path,
    tmp_path: Path, backend: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    # Two hosts on one database: each has its own data directory and container labels.
    hosts = [{"data_dir": tmp_path / f"host-{n}"} for n in "ab"]
    if backend == "docker":
        instance: str = request.getfixturevalue("docker_instance")
        client: docker.DockerClient = request.getfixturevalue("docker_client")
        hosts[1]["instance"] = f"{instance}b"
        request.addfinalizer(lambda: remove_instance_resources(client, f"{instance}b"))
    async with make_orchestrator(workspace_backend=backend, **SNAPSHOTS, **hosts[0]) as orch:
        first = await run(orch, "echo kept > notes.txt", sample_repo)
        taken = (await orch.http.post(f"/workspaces/{first['workspace_id']}/snapshot")).json()
    async with make_orchestrator(workspace_backend=backend, **SNAPSHOTS, **hosts[1]) as orch:
        moved = await run(orch, "cat notes.txt", sample_repo)
        moved_events = await event_types(orch, moved["task_id"])
        again = await run(orch, "cat notes.txt", sample_repo)
        again_events = await event_types(orch, again["task_id"])
    assert taken["members"] > 0
    assert moved["workspace_id"] == first["workspace_id"]
    assert "kept" in moved["result"]
    assert moved_events.index("workspace.restored") < moved_events.index("workspace.synced")
    assert "workspace.restored" not in again_events  # the files are here now


async def test_without_a_snapshot_a_missing_workspace_starts_from_a_fresh_clone(
    make_orchestrator: OrchestratorFactory, gcs_emulator: str, sample_repo: Path, tmp_path: Path
) -> None:
    async with make_orchestrator(workspace_backend="local", data_dir=tmp_path / "a") as orch:
        await run(orch, "true", sample_repo)
    async with make_orchestrator(
        workspace_backend="local", data_dir=tmp_path / "b", **SNAPSHOTS
    ) as orch:
        task = await run(orch, "cat README.md", sample_repo)
        events = await event_types(orch, task["task_id"])
    assert "# sample" in task["result"] and "workspace.restored" not in events


def anvyl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANVYL, *args], capture_output=True, text=True, timeout=120)


def test_the_cli_snapshots_and_restores_a_workspace_of_a_running_server(
    database_url: str, gcs_emulator: str, sample_repo: Path, tmp_path: Path
) -> None:
    env = {
        "ANVYL_DATABASE_URL": database_url,
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_WORKSPACE_BACKEND": "local",
        "ANVYL_GCS_BUCKET": BUCKET,
        "ANVYL_GCP_PROJECT": PROJECT,
        "STORAGE_EMULATOR_HOST": gcs_emulator,
    }
    with running_server(env, tmp_path / "server.log") as server:
        body = {"query": "run `echo one > notes.txt`", "repo_url": str(sample_repo)}
        task = httpx.post(f"{server.url}/orchestrate", json=body, timeout=120).json()
        workspace_id = task["workspace_id"]
        taken = anvyl("workspaces", "snapshot", workspace_id, "--server", server.url)
        body["query"] = "run `echo two > notes.txt`"
        httpx.post(f"{server.url}/orchestrate", json=body, timeout=120)
        restored = anvyl("workspaces", "restore", workspace_id, "--server", server.url, "--json")
        notes = (
            tmp_path / "data" / "workspaces" / workspace_id / "files" / "notes.txt"
        ).read_text()
        unknown = anvyl("workspaces", "snapshot", "nope-0000000000", "--server", server.url)
    assert task["status"] == "succeeded", task["error"]
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith(f"snapshot {workspace_id}: ")
    assert f"at gs://{BUCKET}/snapshots/{workspace_id}/" in taken.stdout
    assert restored.returncode == 0, restored.stderr
    answer = json.loads(restored.stdout)
    assert answer["workspace_id"] == workspace_id and answer["snapshot"] in taken.stdout
    assert notes == "one\n"
    assert unknown.returncode == 1 and "404: no workspace with id" in unknown.stderr
