"""A local server that answers the real Proxmox VE API paths with realistic JSON.

It checks the `PVEAPIToken` header exactly as Proxmox does (401 on a wrong token), and
answers guest-agent errors the way Proxmox does when no agent runs in the guest.
"""

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN_ID = "anvyl@pve!mcp-hub"
TOKEN_SECRET = "0b4c5d6e-1111-2222-3333-444455556666"
GIB = 1024**3

NODES: list[dict[str, Any]] = [
    {
        "node": "pve1",
        "status": "online",
        "type": "node",
        "id": "node/pve1",
        "cpu": 0.0412,
        "maxcpu": 16,
        "mem": 21 * GIB,
        "maxmem": 64 * GIB,
        "disk": 12 * GIB,
        "maxdisk": 94 * GIB,
        "uptime": 1_209_600,
        "level": "",
        "ssl_fingerprint": "AA:BB:CC",
    },
    {
        "node": "pve2",
        "status": "online",
        "type": "node",
        "id": "node/pve2",
        "cpu": 0.125,
        "maxcpu": 8,
        "mem": 10 * GIB,
        "maxmem": 32 * GIB,
        "disk": 8 * GIB,
        "maxdisk": 94 * GIB,
        "uptime": 86_400,
        "level": "",
    },
]

VMS: dict[str, list[dict[str, Any]]] = {
    "pve1": [
        {
            "vmid": 100,
            "name": "k8s-cp-1",
            "status": "running",
            "cpus": 2,
            "maxmem": 4 * GIB,
            "mem": 2 * GIB,
            "maxdisk": 32 * GIB,
            "disk": 0,
            "uptime": 3600,
            "tags": "k8s;cp",
            "pid": 1234,
            "netin": 1000,
            "netout": 2000,
        },
        {
            "vmid": 101,
            "name": "k8s-worker-1",
            "status": "running",
            "cpus": 4,
            "maxmem": 8 * GIB,
            "mem": 5 * GIB,
            "maxdisk": 64 * GIB,
            "disk": 0,
            "uptime": 3500,
            "tags": "k8s",
        },
        {
            "vmid": 9000,
            "name": "debian-12-template",
            "status": "stopped",
            "cpus": 2,
            "maxmem": 2 * GIB,
            "mem": 0,
            "maxdisk": 8 * GIB,
            "disk": 0,
            "uptime": 0,
            "template": 1,
        },
    ],
    "pve2": [
        {
            "vmid": 200,
            "name": "db-1",
            "status": "stopped",
            "cpus": 2,
            "maxmem": 4 * GIB,
            "mem": 0,
            "maxdisk": 32 * GIB,
            "disk": 0,
            "uptime": 0,
        },
    ],
}

