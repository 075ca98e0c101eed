"""The agent loop's own overhead per step: 5 model turns and 8 tool calls with an instant scripted model.

    uv run python bench/agent_bench.py [--tasks 20] [--backend local|docker]

The orchestrator runs in-process (SQLite, real worker, real scripted OpenAI-wire model server).
For each task the event timestamps give the loop's wall time (workspace synced -> result); the model's
own latency (metadata.model_calls) and the tools' durations (metadata.tool_calls; each turn's two
read-only calls run side by side, so a turn counts the longer of the two) are taken out; what
remains, divided by the 5 steps, is the orchestrator's overhead per step: building requests, parsing
answers, storing events, approvals checks, feeding results back. Target: under 10 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import httpx

from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, ScriptedToolCall
from anvyl.orchestrator.settings import Settings

TURNS = [
    [("list_files", {"path": "."}), ("git_status", {})],
    [("read_file", {"path": "README.md"}), ("read_file", {"path": "src/app.py"})],
    [("search_files", {"pattern": "def "}), ("git_log", {"limit": 5})],
    [("git_diff", {}), ("list_files", {"path": "src"})],
]


def script() -> list[ScriptedReply]:
    replies = [
        ScriptedReply(tool_calls=[ScriptedToolCall(n, json.dumps(a)) for n, a in turn])
        for turn in TURNS
    ]
    return [*replies, ScriptedReply(content="Looked around: two files, clean tree.")]


def make_repo(root: Path) -> Path:
    repo = root / "bench-repo"
    (repo / "src").mkdir(parents=True)
    (repo / "README.md").write_text("# bench\n")
    (repo / "src" / "app.py").write_text("def handler():\n    return 1\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run([*git, *args], cwd=repo, check=True, timeout=30)
    return repo


def remove_containers(instance: str) -> None:
    import docker

    client = docker.from_env(timeout=60)
    for container in client.containers.list(
        all=True, filters={"label": f"anvyl.instance={instance}"}
    ):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"label": f"anvyl.instance={instance}"}):
        volume.remove(force=True)
    client.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(tasks: int, backend: str) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="anvyl-agent-bench-") as tmp,
        ScriptedLLMServer() as model,
    ):
        root = Path(tmp)
        repo = make_repo(root)
        config = root / "anvyl.yaml"
        config.write_text(f"models:\n  - name: instant\n    provider: openai\n    base_url: {model.openai_url}\n"
                          "    model: instant\n    api_key: k\nrouting:\n  primary: instant\n")  # fmt: skip
        os.environ["ANVYL_CONFIG"] = str(config)
        settings = Settings(
            data_dir=root / "data",
            workspace_backend=backend,
            instance="agentbench",
            log_level="warning",
        )
        app = create_app(settings)
        overheads, loops, models, tools, syncs = [], [], [], [], []
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120
                ) as http,
            ):
                for index in range(
                    tasks + 1
                ):  # the first one warms the workspace and is not counted
                    model.push(*script())
                    task = (
                        await http.post(
                            "/orchestrate", json={"query": "look around", "repo_url": str(repo)}
                        )
                    ).json()
                    assert task["status"] == "succeeded", task["error"]
                    events = (
                        await http.get(
                            f"/tasks/{task['task_id']}/events", params={"format": "json"}
                        )
                    ).json()
                    at = {e["type"]: datetime.fromisoformat(e["created_at"]) for e in events}
                    first = {
                        e["type"]: datetime.fromisoformat(e["created_at"]) for e in reversed(events)
                    }
                    if index == 0:
                        continue
                    meta = task["metadata"]
                    assert len(meta["model_calls"]) == 5 and len(meta["tool_calls"]) == 8
                    loop_s = (at["result"] - at["workspace.synced"]).total_seconds()
                    model_s = sum(c["latency_s"] for c in meta["model_calls"])
                    # Each turn's two calls are read-only and run side by side: a turn waits for
                    # the longer one (a sum would count the overlap twice).
                    durations = [c["duration_s"] for c in meta["tool_calls"]]
                    tool_s = sum(
                        max(pair) for pair in zip(durations[::2], durations[1::2], strict=True)
                    )
                    loops.append(loop_s)
                    models.append(model_s)
                    tools.append(tool_s)
                    overheads.append((loop_s - model_s - tool_s) / 5)
                    syncs.append((at["workspace.synced"] - first["status"]).total_seconds())
        finally:
            if backend == "docker":
                remove_containers("agentbench")
    ms = lambda v: f"{v * 1000:8.2f}"  # noqa: E731
    print(
        f"\nagent loop: {tasks} tasks x (5 model turns, 8 tool calls), backend={backend}, instant scripted model\n"
    )
    print(f"{'measure':48} {'median ms':>10} {'p95 ms':>10}   target")
    rows = [
        ("orchestrator overhead per step", overheads, "< 10 ms median"),
        ("loop wall time (synced -> result)", loops, ""),
        ("  of which model calls (5, scripted, HTTP)", models, ""),
        ("  of which tool calls (4 turns x 2 side by side)", tools, ""),
        ("task start -> workspace ready and synced", syncs, "(per task)"),
    ]
    for name, values, target in rows:
        print(
            f"{name:48} {ms(statistics.median(values)):>10} {ms(pct(values, 0.95)):>10}   {target}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.backend))
