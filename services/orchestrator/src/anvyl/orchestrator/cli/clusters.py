"""``anvyl cluster``: Kubernetes clusters on Proxmox from a plain-English intent.

The model is reached through Anvyl's model router (the configured chain, or an Ollama endpoint
from --ollama-url / --model / OLLAMA_URL / OLLAMA_MODEL); without one, the deterministic parser.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from anvyl.clusters.discovery import FitError, ProxmoxConfig, proxmox_config
from anvyl.clusters.intent import IntentError
from anvyl.clusters.interpret import Ask, ollama_base_url
from anvyl.clusters.pipeline import PipelineError, run_pipeline, steps_for
from anvyl.clusters.service import ClusterPlan, plan_cluster
from anvyl.clusters.validate import ValidationFailed
from anvyl.clusters.writer import plan_writes, write_project
from anvyl.orchestrator.config_file import ConfigFileError, config_file_from_env
from anvyl.orchestrator.llm.config import ModelEndpoint, load_model_config
from anvyl.orchestrator.llm.errors import ModelConfigError
from anvyl.orchestrator.llm.router import ModelRouter
from anvyl.orchestrator.llm.types import ChatMessage, ModelRequest

cluster_app = typer.Typer(
    help="Kubernetes clusters on Proxmox from a plain-English intent.", no_args_is_help=True
)
console = Console()

ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Ollama model (default $OLLAMA_MODEL or llama3).")
]
OllamaOpt = Annotated[
    str | None, typer.Option("--ollama-url", help="Ollama URL (default $OLLAMA_URL).")
]
UrlOpt = Annotated[
    str | None, typer.Option("--proxmox-url", help="Proxmox API URL (default $PROXMOX_API_URL).")
]
TokenIdOpt = Annotated[
    str | None,
    typer.Option("--proxmox-token-id", help="user@realm!token (default $PROXMOX_API_TOKEN_ID)."),
]
TokenSecretOpt = Annotated[
    str | None,
    typer.Option(
        "--proxmox-token-secret", help="Token secret (default $PROXMOX_API_TOKEN_SECRET)."
    ),
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="Project directory (terraform/, ansible/, packer/).")
]


def _router(model: str | None, ollama_url: str | None) -> tuple[ModelRouter | None, str]:
    """The router to ask, and the name of its first endpoint; (None, "") when none is configured."""
    if model or ollama_url:
        url = ollama_url or os.environ.get("OLLAMA_URL") or "http://localhost:11434"
        endpoint = ModelEndpoint(
            name="ollama",
            provider="ollama",
            base_url=ollama_base_url(url),
            model=model or os.environ.get("OLLAMA_MODEL") or "llama3",
            retries=0,
        )
        return ModelRouter([endpoint]), f"ollama/{endpoint.model}"
    try:
        config = load_model_config(config_file_from_env(os.environ), os.environ)
    except (ModelConfigError, ConfigFileError) as exc:
        console.print(f"[yellow]model config ignored: {exc}[/]")
        return None, ""
    if not config.models:
        return None, ""
    chain = config.chain()
    return ModelRouter.from_config(config), f"{chain[0].name}/{chain[0].model}"


def _router_ask(router: ModelRouter) -> Ask:
    async def ask(messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        request = ModelRequest(
            messages=[ChatMessage(role=m["role"], content=m["content"]) for m in messages],
            response_schema=schema,
            temperature=0,
        )
        response = await router.complete(request)
        return response.content

    return ask


def _plan(
    intent: str,
    *,
    model: str | None,
    ollama_url: str | None,
    proxmox: ProxmoxConfig | None,
) -> ClusterPlan:
    async def run() -> ClusterPlan:
        router, name = _router(model, ollama_url)
        try:
            return await plan_cluster(
                intent,
                proxmox=proxmox,
                ask=_router_ask(router) if router else None,
                model_name=name,
            )
        finally:
            if router is not None:
                await router.aclose()

    return _guarded(run)


def _guarded(run: Callable[[], Coroutine[Any, Any, ClusterPlan]]) -> ClusterPlan:
    try:
        return asyncio.run(run())
    except (IntentError, FitError, ValidationFailed) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


def _proxmox(
    url: str | None, token_id: str | None, secret: str | None, out: Path
) -> ProxmoxConfig | None:
    return proxmox_config(url, token_id, secret, tfvars=out / "terraform" / "terraform.tfvars")


def show_plan(plan: ClusterPlan) -> None:
    spec = plan.spec
    table = Table(title=f"Cluster {spec.name}  ({spec.summary()})", show_header=False)
    table.add_row("produced by", plan.source)
    table.add_row(
        "control planes",
        f"{spec.control_plane_count} x {spec.control_plane_cores} cores, {spec.control_plane_memory_mb} MiB",
    )
    table.add_row(
        "workers", f"{spec.worker_count} x {spec.worker_cores} cores, {spec.worker_memory_mb} MiB"
    )
    table.add_row("disk", f"{spec.disk_gb} GB per node on {spec.storage} ({spec.proxmox_node})")
    table.add_row(
        "addresses", f"{', '.join(spec.addresses())} (gateway {spec.gateway}, {spec.network_cidr})"
    )
    table.add_row("kubernetes", f"{spec.kubernetes_version}, CNI {spec.cni}")
    table.add_row("add-ons", ", ".join(spec.addons) or "none")
    console.print(table)  # fmt: skip
    if plan.host:
        console.print(f"[bold]Host:[/] {plan.host.describe()}", soft_wrap=True)
    console.print(f"[bold]Reasoning:[/] {spec.reasoning}", soft_wrap=True)
    for adjustment in plan.adjustments:
        console.print(f"[cyan]fitted:[/] {adjustment}", soft_wrap=True)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


def _lexer(path: str) -> str:
    return {".tf": "terraform", ".tfvars": "terraform", ".hcl": "terraform", ".yml": "yaml",
            ".ini": "ini", ".json": "json", ".cfg": "ini"}.get(Path(path).suffix, "text")  # fmt: skip


@cluster_app.command("preview")
def preview(
    intent: Annotated[str, typer.Argument(help='e.g. "staging cluster with 4 workers"')],
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    model: ModelOpt = None,
    ollama_url: OllamaOpt = None,
    proxmox_url: UrlOpt = None,
    proxmox_token_id: TokenIdOpt = None,
    proxmox_token_secret: TokenSecretOpt = None,
    out: OutOpt = Path("."),
) -> None:
    """Show the spec, its reasoning and the generated files; writes nothing."""
    proxmox = _proxmox(proxmox_url, proxmox_token_id, proxmox_token_secret, out)
    plan = _plan(intent, model=model, ollama_url=ollama_url, proxmox=proxmox)
    if json_output:
        typer.echo(json.dumps({**plan.to_json(), "contents": plan.files}, indent=2))
        return
    show_plan(plan)
    for path, text in plan.files.items():
        console.rule(path)
        console.print(Syntax(text, _lexer(path), word_wrap=True))


@cluster_app.command("create")
def create(
    intent: Annotated[str | None, typer.Argument(help="Asked for when not given.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Then run Packer, Terraform and Ansible.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show every file and command; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files you edited.")] = False,
    out: OutOpt = Path("."),
    model: ModelOpt = None,
    ollama_url: OllamaOpt = None,
    proxmox_url: UrlOpt = None,
    proxmox_token_id: TokenIdOpt = None,
    proxmox_token_secret: TokenSecretOpt = None,
) -> None:  # fmt: skip
    """Interpret the intent, show the spec, generate the project and optionally provision it."""
    if intent is None:
        intent = typer.prompt("Describe the cluster you need")
    proxmox = _proxmox(proxmox_url, proxmox_token_id, proxmox_token_secret, out)
    plan = _plan(intent, model=model, ollama_url=ollama_url, proxmox=proxmox)
    show_plan(plan)
    build_template = plan.host is None or plan.spec.template_vm_id not in plan.host.templates()
    steps = steps_for(plan.spec, proxmox, build_template=build_template)
    if dry_run:
        writes = plan_writes(out, plan.files, force=force)
        for change in writes.changes:
            console.rule(f"{change.path}  (would {change.action})")
            if change.action == "kept":
                console.print(f"[yellow]you edited this file: kept (use --force)[/]\n{change.diff}")
            else:
                console.print(Syntax(plan.files[change.path], _lexer(change.path), word_wrap=True))
        console.rule("commands" + ("" if apply else " (with --apply)"))
        for step in steps:
            console.print(f"{step.name}: {step.display()}", soft_wrap=True, markup=False)
        console.print("[bold]dry run: nothing was written[/]")
        return
    if not yes and not typer.confirm(f"Write the project to {out.resolve()}?", default=True):
        raise typer.Exit(1)
    result = write_project(out, plan.files, force=force)
    for change in result.changes:
        console.print(f"  {change.action:<9} {out / change.path}", markup=False)
    for change in result.kept:
        console.print(f"[yellow]{change.path}: you edited it; not overwritten (use --force):[/]")
        console.print(change.diff, markup=False)
    if not apply:
        console.print(f"Next: anvyl cluster create ... --apply  (or cd {out} and run the steps)")
        return
    _apply(out, plan, proxmox, build_template)


def _apply(
    out: Path, plan: ClusterPlan, proxmox: ProxmoxConfig | None, build_template: bool
) -> None:
    def progress(step: str, status: str) -> None:
        console.print(f"[bold]{step}[/]: {status}")

    missing = [tool for tool in ("terraform", "ssh", "ansible-playbook") if not shutil.which(tool)]
    if build_template and not shutil.which("packer"):
        missing.insert(0, "packer")
    if missing:
        console.print(
            f"[yellow]not on PATH: {', '.join(missing)}; the step that needs one will fail[/]"
        )
    try:
        result = run_pipeline(
            out, plan.spec, proxmox, build_template=build_template, progress=progress
        )
    except PipelineError as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        console.print("Fix it and run the same command again: finished steps are skipped.")
        raise typer.Exit(1) from None
    console.print(
        f"[green]cluster {plan.spec.name} provisioned[/] (ran {', '.join(result.ran) or 'nothing'}; skipped {', '.join(result.skipped) or 'nothing'})"
    )
