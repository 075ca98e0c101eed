"""`.env` and the deployment guide's short names (seed 003) beside the ANVYL_* variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from anvyl.orchestrator.environment import ALIASES, UnusableEnvironment, load_environment
from anvyl.orchestrator.llm.config import load_model_config
from anvyl.orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_short_names_set_their_anvyl_variables(tmp_path: Path) -> None:
    environ = {
        "PROJECT_ID": "proj-1", "REGION": "europe-west1", "GCS_BUCKET": "bucket-1",
        "DATABASE_URL": "postgresql://anvyl:pw@db:5432/anvyl", "GPT_OSS_URL": "http://gpt-oss:8000/v1",
        "LLM_API_KEY": "sk-test",
    }  # fmt: skip
    load_environment(environ, tmp_path / "none.env")
    assert environ["ANVYL_GCP_PROJECT"] == "proj-1"
    assert environ["ANVYL_GCP_REGION"] == "europe-west1"
    assert environ["ANVYL_GCS_BUCKET"] == "bucket-1"
    # The usual DATABASE_URL gets the async driver the orchestrator uses.
    assert environ["ANVYL_DATABASE_URL"] == "postgresql+asyncpg://anvyl:pw@db:5432/anvyl"
    assert environ["ANVYL_GPT_OSS_URL"] == "http://gpt-oss:8000/v1"
    assert environ["OPENAI_API_KEY"] == "sk-test"  # the default cloud provider's key
    # What the orchestrator then does with them: its settings and its model chain.
    config = load_model_config(None, environ)
    by_name = {m.name: m for m in config.models}
    assert by_name["gpt-oss"].base_url == "http://gpt-oss:8000/v1"
    assert by_name["openai"].api_key is not None
    assert by_name["openai"].api_key.get_secret_value() == "sk-test"


def test_an_anvyl_name_wins_over_its_alias_and_the_environment_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("REGION=from-file\nGCS_BUCKET=file-bucket\nANVYL_GCS_BUCKET=anvyl-bucket\n"
                      "ANVYL_LLM_PROVIDER=anthropic\nLLM_API_KEY=sk-ant\n")  # fmt: skip
    environ = {"REGION": "from-env", "ANVYL_GCP_REGION": "anvyl-region", "ANTHROPIC_API_KEY": ""}
    added = load_environment(environ, dotenv)
    assert environ["REGION"] == "from-env"  # the environment wins over the file
    assert environ["ANVYL_GCP_REGION"] == "anvyl-region"  # ANVYL_* wins over the alias
    assert environ["ANVYL_GCS_BUCKET"] == "anvyl-bucket"
    assert environ["ANTHROPIC_API_KEY"] == "sk-ant"  # LLM_API_KEY is the configured provider's
    assert "OPENAI_API_KEY" not in environ
    assert "ANVYL_GCP_REGION" not in added


def test_a_local_provider_for_llm_api_key_is_refused_with_the_choices(tmp_path: Path) -> None:
    environ = {"LLM_API_KEY": "sk", "ANVYL_LLM_PROVIDER": "ollama"}
    with pytest.raises(UnusableEnvironment, match="one of openai, anthropic, xai, groq"):
        load_environment(environ, tmp_path / "none.env")


def test_the_settings_see_the_dotenv_of_the_working_directory(tmp_path: Path) -> None:
    """`anvyl config show` in a directory with a `.env` (seed 003: cp .env.example .env)."""
    (tmp_path / ".env").write_text(
        f"PROJECT_ID=my-project\nGCS_BUCKET=my-bucket\nANVYL_DATA_DIR={tmp_path / 'data'}\n"
        "ANVYL_WORKSPACE_BACKEND=local\nLLM_API_KEY=sk-secret-value\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_")}
    for name in ("PROJECT_ID", "GCS_BUCKET", "LLM_API_KEY", "OPENAI_API_KEY", "REGION"):
        env.pop(name, None)
    shown = subprocess.run([sys.executable, "-m", "anvyl.orchestrator", "config", "show"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "my-bucket" in shown.stdout and "my-project" in shown.stdout
    assert "sk-secret-value" not in shown.stdout + shown.stderr


def test_the_env_example_lists_what_compose_reads_and_names_only_what_something_reads() -> None:
    """Every variable docker-compose.yml interpolates is in .env.example, and every name there is
    read: by compose, by the orchestrator's settings or its other readers, or by the hub."""
    from anvyl.orchestrator.workspaces.config import flat_keys

    compose = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", compose))
    example = (ROOT / ".env.example").read_text()
    listed = {
        line.lstrip("# ").split("=", 1)[0]
        for line in example.splitlines()
        if re.match(r"#? ?[A-Z_][A-Z0-9_]*=", line)
    }
    assert interpolated - listed == set()
    settings = {f"ANVYL_{name.upper()}" for name in Settings.model_fields}
    settings |= {f"ANVYL_{key.upper()}" for key in flat_keys()}
    others = {
        "ANVYL_GPT_OSS_URL",
        "ANVYL_GPT_OSS_MODEL",
        "ANVYL_MCP_HUB_URL",
        "ANVYL_MCP_HUB_TOKEN",
    }
    unread = {
        name for name in listed
        if name not in interpolated | settings | others | set(ALIASES) | {"LLM_API_KEY"}
    }  # fmt: skip
    assert unread == set()
    for seed_name in (
        "PROJECT_ID",
        "REGION",
        "GCS_BUCKET",
        "LLM_API_KEY",
        "DATABASE_URL",
        "GPT_OSS_URL",
    ):
        assert seed_name in listed, seed_name
