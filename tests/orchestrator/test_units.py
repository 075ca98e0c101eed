"""Small specifications: the built-in planner's intents, repository references, settings output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anvyl.orchestrator.cli.main import app
from anvyl.orchestrator.loop import planner
from anvyl.orchestrator.workspaces.repos import InvalidRepository, parse_repo, redact_url

WORKSPACE_TOOLS = ["list_files", "read_file", "git_status", "git_log", "run_shell"]
HUB_TOOLS = ["docker__list_containers", "infra__get_host_resources", "infra__get_host_info"]


@pytest.mark.parametrize(
    ("query", "tool", "arguments"),
    [
        ("List files in current directory", "list_files", {}),
        ("what files are in this repo?", "list_files", {}),
        ("ls", "list_files", {}),
        ("git status", "git_status", {}),
        ("Are there uncommitted changes?", "git_status", {}),
        ("show me the recent commits", "git_log", {}),
        ("git log please", "git_log", {}),
        ("Show README.md", "read_file", {"path": "README.md"}),
        ("read the file src/App.py", "read_file", {"path": "src/App.py"}),
    ],
)
def test_the_planner_maps_plain_requests_to_tool_calls(
    query: str, tool: str, arguments: dict
) -> None:
    planned = planner.plan(query, WORKSPACE_TOOLS)
    assert (planned.tool, planned.arguments) == (tool, arguments)


def test_the_planner_refuses_what_needs_a_model_and_says_so() -> None:
    with pytest.raises(planner.PlannerCannotAnswer, match="no language model is configured"):
        planner.plan("Write a migration that adds an index to the users table", WORKSPACE_TOOLS)


def test_the_planner_uses_the_hub_tools_only_when_they_are_there() -> None:
    assert planner.plan("show me the containers", HUB_TOOLS).tool == "docker__list_containers"
    assert (
        planner.plan("what is the host resource usage?", HUB_TOOLS).tool
        == "infra__get_host_resources"
    )
    with pytest.raises(planner.PlannerCannotAnswer, match="needs a repository or the MCP hub"):
        planner.plan("show me the containers", [])


def test_workspace_ids_are_stable_and_readable(tmp_path: Path) -> None:
    https = parse_repo("https://GitHub.com/acme/Widget.git")
    assert https.workspace_id == parse_repo("https://github.com/acme/Widget/").workspace_id
    assert https.workspace_id.startswith("widget-")
    assert parse_repo("git@github.com:acme/widget.git").local_path is None
    assert parse_repo("https://token:x@github.com/acme/widget.git").display_url == (
        "https://***@github.com/acme/widget.git"
    )
    assert redact_url("/srv/repo") == "/srv/repo"


@pytest.mark.parametrize(
    "url", ["", "ext::sh", "-oProxyCommand=x", "ftp://h/r", "relative", "https:///x"]
)
def test_bad_repository_references_are_refused(url: str) -> None:
    with pytest.raises(InvalidRepository):
        parse_repo(url)


def test_config_show_masks_secrets_and_reads_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "anvyl.yaml"
    config.write_text("port: 9999\nworkspace_backend: local\nmodels: []\nrouting: {primary: x}\n")
    monkeypatch.setenv("ANVYL_CONFIG", str(config))
    monkeypatch.setenv("ANVYL_DATABASE_URL", "postgresql+asyncpg://anvyl:s3cret@db:5432/anvyl")
    monkeypatch.setenv("ANVYL_WORKSPACE_BACKEND", "docker")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert "s3cret" not in result.output
    assert shown["database_url"] == "postgresql+asyncpg://anvyl:********@db:5432/anvyl"
    assert shown["port"] == 9999  # from the file
    assert shown["workspace_backend"] == "docker"  # the environment wins over the file


def test_a_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANVYL_WORKSPACE_BACKEND", "kubernetes")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "workspace_backend" in result.output


def test_the_cli_says_when_the_server_is_down() -> None:
    result = CliRunner().invoke(app, ["tasks", "show", "x", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the orchestrator" in result.output


def test_serve_refuses_a_public_address_without_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANVYL_API_KEYS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.output
