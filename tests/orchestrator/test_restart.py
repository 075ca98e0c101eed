"""A real `anvyl serve` process: tasks survive a restart, and the restarted server adopts its container."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import running_server


def test_a_task_is_readable_after_a_restart_and_the_container_is_adopted(
    database_url: str, docker_instance: str, sample_repo: Path, tmp_path: Path
) -> None:
    env = {
        "ANVYL_DATABASE_URL": database_url,
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_INSTANCE": docker_instance,
        "ANVYL_WORKSPACE_BACKEND": "docker",
    }
    body = {"query": "List files in current directory", "repo_url": str(sample_repo)}
    with running_server(env, tmp_path / "server.log") as server:
        first = httpx.post(f"{server.url}/orchestrate", json=body, timeout=120).json()
    assert first["status"] == "succeeded", first["error"]

    with running_server(env, tmp_path / "server.log") as server:
        again = httpx.get(f"{server.url}/tasks/{first['task_id']}", timeout=10)
        second = httpx.post(f"{server.url}/orchestrate", json=body, timeout=120).json()
    assert again.status_code == 200
    assert again.json() == first
    assert second["status"] == "succeeded"
    assert second["metadata"]["workspace"]["reused"] is True
