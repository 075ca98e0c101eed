"""The infra server through the real hub: host facts, resources and the command allow-list."""

import socket
import time

import psutil
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from anvyl.mcp_hub.audit import MASK, mask_secrets
from anvyl.mcp_hub.servers.infra import CommandPolicy, run_command

from .conftest import HubFactory, RunningHub, mcp_session, result_text


async def test_get_host_info_and_resources(hub: RunningHub) -> None:
    async with mcp_session(hub.url("infra")) as session:
        info = await session.call_tool("get_host_info", {})
        resources = await session.call_tool("get_host_resources", {})
    assert not info.is_error
    assert info.structured_content["hostname"] == socket.gethostname()
    assert info.structured_content["cpu_count_logical"] == psutil.cpu_count()
    assert not resources.is_error
    content = resources.structured_content
    assert content["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert 0 <= content["cpu_percent"] <= 100
    assert len(content["load_average"]) == 3
    assert any(disk["mountpoint"] == "/" for disk in content["disks"])


async def test_execute_command_runs_an_allowed_command(hub: RunningHub) -> None:
    async with mcp_session(hub.url("infra")) as session:
        result = await session.call_tool("execute_command", {"command": "echo 'hello world' $HOME"})
    assert not result.is_error
    # No shell: quoting is honoured, `$HOME` stays literal.
    assert result.structured_content["argv"] == ["echo", "hello world", "$HOME"]
    assert result.structured_content["stdout"] == "hello world $HOME\n"
    assert result.structured_content["exit_code"] == 0
    assert result.structured_content["timed_out"] is False


async def test_execute_command_refuses_commands_outside_the_allow_list(hub: RunningHub) -> None:
    async with mcp_session(hub.url("infra")) as session:
        refused = await session.call_tool("execute_command", {"command": "rm -rf /tmp/nothing"})
        by_path = await session.call_tool("execute_command", {"command": "/tmp/evil/echo hi"})
        chained = await session.call_tool("execute_command", {"command": "sh -c 'echo hi'"})
        unparsable = await session.call_tool("execute_command", {"command": "echo 'open"})
    for result in (refused, by_path, chained):
        assert result.is_error
        assert "not in the execute_command allow-list" in result_text(result)
    assert "'rm'" in result_text(refused)
    assert unparsable.is_error
    assert "cannot parse command" in result_text(unparsable)


async def test_execute_command_timeout_kills_the_command(start_hub: HubFactory) -> None:
    hub = start_hub(command_allow_list=["sleep"], command_timeout_s=0.5)
    started = time.monotonic()
    async with mcp_session(hub.url("infra")) as session:
        result = await session.call_tool("execute_command", {"command": "sleep 30"})
    assert not result.is_error
    assert result.structured_content["timed_out"] is True
    assert result.structured_content["exit_code"] is None
    assert time.monotonic() - started < 10


async def test_run_command_caps_output() -> None:
    result = await run_command(["seq", "1", "100000"], timeout_s=10, output_limit=100)
    assert result.exit_code == 0
    assert len(result.stdout) == 100
    assert result.stdout_truncated is True
    assert result.stdout.startswith("1\n2\n3\n")


def test_command_policy_matches_argv0_exactly() -> None:
    policy = CommandPolicy(["ls", "/usr/bin/id"])
    assert policy.parse("ls -la /") == ["ls", "-la", "/"]
    assert policy.parse("/usr/bin/id -u") == ["/usr/bin/id", "-u"]
    # A listed name does not admit the same name at another path, nor a path the bare name.
    for command in ("/bin/ls", "/tmp/x/ls", "id", "lsx", "ls;id"):
        with pytest.raises(ToolError, match="not in the execute_command allow-list"):
            policy.parse(command)
    with pytest.raises(ToolError, match="empty command"):
        policy.parse("   ")


async def test_commands_do_not_see_hub_secrets(
    start_hub: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANVYL_MCP_HUB_PROXMOX_TOKEN_SECRET", "pve-secret-value")
    monkeypatch.setenv("SOME_API_KEY", "api-key-value")
    monkeypatch.setenv("ANVYL_VISIBLE_CHECK", "x")
    monkeypatch.setenv("PLAIN_SETTING", "plain-value")
    hub = start_hub(command_allow_list=["env"])
    async with mcp_session(hub.url("infra")) as session:
        result = await session.call_tool("execute_command", {"command": "env"})
    assert not result.is_error
    output = result.structured_content["stdout"]
    assert "PLAIN_SETTING=plain-value" in output
    for leaked in ("pve-secret-value", "api-key-value", "ANVYL_"):
        assert leaked not in output


def test_mask_secrets_hides_secret_arguments() -> None:
    masked = mask_secrets(
        {
            "command": "deploy --x API_TOKEN=abc123 DB_PASSWORD=hunter2 name=web",
            "environment": {"PGPASSWORD": "hunter2", "HOME": "/root"},
            "token": "abc",
            "list": ["SECRET_KEY=xyz", "plain"],
        }
    )
    assert masked["command"] == f"deploy --x API_TOKEN={MASK} DB_PASSWORD={MASK} name=web"
    assert masked["environment"] == {"PGPASSWORD": MASK, "HOME": "/root"}
    assert masked["token"] == MASK
    assert masked["list"] == [f"SECRET_KEY={MASK}", "plain"]
