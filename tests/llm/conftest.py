from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import serving_process

from anvyl.gpt_oss.testing import build_tiny_llama
from anvyl.orchestrator.llm.testing import refused_port


@pytest.fixture(scope="session")
def tiny_model_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="anvyl-tiny-llama-") as directory:
        yield build_tiny_llama(Path(directory) / "model")


@pytest.fixture(scope="session")
def mlx_server_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m mlx_lm server`` on the tiny model, stopped at teardown."""
    port = refused_port()
    argv = [sys.executable, "-m", "mlx_lm", "server", "--model", str(tiny_model_dir),
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = tmp_path_factory.mktemp("mlx-server") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with serving_process(argv, f"http://127.0.0.1:{port}/v1/models", log, env=env,
                         stop_timeout_s=10):  # fmt: skip
        yield f"http://127.0.0.1:{port}/v1"
