"""Async client for the Proxmox VE REST API (`/api2/json`), with API-token auth.

Kept free of MCP concerns so cluster provisioning can build on it (it will add POST calls
for cloning and configuring VMs through `request`).
"""

import ipaddress
import re
import ssl
from types import TracebackType
from typing import Any, Self

import httpx

_IPCONFIG_ADDRESS_PATTERN = re.compile(r"(?:^|,)ip6?=([^,]+)")


class ProxmoxError(Exception):
    """A Proxmox call failed; the message says why in terms an operator can act on."""


class ProxmoxNotConfiguredError(ProxmoxError):
    pass


class ProxmoxClient:
    def __init__(
        self,
        base_url: str,
        token_id: str,
        token_secret: str,
        *,
        verify_tls: bool | ssl.SSLContext = True,
        timeout_s: float = 15.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_id = token_id
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api2/json",
            headers={"Authorization": f"PVEAPIToken={token_id}={token_secret}"},
            verify=verify_tls,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Any:
        """Call `/api2/json{path}` and return its `data` member."""
        url = f"{self.base_url}/api2/json{path}"
        try:
            response = await self._http.request(method, path, params=params, data=data)
        except httpx.ConnectError as exc:
            if _is_certificate_error(exc):
                raise ProxmoxError(
                    f"TLS certificate verification failed for {self.base_url}: {exc}. Install "
                    "the cluster CA, or set ANVYL_MCP_HUB_PROXMOX_VERIFY_TLS=false for a lab"
                ) from exc
            raise ProxmoxError(
                f"cannot reach Proxmox at {self.base_url}: {exc or type(exc).__name__}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProxmoxError(
                f"Proxmox at {self.base_url} timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise ProxmoxError(f"Proxmox request {method} {url} failed: {exc}") from exc
        if response.status_code == 401:
            raise ProxmoxError(
                f"Proxmox rejected the API token '{self.token_id}' (401): check token id and secret"
            )
        if response.status_code == 403:
            raise ProxmoxError(f"API token '{self.token_id}' lacks permission for {path} (403)")
        if response.is_error:
            # Proxmox puts the human reason in the HTTP reason phrase and details in `errors`.
            detail = response.reason_phrase
            try:
                errors = response.json().get("errors")
            except ValueError:
                errors = None
            if errors:
                detail = f"{detail} {errors}"
            raise ProxmoxError(f"Proxmox {method} {path} answered {response.status_code}: {detail}")
        try:
            return response.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProxmoxError(f"Proxmox {path} answered without a JSON `data` member") from exc

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def nodes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/nodes")
        return result

    async def node_status(self, node: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.get(f"/nodes/{node}/status")
        return result

    async def qemu_vms(self, node: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get(f"/nodes/{node}/qemu")
        return result

    async def qemu_config(self, node: str, vmid: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.get(f"/nodes/{node}/qemu/{vmid}/config")
        return result

    async def qemu_agent_interfaces(self, node: str, vmid: int) -> list[dict[str, Any]]:
        data = await self.get(f"/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
        result: list[dict[str, Any]] = data.get("result", []) if isinstance(data, dict) else []
        return result

    async def storage(self, node: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get(f"/nodes/{node}/storage")
        return result


def _is_certificate_error(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def addresses_from_agent(interfaces: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(interface, ip) pairs the guest agent reports, without loopback and link-local ones."""
    found: list[tuple[str, str]] = []
    for interface in interfaces:
        for entry in interface.get("ip-addresses") or []:
            address = entry.get("ip-address")
            if address and _is_routable(address):
                found.append((interface.get("name", ""), address))
    return found


def addresses_from_config(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(ipconfigN, ip) pairs of static cloud-init addresses (`ip=10.0.0.5/24,gw=...`)."""
    found: list[tuple[str, str]] = []
    for key in sorted(config):
        if not key.startswith("ipconfig"):
            continue
        for match in _IPCONFIG_ADDRESS_PATTERN.finditer(str(config[key])):
            value = match.group(1)
            if value in ("dhcp", "auto"):
                continue
            address = value.split("/", 1)[0]
            if _is_routable(address):
                found.append((key, address))
    return found


def _is_routable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)
