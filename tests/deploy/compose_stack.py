"""A docker-compose project of docker-compose.yml for tests and the bench: unique names, a free port,
the images built locally, and `down` that leaves nothing (checked, then enforced)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import httpx

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "com.docker.compose.project"
IMAGES = {  # the images the stack runs, built by scripts/build-images.sh agent orchestrator postgres
    "ANVYL_AGENT_IMAGE": os.environ.get("ANVYL_AGENT_IMAGE", "anvyl/agent:dev"),
    "ANVYL_ORCHESTRATOR_IMAGE": os.environ.get(
        "ANVYL_ORCHESTRATOR_IMAGE", "anvyl/orchestrator:dev"
    ),
    "ANVYL_MCP_HUB_IMAGE": os.environ.get("ANVYL_MCP_HUB_IMAGE", "anvyl/mcp-hub:dev"),
    "ANVYL_POSTGRES_IMAGE": os.environ.get("ANVYL_POSTGRES_IMAGE", "postgres:15-bookworm"),
}


def missing_images(client: docker.DockerClient) -> list[str]:
    missing = []
    for image in IMAGES.values():
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    return missing


@dataclass
class ComposeStack:
    directory: Path  # holds the stack's .env
    project: str = field(default_factory=lambda: f"anvyltest{secrets.token_hex(4)}")
    port: int = field(default_factory=free_port)
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_network(self) -> str:
        return f"{self.project}-workers"

    def write_env(self) -> Path:
        """.env.example with its secrets set and this stack's names: as a user's `cp` then edit."""
        values = {
            "ANVYL_API_KEYS": self.api_key,
            "ANVYL_MCP_HUB_TOKEN": secrets.token_hex(16),
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
            "ANVYL_PUBLISH_PORT": str(self.port),
            "ANVYL_WORKER_NETWORK": self.worker_network,
            "ANVYL_INSTANCE": self.project,
            **IMAGES,
        }
        lines = []
        for line in (ROOT / ".env.example").read_text().splitlines():
            name = line.lstrip("# ").split("=", 1)[0]
            lines.append(f"{name}={values.pop(name)}" if "=" in line and name in values else line)
        lines += [f"{name}={value}" for name, value in values.items()]
        path = self.directory / ".env"
        path.write_text("\n".join(lines) + "\n")
        return path

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command = [shutil.which("docker-compose") or "docker-compose", "-p", self.project,
                   "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(self.directory / ".env"),
                   *args]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)

    def up(self) -> None:
        self.write_env()
        done = self.compose("up", "-d", "--no-build")
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose up failed:\n{done.stdout}{done.stderr}")

    def wait_ready(self, timeout_s: float = 180) -> float:
        """Seconds until the orchestrator's /ready answers 200."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2,
                             headers={"authorization": f"Bearer {self.api_key}"}).status_code == 200:  # fmt: skip
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"/ready did not answer within {timeout_s} s:\n{self.logs()}")

    def logs(self) -> str:
        done = self.compose("logs", "--no-color", "--tail", "60", timeout=60)
        return done.stdout + done.stderr

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.compose("down", "-v", "--timeout", "5")

    def leftovers(self, client: docker.DockerClient) -> dict[str, list[str]]:
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        return {
            "containers": [str(c.name) for c in client.containers.list(all=True, filters=label)],
            "networks": [str(n.name) for n in client.networks.list(names=[self.worker_network])]
            + [str(n.name) for n in client.networks.list(filters=label)],
            "volumes": [str(v.name) for v in client.volumes.list(filters=label)],
        }

    def remove_everything(self, client: docker.DockerClient) -> None:
        """What `down` should have removed, removed by force (a failed test leaves nothing either)."""
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters=label) + client.networks.list(
            names=[self.worker_network]
        ):
            network.remove()
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
