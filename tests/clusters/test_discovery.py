"""Discovery against a local server on the real Proxmox /api2/json paths: the spec is scaled to
the little free capacity, and no address of the node range is in use."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from anvyl.clusters.discovery import (
    FitError,
    ProxmoxConfig,
    discover,
    fit,
    normalise_url,
    proxmox_config,
)
from anvyl.clusters.intent import parse_intent
from anvyl.clusters.service import plan_cluster
from anvyl.orchestrator.llm.testing import refused_port
from tests.clusters.fake_pve import TOKEN_ID, TOKEN_SECRET, USED_IPS, FakePve


def test_urls_with_or_without_api_path() -> None:
    for url in (
        "https://pve:8006",
        "https://pve:8006/",
        "https://pve:8006/api2/json",
        "https://pve:8006/api2/json/",
    ):
        assert normalise_url(url) == "https://pve:8006"


def test_config_sources(tmp_path: Path) -> None:
    tfvars = tmp_path / "terraform.tfvars"
    tfvars.write_text(
        'proxmox_endpoint = "https://tf:8006/"\nproxmox_api_token_id = "a@pam!t"\n'
        'proxmox_api_token_secret = "s3"\n'
    )
    env = {"PROXMOX_API_URL": "https://env:8006/api2/json", "PROXMOX_API_TOKEN_ID": "e@pve!x"}
    from_tfvars = proxmox_config(tfvars=tfvars, environ={})
    assert from_tfvars == ProxmoxConfig("https://tf:8006", "a@pam!t", "s3")
    mixed = proxmox_config(tfvars=tfvars, environ=env)
    assert mixed == ProxmoxConfig("https://env:8006", "e@pve!x", "s3")
    flags = proxmox_config("https://flag:8006", "f@pve!y", "z", tfvars=tfvars, environ=env)
    assert flags == ProxmoxConfig("https://flag:8006", "f@pve!y", "z")
    assert proxmox_config(environ={}) is None
    assert "s3" not in repr(from_tfvars)


def test_discover_reads_node_vms_storage_and_used_ips(fake_pve: tuple[FakePve, str]) -> None:
    pve, url = fake_pve
    host = discover(ProxmoxConfig(url, TOKEN_ID, TOKEN_SECRET))
    assert (host.node, host.cpus, host.storage) == ("pve", 8, "local-lvm")
    assert host.memory_free_mb == (24 - 14 - 1) * 1024
    assert host.storage_free_gb == 60
    assert host.used_ips == USED_IPS
    assert host.templates() == [9000]
    assert "/api2/json/nodes/pve/qemu/101/config" in pve.requests  # no agent: its config


def test_scaled_down_to_free_capacity_without_collisions(fake_pve: tuple[FakePve, str]) -> None:
    _, url = fake_pve
    host = discover(ProxmoxConfig(url, TOKEN_ID, TOKEN_SECRET))
    spec, reasons = fit(parse_intent("production cluster with 5 workers"), host)
    needed = (
        spec.control_plane_count * spec.control_plane_memory_mb
        + spec.worker_count * spec.worker_memory_mb
    )
    assert needed <= host.memory_free_mb
    assert spec.worker_count < 5
    assert any("scaled down" in r for r in reasons)
    assert spec.node_count * spec.disk_gb <= host.storage_free_gb
    assert not set(spec.addresses()) & set(USED_IPS)
    assert spec.gateway not in spec.addresses()
    assert all(
        ipaddress.ip_address(a) in ipaddress.ip_network(spec.network_cidr) for a in spec.addresses()
    )
    assert "scaled down" in spec.reasoning

    small, reasons = fit(parse_intent("dev cluster"), host)
    assert (
        small.worker_count == 1 and small.ip_start == "192.168.1.104"
    )  # .100, .101, .103 are taken
    assert any("ip_start 192.168.1.100 -> 192.168.1.104" in r for r in reasons)

    with pytest.raises(FitError, match="MiB of memory free"):
        fit(parse_intent("cluster with 5 control planes and 2 workers"), host)  # 5 x 2 GiB > 9 GiB


async def test_plan_uses_discovery_and_unreachable_gives_defaults(
    fake_pve: tuple[FakePve, str],
) -> None:
    unused_port = refused_port()
    _, url = fake_pve
    plan = await plan_cluster(
        "dev cluster",
        proxmox=ProxmoxConfig(url + "/api2/json", TOKEN_ID, TOKEN_SECRET),
        tools=False,
    )
    assert plan.host is not None and plan.spec.ip_start == "192.168.1.104"
    assert plan.spec.template_vm_id == 9000

    wrong = await plan_cluster(
        "dev cluster", proxmox=ProxmoxConfig(url, TOKEN_ID, "wrong"), tools=False
    )
    assert wrong.host is None and any("rejected the API token" in w for w in wrong.warnings)

    down = await plan_cluster(
        "dev cluster",
        proxmox=ProxmoxConfig(f"http://127.0.0.1:{unused_port}", TOKEN_ID, TOKEN_SECRET),
        tools=False,
    )
    assert down.host is None and down.spec.ip_start == "192.168.1.100"
    assert any("cannot reach Proxmox" in w and "defaults" in w for w in down.warnings)
