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


@pytest.mark.parametrize(
    ("query", "verb"),
    [
        ("Create a nginx container on port 8080", "create"),
        ("stop the web container", "stop"),
        ("please deploy the app", "deploy"),
        ("add a host", "add"),
        ("install htop", "install"),
        ("change the port to 9090", "change"),
        ("remove old images", "remove"),
        ("can you start a VM", "start"),
        ("Could you restart the containers?", "restart"),
        ("I want to delete the files in the build folder", "delete"),
        ("list the containers and then kill the web one", "kill"),
        ("show README.md, then update it", "update"),
        ("Spin up a postgres container", "spin"),
        ("go ahead and push the last commit", "push"),
        ("I'd like you to set the memory limit of the host to 4 GB", "set"),
        ("re-deploy the app", "deploy"),
        ("Make a new file called notes.md", "make"),
        ("shut down the machine", "shut"),
        ("Upgrade the system packages and show the host resources", "upgrade"),
        ("what would it take to build the containers?", "build"),
    ],
)
def test_a_request_for_a_change_is_refused_never_answered_with_a_listing(
    query: str, verb: str
) -> None:
    with pytest.raises(planner.PlannerCannotAnswer) as refused:
        planner.plan(query, WORKSPACE_TOOLS + HUB_TOOLS)
    message = str(refused.value)
    assert f"'{verb}' asks for a change" in message
    assert "no language model is configured" in message


@pytest.mark.parametrize(
    ("query", "tool", "arguments"),
    [
        ("list files", "list_files", {}),
        ("what containers are running?", "docker__list_containers", {}),
        ("show me the host resources", "infra__get_host_resources", {}),
        ("git status please", "git_status", {}),
        ("show README.md", "read_file", {"path": "README.md"}),
        ("Which files are in the repo?", "list_files", {}),
        ("show me the last commits", "git_log", {}),
        ("What changed since the last commit?", "git_status", {}),
        ("Are there any running containers?", "docker__list_containers", {}),
        ("how much memory does the host use", "infra__get_host_resources", {}),
        ("show host info", "infra__get_host_info", {}),
        ("show me the last commit", "git_log", {}),
        ("display the latest update of the commit history", "git_log", {}),
        ("what does `make clean` in docs/Makefile.md say? show docs/Makefile.md", "read_file",
         {"path": "docs/Makefile.md"}),
    ],
)  # fmt: skip
def test_read_requests_in_other_words_are_still_answered(
    query: str, tool: str, arguments: dict
) -> None:
    planned = planner.plan(query, WORKSPACE_TOOLS + HUB_TOOLS)
    assert (planned.tool, planned.arguments) == (tool, arguments)


@pytest.mark.parametrize(
    "query", ["I'd like a container running nginx", "containers", "a machine with more memory"]
)
def test_a_request_that_asks_to_be_shown_nothing_is_not_answered_with_a_listing(
    query: str,
) -> None:
    with pytest.raises(planner.PlannerCannotAnswer, match="no language model is configured"):
        planner.plan(query, WORKSPACE_TOOLS + HUB_TOOLS)


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


HOST_TOOLS = ["hosts__list_hosts", "hosts__query_host", "hosts__broadcast"]


@pytest.mark.parametrize(
    ("query", "tool", "arguments"),
    [
        ("Show resource usage for all hosts", "hosts__broadcast",
         {"query": "show host resources", "include_self": True}),
        ("what is the memory of every machine?", "hosts__broadcast",
         {"query": "show host resources", "include_self": True}),
        ("show the containers on all the hosts", "hosts__broadcast",
         {"query": "show containers", "include_self": True}),
        ("show host info of each host", "hosts__broadcast",
         {"query": "show host info", "include_self": True}),
        ("list hosts", "hosts__list_hosts", {}),
        ("List all hosts and their status", "hosts__list_hosts", {}),
        # About this host only: its own hub answers, no host is asked.
        ("show all host resources", "infra__get_host_resources", {}),
        ("show me the host resources", "infra__get_host_resources", {}),
        ("show containers", "docker__list_containers", {}),
    ],
)  # fmt: skip
def test_the_planner_asks_every_host_about_all_hosts(
    query: str, tool: str, arguments: dict
) -> None:
    planned = planner.plan(query, WORKSPACE_TOOLS + HUB_TOOLS + HOST_TOOLS)
    assert (planned.tool, planned.arguments) == (tool, arguments)


def test_without_known_hosts_a_request_about_all_hosts_is_answered_for_this_one() -> None:
    planned = planner.plan("Show resource usage for all hosts", WORKSPACE_TOOLS + HUB_TOOLS)
    assert planned.tool == "infra__get_host_resources"
    with pytest.raises(planner.PlannerCannotAnswer, match="stop"):
        planner.plan("stop the containers on all hosts", HUB_TOOLS + HOST_TOOLS)
