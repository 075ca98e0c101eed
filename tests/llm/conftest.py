from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anvyl.gpt_oss.testing import build_tiny_llama
from anvyl.orchestrator.llm.testing import refused_port


@pytest.fixture(scope="session")
def tiny_model_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="anvyl-tiny-llama-") as directory:
        yield build_tiny_llama(Path(directory) / "model")


@pytest.fixture(scope="session")
def mlx_server_url(tiny_model_dir: Path) -> Iterator[str]:
    """``python -m mlx_lm server`` on the tiny model, killed at teardown."""
    port = refused_port()
    # A file, not a pipe: the server logs every request and a full pipe would block it.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "mlx_lm", "server", "--model", str(tiny_model_dir),
                "--host", "127.0.0.1", "--port", str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"mlx_lm server exited: {log.read().decode()[-2000:]}")
                try:
                    if (
                        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code
                        == 200
                    ):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("mlx_lm server did not become ready in 60 s")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.kill()
            process.wait(timeout=10)
