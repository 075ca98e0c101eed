"""Proxmox discovery: what the host has free, and which addresses are taken.

Reads ``/api2/json`` with an API token (the same paths the hub's proxmox server reads; this package
keeps its own small client so the hub can depend on it and not the other way round).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from anvyl.clusters.spec import ClusterSpec

GIB = 1024**3
HOST_RESERVE_MB = 1024  # memory left to the Proxmox host itself
_IPCONFIG = re.compile(r"(?:^|,)ip=([^,]+)")
_TFVAR = re.compile(r'^\s*([a-z_]+)\s*=\s*"([^"]*)"', re.M)


class DiscoveryError(Exception):
    """Proxmox could not be read; the message says why."""


class FitError(ValueError):
    """The cluster does not fit on the host even scaled down; the message says what it has."""


@dataclass(frozen=True)
class ProxmoxConfig:
    url: str  # https://host:8006 (without /api2/json)
    token_id: str
    token_secret: str = field(repr=False)
    verify_tls: bool = False  # Proxmox ships a self-signed certificate
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalise_url(self.url))  # frozen: set once, here

    @property
    def api_url(self) -> str:
        return f"{self.url}/api2/json"


def normalise_url(url: str) -> str:
    """``https://pve:8006``, whether given with or without ``/api2/json`` or a trailing slash."""
    url = url.strip().rstrip("/")
    return url.removesuffix("/api2/json").rstrip("/")


def read_tfvars(path: Path) -> dict[str, str]:
    try:
        return dict(_TFVAR.findall(path.read_text()))
    except OSError:
        return {}


def proxmox_config(
    url: str | None = None,
    token_id: str | None = None,
    token_secret: str | None = None,
    *,
    tfvars: Path | None = None,
    environ: dict[str, str] | None = None,
) -> ProxmoxConfig | None:
    """Flags, else PROXMOX_API_* variables, else terraform.tfvars; None when any part is missing."""
    env = os.environ if environ is None else environ
    values = read_tfvars(tfvars) if tfvars else {}
    url = (
        url
        or env.get("PROXMOX_API_URL")
        or values.get("proxmox_endpoint")
        or values.get("proxmox_api_url")
    )
    token_id = token_id or env.get("PROXMOX_API_TOKEN_ID") or values.get("proxmox_api_token_id")
    token_secret = (
        token_secret
        or env.get("PROXMOX_API_TOKEN_SECRET")
        or values.get("proxmox_api_token_secret")
    )
    if not (url and token_id and token_secret):
        return None
    return ProxmoxConfig(normalise_url(url), token_id, token_secret)


@dataclass
class VM:
    vmid: int
    name: str
    status: str
    cpus: int
    memory_mb: int
    template: bool


@dataclass
class HostContext:
    node: str
    cpus: int
    memory_total_mb: int
    memory_used_mb: int
    storage: str
    storage_free_gb: int
    vms: list[VM]
    used_ips: list[str]

    @property
    def memory_free_mb(self) -> int:
        return max(0, self.memory_total_mb - self.memory_used_mb - HOST_RESERVE_MB)

    def templates(self) -> list[int]:
        return [vm.vmid for vm in self.vms if vm.template]

    def describe(self) -> str:
        """The host in a few lines, for the model's prompt and for the user."""
        vms = ", ".join(f"{vm.name or vm.vmid} ({vm.status})" for vm in self.vms if not vm.template)
        return (
            f"Proxmox node {self.node}: {self.cpus} CPUs, "
            f"{self.memory_free_mb / 1024:.1f} GiB memory free of {self.memory_total_mb / 1024:.1f}, "
            f"storage {self.storage} with {self.storage_free_gb} GB free; "
            f"VMs: {vms or 'none'}; templates: {self.templates() or 'none'}; "
            f"addresses in use: {', '.join(self.used_ips) or 'none'}"
        )


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _routable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.version == 4 and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


