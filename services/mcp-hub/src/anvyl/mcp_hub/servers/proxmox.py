"""The `proxmox` server: discovery of a Proxmox VE cluster (nodes, VMs, storage, used IPs)."""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, SecretStr

from anvyl.mcp_hub import cluster_tools
from anvyl.mcp_hub.base_settings import BaseHubSettings, OptionalCommaList
from anvyl.mcp_hub.proxmox_client import (
    ProxmoxClient,
    ProxmoxError,
    ProxmoxNotConfiguredError,
    addresses_from_agent,
    addresses_from_config,
)
from anvyl.mcp_hub.servers.base import ToolSpec

T = TypeVar("T")
Entry = dict[str, Any]  # one object of a Proxmox API answer


class ProxmoxSettings(BaseHubSettings):
    proxmox_tools: OptionalCommaList = None
    proxmox_url: str | None = Field(default=None, description="e.g. https://pve.example:8006")
    proxmox_token_id: str | None = Field(default=None, description="user@realm!tokenname")
    proxmox_token_secret: SecretStr | None = None
    proxmox_verify_tls: bool = True
    proxmox_timeout_s: float = Field(default=15.0, gt=0)
    proxmox_clusters_dir: Path = Field(
        default=Path("~/.local/share/anvyl/clusters"),
        description="cluster_create writes each cluster's project under DIR/NAME",
    )


NodeName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")]
OptionalNodeName = Annotated[
    str | None,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$", description="One node; every node if unset"),
]


class NodeSummary(BaseModel):
    node: str
    status: str
    cpu_fraction: float
    max_cpu: int
    memory_used_bytes: int
    memory_total_bytes: int
    disk_used_bytes: int
    disk_total_bytes: int
    uptime_s: int


class NodeList(BaseModel):
    nodes: list[NodeSummary]


class NodeStatus(BaseModel):
    node: str
    cpu_fraction: float
    cpu_model: str
    cpus: int
    sockets: int
    cores: int
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int
    rootfs_total_bytes: int
    rootfs_used_bytes: int
    rootfs_available_bytes: int
    load_average: list[float]
    uptime_s: int
    kernel_version: str
    pve_version: str


class VirtualMachine(BaseModel):
    node: str
    vmid: int
    name: str
    status: str
    cpus: int
    memory_max_bytes: int
    memory_used_bytes: int
    disk_max_bytes: int
    uptime_s: int
    template: bool
    tags: list[str]


class VirtualMachineList(BaseModel):
    vms: list[VirtualMachine]


class StoragePool(BaseModel):
    node: str
    storage: str
    type: str
    content: list[str]
    active: bool
    enabled: bool
    shared: bool
    total_bytes: int
    used_bytes: int
    available_bytes: int


class StorageList(BaseModel):
    storage: list[StoragePool]


class UsedAddress(BaseModel):
    ip: str
    node: str
    vmid: int
    vm_name: str
    source: str = Field(description="`guest-agent` (live) or `cloud-init` (static ipconfigN)")
    interface: str


class UsedIps(BaseModel):
    ips: list[str] = Field(description="Distinct addresses in use, sorted")
    addresses: list[UsedAddress]
    unresolved_vms: list[int] = Field(description="VMs whose addresses could not be determined")


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _client_from(settings: ProxmoxSettings) -> ProxmoxClient:
    missing = [
        env
        for env, value in (
            ("ANVYL_MCP_HUB_PROXMOX_URL", settings.proxmox_url),
            ("ANVYL_MCP_HUB_PROXMOX_TOKEN_ID", settings.proxmox_token_id),
            ("ANVYL_MCP_HUB_PROXMOX_TOKEN_SECRET", settings.proxmox_token_secret),
        )
        if not value
    ]
    if missing:
        raise ProxmoxNotConfiguredError(f"Proxmox is not configured: set {', '.join(missing)}")
    assert settings.proxmox_url and settings.proxmox_token_id and settings.proxmox_token_secret
    return ProxmoxClient(
        settings.proxmox_url,
        settings.proxmox_token_id,
        settings.proxmox_token_secret.get_secret_value(),
        verify_tls=settings.proxmox_verify_tls,
        timeout_s=settings.proxmox_timeout_s,
    )


def _node_summary(entry: Entry) -> NodeSummary:
    return NodeSummary(
        node=entry.get("node", ""),
        status=entry.get("status", "unknown"),
        cpu_fraction=float(entry.get("cpu", 0.0)),
        max_cpu=_int(entry.get("maxcpu")),
        memory_used_bytes=_int(entry.get("mem")),
        memory_total_bytes=_int(entry.get("maxmem")),
        disk_used_bytes=_int(entry.get("disk")),
        disk_total_bytes=_int(entry.get("maxdisk")),
        uptime_s=_int(entry.get("uptime")),
    )


