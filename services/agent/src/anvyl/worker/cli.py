"""`anvyl-worker serve` (or `python -m anvyl.worker serve`): start the worker. argparse keeps the worker's dependency set small."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="anvyl-worker", description="Anvyl workspace worker")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve the worker API (token from ANVYL_WORKER_TOKEN)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workspace", type=Path, default=Path("/workspace"))
    args = parser.parse_args(argv)

    from anvyl.worker.reaper import become_init_if_pid1

    become_init_if_pid1()  # before anything else is imported or started

    import uvicorn

    from anvyl.worker.app import WorkerConfig, create_app

    app = create_app(WorkerConfig.from_env(args.workspace))
    # The plain asyncio loop: uvloop (when installed) spawns and reaps commands several times slower.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="asyncio",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
