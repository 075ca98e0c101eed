"""``anvyl models``: list the configured endpoints with a reachability probe, or test one."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from anvyl.orchestrator.config_file import ConfigFileError, config_file_from_env
from anvyl.orchestrator.llm.config import ModelConfig, load_model_config
from anvyl.orchestrator.llm.errors import EndpointError, ModelConfigError, ModelError
from anvyl.orchestrator.llm.models import make_model
from anvyl.orchestrator.llm.router import ModelRouter
from anvyl.orchestrator.llm.types import ChatMessage, ModelRequest

models_app = typer.Typer(help="Model endpoints and routing.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Model config YAML (default: $ANVYL_CONFIG)."),
]


def _load(config: Path | None) -> ModelConfig:
    try:
        return load_model_config(config or config_file_from_env(os.environ), os.environ)
    except (ModelConfigError, ConfigFileError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


async def _probe_all(config: ModelConfig, timeout_s: float) -> dict[str, str]:
    async def probe(name: str) -> tuple[str, str]:
        endpoint = config.endpoint(name)
        if endpoint.api_shape == "local_runner":
            return name, "in-process (loads on first use)"
        provider = make_model(endpoint)
        began = time.perf_counter()
        try:
            # The SDK enforces `timeout` on the network; the outer bound also covers the SDK's
            # lazy imports on first use, which are not the endpoint's fault.
            await asyncio.wait_for(provider.probe(timeout_s), timeout_s + 10)
            return name, f"reachable ({(time.perf_counter() - began) * 1000:.0f} ms)"
        except (EndpointError, TimeoutError) as exc:
            return name, f"unreachable: {exc or 'timeout'}"
        finally:
            await provider.aclose()

    results = await asyncio.gather(*(probe(m.name) for m in config.models))
    return dict(results)


@models_app.command("list")
def list_models(
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Probe timeout in seconds.")] = 2.0,
    probe: Annotated[bool, typer.Option(help="Check that each endpoint answers.")] = True,
) -> None:
    """Endpoints, whether they answer, and the routing chain."""
    model_config = _load(config)
    if not model_config.models:
        typer.echo("no model configured: the built-in planner answers (no model is used)")
        return
    reachability = asyncio.run(_probe_all(model_config, timeout)) if probe else {}
    typer.echo(f"config: {model_config.source or '(environment only)'}")
    for endpoint in model_config.models:
        where = endpoint.base_url or f"runner {endpoint.runner}"
        key = " key=set" if endpoint.api_key else ""
        status = reachability.get(endpoint.name, "not probed")
        locality = "local" if endpoint.is_local else "online"  # for the user's preference
        typer.echo(f"  {endpoint.name:<12} {endpoint.provider:<9} {endpoint.model}  {where}{key}  "
                   f"{locality}  {status}")  # fmt: skip
    chain = " -> ".join(e.name for e in model_config.chain())
    typer.echo(f"routing: {chain}")


@models_app.command("test")
def test_model(
    name: Annotated[str, typer.Argument(help="Endpoint name from `anvyl models list`.")],
    prompt: Annotated[
        str, typer.Option(help="One-line prompt.")
    ] = "Say hello in one short sentence.",
    config: ConfigOption = None,
    max_tokens: Annotated[int, typer.Option()] = 64,
) -> None:
    """Send one prompt to one endpoint (no fallback) and print the answer with its metadata."""
    model_config = _load(config)
    try:
        endpoint = model_config.endpoint(name)
    except KeyError:
        names = ", ".join(m.name for m in model_config.models) or "none"
        typer.echo(f"no model named {name!r} (configured: {names})", err=True)
        raise typer.Exit(2) from None

    async def run() -> None:
        async with ModelRouter([endpoint.model_copy(update={"retries": 0})]) as router:
            request = ModelRequest(
                messages=[ChatMessage(role="user", content=prompt)], max_tokens=max_tokens
            )
            response = await router.complete(request)
        typer.echo(response.content or "(empty answer)")
        if response.reasoning:
            typer.echo(f"reasoning: {response.reasoning[:200]}")
        meta = response.metadata
        typer.echo(
            f"endpoint={meta.endpoint} provider={meta.provider} model={meta.model_id} "
            f"latency={meta.latency_s * 1000:.0f}ms tokens={response.usage.prompt_tokens}"
            f"+{response.usage.completion_tokens} cost=${response.cost:.6f} "
            f"finish={response.finish_reason}"
        )

    try:
        asyncio.run(run())
    except ModelError as exc:
        typer.echo(f"{name} failed: {exc}", err=True)
        raise typer.Exit(1) from None