def _node_status(node: str, status: Entry) -> NodeStatus:
    cpu_info = status.get("cpuinfo") or {}
    memory = status.get("memory") or {}
    rootfs = status.get("rootfs") or {}
    return NodeStatus(
        node=node,
        cpu_fraction=float(status.get("cpu", 0.0)),
        cpu_model=str(cpu_info.get("model", "")),
        cpus=_int(cpu_info.get("cpus")),
        sockets=_int(cpu_info.get("sockets")),
        cores=_int(cpu_info.get("cores")),
        memory_total_bytes=_int(memory.get("total")),
        memory_used_bytes=_int(memory.get("used")),
        memory_free_bytes=_int(memory.get("free")),
        rootfs_total_bytes=_int(rootfs.get("total")),
        rootfs_used_bytes=_int(rootfs.get("used")),
        rootfs_available_bytes=_int(rootfs.get("avail")),
        load_average=[float(value) for value in status.get("loadavg") or []],
        uptime_s=_int(status.get("uptime")),
        kernel_version=str(status.get("kversion", "")),
        pve_version=str(status.get("pveversion", "")),
    )


def _virtual_machine(node: str, entry: Entry) -> VirtualMachine:
    return VirtualMachine(
        node=node,
        vmid=_int(entry.get("vmid")),
        name=str(entry.get("name", "")),
        status=str(entry.get("status", "unknown")),
        cpus=_int(entry.get("cpus")),
        memory_max_bytes=_int(entry.get("maxmem")),
        memory_used_bytes=_int(entry.get("mem")),
        disk_max_bytes=_int(entry.get("maxdisk")),
        uptime_s=_int(entry.get("uptime")),
        template=bool(entry.get("template")),
        tags=[tag for tag in str(entry.get("tags", "")).split(";") if tag],
    )


def _storage_pool(node: str, entry: Entry) -> StoragePool:
    return StoragePool(
        node=node,
        storage=str(entry.get("storage", "")),
        type=str(entry.get("type", "")),
        content=[c for c in str(entry.get("content", "")).split(",") if c],
        active=bool(entry.get("active", 0)),
        enabled=bool(entry.get("enabled", 1)),
        shared=bool(entry.get("shared", 0)),
        total_bytes=_int(entry.get("total")),
        used_bytes=_int(entry.get("used")),
        available_bytes=_int(entry.get("avail")),
    )


async def _per_node(
    client: ProxmoxClient,
    node: str | None,
    listing: Callable[[ProxmoxClient, str], Awaitable[list[Entry]]],
) -> list[tuple[str, Entry]]:
    """(node, entry) for every entry `listing` gives on `node`, or on every node if None."""
    if node is not None:
        names = [node]
    else:
        names = [entry["node"] for entry in await client.nodes() if entry.get("node")]
    return [(name, entry) for name in names for entry in await listing(client, name)]


async def _vm_addresses(
    client: ProxmoxClient, node: str, vmid: int, entry: Entry
) -> tuple[str, list[tuple[str, str]]]:
    """(source, [(interface, ip)]) of one VM: the guest agent's live view if it runs, else the
    static cloud-init config."""
    if entry.get("status") == "running":
        try:
            pairs = addresses_from_agent(await client.qemu_agent_interfaces(node, vmid))
        except ProxmoxError:
            pairs = []  # No agent in the guest: fall back to the config.
        if pairs:
            return "guest-agent", pairs
    return "cloud-init", addresses_from_config(await client.qemu_config(node, vmid))


