"""The proxmox server through the real hub, against a local server speaking the Proxmox API."""

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from anvyl.mcp_hub.proxmox_client import ProxmoxClient, ProxmoxError
from anvyl.mcp_hub.settings import HubSettings

from .conftest import BackgroundServer, HubFactory, free_port, mcp_session, result_text, serve_app
from .fake_proxmox import GIB, TOKEN_ID, TOKEN_SECRET, FakeProxmox, write_self_signed_certificate


@pytest.fixture
def fake_proxmox() -> Iterator[tuple[FakeProxmox, BackgroundServer]]:
    fake = FakeProxmox()
    with serve_app(fake.app) as server:
        yield fake, server


def proxmox_settings(url: str, secret: str = TOKEN_SECRET) -> dict[str, object]:
    return {"proxmox_url": url, "proxmox_token_id": TOKEN_ID, "proxmox_token_secret": secret}


async def test_discovery_tools(
    start_hub: HubFactory, fake_proxmox: tuple[FakeProxmox, BackgroundServer]
) -> None:
    fake, server = fake_proxmox
    hub = start_hub(**proxmox_settings(f"http://127.0.0.1:{server.port}"))
    async with mcp_session(hub.url("proxmox")) as session:
        nodes = await session.call_tool("get_nodes", {})
        status = await session.call_tool("get_node_status", {"node": "pve1"})
        vms = await session.call_tool("list_vms", {})
        vms_pve2 = await session.call_tool("list_vms", {"node": "pve2"})
        storage = await session.call_tool("get_storage", {"node": "pve1"})
        used = await session.call_tool("used_ips", {})

    assert not nodes.is_error, nodes.content
    assert [n["node"] for n in nodes.structured_content["nodes"]] == ["pve1", "pve2"]
    assert nodes.structured_content["nodes"][0]["memory_total_bytes"] == 64 * GIB
    assert nodes.structured_content["nodes"][0]["max_cpu"] == 16

    assert not status.is_error, status.content
    assert status.structured_content["cpu_model"] == "AMD Ryzen 7 5800X 8-Core Processor"
    assert status.structured_content["load_average"] == [0.35, 0.41, 0.38]
    assert status.structured_content["rootfs_available_bytes"] == 77 * GIB
    assert status.structured_content["pve_version"].startswith("pve-manager/8.3.0")

    assert [vm["vmid"] for vm in vms.structured_content["vms"]] == [100, 101, 200, 9000]
    template = vms.structured_content["vms"][-1]
    assert template["template"] is True and template["node"] == "pve1"
    assert vms.structured_content["vms"][0]["tags"] == ["k8s", "cp"]
    assert [vm["name"] for vm in vms_pve2.structured_content["vms"]] == ["db-1"]

    pools = {pool["storage"]: pool for pool in storage.structured_content["storage"]}
    assert pools["local-lvm"]["type"] == "lvmthin"
    assert pools["local-lvm"]["content"] == ["images", "rootdir"]
    assert pools["local-lvm"]["available_bytes"] == 680 * GIB

    assert not used.is_error, used.content
    assert used.structured_content["ips"] == ["192.168.10.21", "192.168.10.22", "192.168.10.30"]
    sources = {a["vmid"]: a["source"] for a in used.structured_content["addresses"]}
    assert sources == {100: "guest-agent", 101: "cloud-init", 200: "cloud-init"}
    assert used.structured_content["unresolved_vms"] == []
    # The fake saw the real API paths, guest agent included.
    assert ("GET", "/api2/json/nodes/pve1/qemu/100/agent/network-get-interfaces") in fake.requests


