"""``anvyl models list`` and ``anvyl models test NAME`` against scripted endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from anvyl.orchestrator.cli.models import models_app
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, refused_port


def _config(tmp_path: Path, openai_url: str, anthropic_url: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(f"""\
models:
  - {{name: gpt-oss, provider: openai, base_url: "{openai_url}", model: openai/gpt-oss-20b}}
  - {{name: down, provider: openai, base_url: "http://127.0.0.1:{refused_port()}/v1", model: m}}
  - name: claude
    provider: anthropic
    base_url: "{anthropic_url}"
    model: claude-3-haiku-20240307
    api_key_env: ANTHROPIC_API_KEY
routing:
  primary: gpt-oss
  fallbacks: [down, claude]
""")
    return path


def test_list_shows_endpoints_reachability_and_routing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-never-printed")
    with ScriptedLLMServer() as server:
        monkeypatch.setenv(
            "ANVYL_CONFIG", str(_config(tmp_path, server.openai_url, server.anthropic_url))
        )
        result = CliRunner().invoke(models_app, ["list", "--timeout", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("gpt-oss" in line and "reachable (" in line for line in lines)
    assert any(line.strip().startswith("down") and "unreachable" in line for line in lines)
    assert any("claude" in line and "key=set" in line and "reachable (" in line for line in lines)
    assert "routing: gpt-oss -> down -> claude" in result.output
    assert "sk-ant-never-printed" not in result.output


def test_test_command_prints_answer_and_metadata(tmp_path: Path) -> None:
    with ScriptedLLMServer(
        default=ScriptedReply(content="Hello from the scripted model.")
    ) as server:
        config = _config(tmp_path, server.openai_url, server.anthropic_url)
        result = CliRunner().invoke(models_app, ["test", "claude", "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert "Hello from the scripted model." in result.output
        assert "endpoint=claude provider=anthropic model=scripted-model" in result.output
        assert "tokens=11+7" in result.output
        down = CliRunner().invoke(models_app, ["test", "down", "--config", str(config)])
        assert down.exit_code == 1 and "connection failed" in down.output
        missing = CliRunner().invoke(models_app, ["test", "nope", "--config", str(config)])
        assert missing.exit_code == 2 and "no model named 'nope'" in missing.output


def test_bad_config_exits_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: x\n    provider: openai\n    model: m\n    timeout: -1\n")
    result = CliRunner().invoke(models_app, ["list", "--config", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml:5: models.0.timeout" in result.output


def test_no_model_configured_says_the_planner_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "ANVYL_CONFIG",
        "ANVYL_GPT_OSS_URL",
        "ANVYL_LMSTUDIO_URL",
        "OLLAMA_URL",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "XAI_API_KEY",
        "GROQ_API_KEY",
    ]:
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(models_app, ["list"])
    assert result.exit_code == 0
    assert "no model configured" in result.output