# Guest agent answers for running VMs; 101 has no agent running.
AGENT_INTERFACES: dict[int, list[dict[str, Any]]] = {
    100: [
        {
            "name": "lo",
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [
                {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
            ],
        },
        {
            "name": "eth0",
            "hardware-address": "bc:24:11:aa:bb:cc",
            "ip-addresses": [
                {"ip-address": "192.168.10.21", "ip-address-type": "ipv4", "prefix": 24},
                {
                    "ip-address": "fe80::be24:11ff:feaa:bbcc",
                    "ip-address-type": "ipv6",
                    "prefix": 64,
                },
            ],
        },
    ],
}

CONFIGS: dict[int, dict[str, Any]] = {
    100: {"name": "k8s-cp-1", "ipconfig0": "ip=192.168.10.21/24,gw=192.168.10.1"},
    101: {"name": "k8s-worker-1", "ipconfig0": "ip=192.168.10.22/24,gw=192.168.10.1"},
    200: {
        "name": "db-1",
        "ipconfig0": "ip=192.168.10.30/24,gw=192.168.10.1",
        "ipconfig1": "ip=dhcp",
    },
    9000: {"name": "debian-12-template", "template": 1},
}

NODE_STATUS: dict[str, Any] = {
    "cpu": 0.0412,
    "cpuinfo": {
        "cpus": 16,
        "cores": 8,
        "sockets": 1,
        "mhz": "3400.000",
        "model": "AMD Ryzen 7 5800X 8-Core Processor",
        "hvm": "1",
        "flags": "fpu vme",
    },
    "memory": {"total": 64 * GIB, "used": 21 * GIB, "free": 43 * GIB},
    "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
    "rootfs": {"total": 94 * GIB, "used": 12 * GIB, "avail": 77 * GIB, "free": 82 * GIB},
    "loadavg": ["0.35", "0.41", "0.38"],
    "uptime": 1_209_600,
    "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4",
    "pveversion": "pve-manager/8.3.0/c1689ccb1065a83b",
    "idle": 0,
    "wait": 0.0012,
}

STORAGE: list[dict[str, Any]] = [
    {
        "storage": "local",
        "type": "dir",
        "content": "iso,vztmpl,backup",
        "active": 1,
        "enabled": 1,
        "shared": 0,
        "total": 94 * GIB,
        "used": 12 * GIB,
        "avail": 77 * GIB,
        "used_fraction": 0.127,
    },
    {
        "storage": "local-lvm",
        "type": "lvmthin",
        "content": "images,rootdir",
        "active": 1,
        "enabled": 1,
        "shared": 0,
        "total": 800 * GIB,
        "used": 120 * GIB,
        "avail": 680 * GIB,
        "used_fraction": 0.15,
    },
]


class FakeProxmox:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/api2/json/nodes", self.nodes),
                Route("/api2/json/nodes/{node}/status", self.node_status),
                Route("/api2/json/nodes/{node}/qemu", self.qemu),
                Route("/api2/json/nodes/{node}/qemu/{vmid:int}/config", self.qemu_config),
                Route(
                    "/api2/json/nodes/{node}/qemu/{vmid:int}/agent/network-get-interfaces",
                    self.agent_interfaces,
                ),
                Route("/api2/json/nodes/{node}/storage", self.storage),
            ]
        )

    def _check(self, request: Request) -> JSONResponse | None:
        self.requests.append((request.method, request.url.path))
        expected = f"PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"
        if request.headers.get("authorization") != expected:
            # Proxmox answers a bad token with 401 and `{"data": null}`.
            return JSONResponse({"data": None}, status_code=401)
        return None

    def _node(self, request: Request) -> str | JSONResponse:
        node = request.path_params["node"]
        if node not in VMS:
            return JSONResponse(
                {"data": None, "errors": {"node": f"hostname lookup '{node}' failed"}},
                status_code=500,
            )
        return str(node)

    async def nodes(self, request: Request) -> JSONResponse:
        return self._check(request) or JSONResponse({"data": NODES})

    async def node_status(self, request: Request) -> JSONResponse:
        if denied := self._check(request):
            return denied
        node = self._node(request)
        return node if isinstance(node, JSONResponse) else JSONResponse({"data": NODE_STATUS})

    async def qemu(self, request: Request) -> JSONResponse:
        if denied := self._check(request):
            return denied
        node = self._node(request)
        return node if isinstance(node, JSONResponse) else JSONResponse({"data": VMS[node]})

    async def qemu_config(self, request: Request) -> JSONResponse:
        if denied := self._check(request):
            return denied
        return JSONResponse({"data": CONFIGS[request.path_params["vmid"]]})

    async def agent_interfaces(self, request: Request) -> JSONResponse:
        if denied := self._check(request):
            return denied
        vmid = request.path_params["vmid"]
        if vmid not in AGENT_INTERFACES:
            return JSONResponse({"data": None}, status_code=500)
        return JSONResponse({"data": {"result": AGENT_INTERFACES[vmid]}})

    async def storage(self, request: Request) -> JSONResponse:
        if denied := self._check(request):
            return denied
        node = self._node(request)
        return node if isinstance(node, JSONResponse) else JSONResponse({"data": STORAGE})


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, trusted by nobody."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pve-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "pve.crt"
    key_path = directory / "pve.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
