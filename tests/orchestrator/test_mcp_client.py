"""The orchestrator's MCP client against the real hub: discovery with the token, 401 without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from anvyl.mcp_hub.app import create_hub
from anvyl.mcp_hub.settings import HubSettings
from anvyl.orchestrator.loop.mcp_client import McpServerConfig, McpToolbox, load_mcp_servers
from tests.mcp_hub.conftest import TEST_TOKEN, serve_app


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
    servers = load_mcp_servers(config, {"ANVYL_MCP_HUB_URL": "http://hub:9000", "GH": "secret"})
    assert [(s.name, s.url) for s in servers] == [
        ("github", "https://mcp.example.com/mcp"),
        ("infra", "http://hub:9000/infra/mcp"),
        ("docker", "http://hub:9000/docker/mcp"),
        ("proxmox", "http://hub:9000/proxmox/mcp"),
    ]
    assert servers[0].bearer({"GH": "secret"}) == "secret"
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcp_servers:\n  - name: Bad Name\n    url: ftp://x\n")
    with pytest.raises(ValueError, match="name"):
        load_mcp_servers(bad, {})
