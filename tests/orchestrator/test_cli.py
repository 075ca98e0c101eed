"""The `anvyl` command, run as a user runs it (the console script, a subprocess) against a real
`anvyl serve` (itself started with the console script), a real repository and local workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.migrations import is_current
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.helpers import ANVYL, ServerProcess, running_server
from tests.orchestrator.conftest import call, slow, tools

TASK_ID = re.compile(r"^[0-9a-zA-Z_-]{8,}$")


def anvyl(
    *args: str, server: ServerProcess | None = None, env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run `anvyl ARGS` to its end; COLUMNS keeps rich from wrapping the lines tests read."""
    extra = {"COLUMNS": "200"} | ({"ANVYL_URL": server.url} if server else {}) | (env or {})
    return subprocess.run([ANVYL, *args], env=os.environ | extra, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def cli_env(tmp_path: Path, instance: str) -> dict[str, str]:
    return {
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}",
        "ANVYL_INSTANCE": instance,
        "ANVYL_WORKSPACE_BACKEND": "local",
    }


@pytest.fixture
def server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    """`anvyl serve` with no model: the built-in planner answers."""
    with running_server(cli_env, tmp_path / "serve.log", command=(ANVYL,)) as process:
        yield process


@pytest.fixture
def model_server(
    model: ScriptedLLMServer, cli_env: dict[str, str], tmp_path: Path
) -> Iterator[ServerProcess]:
    """`anvyl serve` whose only model is the scripted one (ANVYL_CONFIG, set by `model`)."""
    with running_server(cli_env, tmp_path / "serve.log", command=(ANVYL,)) as process:
        yield process


