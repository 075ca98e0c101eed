from __future__ import annotations

from pathlib import Path

import pytest

from anvyl.gpt_oss.testing import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-gpt-oss") / "model")
