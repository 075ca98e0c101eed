"""A small Proxmox VE API on the real ``/api2/json`` paths: one busy node, used addresses.

Checks the ``PVEAPIToken`` header as Proxmox does (401 with ``{"data": null}``); a VM without a
guest agent answers 500 on the agent path, as Proxmox does.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN_ID = "anvyl@pve!clusters"
TOKEN_SECRET = "5f0c7a52-aaaa-bbbb-cccc-0123456789ab"
GIB = 1024**3

# 24 GiB of memory, 14 used: 9 GiB free after the host's 1 GiB reserve.
NODES = [
    {"node": "pve", "status": "online", "type": "node", "cpu": 0.31, "maxcpu": 8,
     "mem": 14 * GIB, "maxmem": 24 * GIB, "disk": 20 * GIB, "maxdisk": 100 * GIB, "uptime": 86400},
    {"node": "pve-old", "status": "offline", "type": "node"},
]  # fmt: skip
VMS = [
    {"vmid": 100, "name": "gitlab", "status": "running", "cpus": 4, "maxmem": 8 * GIB, "mem": 6 * GIB},
    {"vmid": 101, "name": "db", "status": "running", "cpus": 2, "maxmem": 4 * GIB, "mem": 3 * GIB},
    {"vmid": 102, "name": "backup", "status": "stopped", "cpus": 1, "maxmem": 2 * GIB, "mem": 0},
    {"vmid": 9000, "name": "debian12-cloudinit", "status": "stopped", "cpus": 2, "maxmem": 2 * GIB, "template": 1},
]  # fmt: skip
AGENT = {  # 100 has a guest agent; 101 has none (its config says where it is)
    100: [
        {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4"}]},
        {"name": "eth0", "ip-addresses": [
            {"ip-address": "192.168.1.100", "ip-address-type": "ipv4", "prefix": 24},
            {"ip-address": "fe80::1", "ip-address-type": "ipv6", "prefix": 64}]},
    ],
}  # fmt: skip
CONFIGS = {
    100: {"ipconfig0": "ip=192.168.1.100/24,gw=192.168.1.1"},
    101: {"ipconfig0": "ip=192.168.1.101/24,gw=192.168.1.1"},
    102: {"ipconfig0": "ip=192.168.1.103/24,gw=192.168.1.1", "ipconfig1": "ip=dhcp"},
    9000: {"template": 1},
}
STORAGE = [
    {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "active": 1,
     "total": 100 * GIB, "used": 20 * GIB, "avail": 80 * GIB},
    {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "active": 1,
     "total": 200 * GIB, "used": 140 * GIB, "avail": 60 * GIB},
]  # fmt: skip
USED_IPS = ["192.168.1.100", "192.168.1.101", "192.168.1.103"]


class FakePve:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/api2/json/nodes", self._nodes),
                Route("/api2/json/nodes/{node}/qemu", self._qemu),
                Route("/api2/json/nodes/{node}/storage", self._storage),
                Route("/api2/json/nodes/{node}/qemu/{vmid:int}/config", self._config),
                Route(
                    "/api2/json/nodes/{node}/qemu/{vmid:int}/agent/network-get-interfaces",
                    self._agent,
                ),
            ]
        )

    def _denied(self, request: Request) -> JSONResponse | None:
        self.requests.append(request.url.path)
        if request.headers.get("authorization") != f"PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}":
            return JSONResponse({"data": None}, status_code=401)
        if request.path_params.get("node", "pve") != "pve":
            return JSONResponse({"data": None}, status_code=595)
        return None

    def _answer(self, request: Request, data: Any) -> JSONResponse:
        return self._denied(request) or JSONResponse({"data": data})

    async def _nodes(self, request: Request) -> JSONResponse:
        return self._answer(request, NODES)

    async def _qemu(self, request: Request) -> JSONResponse:
        return self._answer(request, VMS)

    async def _storage(self, request: Request) -> JSONResponse:
        return self._answer(request, STORAGE)

    async def _config(self, request: Request) -> JSONResponse:
        return self._denied(request) or JSONResponse({"data": CONFIGS[request.path_params["vmid"]]})

    async def _agent(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        vmid = request.path_params["vmid"]
        if vmid not in AGENT:
            return JSONResponse({"data": None}, status_code=500)
        return JSONResponse({"data": {"result": AGENT[vmid]}})
