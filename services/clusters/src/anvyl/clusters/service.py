"""One call from intent to a validated project: discovery, interpretation, fitting, generation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from anvyl.clusters.discovery import (
    DiscoveryError,
    FitError,
    HostContext,
    ProxmoxConfig,
    discover,
    fit,
)
from anvyl.clusters.generate import generate_project
from anvyl.clusters.intent import IntentError
from anvyl.clusters.interpret import Ask, interpret
from anvyl.clusters.spec import ClusterSpec
from anvyl.clusters.validate import Check, validate_project

DEFAULT_ENDPOINT = "https://pve:8006/"


@dataclass
class ClusterPlan:
    spec: ClusterSpec
    source: str  # which produced the spec: "model:NAME" or "parser"
    files: dict[str, str]
    host: HostContext | None = None
    warnings: list[str] = field(default_factory=list)
    adjustments: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "spec": self.spec.model_dump(mode="json"),
            "summary": self.spec.summary(),
            "source": self.source,
            "warnings": self.warnings,
            "adjustments": self.adjustments,
            "host": self.host.describe() if self.host else None,
            "files": sorted(self.files),
            "checks": [{"name": c.name, "ok": c.ok, "skipped": c.skipped} for c in self.checks],
        }


async def plan_cluster(
    intent: str,
    *,
    proxmox: ProxmoxConfig | None = None,
    ask: Ask | None = None,
    model_name: str = "",
    validate: bool = True,
    tools: bool = True,
) -> ClusterPlan:
    """IntentError (bad intent) or FitError (does not fit the host) say what to change."""
    warnings: list[str] = []
    host: HostContext | None = None
    if proxmox is None:
        warnings.append(
            "Proxmox not configured (PROXMOX_API_URL, PROXMOX_API_TOKEN_ID, "
            "PROXMOX_API_TOKEN_SECRET or --proxmox-*): sized with defaults, addresses not checked"
        )
    else:
        try:
            host = await asyncio.to_thread(discover, proxmox)
        except DiscoveryError as exc:
            warnings.append(f"{exc}: sized with defaults, addresses not checked")
    interpretation = await interpret(intent, host=host, ask=ask, model_name=model_name)
    warnings += interpretation.warnings
    spec, adjustments = interpretation.spec, list[str]()
    if host is not None:
        spec, adjustments = fit(spec, host)
    files = generate_project(
        spec,
        proxmox_endpoint=(proxmox.url + "/") if proxmox else DEFAULT_ENDPOINT,
        token_id=proxmox.token_id if proxmox else "root@pam!anvyl",
    )
    checks = await asyncio.to_thread(validate_project, files, tools=tools) if validate else []
    return ClusterPlan(spec, interpretation.source, files, host, warnings, adjustments, checks)


__all__ = ["ClusterPlan", "FitError", "IntentError", "plan_cluster"]
