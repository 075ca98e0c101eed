"""The orchestrator's MCP client against the real hub: the hub's server list and tools with the
token, 401 without it, and a hub that is down at start-up picked up once it answers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from anvyl.mcp_hub.app import create_hub
from anvyl.mcp_hub.settings import HubSettings
from anvyl.orchestrator.llm.testing import refused_port
from anvyl.orchestrator.loop.mcp_client import McpServerConfig, McpToolbox, load_mcp_servers
from tests.mcp_hub.conftest import TEST_TOKEN, BackgroundServer, serve_app


async def test_the_client_discovers_prefixed_tools_with_truthful_flags_and_calls_them() -> None:
    with serve_app(create_hub(HubSettings(_env_file=None, token=TEST_TOKEN)).app) as hub:
        servers = load_mcp_servers(None, {"ANVYL_MCP_HUB_URL": f"http://127.0.0.1:{hub.port}",
                                          "ANVYL_MCP_HUB_TOKEN": TEST_TOKEN})  # fmt: skip
        toolbox = McpToolbox(servers)
        try:
            await toolbox.refresh()
            tools = {tool.name: tool for tool in toolbox.tools()}
            info = await tools["infra__get_host_info"].run({})
        finally:
            await toolbox.close()
    assert [s.name for s in servers] == ["infra", "docker", "proxmox"] and toolbox.errors == {}
    assert (
        tools["docker__list_containers"].read_only
        and not tools["docker__list_containers"].destructive
    )
    assert (
        tools["docker__remove_container"].destructive
        and not tools["docker__remove_container"].read_only
    )
    assert "hostname" in info


async def test_without_the_token_the_hub_answers_401_and_discovery_says_so() -> None:
    with serve_app(create_hub(HubSettings(_env_file=None, token=TEST_TOKEN)).app) as hub:
        toolbox = McpToolbox(
            [McpServerConfig(name="infra", url=f"http://127.0.0.1:{hub.port}/infra/mcp")]
        )
        try:
            await toolbox.refresh()
        finally:
            await toolbox.close()
    assert toolbox.tools() == []
    assert "401" in toolbox.errors["infra"]


def test_mcp_servers_come_from_the_config_file_and_the_hub_variable(tmp_path: Path) -> None:
    config = tmp_path / "anvyl.yaml"
    config.write_text(
        "mcp_servers:\n  - name: github\n    url: https://mcp.example.com/mcp\n    token_env: GH\n"
    )
    with serve_app(create_hub(HubSettings(_env_file=None, token=TEST_TOKEN)).app) as hub:
        url = f"http://127.0.0.1:{hub.port}"
        servers = load_mcp_servers(config, {"ANVYL_MCP_HUB_URL": f"{url}/", "GH": "secret",
                                            "ANVYL_MCP_HUB_TOKEN": TEST_TOKEN})  # fmt: skip
    assert [(s.name, s.url) for s in servers] == [
        ("github", "https://mcp.example.com/mcp"),
        ("infra", f"{url}/infra/mcp"),
        ("docker", f"{url}/docker/mcp"),
        ("proxmox", f"{url}/proxmox/mcp"),
    ]
    assert servers[0].bearer({"GH": "secret"}) == "secret"
    assert servers[1].bearer({}) == TEST_TOKEN
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcp_servers:\n  - name: Bad Name\n    url: ftp://x\n")
    with pytest.raises(ValueError, match="name"):
        load_mcp_servers(bad, {})


def test_the_hub_says_which_servers_it_mounts_and_the_config_file_keeps_its_names(
    tmp_path: Path,
) -> None:
    config = tmp_path / "anvyl.yaml"
    config.write_text("mcp_servers:\n  - name: infra\n    url: https://infra.example.com/mcp\n")
    settings = HubSettings(_env_file=None, token=TEST_TOKEN, enabled_servers=["infra", "docker"])
    with serve_app(create_hub(settings).app) as hub:
        servers = load_mcp_servers(config, {"ANVYL_MCP_HUB_URL": f"http://127.0.0.1:{hub.port}",
                                            "ANVYL_MCP_HUB_TOKEN": TEST_TOKEN})  # fmt: skip
    assert [(s.name, s.url) for s in servers] == [
        ("infra", "https://infra.example.com/mcp"),
        ("docker", f"http://127.0.0.1:{hub.port}/docker/mcp"),
    ]


def test_a_wrong_hub_token_is_logged_with_what_to_fix_and_the_orchestrator_goes_on() -> None:
    with (
        serve_app(create_hub(HubSettings(_env_file=None, token=TEST_TOKEN)).app) as hub,
        capture_logs() as logs,
    ):
        servers = load_mcp_servers(None, {"ANVYL_MCP_HUB_URL": f"http://127.0.0.1:{hub.port}",
                                          "ANVYL_MCP_HUB_TOKEN": "wrong"})  # fmt: skip
    assert servers == []
    [warning] = [entry for entry in logs if entry["event"] == "mcp.hub_unreachable"]
    assert "HTTP 401: check ANVYL_MCP_HUB_TOKEN" in warning["error"]
    assert "wrong" not in str(logs)


async def test_a_hub_down_at_start_up_is_logged_and_its_tools_appear_once_it_answers() -> None:
    port = refused_port()
    environ = {"ANVYL_MCP_HUB_URL": f"http://127.0.0.1:{port}", "ANVYL_MCP_HUB_TOKEN": TEST_TOKEN}
    with capture_logs() as logs:
        started = time.monotonic()
        servers = load_mcp_servers(None, environ)
        waited_s = time.monotonic() - started
    assert servers == [] and waited_s < 10
    [warning] = [entry for entry in logs if entry["event"] == "mcp.hub_unreachable"]
    assert warning["url"] == f"http://127.0.0.1:{port}/servers" and warning["error"]

    toolbox = McpToolbox(servers, environ)
    hub = BackgroundServer(create_hub(HubSettings(_env_file=None, token=TEST_TOKEN)).app, port)
    try:
        await toolbox.refresh()  # still down: nothing, no exception
        assert toolbox.tools() == []
        hub.start()
        await toolbox.refresh()
        names = {tool.name for tool in toolbox.tools()}
    finally:
        await toolbox.close()
        hub.stop()
    assert {"infra__get_host_info", "docker__list_containers", "proxmox__get_nodes"} <= names
    assert toolbox.errors == {}
