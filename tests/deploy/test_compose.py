"""docker-compose.yml for real (Debian's docker-compose 1.29): the stack up from locally built images,
README's compose curl answered by a task that succeeded in a worker on the compose network, and
`down -v` leaving no container (workers included), network or stack volume behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import make_git_repo
from tests.deploy.compose_stack import PROJECT_LABEL, ROOT, ComposeStack, missing_images


def readme_compose_commands() -> list[str]:
    """The curl commands of README.md's compose section, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### With docker-compose", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    joined = re.sub(r"\\\n\s*", " ", "\n".join(blocks))
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl")]


@contextlib.contextmanager
def git_server(client: docker.DockerClient, stack: ComposeStack, root: Path) -> Iterator[str]:
    """A git repository over dumb HTTP on the workers' network (this machine has no internet):
    the URL a worker clones, as it would clone from a forge."""
    bare = root / "srv" / "sample.git"
    make_git_repo(root / "sample", {"README.md": "# sample\n", "src/app.py": "print('hi')\n"})
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(root / "sample"), str(bare)], check=True, timeout=60
    )
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True, timeout=60)
    bare.chmod(0o755)
    server = client.containers.run(
        "anvyl/base:bookworm", ["python3", "-m", "http.server", "8000", "--directory", "/srv"],
        detach=True, name=f"{stack.project}-git", user="1000:1000",
        volumes={str(root / "srv"): {"bind": "/srv", "mode": "ro"}},
        network=stack.worker_network,
        networking_config={stack.worker_network: client.api.create_endpoint_config(aliases=["git-server"])},
    )  # fmt: skip
    try:
        yield "http://git-server:8000/sample.git"
    finally:
        server.remove(force=True)


@pytest.fixture
def stack(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[ComposeStack]:
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is missing: apt-get install docker-compose (scripts/setup-system.sh)"
        )
    missing = missing_images(docker_client)
    if missing:
        pytest.fail(f"images {missing} missing: run BASE_IMAGE=anvyl/base:bookworm "
                    "scripts/build-images.sh agent orchestrator postgres")  # fmt: skip
    stack = ComposeStack(tmp_path)
    try:
        yield stack
    finally:
        stack.down()
        stack.remove_everything(docker_client)


def test_the_compose_stack_runs_a_task_in_a_worker_on_its_network_and_down_leaves_nothing(
    stack: ComposeStack, docker_client: docker.DockerClient
) -> None:
    stack.up()
    stack.wait_ready()
    key = {"authorization": f"Bearer {stack.api_key}"}
    assert httpx.get(f"{stack.url}/orchestrate", timeout=10).status_code in (401, 405)

    commands = readme_compose_commands()
    assert len(commands) >= 2, commands
    answers = []
    for command in commands:  # as written: only the address differs
        runnable = command.replace("localhost:8080", stack.url.removeprefix("http://"))
        done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, timeout=180,
                              env={**os.environ, "ANVYL_API_KEY": stack.api_key})  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr}\n{stack.logs()}"
        answers.append(json.loads(done.stdout))
    task = next(a for a in answers if isinstance(a, dict) and "task_id" in a)
    assert task["status"] == "succeeded", f"{task}\n{stack.logs()}"
    assert "# A" in task["result"]  # the file was read by the worker

    # A repository the worker clones (seed 003's request), then `GET /containers` shows its worker.
    with git_server(docker_client, stack, stack.directory) as repo_url:
        done = httpx.post(f"{stack.url}/orchestrate", headers=key, timeout=180,
                          json={"query": "List files in current directory", "repo_url": repo_url})  # fmt: skip
        cloned = done.json()
        assert cloned["status"] == "succeeded", f"{cloned}\n{stack.logs()}"
        assert "README.md" in cloned["result"] and "src" in cloned["result"]
    containers = httpx.get(f"{stack.url}/containers", headers=key, timeout=10).json()
    (shown,) = [c for c in containers if c["workspace"] == cloned["workspace_id"]]
    assert shown["repository"] == repo_url and shown["state"] == "running"

    # The worker: on the workers network, nothing published on the host, one-off of the project.
    worker = docker_client.containers.get(shown["name"])
    assert set(worker.attrs["NetworkSettings"]["Networks"]) == {stack.worker_network}
    assert not worker.attrs["HostConfig"]["PortBindings"]
    assert not any(m["Destination"] == "/var/run/docker.sock" for m in worker.attrs["Mounts"])
    assert worker.labels[PROJECT_LABEL] == stack.project
    # Only the orchestrator has the Docker socket.
    for container in docker_client.containers.list(
        filters={"label": f"{PROJECT_LABEL}={stack.project}"}
    ):
        has_socket = any(
            m["Destination"] == "/var/run/docker.sock" for m in container.attrs["Mounts"]
        )
        assert has_socket == (container.labels.get("com.docker.compose.service") == "orchestrator"
                              and container.labels.get("com.docker.compose.oneoff") == "False"), container.name  # fmt: skip
    # The orchestrator's user is not root, and its health check passes.
    (orchestrator,) = docker_client.containers.list(
        filters={"label": [f"{PROJECT_LABEL}={stack.project}", "com.docker.compose.service=orchestrator",
                           "com.docker.compose.oneoff=False"]})  # fmt: skip
    assert orchestrator.attrs["Config"]["User"] == "1000:1000"

    done = stack.down()
    assert done.returncode == 0, done.stdout + done.stderr
    left = stack.leftovers(docker_client)
    assert left["containers"] == [] and left["networks"] == [], left
    # The workers' file volumes stay like compose's own without -v... and go by their label:
    assert all(v.startswith(f"anvyl-{stack.project}-") for v in left["volumes"]), left
