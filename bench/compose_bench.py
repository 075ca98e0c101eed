"""The compose stack (docker-compose.yml, Debian's docker-compose 1.29): `up -d` to the first healthy
`/ready`, two tasks with files (each a scratch workspace: a new worker container on the compose network,
removed when the task ends), `down -v`; and the size of each image against its base image.

    uv run python bench/compose_bench.py [--runs 3]

Needs the images (BASE_IMAGE=anvyl/base:bookworm scripts/build-images.sh agent orchestrator postgres;
names from ANVYL_ORCHESTRATOR_IMAGE, ANVYL_MCP_HUB_IMAGE, ANVYL_AGENT_IMAGE, ANVYL_POSTGRES_IMAGE).
Each run is its own compose project, removed at the end whatever happens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, as common.py
from tests.deploy.compose_stack import IMAGES, ComposeStack, missing_images

BASE_IMAGE = os.environ.get("BASE_IMAGE", "anvyl/base:bookworm")
TASK = {"query": "show a.md", "files": [{"name": "a.md", "content": "# A\n"}]}


def one_run(client: docker.DockerClient) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="anvyl-compose-bench-") as directory:
        stack = ComposeStack(Path(directory))
        try:
            start = time.monotonic()
            stack.up()
            up = time.monotonic() - start
            ready = up + stack.wait_ready()
            headers = stack.headers  # none: .env as copied, the API answers this machine
            sent = time.monotonic()
            answer = httpx.post(f"{stack.url}/orchestrate", json=TASK, headers=headers, timeout=300)
            first_task = time.monotonic() - sent
            if answer.json().get("status") != "succeeded":
                raise RuntimeError(f"the first task did not succeed: {answer.text}\n{stack.logs()}")
            sent = time.monotonic()
            httpx.post(f"{stack.url}/orchestrate", json=TASK, headers=headers, timeout=300)
            second_task = time.monotonic() - sent
            start = time.monotonic()
            stack.down()
            down = time.monotonic() - start
            return {"up -d returns": up, "up -> /ready 200": ready, "task 1 (files: new worker)": first_task,
                    "task 2 (files: new worker)": second_task, "down -v": down}  # fmt: skip
        finally:
            stack.down()
            stack.remove_everything(client)


def size_mb(client: docker.DockerClient, image: str) -> float:
    return float(client.images.get(image).attrs["Size"]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env(timeout=120)
    missing = missing_images(client)
    if missing:
        raise SystemExit(f"images {missing} missing: BASE_IMAGE={BASE_IMAGE} "
                         "scripts/build-images.sh agent orchestrator postgres")  # fmt: skip
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"docker-compose 1.29, {args.runs} runs, each its own project")  # fmt: skip
    runs = [one_run(client) for _ in range(args.runs)]
    print(f"\n{'step (seconds)':<28}{'median':>8}{'min':>8}{'max':>8}")
    for step in runs[0]:
        values = [run[step] for run in runs]
        print(f"{step:<28}{statistics.median(values):>8.2f}{min(values):>8.2f}{max(values):>8.2f}")
    base = size_mb(client, BASE_IMAGE)
    print(f"\n{'image':<36}{'size MB':>9}{'base':>22}{'base MB':>9}{'added MB':>10}")
    for image in IMAGES.values():
        size = size_mb(client, image)
        print(f"{image:<36}{size:>9.0f}{BASE_IMAGE:>22}{base:>9.0f}{size - base:>10.0f}")
    client.close()


if __name__ == "__main__":
    main()
