"""`GET /containers`: the worker containers of this orchestrator, for debugging (seed 003)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker

from tests.orchestrator.conftest import OrchestratorFactory


async def test_the_containers_route_lists_each_worker_with_its_workspace_and_repository(
    make_orchestrator: OrchestratorFactory, docker_instance: str,
    docker_client: docker.DockerClient, sample_repo: Path,
) -> None:  # fmt: skip
    async with make_orchestrator(workspace_backend="docker", api_keys="k1") as orch:
        orch.http.headers["authorization"] = "Bearer k1"
        assert (await orch.http.get("/containers")).json() == []
        done = await orch.orchestrate("list files", str(sample_repo))
        assert done.json()["status"] == "succeeded", done.text
        workspace = done.json()["workspace_id"]
        (shown,) = (await orch.http.get("/containers")).json()
        container = docker_client.containers.get(shown["name"])  # the name `docker logs` takes
        assert container.labels["anvyl.workspace"] == workspace
        assert shown["state"] == "running" and shown["running"] is True
        assert shown["workspace"] == workspace
        assert shown["repository"] == str(sample_repo.resolve())
        assert shown["agent"] is None and shown["backend"] == "docker"
        created = datetime.fromisoformat(shown["created"])
        assert abs(created - datetime.now(UTC)) < timedelta(minutes=5)
        # Guarded like every route but /health.
        orch.http.headers.pop("authorization")
        refused = await orch.http.get("/containers")
        assert refused.status_code == 401 and refused.json()["detail"]
        assert (
            "/containers"
            in (
                await orch.http.get("/openapi.json", headers={"authorization": "Bearer k1"})
            ).json()["paths"]
        )
