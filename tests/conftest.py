"""Shared fixtures: real PostgreSQL and SQLite databases, a real Docker daemon, sample repositories.

Everything a test creates (databases, containers, volumes, processes, directories) is removed in
fixture teardown, which runs also when the test fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.helpers import fresh_postgres_database

POSTGRES_URL = os.environ.get(
    "ANVYL_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)
AGENT_IMAGE = os.environ.get("ANVYL_AGENT_IMAGE", "anvyl/agent:dev")
# The `anvyl` processes the tests start must not read a developer's ./.env (the compose stack's
# secrets would turn auth on): tests that mean to read one name it.
os.environ.setdefault("ANVYL_ENV_FILE", os.devnull)


def make_git_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"README.md": "# sample\n", "src/app.py": "print('hi')\n"}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run([*git, *args], cwd=root, check=True, timeout=30)
    return root


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "sample-repo")


@pytest.fixture
def instance() -> str:
    """A label value that keeps this test's containers apart from every other orchestrator's."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=60)
    client.ping()
    try:
        client.images.get(AGENT_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"worker image {AGENT_IMAGE} missing: run scripts/build-images.sh first")
    yield client
    client.close()


def remove_instance_resources(client: docker.DockerClient, instance: str) -> None:
    label = f"anvyl.instance={instance}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"label": label}):
        volume.remove(force=True)


@pytest.fixture
def docker_instance(docker_client: docker.DockerClient, instance: str) -> Iterator[str]:
    """An instance label whose containers and volumes are removed after the test, pass or fail."""
    yield instance
    remove_instance_resources(docker_client, instance)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test using it runs twice: on an SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}"
        return
    async with fresh_postgres_database(POSTGRES_URL) as url:
        yield url