def wait_task(server: ServerProcess, task_id: str, *states: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        task: dict[str, Any] = httpx.get(f"{server.url}/tasks/{task_id}", timeout=5).json()
        if task["status"] in states:
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def test_serve_answers_and_stops_cleanly_on_sigterm(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/ready", timeout=5).status_code == 200
    server.process.terminate()
    # uvicorn shuts down gracefully, then re-raises the signal (the exit status says what stopped it).
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)


def test_orchestrate_waits_for_the_result_queues_it_or_follows_it(
    server: ServerProcess, sample_repo: Path
) -> None:
    waited = ok(anvyl("orchestrate", "List files in current directory", "--repo", str(sample_repo),
                      server=server))  # fmt: skip
    as_json = json.loads(ok(anvyl("orchestrate", "show git status", "--repo", str(sample_repo),
                                  "--json", server=server)))  # fmt: skip
    queued = ok(anvyl("orchestrate", "show README.md", "--repo", str(sample_repo), "--background",
                      server=server)).strip()  # fmt: skip
    followed = ok(anvyl("orchestrate", "List files in current directory", "--repo", str(sample_repo),
                        "--follow", server=server))  # fmt: skip

    assert "succeeded" in waited and "README.md" in waited and "backend=builtin-planner" in waited
    assert as_json["status"] == "succeeded" and "## main" in as_json["result"]
    assert TASK_ID.match(queued), queued
    assert wait_task(server, queued, "succeeded")["result"].count("# sample") == 1
    lines = followed.splitlines()
    assert lines[0].startswith("#1 status: queued") and "#2 status: running" in lines[1]
    assert any(re.match(r"#\d+ tool list_files", line) for line in lines)
    assert any(re.match(r"#\d+ finished: succeeded", line) for line in lines)
    assert "src/" in followed  # the result, printed after the steps


def test_follow_prints_the_models_text_as_it_streams_between_the_step_lines(
    model_server: ServerProcess, model: ScriptedLLMServer, sample_repo: Path
) -> None:
    model.push(
        slow(ScriptedReply(content="First I list the files.", tool_calls=[call("list_files", path=".")])),
        slow(ScriptedReply(content="Two files: README.md and src/app.py."), pause_s=0.2),
    )  # fmt: skip
    out = ok(anvyl("orchestrate", "What is here?", "--repo", str(sample_repo), "--follow",
                   server=model_server))  # fmt: skip
    lines = out.splitlines()
    first_model_line = next(
        i for i, line in enumerate(lines) if re.match(r"#\d+ model scripted", line)
    )
    assert lines.index("First I list the files.") < first_model_line
    assert "Two files: README.md and src/app.py." in lines
    steps = [line for line in lines if line.startswith("#")]
    step = re.compile(r"#\d+ (status|workspace\.|model |tool |  -> |finished: )")
    assert all(step.match(line) for line in steps), out  # no step line broken by streamed text
    assert re.match(r"#\d+ finished: succeeded", steps[-1]), out


def test_tasks_list_show_events_and_cancel(server: ServerProcess, sample_repo: Path) -> None:
    task_id = ok(anvyl("orchestrate", "run `sleep 60`", "--repo", str(sample_repo), "--background",
                       server=server)).strip()  # fmt: skip
    wait_task(server, task_id, "running")
    listed = ok(anvyl("tasks", "list", server=server))
    running = json.loads(ok(anvyl("tasks", "list", "--status", "running", "--json", server=server)))
    cancelled = ok(anvyl("tasks", "cancel", task_id, server=server))
    wait_task(server, task_id, "cancelled")
    shown = ok(anvyl("tasks", "show", task_id, server=server))
    events = ok(anvyl("tasks", "events", task_id, server=server))
    again = anvyl("tasks", "cancel", task_id, server=server)
    missing = anvyl("tasks", "show", "no-such-task", server=server)

    assert task_id in listed and "run `sleep 60`" in listed
    assert [t["task_id"] for t in running["tasks"]] == [task_id]
    assert f"task {task_id}:" in cancelled
    assert f"task {task_id}  cancelled" in shown and "cancelled by request" in shown
    assert events.splitlines()[:2] == ["#1 status: queued", "#2 status: running"]
    assert "tool run_shell" in events and events.splitlines()[-1].endswith("finished: cancelled")
    assert again.returncode == 1 and "409" in again.stderr and "already ended" in again.stderr
    assert missing.returncode == 1 and "404" in missing.stderr


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_a_task_waiting_for_approval_is_announced_with_its_id_and_decided_from_the_cli(
    model_server: ServerProcess, model: ScriptedLLMServer, sample_repo: Path, verdict: str
) -> None:
    model.push(tools(call("read_file", path="README.md")), ScriptedReply(content="Done."))
    body = {"query": "Read the README", "repo_url": str(sample_repo), "mode": "background",
            "policy": {"allowed_tools": ["list_files"]}}  # fmt: skip
    task_id = httpx.post(f"{model_server.url}/orchestrate", json=body, timeout=30).json()["task_id"]
    follower = subprocess.Popen(
        [ANVYL, "tasks", "events", task_id, "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ | {"COLUMNS": "300", "ANVYL_URL": model_server.url},
    )  # fmt: skip
    try:
        wait_task(model_server, task_id, "waiting_approval")
        decided = ok(
            anvyl("tasks", verdict, task_id, "--note", "seen by a test", server=model_server)
        )
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    task = wait_task(model_server, task_id, "succeeded")
    waiting = next(line for line in out.splitlines() if "waiting for approval" in line)
    assert follower.returncode == 0, err
    assert waiting.endswith(f"-> anvyl tasks approve|reject {task_id}")
    assert 'read_file({"path": "README.md"})' in waiting and "allow-list" in waiting
    assert f"task {task_id}: {verdict}d" in decided
    assert task["metadata"]["tool_calls"][0]["ok"] is (verdict == "approve")


def test_workspaces_list_show_and_rm(server: ServerProcess, sample_repo: Path) -> None:
    task = json.loads(ok(anvyl("orchestrate", "List files in current directory", "--repo",
                               str(sample_repo), "--json", server=server)))  # fmt: skip
    workspace_id = task["workspace_id"]
    listed = ok(anvyl("workspaces", "list", server=server))
    shown = json.loads(ok(anvyl("workspaces", "show", workspace_id, server=server)))
    removed = ok(anvyl("workspaces", "rm", workspace_id, "--purge", server=server))
    after = json.loads(ok(anvyl("workspaces", "list", "--json", server=server)))
    missing = anvyl("workspaces", "show", "ws-nope", server=server)

    assert workspace_id in listed and str(sample_repo) in listed
    assert shown["workspace_id"] == workspace_id and shown["backend"] == "local"
    assert removed.strip() == f"removed {workspace_id} and its files"
    assert workspace_id not in [w["workspace_id"] for w in after if w["status"] != "removed"]
    assert missing.returncode == 1 and "404" in missing.stderr


def test_models_list_and_test_against_a_scripted_endpoint(model: ScriptedLLMServer) -> None:
    model.push(ScriptedReply(content="Hello from the scripted model."))
    listed = ok(anvyl("models", "list"))
    tested = ok(anvyl("models", "test", "scripted", "--prompt", "Say hello"))
    unknown = anvyl("models", "test", "nope")

    assert re.search(r"scripted\s+openai\s+scripted-model .* reachable \(\d+ ms\)", listed), listed
    assert "routing: scripted" in listed
    assert tested.splitlines()[0] == "Hello from the scripted model."
    assert "endpoint=scripted provider=openai model=scripted-model" in tested
    assert model.requests[-1].body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert (
        unknown.returncode == 2 and "no model named 'nope' (configured: scripted)" in unknown.stderr
    )


def test_config_show_prints_the_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    shown = json.loads(ok(anvyl("config", "show", env={
        "ANVYL_PORT": "9123", "ANVYL_API_KEYS": "s3cret-key",
        "ANVYL_DATABASE_URL": "postgresql+asyncpg://anvyl:db-pass@db.internal/anvyl"})))  # fmt: skip
    bad = anvyl("config", "show", env={"ANVYL_PORT": "not-a-port"})
    assert shown["port"] == 9123 and shown["api_keys"] == ["********"]
    assert "db-pass" not in json.dumps(shown) and "s3cret-key" not in json.dumps(shown)
    assert bad.returncode == 2 and "invalid settings" in bad.stderr and "port" in bad.stderr


async def test_db_upgrade_brings_an_empty_database_to_the_newest_migration(
    database_url: str, tmp_path: Path
) -> None:
    result = anvyl("db", "upgrade", env={"ANVYL_DATABASE_URL": database_url})
    assert ok(result).strip() == "database is at the newest migration"
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            assert await connection.run_sync(is_current) is True
    finally:
        await db.close()
