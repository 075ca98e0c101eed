"""``anvyl-gpt-oss serve``: vLLM on CUDA, mlx-lm elsewhere."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer(help="Serve gpt-oss with an OpenAI-compatible API.", no_args_is_help=True)


class Engine(StrEnum):
    auto = "auto"
    vllm = "vllm"
    mlx = "mlx"


def vllm_serve_argv(model: str, host: str, port: int, served_model_name: str | None) -> list[str]:
    """The ``vllm serve`` command with the gpt-oss tool-call and reasoning parsers switched on."""
    argv = [
        "vllm", "serve", model,
        "--host", host,
        "--port", str(port),
        "--tool-call-parser", "openai",
        "--reasoning-parser", "openai_gptoss",
        "--enable-auto-tool-choice",
    ]  # fmt: skip
    if served_model_name:
        argv += ["--served-model-name", served_model_name]
    return argv


def cuda_available() -> bool:
    """vLLM needs both the package and an NVIDIA driver; anything else gets mlx."""
    return importlib.util.find_spec("vllm") is not None and shutil.which("nvidia-smi") is not None


def choose_engine(engine: Engine) -> Engine:
    if engine is not Engine.auto:
        return engine
    return Engine.vllm if cuda_available() else Engine.mlx


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="Model path or Hugging Face id (from the cache).")],
    engine: Annotated[Engine, typer.Option(help="Inference engine.")] = Engine.auto,
    host: Annotated[str, typer.Option()] = "0.0.0.0",
    port: Annotated[int, typer.Option()] = 8000,
    served_model_name: Annotated[str | None, typer.Option(help="Name in /v1/models.")] = None,
) -> None:
    chosen = choose_engine(engine)
    if chosen is Engine.vllm:
        if shutil.which("vllm") is None:
            typer.echo("vllm is not installed: pip install 'anvyl-gpt-oss[vllm]'", err=True)
            raise typer.Exit(2)
        process = subprocess.Popen(vllm_serve_argv(model, host, port, served_model_name))
        # Forward termination so the container stops vLLM cleanly.
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        raise typer.Exit(process.wait())

    import uvicorn

    from anvyl.gpt_oss.runners import get_runner
    from anvyl.gpt_oss.service import create_app

    runner = get_runner("mlx")(model)
    uvicorn.run(create_app(runner, served_model_name), host=host, port=port, log_level="info")


@app.command()
def embeddings(
    host: Annotated[str, typer.Option()] = "0.0.0.0",
    port: Annotated[int, typer.Option()] = 8001,
) -> None:
    """Serve only ``/v1/embeddings`` (a static model shipped in its wheel: no download, no GPU),
    beside a ``vllm serve`` that has no embeddings model."""
    import uvicorn

    from anvyl.gpt_oss.embeddings import create_embeddings_app

    uvicorn.run(create_embeddings_app(), host=host, port=port, log_level="info")


@app.command()
def engines() -> None:
    """Print which engine ``--engine auto`` picks here."""
    typer.echo(choose_engine(Engine.auto).value)


def main() -> None:
    app(prog_name="anvyl-gpt-oss")


if __name__ == "__main__":
    main()
