"""Worker benchmark: exec round trip through the API against `docker exec`, a 1 MB file read, and
cold start (`docker run` to a healthy /health), on containers from the agent image.

    uv run python bench/worker_bench.py            # image from ANVYL_AGENT_IMAGE, default anvyl/agent:dev

Every container is labelled anvyl.test=worker and removed (with its volume) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time

import httpx

from anvyl.worker.client import WorkerClient

IMAGE = os.environ.get("ANVYL_AGENT_IMAGE", "anvyl/agent:dev")
LABEL = "anvyl.test=worker"


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def run_container(name: str, token: str) -> str:
    docker(
        "run", "-d", "--name", name, "--init", "--read-only", "--tmpfs", "/tmp", "--label", LABEL,
        "--memory", "1g", "--pids-limit", "512", "--cap-drop", "ALL",
        "-e", f"ANVYL_WORKER_TOKEN={token}", "-v", f"{name}-ws:/workspace",
        "-p", "127.0.0.1::8000", IMAGE,
    )  # fmt: skip
    port = docker("port", name, "8000/tcp").stdout.split()[0].rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}"


def remove(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)
    docker("volume", "rm", "-f", f"{name}-ws", check=False)


def wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=1.0) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.005)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def cold_starts(n: int) -> list[float]:
    samples = []
    for i in range(n):
        name = f"anvyl-bench-cold-{secrets.token_hex(3)}-{i}"
        try:
            started = time.perf_counter()
            url = run_container(name, secrets.token_urlsafe(24))
            wait_healthy(url)
            samples.append(time.perf_counter() - started)
        finally:
            remove(name)
    return samples


def import_time(module: str, n: int = 3) -> float:
    """Median wall time of `python3 -c 'import MODULE'` inside the image (one container each)."""
    samples = []
    for _ in range(n):
        out = docker(
            "run", "--rm", "--label", LABEL, "--entrypoint", "python3", IMAGE, "-c",
            f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)",
        )  # fmt: skip
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


async def exec_samples(url: str, token: str, n: int) -> list[float]:
    async with WorkerClient(url, token) as client:
        for _ in range(20):  # warm up the connection and the worker
            await client.run("true")
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            result = await client.run("true")
            samples.append(time.perf_counter() - started)
            assert result.exit_code == 0
    return samples


def raw_exec_samples(host: str, port: int, token: str, n: int) -> list[float]:
    """The same request over a bare keep-alive HTTP/1.1 connection: the server's share."""
    import http.client
    import json

    conn = http.client.HTTPConnection(host, port, timeout=30)
    body = json.dumps({"argv": ["true"]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    samples = []
    for i in range(n + 20):
        started = time.perf_counter()
        conn.request("POST", "/exec", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if i >= 20:
            samples.append(time.perf_counter() - started)
    conn.close()
    return samples


async def api_bench(
    url: str, token: str, name: str, n_exec: int, n_docker: int
) -> list[tuple[str, str, float, float]]:
    rows = []
    ip = docker(
        "inspect", name, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    ).stdout.strip()
    direct = await exec_samples(f"http://{ip}:8000", token, n_exec)
    published = await exec_samples(url, token, n_exec)
    exec_median, exec_p95 = stats(direct)
    rows.append(
        (
            f"exec `true` via POST /exec, container IP (n={n_exec})",
            "ms",
            exec_median * 1e3,
            exec_p95 * 1e3,
        )
    )
    p_median, p_p95 = stats(published)
    r_median, r_p95 = stats(await asyncio.to_thread(raw_exec_samples, ip, 8000, token, n_exec))
    rows.append(
        (
            f"exec `true` via POST /exec, published port (n={n_exec})",
            "ms",
            p_median * 1e3,
            p_p95 * 1e3,
        )
    )
    async with WorkerClient(url, token) as client:
        docker_samples = []
        for _ in range(n_docker):
            started = time.perf_counter()
            docker("exec", name, "true")
            docker_samples.append(time.perf_counter() - started)
        d_median, d_p95 = stats(docker_samples)
        rows.append(
            (f"`docker exec CONTAINER true` (n={n_docker})", "ms", d_median * 1e3, d_p95 * 1e3)
        )
        rows.append(
            (
                "docker exec / (POST /exec, container IP)",
                "x",
                d_median / exec_median,
                d_p95 / exec_p95,
            )
        )
        rows.append(
            ("docker exec / (POST /exec, published port)", "x", d_median / p_median, d_p95 / p_p95)
        )
        rows.append(
            (
                f"exec `true`, bare http.client, container IP (n={n_exec})",
                "ms",
                r_median * 1e3,
                r_p95 * 1e3,
            )
        )

        text = ("0123456789abcdef" * 63 + "\n") * 1040  # ~1 MB of text lines
        await client.write_file("bench/1mb.txt", text)
        await client.write_file("bench/1mb.bin", os.urandom(1024 * 1024))
        for path, label in (("bench/1mb.txt", "text"), ("bench/1mb.bin", "binary, base64")):
            samples = []
            for _ in range(50):
                started = time.perf_counter()
                content = await client.read_file(path)
                samples.append(time.perf_counter() - started)
                assert not content.truncated
            median, p95 = stats(samples)
            rows.append(
                (f"read 1 MB file ({label}) via /files/read (n=50)", "ms", median * 1e3, p95 * 1e3)
            )
        samples = []
        for _ in range(50):
            started = time.perf_counter()
            await client.write_file("bench/w.txt", text)
            samples.append(time.perf_counter() - started)
        median, p95 = stats(samples)
        rows.append(
            ("write 1 MB file (atomic) via /files/write (n=50)", "ms", median * 1e3, p95 * 1e3)
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exec-n", type=int, default=200)
    parser.add_argument("--docker-n", type=int, default=30)
    parser.add_argument("--cold-n", type=int, default=5)
    args = parser.parse_args()
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        print(
            f"image {IMAGE} not found: BASE_IMAGE=anvyl/base:bookworm scripts/build-images.sh",
            file=sys.stderr,
        )
        return 2
    size = docker("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip()
    name = f"anvyl-bench-{secrets.token_hex(4)}"
    token = secrets.token_urlsafe(24)
    try:
        url = run_container(name, token)
        wait_healthy(url)
        rows = asyncio.run(api_bench(url, token, name, args.exec_n, args.docker_n))
    finally:
        remove(name)
    baseline = []
    for _ in range(args.cold_n):
        started = time.perf_counter()
        docker("run", "--rm", "--label", LABEL, "--entrypoint", "true", IMAGE)
        baseline.append(time.perf_counter() - started)
    median, p95 = stats(baseline)
    rows.append(
        (
            f"docker run --rm IMAGE true (Docker's own cost, n={args.cold_n})",
            "ms",
            median * 1e3,
            p95 * 1e3,
        )
    )
    cold = cold_starts(args.cold_n)
    median, p95 = stats(cold)
    rows.append(
        (
            f"cold start: docker run -> healthy /health (n={args.cold_n})",
            "ms",
            median * 1e3,
            p95 * 1e3,
        )
    )
    base = import_time("sys")
    rows.append(
        (
            "import anvyl.worker.app, uvicorn in the image (n=3)",
            "ms",
            (import_time("anvyl.worker.app, uvicorn") - base) * 1e3,
            float("nan"),
        )
    )

    load = os.getloadavg()
    print(
        f"\nworker bench: image {IMAGE} ({int(size) / 1e6:.0f} MB), {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f}\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | {'unit':<4} | {'median':>9} | {'p95':>9} |")
    print(f"|{'-' * (width + 2)}|{'-' * 6}|{'-' * 11}|{'-' * 11}|")
    for label, unit, med, p in rows:
        print(f"| {label:<{width}} | {unit:<4} | {med:>9.2f} | {p:>9.2f} |")
    print()
    for label, exec_row, ratio_row in (("container IP", 0, 3), ("published port", 1, 4)):
        ok = rows[exec_row][2] < 5 and rows[ratio_row][2] >= 10
        print(
            f"target via {label} (exec median < 5 ms, >= 10x faster than docker exec): {'met' if ok else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
