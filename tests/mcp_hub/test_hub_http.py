"""HTTP surface of the hub: auth, /health, /servers, DNS-rebinding protection, the bind policy."""

import os
import subprocess
import sys

import httpx
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from anvyl.mcp_hub.app import UnsafeBindError, create_hub
from anvyl.mcp_hub.settings import HubSettings

from .conftest import TEST_TOKEN, HubFactory, RunningHub, mcp_session

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-http-test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_health_is_open_without_token(hub: RunningHub) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{hub.base_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["auth"] is True
    assert body["servers"] == {
        "infra": "/infra/mcp",
        "docker": "/docker/mcp",
        "proxmox": "/proxmox/mcp",
    }


async def test_servers_lists_the_mounted_servers_behind_the_token(start_hub: HubFactory) -> None:
    hub = start_hub(enabled_servers=["infra", "proxmox"])
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(f"{hub.base_url}/servers")
        wrong = await http.get(f"{hub.base_url}/servers", headers={"Authorization": "Bearer x"})
        listed = await http.get(
            f"{hub.base_url}/servers", headers={"Authorization": f"Bearer {TEST_TOKEN}"}
        )
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert listed.status_code == 200
    assert [(s["name"], s["path"]) for s in listed.json()] == [
        ("infra", "/infra/mcp"),
        ("proxmox", "/proxmox/mcp"),
    ]
    assert all(s["description"] for s in listed.json())


@pytest.mark.parametrize("server_name", ["infra", "docker", "proxmox"])
async def test_request_without_token_gets_401(hub: RunningHub, server_name: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(hub.url(server_name), json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_wrong_token_gets_401(hub: RunningHub) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            hub.url("infra"),
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": "Bearer not-the-token"},
        )
        basic = await http.post(
            hub.url("infra"),
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Basic {TEST_TOKEN}"},
        )
    assert response.status_code == 401
    assert response.json()["error_description"] == "invalid token"
    assert basic.status_code == 401


async def test_sdk_client_without_or_with_wrong_token_cannot_connect(hub: RunningHub) -> None:
    for token in (None, "wrong-token"):
        statuses: list[int] = []
        # The SDK reports the failed initialize as an MCPError inside task-group exception groups.
        with pytest.raises(BaseExceptionGroup) as raised:
            async with mcp_session(hub.url("infra"), token=token, response_statuses=statuses):
                pass
        assert raised.group_contains(MCPError)
        assert statuses == [401]


async def test_sdk_client_with_token_lists_every_server(hub: RunningHub) -> None:
    expected = {
        "infra": {"get_host_info", "get_host_resources", "execute_command"},
        "docker": {
            "list_containers",
            "get_container_info",
            "create_container",
            "start_container",
            "stop_container",
            "remove_container",
            "container_logs",
            "exec_in_container",
        },
        "proxmox": {
            "get_nodes",
            "get_node_status",
            "list_vms",
            "get_storage",
            "used_ips",
            "cluster_preview",
            "cluster_create",
        },
    }
    for server_name, tool_names in expected.items():
        session: ClientSession
        async with mcp_session(hub.url(server_name)) as session:
            listed = await session.list_tools()
            assert {tool.name for tool in listed.tools} == tool_names
            for tool in listed.tools:
                assert tool.input_schema["type"] == "object"
                assert tool.output_schema is not None, tool.name
                assert tool.annotations is not None
                assert tool.annotations.read_only_hint is not None
                assert tool.annotations.destructive_hint is not None
                assert tool.annotations.idempotent_hint is not None


async def test_host_header_outside_allowed_hosts_is_refused(start_hub: HubFactory) -> None:
    hub = start_hub(allowed_hosts=["hub.internal"])
    auth = {**MCP_HEADERS, "Authorization": f"Bearer {TEST_TOKEN}"}
    async with httpx.AsyncClient(timeout=10) as http:
        evil = await http.post(
            hub.url("infra"), json=INITIALIZE, headers={**auth, "Host": "evil.example.com"}
        )
        evil_with_port = await http.post(
            hub.url("infra"), json=INITIALIZE, headers={**auth, "Host": "evil.example.com:80"}
        )
        configured = await http.post(
            hub.url("infra"), json=INITIALIZE, headers={**auth, "Host": "hub.internal:8765"}
        )
        bad_origin = await http.post(
            hub.url("infra"),
            json=INITIALIZE,
            headers={**auth, "Origin": "http://evil.example.com"},
        )
    assert evil.status_code == 421
    assert evil_with_port.status_code == 421
    assert configured.status_code == 200
    assert configured.headers.get("mcp-session-id")
    assert bad_origin.status_code == 403


def _cli(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anvyl.mcp_hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_refuses_non_loopback_bind_without_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_MCP_HUB_")}
    result = _cli("serve", "--host", "0.0.0.0", "--port", "1", env=env)
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0 without a token" in result.stderr


def test_create_hub_refuses_non_loopback_host_without_token() -> None:
    with pytest.raises(UnsafeBindError, match="without a token"):
        create_hub(HubSettings(_env_file=None, host="0.0.0.0"))
    # Loopback without a token, and any host with a token, are fine.
    assert create_hub(HubSettings(_env_file=None, host="127.0.0.1")).servers
    assert create_hub(HubSettings(_env_file=None, host="0.0.0.0", token=TEST_TOKEN)).servers


def test_cli_help_lists_serve_options() -> None:
    result = _cli("serve", "--help", env=dict(os.environ))
    assert result.returncode == 0
    assert "--host" in result.stdout
    assert "--port" in result.stdout


@pytest.mark.parametrize(
    ("stateless_http", "json_response"), [(True, True), (False, False), (True, False)]
)
async def test_other_transport_modes_serve_tools_behind_auth(
    start_hub: HubFactory, stateless_http: bool, json_response: bool
) -> None:
    hub = start_hub(stateless_http=stateless_http, json_response=json_response)
    async with mcp_session(hub.url("infra")) as session:
        listed = await session.list_tools()
        info = await session.call_tool("get_host_info", {})
    assert "get_host_info" in {tool.name for tool in listed.tools}
    assert not info.is_error
    assert info.structured_content["uptime_s"] > 0
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(hub.url("infra"), json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 401
