"""docker-compose.yml for real (Debian's docker-compose 1.29): the stack up from locally built images
with `.env` as `cp .env.example .env` leaves it, README's compose curls (seed 003's among them)
answered by tasks that succeeded in a worker on the compose network, and `down -v` leaving no
container (workers included), network or stack volume behind."""

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
from docker.models.containers import Container

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


def call_api_from(container: Container, url: str) -> str:
    """The status a request to `url` gets from inside `container` (its Python), or the error."""
    code = ("import urllib.request, urllib.error, sys\n"
            "try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)\n"
            "except urllib.error.HTTPError as e:\n    print(e.code)\n"
            "except Exception as e:\n    print(type(e).__name__)\n")  # fmt: skip
    done = container.exec_run(["python3", "-c", code, url])
    return done.output.decode().strip()


def process_status(container: Container) -> dict[str, str]:
    """/proc/1/status of the container: who its main process runs as."""
    text = container.exec_run(["cat", "/proc/1/status"]).output.decode()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_the_compose_stack_runs_a_task_in_a_worker_on_its_network_and_down_leaves_nothing(
    stack: ComposeStack, docker_client: docker.DockerClient
) -> None:
    """Seed 003's quick start: `cp .env.example .env`, `docker-compose up -d`, its curl."""
    stack.up()  # .env as copied: no keys, no secrets set
    stack.wait_ready()
    with git_server(docker_client, stack, stack.directory) as repo_url:
        answers = []
        for command in readme_compose_commands():  # as written but the address (and the
            # repository: this machine has no internet, the git server stands in for GitHub)
            runnable = command.replace("localhost:8080", stack.url.removeprefix("http://"))
            runnable = runnable.replace("https://github.com/example/repo", repo_url)
            done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True,
                                  timeout=180)  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stderr}\n{stack.logs()}"
            answers.append(json.loads(done.stdout))
    cloned, shown_file, containers = answers
    assert cloned["status"] == "succeeded", f"{cloned}\n{stack.logs()}"
    assert "README.md" in cloned["result"] and "src" in cloned["result"]
    assert shown_file["status"] == "succeeded" and "# A" in shown_file["result"]
    (shown,) = [c for c in containers if c["workspace"] == cloned["workspace_id"]]
    assert shown["repository"] == repo_url and shown["state"] == "running"

    # The worker: on the workers network, nothing published on the host, one-off of the project.
    worker = docker_client.containers.get(shown["name"])
    assert set(worker.attrs["NetworkSettings"]["Networks"]) == {stack.worker_network}
    assert not worker.attrs["HostConfig"]["PortBindings"]
    assert not any(m["Destination"] == "/var/run/docker.sock" for m in worker.attrs["Mounts"])
    assert worker.labels[PROJECT_LABEL] == stack.project
    # Only the orchestrator has the Docker socket (and the generated secrets' volume is not the
    # workers').
    for container in docker_client.containers.list(
        filters={"label": f"{PROJECT_LABEL}={stack.project}"}
    ):
        has_socket = any(
            m["Destination"] == "/var/run/docker.sock" for m in container.attrs["Mounts"]
        )
        assert has_socket == (container.labels.get("com.docker.compose.service") == "orchestrator"
                              and container.labels.get("com.docker.compose.oneoff") == "False"), container.name  # fmt: skip
    assert not any(m["Destination"] == "/run/anvyl-secrets" for m in worker.attrs["Mounts"])

    # No keys: the API answers through its published port only, never a worker or the hub.
    assert call_api_from(worker, "http://orchestrator:8080/health") == "200"
    assert call_api_from(worker, "http://orchestrator:8080/tasks") == "403"
    (hub,) = service_containers(docker_client, stack, "mcp-hub")
    assert call_api_from(hub, "http://orchestrator:8080/tasks") == "403"
    assert httpx.get(f"{stack.url}/tasks", timeout=10).status_code == 200

    # The orchestrator runs as 1000:1000 in the socket's group, with no capabilities; the secrets
    # were generated (values never printed).
    (orchestrator,) = service_containers(docker_client, stack, "orchestrator")
    status = process_status(orchestrator)
    assert status["Uid"].split() == ["1000"] * 4 and status["Gid"].split() == ["1000"] * 4
    assert str(os.stat("/var/run/docker.sock").st_gid) in status["Groups"].split()
    assert int(status["CapEff"], 16) == 0
    init_log = stack.compose("logs", "--no-color", "secrets-init", timeout=60).stdout
    assert "postgres-password: generated" in init_log and "mcp-hub-token: generated" in init_log
    stored = orchestrator.exec_run(["cat", "/run/anvyl-secrets/mcp-hub-token"], user="1000")
    assert len(stored.output.decode()) == 64 and stored.output.decode() not in stack.logs()

    done = stack.down()
    assert done.returncode == 0, done.stdout + done.stderr
    left = stack.leftovers(docker_client)
    assert left["containers"] == [] and left["networks"] == [], left
    # The workers' file volumes stay like compose's own without -v... and go by their label:
    assert all(v.startswith(f"anvyl-{stack.project}-") for v in left["volumes"]), left


def service_containers(
    client: docker.DockerClient, stack: ComposeStack, service: str
) -> list[Container]:
    return client.containers.list(filters={"label": [
        f"{PROJECT_LABEL}={stack.project}", f"com.docker.compose.service={service}",
        "com.docker.compose.oneoff=False"]})  # fmt: skip
