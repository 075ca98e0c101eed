"""One configuration file, one schema, read in one place: settings, models and MCP servers together."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from anvyl.orchestrator.cli.main import app
from anvyl.orchestrator.config_file import ConfigFileError, read_config_file
from anvyl.orchestrator.llm import load_model_config
from anvyl.orchestrator.loop.mcp_client import load_mcp_servers
from anvyl.orchestrator.settings import Settings

FULL = """\
port: 9100
max_concurrent_tasks: 2
models:
  - name: local-gpt
    provider: openai
    base_url: http://127.0.0.1:9/v1
    model: openai/gpt-oss-20b
routing:
  primary: local-gpt
mcp_servers:
  - name: github
    url: https://mcp.example.com/mcp
    token_env: GITHUB_MCP_TOKEN
"""


def test_one_file_carries_settings_models_and_mcp_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "anvyl.yaml"
    path.write_text(FULL)
    monkeypatch.setenv("ANVYL_CONFIG", str(path))
    monkeypatch.delenv("ANVYL_PORT", raising=False)
    settings = Settings()
    assert settings.port == 9100 and settings.max_concurrent_tasks == 2
    assert settings.config_file is not None and settings.config_file.path == path
    models = load_model_config(settings.config_file, {})
    assert [m.name for m in models.chain()] == ["local-gpt"]
    servers = load_mcp_servers(settings.config_file, {})
    assert [s.name for s in servers] == ["github"]


def test_an_unknown_key_names_its_line_and_what_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "anvyl.yaml"
    path.write_text("port: 9100\nmcp_server:\n  - name: github\n")
    monkeypatch.setenv("ANVYL_CONFIG", str(path))
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert f"{path}:2: unknown key 'mcp_server'" in result.output.replace("\n", "")
    assert "mcp_servers" in result.output


def test_a_bad_mcp_server_names_its_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "anvyl.yaml"
    path.write_text("mcp_servers:\n  - name: github\n    url: https://x/mcp\n  - name: ok\n"
                    "    url: ftp://nope\n")  # fmt: skip
    with pytest.raises(ConfigFileError, match=r"anvyl.yaml:5: mcp_servers.1.url"):
        load_mcp_servers(read_config_file(path), {})


def test_a_missing_file_and_bad_yaml_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        read_config_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [\n")
    with pytest.raises(ConfigFileError, match=r"bad.yaml:2: invalid YAML"):
        read_config_file(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- port\n")
    with pytest.raises(ConfigFileError, match="must be a mapping"):
        read_config_file(listed)
