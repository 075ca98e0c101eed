"""Read-only mode, per-server tool allow-lists and the audit log of every call."""

import structlog.testing

from .conftest import HubFactory, mcp_session, result_text

MUTATING_DOCKER_TOOLS = {
    "create_container",
    "start_container",
    "stop_container",
    "remove_container",
    "exec_in_container",
}


async def test_read_only_mode_hides_and_refuses_state_changing_tools(
    start_hub: HubFactory,
) -> None:
    hub = start_hub(read_only=True)
    async with mcp_session(hub.url("docker")) as session:
        listed = {tool.name for tool in (await session.list_tools()).tools}
        removed = await session.call_tool(
            "remove_container", {"container_id": "anything", "force": True}
        )
        listing = await session.call_tool("list_containers", {})
    async with mcp_session(hub.url("infra")) as session:
        infra_listed = {tool.name for tool in (await session.list_tools()).tools}
        executed = await session.call_tool("execute_command", {"command": "echo hi"})
    assert listed == {"list_containers", "get_container_info", "container_logs"}
    assert not listed & MUTATING_DOCKER_TOOLS
    assert removed.is_error
    assert "read-only mode" in result_text(removed)
    assert not listing.is_error
    assert infra_listed == {"get_host_info", "get_host_resources"}
    assert executed.is_error
    assert "read-only mode" in result_text(executed)


async def test_per_server_tool_allow_lists(start_hub: HubFactory) -> None:
    hub = start_hub(docker_tools=["list_containers"], infra_tools="get_host_info,execute_command")
    async with mcp_session(hub.url("docker")) as session:
        docker_tools = {tool.name for tool in (await session.list_tools()).tools}
        refused = await session.call_tool("get_container_info", {"container_id": "x"})
    async with mcp_session(hub.url("infra")) as session:
        infra_tools = {tool.name for tool in (await session.list_tools()).tools}
    async with mcp_session(hub.url("proxmox")) as session:
        proxmox_tools = {tool.name for tool in (await session.list_tools()).tools}
    assert docker_tools == {"list_containers"}
    assert refused.is_error
    assert "ANVYL_MCP_HUB_DOCKER_TOOLS" in result_text(refused)
    assert infra_tools == {"get_host_info", "execute_command"}
    assert len(proxmox_tools) == 7  # discovery (5) and the cluster tools (2)


async def test_every_call_is_audited_with_secrets_masked(start_hub: HubFactory) -> None:
    hub = start_hub(command_allow_list=["echo"])
    with structlog.testing.capture_logs() as logs:
        async with mcp_session(hub.url("infra")) as session:
            await session.call_tool("execute_command", {"command": "echo DB_PASSWORD=hunter2"})
            await session.call_tool("execute_command", {"command": "cat /etc/shadow"})
    calls = [entry for entry in logs if entry["event"] == "tool_call"]
    assert [call["outcome"] for call in calls] == ["ok", "error"]
    ok, refused = calls
    assert ok["server"] == "infra"
    assert ok["tool"] == "execute_command"
    assert ok["arguments"] == {"command": "echo DB_PASSWORD=***"}
    assert "hunter2" not in repr(logs)
    assert ok["caller"]["auth"] == "bearer-token"
    assert ok["caller"]["address"].startswith("127.0.0.1:")
    assert ok["caller"]["client"].startswith("mcp/")
    assert ok["duration_ms"] > 0
    assert "not in the execute_command allow-list" in refused["error"]