async def test_wrong_token_and_unknown_node_are_tool_errors(
    start_hub: HubFactory, fake_proxmox: tuple[FakeProxmox, BackgroundServer]
) -> None:
    _, server = fake_proxmox
    url = f"http://127.0.0.1:{server.port}"
    wrong = start_hub(**proxmox_settings(url, secret="wrong-secret"))
    right = start_hub(**proxmox_settings(url))
    async with mcp_session(wrong.url("proxmox")) as session:
        rejected = await session.call_tool("get_nodes", {})
    async with mcp_session(right.url("proxmox")) as session:
        unknown = await session.call_tool("get_node_status", {"node": "pve9"})
        injected = await session.call_tool("get_node_status", {"node": "../../access"})
    assert rejected.is_error
    assert f"rejected the API token '{TOKEN_ID}' (401)" in result_text(rejected)
    assert TOKEN_SECRET not in result_text(rejected)
    assert unknown.is_error
    assert "500" in result_text(unknown) and "pve9" in result_text(unknown)
    assert injected.is_error  # The node name pattern refuses path tricks.


async def test_unreachable_proxmox_is_a_clear_tool_error(start_hub: HubFactory) -> None:
    closed_port = free_port()
    hub = start_hub(**proxmox_settings(f"https://127.0.0.1:{closed_port}"), proxmox_timeout_s=3)
    async with mcp_session(hub.url("proxmox")) as session:
        result = await session.call_tool("get_nodes", {})
        # The hub stays up and answers the next call.
        again = await session.call_tool("list_vms", {})
    assert result.is_error
    assert f"cannot reach Proxmox at https://127.0.0.1:{closed_port}" in result_text(result)
    assert again.is_error


async def test_unconfigured_proxmox_is_a_clear_tool_error(start_hub: HubFactory) -> None:
    hub = start_hub(proxmox_url=None)
    async with mcp_session(hub.url("proxmox")) as session:
        result = await session.call_tool("get_nodes", {})
    assert result.is_error
    assert "Proxmox is not configured: set ANVYL_MCP_HUB_PROXMOX_URL" in result_text(result)


def test_tls_verification_is_on_by_default() -> None:
    assert HubSettings(_env_file=None).proxmox_verify_tls is True


@pytest.fixture
def tls_fake_proxmox(tmp_path: Path) -> Iterator[tuple[BackgroundServer, Path]]:
    """The fake over HTTPS with a self-signed certificate; requested before `start_hub` so the
    hubs (holding keep-alive connections to it) stop first."""
    cert_path, key_path = write_self_signed_certificate(tmp_path)
    with serve_app(
        FakeProxmox().app, ssl_certfile=str(cert_path), ssl_keyfile=str(key_path)
    ) as server:
        yield server, cert_path


async def test_self_signed_proxmox_is_refused_unless_verification_is_off(
    tls_fake_proxmox: tuple[BackgroundServer, Path], start_hub: HubFactory
) -> None:
    server, cert_path = tls_fake_proxmox
    url = f"https://127.0.0.1:{server.port}"
    verifying = start_hub(**proxmox_settings(url))
    lab = start_hub(**proxmox_settings(url), proxmox_verify_tls=False)
    async with mcp_session(verifying.url("proxmox")) as session:
        refused = await session.call_tool("get_nodes", {})
    async with mcp_session(lab.url("proxmox")) as session:
        accepted = await session.call_tool("get_nodes", {})
    # The client trusts the certificate when given it as a CA: verification, not a bypass.
    trusting = ssl.create_default_context(cafile=str(cert_path))
    async with ProxmoxClient(url, TOKEN_ID, TOKEN_SECRET, verify_tls=trusting) as client:
        nodes = await client.nodes()
    async with ProxmoxClient(url, TOKEN_ID, TOKEN_SECRET) as client:
        with pytest.raises(ProxmoxError, match="TLS certificate verification failed"):
            await client.nodes()
    assert refused.is_error
    assert "TLS certificate verification failed" in result_text(refused)
    assert not accepted.is_error
    assert len(accepted.structured_content["nodes"]) == 2
    assert [node["node"] for node in nodes] == ["pve1", "pve2"]