class _Api:
    def __init__(self, config: ProxmoxConfig) -> None:
        self.config = config
        self.http = httpx.Client(
            base_url=config.api_url,
            headers={"Authorization": f"PVEAPIToken={config.token_id}={config.token_secret}"},
            verify=config.verify_tls,
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 5.0)),
        )

    def get(self, path: str) -> Any:
        try:
            response = self.http.get(path)
        except httpx.HTTPError as exc:
            raise DiscoveryError(
                f"cannot reach Proxmox at {self.config.url}: {exc or type(exc).__name__}"
            ) from exc
        if response.status_code == 401:
            raise DiscoveryError(
                f"Proxmox rejected the API token '{self.config.token_id}' (401): "
                "check PROXMOX_API_TOKEN_ID and PROXMOX_API_TOKEN_SECRET"
            )
        if response.is_error:
            raise DiscoveryError(f"Proxmox GET {path} answered {response.status_code}")
        try:
            return response.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DiscoveryError(f"Proxmox {path} answered without a JSON data member") from exc


def _vm_addresses(api: _Api, node: str, vm: dict[str, Any]) -> list[str]:
    vmid = _int(vm.get("vmid"))
    if vm.get("status") == "running":
        try:
            data = api.get(f"/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
        except DiscoveryError:
            data = None  # no guest agent: the cloud-init config below
        interfaces = data.get("result", []) if isinstance(data, dict) else []
        found = [
            str(entry.get("ip-address", ""))
            for interface in interfaces
            for entry in interface.get("ip-addresses") or []
        ]
        found = [ip for ip in found if _routable(ip)]
        if found:
            return found
    config = api.get(f"/nodes/{node}/qemu/{vmid}/config") or {}
    addresses = []
    for key in sorted(config):
        if key.startswith("ipconfig"):
            for match in _IPCONFIG.finditer(str(config[key])):
                address = match.group(1).split("/", 1)[0]
                if _routable(address):
                    addresses.append(address)
    return addresses


def discover(config: ProxmoxConfig, node: str | None = None) -> HostContext:
    """Read the node (the online one with most free memory unless named), its VMs and storage."""
    api = _Api(config)
    try:
        nodes = [n for n in api.get("/nodes") or [] if n.get("status", "online") == "online"]
        if node:
            nodes = [n for n in nodes if n.get("node") == node]
        if not nodes:
            raise DiscoveryError(
                f"Proxmox at {config.url} has no online node{' ' + node if node else ''}"
            )
        chosen = max(nodes, key=lambda n: _int(n.get("maxmem")) - _int(n.get("mem")))
        name = str(chosen["node"])
        vms = api.get(f"/nodes/{name}/qemu") or []
        storages = [
            s for s in api.get(f"/nodes/{name}/storage") or []
            if "images" in str(s.get("content", "")) and s.get("active", 1)
        ]  # fmt: skip
        storage = max(storages, key=lambda s: _int(s.get("avail")), default=None)
        used: set[str] = set()
        for vm in vms:
            if not vm.get("template"):
                used.update(_vm_addresses(api, name, vm))
    finally:
        api.http.close()
    return HostContext(
        node=name,
        cpus=_int(chosen.get("maxcpu")),
        memory_total_mb=_int(chosen.get("maxmem")) // 2**20,
        memory_used_mb=_int(chosen.get("mem")) // 2**20,
        storage=str(storage.get("storage")) if storage else "local-lvm",
        storage_free_gb=_int(storage.get("avail")) // GIB if storage else 0,
        vms=[
            VM(
                _int(v.get("vmid")),
                str(v.get("name", "")),
                str(v.get("status", "")),
                _int(v.get("cpus")),
                _int(v.get("maxmem")) // 2**20,
                bool(v.get("template")),
            )
            for v in vms
        ],
        used_ips=sorted(used, key=lambda ip: ipaddress.IPv4Address(ip)),
    )


def _needed_mb(values: dict[str, Any]) -> int:
    return int(
        values["control_plane_count"] * values["control_plane_memory_mb"]
        + values["worker_count"] * values["worker_memory_mb"]
    )


def fit(spec: ClusterSpec, host: HostContext) -> tuple[ClusterSpec, list[str]]:
    """The spec scaled to the host's free capacity, on free addresses; the reasons, one per change."""
    v = spec.model_dump()
    reasons: list[str] = []
    v["proxmox_node"], v["storage"] = host.node, host.storage
    free = host.memory_free_mb
    asked = (v["worker_count"], v["worker_memory_mb"], v["control_plane_memory_mb"])
    while _needed_mb(v) > free and v["worker_count"] > 1:
        v["worker_count"] -= 1
    for key in ("worker_memory_mb", "control_plane_memory_mb"):
        while _needed_mb(v) > free and v[key] > 2048:
            v[key] = max(2048, v[key] - 1024)
    if _needed_mb(v) > free and v["worker_count"] == 1:
        v["worker_count"] = 0
    if _needed_mb(v) > free:
        raise FitError(
            f"node {host.node} has {free} MiB of memory free; even {v['control_plane_count']} "
            f"control plane(s) of {v['control_plane_memory_mb']} MiB need {_needed_mb(v)} MiB"
        )
    if (v["worker_count"], v["worker_memory_mb"], v["control_plane_memory_mb"]) != asked:
        reasons.append(
            f"scaled down to fit {free / 1024:.1f} GiB free on {host.node}: "
            f"{asked[0]} -> {v['worker_count']} workers, worker memory {asked[1]} -> "
            f"{v['worker_memory_mb']} MiB, control-plane memory {asked[2]} -> "
            f"{v['control_plane_memory_mb']} MiB"
        )
    for key in ("control_plane_cores", "worker_cores"):
        if host.cpus and v[key] > host.cpus:
            reasons.append(f"{key} {v[key]} -> {host.cpus}: the node has {host.cpus} CPUs")
            v[key] = host.cpus
    nodes = v["control_plane_count"] + v["worker_count"]
    if host.storage_free_gb and nodes * v["disk_gb"] > host.storage_free_gb:
        disk = max(10, host.storage_free_gb // max(1, nodes))
        if nodes * disk > host.storage_free_gb:
            raise FitError(
                f"storage {host.storage} has {host.storage_free_gb} GB free: not enough for "
                f"{nodes} disks of 10 GB"
            )
        reasons.append(
            f"disk per node {v['disk_gb']} -> {disk} GB: {host.storage} has "
            f"{host.storage_free_gb} GB free"
        )
        v["disk_gb"] = disk
    templates = host.templates()
    if templates and v["template_vm_id"] not in templates:
        reasons.append(f"template {v['template_vm_id']} not found: using template {templates[0]}")
        v["template_vm_id"] = templates[0]
    start = free_range(v, nodes, host.used_ips)
    if start != v["ip_start"]:
        reasons.append(
            f"ip_start {v['ip_start']} -> {start}: the range {v['ip_start']}+{nodes} holds "
            "addresses in use"
        )
        v["ip_start"] = start
    v["reasoning"] = "; ".join(filter(None, [v["reasoning"], *reasons]))[:4000]
    return ClusterSpec.model_validate(v), reasons


def free_range(values: dict[str, Any], count: int, used_ips: list[str]) -> str:
    """The first start address at or after ``ip_start`` (else anywhere in the network) whose
    ``count`` addresses are all free and skip the gateway."""
    network = ipaddress.IPv4Network(values["network_cidr"])
    taken = {int(ipaddress.IPv4Address(ip)) for ip in used_ips if _routable(ip)}
    taken.add(int(ipaddress.IPv4Address(values["gateway"])))
    first, last = int(network.network_address) + 1, int(network.broadcast_address) - 1
    asked = int(ipaddress.IPv4Address(values["ip_start"]))
    for begin in [*range(asked, last + 1), *range(first, asked)]:
        if begin + count - 1 > last:
            continue
        if not any(begin + i in taken for i in range(count)):
            return str(ipaddress.IPv4Address(begin))
    raise FitError(f"no {count} consecutive free addresses in {network}: choose another network")