class ProxmoxTools:
    instructions = (
        "Discovery of a Proxmox VE cluster (nodes, VMs, storage and IPs in use), and Kubernetes "
        "clusters from a plain-English intent: cluster_preview shows the spec, cluster_create "
        "writes the Terraform/Ansible/Packer project and, with apply, provisions it."
    )

    def __init__(self, settings: ProxmoxSettings) -> None:
        self.settings = settings
        self._client: ProxmoxClient | None = None

    def _proxmox(self) -> ProxmoxClient:
        # Built on first use, inside the serving event loop; unconfigured is a tool error.
        if self._client is None:
            self._client = _client_from(self.settings)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, operation: Callable[[ProxmoxClient], Awaitable[T]]) -> T:
        try:
            # Several requests per tool: bound the whole call, not only each request.
            with anyio.fail_after(self.settings.proxmox_timeout_s * 4):
                return await operation(self._proxmox())
        except ProxmoxError as exc:
            raise ToolError(str(exc)) from exc
        except TimeoutError as exc:
            raise ToolError("Proxmox discovery did not finish in time") from exc

    async def get_nodes(self) -> NodeList:
        """Nodes of the Proxmox cluster with CPU, memory, disk and uptime."""
        entries = await self._call(lambda client: client.nodes())
        return NodeList(nodes=[_node_summary(entry) for entry in entries])

    async def get_node_status(self, node: NodeName) -> NodeStatus:
        """Detailed status of one node: CPU model and counts, memory, root filesystem, load."""
        return _node_status(node, await self._call(lambda client: client.node_status(node)))

    async def list_vms(self, node: OptionalNodeName = None) -> VirtualMachineList:
        """QEMU virtual machines (and templates) on one node or on every node."""
        entries = await self._call(lambda client: _per_node(client, node, ProxmoxClient.qemu_vms))
        vms = [_virtual_machine(node_name, entry) for node_name, entry in entries]
        return VirtualMachineList(vms=sorted(vms, key=lambda vm: vm.vmid))

    async def get_storage(self, node: OptionalNodeName = None) -> StorageList:
        """Storage pools of one node or every node, with capacity and content types."""
        entries = await self._call(lambda client: _per_node(client, node, ProxmoxClient.storage))
        return StorageList(
            storage=[_storage_pool(node_name, entry) for node_name, entry in entries]
        )

    async def used_ips(self, node: OptionalNodeName = None) -> UsedIps:
        """IP addresses used by VMs: live ones from the QEMU guest agent of running VMs, else the
        static cloud-init `ipconfigN` addresses. Use it to pick free addresses for new VMs."""

        async def query(client: ProxmoxClient) -> UsedIps:
            addresses: list[UsedAddress] = []
            unresolved: list[int] = []
            for node_name, entry in await _per_node(client, node, ProxmoxClient.qemu_vms):
                if entry.get("template"):
                    continue
                vmid = _int(entry.get("vmid"))
                source, pairs = await _vm_addresses(client, node_name, vmid, entry)
                if not pairs:
                    unresolved.append(vmid)
                addresses.extend(
                    UsedAddress(
                        ip=ip,
                        node=node_name,
                        vmid=vmid,
                        vm_name=str(entry.get("name", "")),
                        source=source,
                        interface=interface,
                    )
                    for interface, ip in pairs
                )
            return UsedIps(
                ips=sorted({a.ip for a in addresses}),
                addresses=addresses,
                unresolved_vms=unresolved,
            )

        return await self._call(query)

    def _cluster_proxmox(self) -> cluster_tools.ProxmoxConfig | None:
        s = self.settings
        return cluster_tools.proxmox_for(s.proxmox_url, s.proxmox_token_id,
                                         s.proxmox_token_secret, s.proxmox_verify_tls,
                                         s.proxmox_timeout_s)  # fmt: skip

    async def cluster_preview(
        self,
        intent: Annotated[
            str, Field(min_length=1, description='e.g. "dev cluster with 2 workers"')
        ],
    ) -> cluster_tools.ClusterPreview:
        """Plan a Kubernetes cluster from a plain-English intent, sized to the Proxmox host's free
        capacity on free addresses: the spec, its reasoning and the files it would generate."""
        return await cluster_tools.cluster_preview(intent, self._cluster_proxmox())

    async def cluster_create(
        self,
        intent: Annotated[
            str, Field(min_length=1, description='e.g. "dev cluster with 2 workers"')
        ],
        apply: Annotated[bool, Field(description="Also run Packer, Terraform and Ansible")] = False,
        force: Annotated[bool, Field(description="Overwrite files a person edited")] = False,
    ) -> cluster_tools.ClusterCreated:
        """Generate a Kubernetes cluster's Terraform/Ansible/Packer project from an intent and,
        with apply, provision it on Proxmox (creates VMs)."""
        return await cluster_tools.cluster_create(
            intent, self._cluster_proxmox(), self.settings.proxmox_clusters_dir,
            apply=apply, force=force,
        )  # fmt: skip

    def tool_specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(self.get_nodes, "Proxmox nodes", True, False, True),
            ToolSpec(self.get_node_status, "Proxmox node status", True, False, True),
            ToolSpec(self.list_vms, "Proxmox VMs", True, False, True),
            ToolSpec(self.get_storage, "Proxmox storage", True, False, True),
            ToolSpec(self.used_ips, "Proxmox used IPs", True, False, True),
            ToolSpec(self.cluster_preview, "Preview a Kubernetes cluster", True, False, True),
            ToolSpec(self.cluster_create, "Create a Kubernetes cluster", False, True, False, True),
        ]
