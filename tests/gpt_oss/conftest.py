from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from anvyl.gpt_oss.testing import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="anvyl-tiny-llama-") as directory:
        yield build_tiny_llama(Path(directory) / "model")
