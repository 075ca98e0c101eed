"""The proxmox server's cluster tools: preview (read-only) and create (destructive: approval).

Built on anvyl.clusters (the hub depends on it, never the reverse). The spec comes from the model at
OLLAMA_URL (OLLAMA_MODEL) when set, else from the deterministic parser. Projects are written under
one directory, ``ANVYL_MCP_HUB_PROXMOX_CLUSTERS_DIR``, one sub-directory per cluster name.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, SecretStr

from anvyl.clusters.discovery import FitError, ProxmoxConfig
from anvyl.clusters.intent import MAX_INTENT_CHARS, IntentError
from anvyl.clusters.interpret import Ask, ollama_base_url, openai_ask
from anvyl.clusters.pipeline import PipelineError, run_pipeline
from anvyl.clusters.service import ClusterPlan, plan_cluster
from anvyl.clusters.validate import ValidationFailed
from anvyl.clusters.writer import write_project

CLUSTER_TIMEOUT_S = 300.0  # discovery, interpretation and validation of one request


class ClusterPreview(BaseModel):
    spec: dict[str, object]
    summary: str
    source: str = Field(description="What produced the spec: `parser` or `model:NAME`")
    reasoning: str
    host: str | None = Field(description="The Proxmox host as read, or null if unreachable")
    warnings: list[str]
    adjustments: list[str] = Field(description="Changes made to fit the host, with reasons")
    files: list[str]


class FileWritten(BaseModel):
    path: str
    action: str = Field(description="create, update, unchanged, overwrite or kept (user-edited)")


class ClusterCreated(ClusterPreview):
    directory: str
    written: list[FileWritten]
    pipeline_ran: list[str]
    pipeline_skipped: list[str]


def proxmox_for(url: str | None, token_id: str | None, secret: SecretStr | None,
                verify_tls: bool, timeout_s: float) -> ProxmoxConfig | None:  # fmt: skip
    if not (url and token_id and secret):
        return None
    return ProxmoxConfig(url, token_id, secret.get_secret_value(), verify_tls, timeout_s)


def model_ask() -> tuple[Ask | None, str]:
    """An Ollama model when OLLAMA_URL is set (OLLAMA_MODEL, default llama3), as in the CLI;
    else none, and the deterministic parser answers."""
    url = os.environ.get("OLLAMA_URL")
    if not url:
        return None, ""
    model = os.environ.get("OLLAMA_MODEL") or "llama3"
    return openai_ask(ollama_base_url(url), model, timeout_s=120), f"ollama/{model}"


async def _plan(intent: str, proxmox: ProxmoxConfig | None) -> ClusterPlan:
    if len(intent) > MAX_INTENT_CHARS:
        raise ToolError(f"the intent is {len(intent)} characters; use at most {MAX_INTENT_CHARS}")
    try:
        async with asyncio.timeout(CLUSTER_TIMEOUT_S):
            ask, name = model_ask()
            return await plan_cluster(intent, proxmox=proxmox, ask=ask, model_name=name)
    except (IntentError, FitError, ValidationFailed) as exc:
        raise ToolError(str(exc)) from exc
    except TimeoutError as exc:
        raise ToolError(f"planning the cluster took over {CLUSTER_TIMEOUT_S:.0f}s") from exc


def _preview(plan: ClusterPlan) -> dict[str, object]:
    return {
        "spec": plan.spec.model_dump(mode="json"),
        "summary": plan.spec.summary(),
        "source": plan.source,
        "reasoning": plan.spec.reasoning,
        "host": plan.host.describe() if plan.host else None,
        "warnings": plan.warnings,
        "adjustments": plan.adjustments,
        "files": sorted(plan.files),
    }


async def cluster_preview(intent: str, proxmox: ProxmoxConfig | None) -> ClusterPreview:
    return ClusterPreview.model_validate(_preview(await _plan(intent, proxmox)))


async def cluster_create(
    intent: str, proxmox: ProxmoxConfig | None, clusters_dir: Path, *, apply: bool, force: bool
) -> ClusterCreated:
    plan = await _plan(intent, proxmox)
    root = clusters_dir.expanduser() / plan.spec.name  # a DNS label: stays under clusters_dir
    written = await asyncio.to_thread(write_project, root, plan.files, force=force)
    ran: list[str] = []
    skipped: list[str] = []
    if apply:
        build_template = plan.host is None or plan.spec.template_vm_id not in plan.host.templates()
        try:
            result = await asyncio.to_thread(
                run_pipeline, root, plan.spec, proxmox, build_template=build_template
            )
        except PipelineError as exc:
            raise ToolError(f"{exc}. Files are in {root}; call again to continue.") from exc
        ran, skipped = result.ran, result.skipped
    return ClusterCreated.model_validate(
        {
            **_preview(plan),
            "directory": str(root),
            "written": [{"path": c.path, "action": c.action} for c in written.changes],
            "pipeline_ran": ran,
            "pipeline_skipped": skipped,
        }
    )
