"""`docker build -f Dockerfile.X .` in a fresh clone (no build/wheelhouse) stops at once and prints
the command that builds the wheels (the images install the locked wheels only). The CUDA flavour of
Dockerfile.gpt-oss needs the vLLM image from a registry, which this machine cannot reach."""

from __future__ import annotations

import secrets
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "anvyl/base:bookworm"


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a clone has: tracked and untracked-but-not-ignored, nothing built."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")  # fmt: skip
    clone = tmp_path_factory.mktemp("clone")
    archive = clone / "files.tar"
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, files):
            if (ROOT / name).is_file():
                tar.add(ROOT / name, arcname=name)
    with tarfile.open(archive) as tar:
        tar.extractall(clone / "repo", filter="data")
    return clone / "repo"


@pytest.mark.parametrize(
    ("dockerfile", "args", "command"),
    [
        ("Dockerfile.agent", {}, "scripts/build-images.sh agent"),
        ("Dockerfile.orchestrator", {}, "scripts/build-images.sh orchestrator"),
        ("Dockerfile.orchestrator", {"target": "mcp-hub"}, "scripts/build-images.sh orchestrator"),
        ("Dockerfile.gpt-oss", {"FLAVOUR": "cpu"}, "scripts/build-images.sh gpt-oss-cpu"),
    ],
)
def test_a_build_without_the_wheels_stops_at_once_with_the_command_to_run(
    fresh_clone: Path, docker_client: docker.DockerClient, dockerfile: str, args: dict[str, str],
    command: str,
) -> None:  # fmt: skip
    tag = f"anvyl-deploy-fresh-{secrets.token_hex(4)}"
    args = dict(args)  # the parameter's own dict stays as it is
    # --force-rm: the failed step's container goes too (the legacy builder keeps it otherwise).
    options = ["--force-rm"] + (["--target", args.pop("target")] if "target" in args else [])
    for name, value in {"BASE_IMAGE": BASE_IMAGE, **args}.items():
        options += ["--build-arg", f"{name}={value}"]
    done = subprocess.run(["docker", "build", "-f", dockerfile, *options, "-t", tag, "."],
                          cwd=fresh_clone, capture_output=True, text=True, timeout=300)  # fmt: skip
    try:
        assert done.returncode != 0
        assert f"run  {command}" in done.stdout + done.stderr, done.stdout + done.stderr
        assert "Successfully installed" not in done.stdout  # it stopped before installing anything
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=60)
