"""POST /orchestrate end to end: a real worker container, a real repository, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import docker

from tests.orchestrator.conftest import OrchestratorFactory


async def test_lists_the_repository_files_from_inside_its_own_container(
    make_orchestrator: OrchestratorFactory,
    docker_instance: str,
    docker_client: docker.DockerClient,
    sample_repo: Path,
) -> None:
    async with make_orchestrator(workspace_backend="docker") as orch:
        response = await orch.orchestrate("List files in current directory", str(sample_repo))

        assert response.status_code == 200, response.text
        task = response.json()
        assert task["status"] == "succeeded", task["error"]
        assert "README.md" in task["result"] and "src/" in task["result"]
        assert "no language model was used" in task["result"]
        meta = task["metadata"]
        assert meta["backend"] == "builtin-planner" and meta["model_used"] is False
        assert meta["latency_s"] > 0
        assert [call["name"] for call in meta["tool_calls"]] == ["list_files"]
        assert meta["workspace"]["backend"] == "docker"

        containers = docker_client.containers.list(
            filters={"label": ["anvyl.managed=true", f"anvyl.instance={docker_instance}"]}
        )
        assert [c.labels["anvyl.workspace"] for c in containers] == [task["workspace_id"]]

        fetched = await orch.http.get(f"/tasks/{task['task_id']}")
        assert fetched.status_code == 200
        assert fetched.json() == task


async def test_a_second_task_for_the_same_repository_reuses_the_warm_container(
    make_orchestrator: OrchestratorFactory,
    docker_instance: str,
    docker_client: docker.DockerClient,
    sample_repo: Path,
) -> None:
    async with make_orchestrator(workspace_backend="docker") as orch:
        first = (await orch.orchestrate("list files", str(sample_repo))).json()
        container = docker_client.containers.list(
            filters={"label": f"anvyl.instance={docker_instance}"}
        )[0]
        second = (await orch.orchestrate("show git status", str(sample_repo))).json()

        assert first["status"] == second["status"] == "succeeded", (first["error"], second["error"])
        assert first["metadata"]["workspace"]["reused"] is False
        assert second["metadata"]["workspace"]["reused"] is True
        assert second["workspace_id"] == first["workspace_id"]
        assert "## main" in second["result"]
        after = docker_client.containers.list(
            all=True, filters={"label": f"anvyl.instance={docker_instance}"}
        )
        assert [c.id for c in after] == [container.id]


async def test_the_container_is_hardened_and_holds_no_orchestrator_secret(
    make_orchestrator: OrchestratorFactory,
    docker_instance: str,
    docker_client: docker.DockerClient,
    sample_repo: Path,
    monkeypatch: object,
) -> None:
    async with make_orchestrator(workspace_backend="docker") as orch:
        task = (await orch.orchestrate("list files", str(sample_repo))).json()
        assert task["status"] == "succeeded", task["error"]
    container = docker_client.containers.list(
        filters={"label": f"anvyl.instance={docker_instance}"}
    )[0]
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert config["User"] == "1000:1000"
    assert host["ReadonlyRootfs"] is True and host["Init"] is True
    assert (
        host["PidsLimit"] == 512 and host["Memory"] == 2 * 1024**3 and host["NanoCpus"] == 2 * 10**9
    )
    assert host["NetworkMode"] != "host" and host["Privileged"] is False
    assert all(binding["HostIp"] == "127.0.0.1" for binding in host["PortBindings"]["8000/tcp"])
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert "/var/run/docker.sock" not in mounts and mounts["/mnt/source"]["RW"] is False
    assert [e.split("=")[0] for e in config["Env"] if e.startswith("ANVYL_")] == [
        "ANVYL_WORKER_TOKEN"
    ]
    assert not any(
        k in e for e in config["Env"] for k in ("OPENAI", "ANTHROPIC", "DATABASE", "API_KEY")
    )


async def test_a_request_the_planner_cannot_answer_fails_honestly(
    make_orchestrator: OrchestratorFactory, docker_instance: str, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="docker") as orch:
        task = (
            await orch.orchestrate("Refactor the app into microservices", str(sample_repo))
        ).json()
    assert task["status"] == "failed"
    assert "no language model is configured" in task["error"]
    assert task["result"] is None


async def test_the_local_backend_answers_the_same_request(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        first = (await orch.orchestrate("List files in current directory", str(sample_repo))).json()
        second = (await orch.orchestrate("show README.md", str(sample_repo))).json()
        workers = await orch.services.workspaces.backend.list_owned()
    assert first["status"] == "succeeded", first["error"]
    assert "README.md" in first["result"] and first["metadata"]["workspace"]["backend"] == "local"
    assert second["status"] == "succeeded" and "# sample" in second["result"]
    assert second["metadata"]["workspace"]["reused"] is True
    assert [w.workspace_id for w in workers] == [first["workspace_id"]]
