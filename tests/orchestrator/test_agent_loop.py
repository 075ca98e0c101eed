"""The agent loop with a scripted model server (real OpenAI wire protocol) and a real MCP hub."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from anvyl.gpt_oss.testing import build_tiny_llama
from anvyl.mcp_hub.app import create_hub
from anvyl.mcp_hub.settings import HubSettings
from anvyl.orchestrator.llm.models.local_runner import close_shared_runners
from anvyl.orchestrator.llm.testing import (
    ScriptedLLMServer,
    ScriptedReply,
    refused_port,
)
from tests.mcp_hub.conftest import TEST_TOKEN, BackgroundServer, serve_app
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory, call, tools


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundServer]:
    """The real MCP hub with auth on; the orchestrator finds it through ANVYL_MCP_HUB_URL."""
    settings = HubSettings(_env_file=None, token=TEST_TOKEN)
    with serve_app(create_hub(settings).app) as server:
        monkeypatch.setenv("ANVYL_MCP_HUB_URL", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("ANVYL_MCP_HUB_TOKEN", TEST_TOKEN)
        yield server


async def events_of(orch: Orchestrator, task_id: str) -> list[dict[str, Any]]:
    return list((await orch.http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json())


async def wait_for(
    orch: Orchestrator, task_id: str, predicate: Any, timeout_s: float = 60
) -> list[dict]:
    async with asyncio.timeout(timeout_s):
        while not predicate(events := await events_of(orch, task_id)):
            await asyncio.sleep(0.05)
    return events


async def test_the_model_lists_reads_edits_and_commits_and_the_next_task_remembers_it(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path
) -> None:
    model.push(
        tools(call("list_files", path=".")),
        tools(call("read_file", path="README.md")),
        tools(call("write_file", path="README.md", content="# sample\n\nEdited by the agent.\n")),
        tools(call("git_commit", message="Say who edited the README")),
        ScriptedReply(content="I read README.md, added a line and committed it."),
        tools(call("git_log", limit=5), call("git_status")),
        ScriptedReply(content="The last commit is the README edit."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        first = (
            await orch.orchestrate("Add a line to the README and commit", str(sample_repo))
        ).json()
        second = (await orch.orchestrate("What was the last commit?", str(sample_repo))).json()
        second_events = await events_of(orch, second["task_id"])

    assert first["status"] == "succeeded", first["error"]
    assert first["result"] == "I read README.md, added a line and committed it."
    meta = first["metadata"]
    assert meta["model_used"] is True and meta["endpoint"] == "scripted" and meta["steps"] == 5
    assert [c["name"] for c in meta["tool_calls"]] == [
        "list_files",
        "read_file",
        "write_file",
        "git_commit",
    ]
    assert all(c["ok"] for c in meta["tool_calls"])
    assert meta["usage"] == {"prompt_tokens": 5 * 11, "completion_tokens": 5 * 7}
    assert len(meta["model_calls"]) == 5 and meta["model_calls"][0]["model"] == "scripted-model"
    # What the model was sent: the tools, and each tool's result after its call.
    second_request = model.requests[1].body
    assert {t["function"]["name"] for t in second_request["tools"]} >= {"run_shell", "git_commit"}
    assert "README.md" in second_request["messages"][-1]["content"]
    assert "# sample" in model.requests[2].body["messages"][-1]["content"]

    assert second["status"] == "succeeded", second["error"]
    log_output = next(e["data"]["output"] for e in second_events
                      if e["type"] == "tool.result" and e["data"]["name"] == "git_log")  # fmt: skip
    assert "Say who edited the README" in log_output
    memory = model.requests[5].body["messages"][0]["content"]
    assert "Add a line to the README and commit -> I read README.md" in memory


async def test_the_model_uses_the_hubs_docker_and_infra_tools(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, hub: BackgroundServer
) -> None:
    model.push(
        tools(call("docker__list_containers", all=True), call("infra__get_host_resources")),
        ScriptedReply(content="Here are the containers and the host's resources."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        task = (await orch.orchestrate("Show containers and host resources", None)).json() if False else (
            await orch.http.post("/orchestrate", json={"query": "Show containers and host resources"})
        ).json()  # fmt: skip
        events = await events_of(orch, task["task_id"])
    assert task["status"] == "succeeded", task["error"]
    results = {e["data"]["name"]: e["data"] for e in events if e["type"] == "tool.result"}
    assert results["docker__list_containers"]["ok"] and results["infra__get_host_resources"]["ok"]
    assert "cpu" in results["infra__get_host_resources"]["output"].lower()
    offered = {t["function"]["name"] for t in model.requests[0].body["tools"]}
    assert {"docker__list_containers", "infra__get_host_resources", "proxmox__get_nodes"} <= offered
    assert "run_shell" not in offered  # no repository, no workspace tools


@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_a_destructive_call_waits_for_approval_and_runs_only_when_approved(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, hub: BackgroundServer,
    docker_client: docker.DockerClient, verdict: str,
) -> None:  # fmt: skip
    victim = docker_client.containers.create("anvyl/base:bookworm", ["sleep", "600"],
                                             labels={"anvyl.test": "mcp-hub"})  # fmt: skip
    try:
        model.push(
            tools(call("docker__remove_container", container_id=victim.id, force=True)),
            ScriptedReply(content="Done."),
        )
        async with make_orchestrator(workspace_backend="local") as orch:
            body = {"query": "Remove the old container", "mode": "background"}
            task_id = (await orch.http.post("/orchestrate", json=body)).json()["task_id"]
            events = await wait_for(
                orch, task_id, lambda ev: any(e["data"].get("pending") for e in ev)
            )
            waiting = (await orch.http.get(f"/tasks/{task_id}")).json()
            still_there = victim.id in [c.id for c in docker_client.containers.list(all=True)]
            wrong = await orch.http.post(
                f"/tasks/{task_id}/{verdict}", json={"call_id": "call_nope"}
            )
            decided = await orch.http.post(
                f"/tasks/{task_id}/{verdict}", json={"note": "checked by a test"}
            )
            twice = await orch.http.post(f"/tasks/{task_id}/{verdict}")
            await wait_for(orch, task_id, lambda ev: ev[-1]["type"] == "result")
            task = (await orch.http.get(f"/tasks/{task_id}")).json()
            events = await events_of(orch, task_id)
        pending = next(e["data"]["pending"] for e in events if e["data"].get("pending"))
        assert waiting["status"] == "waiting_approval" and still_there
        assert pending["tool"] == "docker__remove_container" and "destructive" in pending["reason"]
        assert wrong.status_code == 422 and decided.status_code == 200 and twice.status_code == 409
        assert task["status"] == "succeeded", task["error"]
        exists = victim.id in [c.id for c in docker_client.containers.list(all=True)]
        tool_message = model.requests[1].body["messages"][-1]["content"]
        if verdict == "approve":
            assert not exists and task["metadata"]["tool_calls"][0]["ok"] is True
        else:
            assert exists and "a person rejected this call: checked by a test" in tool_message
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            victim.remove(force=True)


async def test_a_pre_approved_tool_runs_without_asking(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, hub: BackgroundServer,
    docker_client: docker.DockerClient,
) -> None:  # fmt: skip
    victim = docker_client.containers.create(
        "anvyl/base:bookworm", ["true"], labels={"anvyl.test": "mcp-hub"}
    )
    try:
        model.push(
            tools(call("docker__remove_container", container_id=victim.id)),
            ScriptedReply(content="ok"),
        )
        async with make_orchestrator(workspace_backend="local") as orch:
            task = (await orch.http.post("/orchestrate", json={
                "query": "Remove it", "policy": {"pre_approved": ["docker__remove_container"]}})).json()  # fmt: skip
        assert task["status"] == "succeeded" and task["metadata"]["tool_calls"][0]["ok"] is True
        assert victim.id not in [c.id for c in docker_client.containers.list(all=True)]
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            victim.remove(force=True)


async def test_failing_tools_and_a_server_that_went_down_are_reported_to_the_model_not_fatal(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    hub = BackgroundServer(
        create_hub(HubSettings(_env_file=None, token=TEST_TOKEN)).app, _port := refused_port()
    )
    hub.start()
    monkeypatch.setenv("ANVYL_MCP_HUB_URL", f"http://127.0.0.1:{_port}")
    monkeypatch.setenv("ANVYL_MCP_HUB_TOKEN", TEST_TOKEN)
    try:
        model.push(
            tools(call("read_file", path="no/such/file.txt"), call("read_file", path="../../etc/passwd"),
                  call("infra__get_host_info"), call("no_such_tool"), call("write_file", path="x")),
            ScriptedReply(content="Several tools failed; I report that honestly."),
        )  # fmt: skip
        async with make_orchestrator(workspace_backend="local") as orch:
            hub.stop()  # discovered at start-up, gone by the time it is called
            task = (await orch.orchestrate("Look around", str(sample_repo))).json()
    finally:
        hub.stop()
    assert task["status"] == "succeeded", task["error"]
    missing, escape, down, unknown, bad = [c["error"] for c in task["metadata"]["tool_calls"]]
    assert "No such file or directory" in missing
    assert "must be relative to the repository and stay inside it" in escape
    assert "MCP server infra unavailable" in down
    assert "unknown tool 'no_such_tool'" in unknown
    assert "bad arguments for write_file: content: Field required" in bad
    fed_back = [m for m in model.requests[1].body["messages"] if m["role"] == "tool"]
    assert len(fed_back) == 5 and all(m["content"].startswith("ERROR:") for m in fed_back)


async def test_the_step_limit_and_the_time_limit_end_a_task_clearly(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path
) -> None:
    model.default = tools(call("git_status"))
    async with make_orchestrator(workspace_backend="local", agent_max_steps=3) as orch:
        looping = (await orch.orchestrate("Never finish", str(sample_repo))).json()
    model.default = tools(call("run_shell", command="sleep 30"))
    async with make_orchestrator(workspace_backend="local") as orch:
        slow = (await orch.orchestrate("Sleep", str(sample_repo), timeout_s=1.5)).json()
    assert (
        looping["status"] == "failed"
        and looping["error"] == "step limit of 3 reached without a final answer"
    )
    assert slow["status"] == "failed" and slow["error"] == "timed out after 1.5s"


async def test_cancel_during_a_tool_call_kills_the_command(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path
) -> None:
    marker = "sleep 317"
    model.push(tools(call("run_shell", command=marker)))
    async with make_orchestrator(workspace_backend="local", workspace_sandbox="none") as orch:
        body = {"query": "Wait a long time", "repo_url": str(sample_repo), "mode": "background"}
        task_id = (await orch.http.post("/orchestrate", json=body)).json()["task_id"]
        await wait_for(orch, task_id, lambda ev: any(e["type"] == "tool.call" for e in ev))
        await asyncio.sleep(0.3)
        running_before = (
            subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
        )
        await orch.http.post(f"/tasks/{task_id}/cancel")
        await wait_for(orch, task_id, lambda ev: ev[-1]["type"] == "result", timeout_s=15)
        task = (await orch.http.get(f"/tasks/{task_id}")).json()
        await asyncio.sleep(0.5)
        running_after = subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
    assert running_before and task["status"] == "cancelled"
    assert not running_after


async def test_when_every_model_is_unreachable_the_planner_answers_and_says_so(
    make_orchestrator: OrchestratorFactory,
    sample_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "dead.yaml"
    config.write_text(f"models:\n  - name: dead\n    provider: openai\n    base_url: http://127.0.0.1:{refused_port()}/v1\n"
                      "    model: m\n    api_key: k\nrouting:\n  primary: dead\n")  # fmt: skip
    monkeypatch.setenv("ANVYL_CONFIG", str(config))
    async with make_orchestrator(workspace_backend="local") as orch:
        task = (await orch.orchestrate("List files in current directory", str(sample_repo))).json()
    assert task["status"] == "succeeded", task["error"]
    assert (
        task["metadata"]["backend"] == "builtin-planner" and task["metadata"]["model_used"] is False
    )
    assert "no language model was used" in task["result"]
    assert "The configured models could not be reached" in task["result"]


async def test_every_model_call_carries_the_temperature_and_output_budget_whatever_the_vendor(
    make_orchestrator: OrchestratorFactory,
    sample_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anthropic first (it fails once, so the OpenAI-shaped fallback is called too), both logged."""
    with ScriptedLLMServer() as server:
        config = tmp_path / "two.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: claude, provider: anthropic, base_url: '{server.anthropic_url}',"
            " model: claude-3-haiku-20240307, retries: 0}\n"
            f"  - {{name: gpt, provider: openai, base_url: '{server.openai_url}', model: m,"
            " max_output_tokens: 77}\n"
            "routing:\n  primary: claude\n  fallbacks: [gpt]\n"
        )
        monkeypatch.setenv("ANVYL_CONFIG", str(config))
        server.push(
            ScriptedReply.error(500),  # claude, step 1
            tools(call("git_status")),  # gpt, step 1
            ScriptedReply(content="Clean."),  # claude, step 2
        )
        async with make_orchestrator(
            workspace_backend="local", agent_max_output_tokens=1234
        ) as orch:
            task = (await orch.orchestrate("Is the tree clean?", str(sample_repo))).json()
    assert task["status"] == "succeeded", task["error"]
    sent = [(r.api, r.body["temperature"], r.body["max_tokens"]) for r in server.requests]
    assert sent == [("anthropic", 0, 1234), ("openai", 0, 77), ("anthropic", 0, 1234)]


async def test_the_local_runner_gets_the_output_budget_of_the_settings(
    make_orchestrator: OrchestratorFactory,
    sample_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real in-process mlx model (tiny, random weights) stops at the configured output budget."""
    model_dir = build_tiny_llama(tmp_path / "tiny")
    config = tmp_path / "local.yaml"
    config.write_text(f"models:\n  - {{name: tiny, provider: mlx, model: '{model_dir}'}}\n")
    monkeypatch.setenv("ANVYL_CONFIG", str(config))
    try:
        async with make_orchestrator(workspace_backend="local", agent_max_output_tokens=6) as orch:
            task = (await orch.orchestrate("show the git status", str(sample_repo))).json()
    finally:
        await close_shared_runners()
    assert task["status"] == "succeeded", task["error"]
    assert task["metadata"]["endpoint"] == "tiny"
    assert task["metadata"]["usage"]["completion_tokens"] == 6
