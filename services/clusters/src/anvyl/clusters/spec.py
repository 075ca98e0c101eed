"""ClusterSpec: the validated description of a Kubernetes cluster on Proxmox.

Every check says what to change, because the spec comes from a model or from a person's words and
the message is shown to that person.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CNI = Literal["flannel", "calico", "cilium"]
Addon = Literal[
    "metrics-server",
    "ingress-nginx",
    "dashboard",
    "prometheus",
    "cert-manager",
    "metallb",
    "longhorn",
    "argocd",
]
ADDONS: tuple[str, ...] = (
    "metrics-server",
    "ingress-nginx",
    "dashboard",
    "prometheus",
    "cert-manager",
    "metallb",
    "longhorn",
    "argocd",
)
SUPPORTED_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
DEFAULT_VERSION = "1.31"
MAX_CONTROL_PLANES = 7
MAX_WORKERS = 50
# kubeadm's preflight refuses a control plane with fewer than 2 CPUs or about 1700 MB of memory.
KUBEADM_MIN_CP_CORES = 2
KUBEADM_MIN_CP_MEMORY_MB = 1700
MIN_WORKER_MEMORY_MB = 1024


class ClusterSpec(BaseModel):
    """One cluster: topology, sizes, network, CNI, version, add-ons and why it was chosen."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        default="k8s",
        min_length=1,
        max_length=40,
        pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$",
        description="Cluster name, a DNS label: VM names are NAME-cp-N and NAME-worker-N",
    )
    control_plane_count: int = Field(default=1, description="Control-plane nodes: 1, 3, 5 or 7")
    worker_count: int = Field(default=2, description=f"Worker nodes, 0 to {MAX_WORKERS}")
    control_plane_cores: int = Field(default=2, description="vCPUs per control-plane node")
    control_plane_memory_mb: int = Field(default=4096, description="MiB per control-plane node")
    worker_cores: int = Field(default=2, description="vCPUs per worker node")
    worker_memory_mb: int = Field(default=4096, description="MiB per worker node")
    disk_gb: int = Field(default=32, ge=10, le=4096, description="Disk per node in GB")
    ip_start: str = Field(default="192.168.1.100", description="First node address")
    gateway: str = Field(default="192.168.1.1")
    network_cidr: str = Field(default="192.168.1.0/24", description="Node network")
    pod_cidr: str = Field(default="10.244.0.0/16")
    service_cidr: str = Field(default="10.96.0.0/12")
    cni: CNI = "flannel"
    kubernetes_version: str = Field(default=DEFAULT_VERSION, description="Minor version, e.g. 1.31")
    addons: list[Addon] = Field(default_factory=list)
    proxmox_node: str = Field(default="pve", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    template_vm_id: int = Field(default=9000, ge=100, le=999_999_999)
    storage: str = Field(default="local-lvm", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    bridge: str = Field(default="vmbr0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ssh_user: str = Field(default="ubuntu", pattern=r"^[a-z_][a-z0-9_-]*$")
    ssh_public_key_file: str = "~/.ssh/id_ed25519.pub"
    ssh_private_key_file: str = "~/.ssh/id_ed25519"
    reasoning: str = Field(default="", max_length=4000)

    @field_validator("control_plane_count")
    @classmethod
    def _odd_control_planes(cls, value: int) -> int:
        if value < 1:
            raise ValueError("a cluster needs at least 1 control-plane node")
        if value > MAX_CONTROL_PLANES:
            raise ValueError(f"at most {MAX_CONTROL_PLANES} control-plane nodes; use 3 or 5")
        if value % 2 == 0:
            raise ValueError(
                f"{value} control-plane nodes is an even number: etcd needs an odd number for "
                f"quorum; use {value - 1} or {value + 1}"
            )
        return value

    @field_validator("worker_count")
    @classmethod
    def _workers(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"the worker count cannot be negative ({value}); use 0 or more")
        if value > MAX_WORKERS:
            raise ValueError(f"{value} workers is more than the {MAX_WORKERS} this tool provisions")
        return value

    @field_validator("control_plane_cores", "worker_cores")
    @classmethod
    def _cores(cls, value: int) -> int:
        if not 1 <= value <= 128:
            raise ValueError(f"{value} cores per node: use 1 to 128")
        return value

    @field_validator("control_plane_memory_mb", "worker_memory_mb")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value > 1024 * 1024:
            raise ValueError(f"{value} MiB per node is more than 1 TiB; use a smaller size")
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        version = value.strip().lstrip("v")
        parts = version.split(".")
        minor = ".".join(parts[:2])
        if minor not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"Kubernetes {value} is not supported; use one of {', '.join(SUPPORTED_VERSIONS)}"
            )
        return minor

    @field_validator("addons")
    @classmethod
    def _unique_addons(cls, value: list[str]) -> list[str]:
        # Canonical order, so equal requests give equal specs and files.
        return [addon for addon in ADDONS if addon in set(value)]

    @field_validator("ip_start", "gateway")
    @classmethod
    def _ipv4(cls, value: str) -> str:
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address (e.g. 192.168.1.100)") from None

    @field_validator("network_cidr", "pod_cidr", "service_cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            return str(ipaddress.IPv4Network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 network (e.g. 192.168.1.0/24)") from None

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSpec:
        if self.control_plane_cores < KUBEADM_MIN_CP_CORES:
            raise ValueError(
                f"control-plane nodes need at least {KUBEADM_MIN_CP_CORES} cores for kubeadm "
                f"(asked {self.control_plane_cores})"
            )
        if self.control_plane_memory_mb < KUBEADM_MIN_CP_MEMORY_MB:
            raise ValueError(
                f"control-plane nodes need at least {KUBEADM_MIN_CP_MEMORY_MB} MiB of memory for "
                f"kubeadm (asked {self.control_plane_memory_mb}); use 2GB or more"
            )
        if self.worker_count and self.worker_memory_mb < MIN_WORKER_MEMORY_MB:
            raise ValueError(
                f"workers need at least {MIN_WORKER_MEMORY_MB} MiB of memory "
                f"(asked {self.worker_memory_mb}); use 1GB or more"
            )
        network = ipaddress.IPv4Network(self.network_cidr)
        start = ipaddress.IPv4Address(self.ip_start)
        gateway = ipaddress.IPv4Address(self.gateway)
        if gateway not in network:
            raise ValueError(f"the gateway {gateway} is outside the node network {network}")
        if start not in network:
            raise ValueError(f"ip_start {start} is outside the node network {network}")
        last_usable = network.broadcast_address - 1
        last = int(start) + self.node_count - 1
        if last > int(last_usable) or start == network.network_address:
            room = max(0, int(last_usable) - int(start) + 1)
            raise ValueError(
                f"{self.node_count} nodes from {start} do not fit in {network} (room for {room}): "
                "choose a lower ip_start or a larger network"
            )
        if int(start) <= int(gateway) <= last:
            raise ValueError(
                f"the node range {start}-{ipaddress.IPv4Address(last)} contains the gateway "
                f"{gateway}: choose an ip_start after it"
            )
        for other_name, other in (("pod", self.pod_cidr), ("service", self.service_cidr)):
            if network.overlaps(ipaddress.IPv4Network(other)):
                raise ValueError(
                    f"the {other_name} network {other} overlaps the node network {network}"
                )
        if ipaddress.IPv4Network(self.pod_cidr).overlaps(ipaddress.IPv4Network(self.service_cidr)):
            raise ValueError(
                f"pod network {self.pod_cidr} overlaps service network {self.service_cidr}"
            )
        return self

    # -- derived ---------------------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return self.control_plane_count + self.worker_count

    @property
    def network_prefix(self) -> int:
        return ipaddress.IPv4Network(self.network_cidr).prefixlen

    def addresses(self) -> list[str]:
        """Every node's address: control planes first, then workers."""
        start = int(ipaddress.IPv4Address(self.ip_start))
        return [str(ipaddress.IPv4Address(start + i)) for i in range(self.node_count)]

    def control_plane_ips(self) -> list[str]:
        return self.addresses()[: self.control_plane_count]

    def worker_ips(self) -> list[str]:
        return self.addresses()[self.control_plane_count :]

    def summary(self) -> str:
        """One line in the words of seed 002's intent table."""
        parts = [
            f"{self.control_plane_count} CP + {self.worker_count} worker"
            + ("" if self.worker_count == 1 else "s"),
            f"{self.worker_cores if self.worker_count else self.control_plane_cores} cores",
            f"{_gb(self.worker_memory_mb if self.worker_count else self.control_plane_memory_mb)}",
        ]
        if self.cni != "flannel":
            parts.append(f"{self.cni.capitalize()} CNI")
        if self.addons:
            parts.append(" + ".join(self.addons))
        return ", ".join(parts)


def _gb(memory_mb: int) -> str:
    return f"{memory_mb // 1024}GB" if memory_mb % 1024 == 0 else f"{memory_mb}MB"


def describe_errors(exc: Exception) -> str:
    """A pydantic ValidationError as lines a person can act on (no URLs, no input dumps)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    lines = []
    for error in errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)
