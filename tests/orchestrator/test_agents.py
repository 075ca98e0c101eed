"""Named agents (issue 14): profiles bound to their own worker container, each acting through its
own provider (scripted servers on the real OpenAI and Anthropic wire protocols), keys encrypted at
rest and nowhere else, agents kept across a restart, bad input refused with nothing half-made."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, refused_port
from tests.helpers import read_sse, serving
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory, call, tools

CODER_KEY = "sk-coder-SECRET-0a1b2c3d"
REVIEWER_KEY = "sk-ant-reviewer-SECRET-4e5f6a7b"


def script(answer: str, model: str) -> list[ScriptedReply]:
    """One tool call in the workspace, then the answer (the first reply waits a little, so that
    two agents' tasks overlap), both as from `model`."""
    first = tools(call("list_files", path="."))
    first.stall_before_first_token, first.model = 0.5, model
    return [first, ScriptedReply(content=answer, model=model)]


@pytest.fixture
def providers() -> Iterator[tuple[ScriptedLLMServer, ScriptedLLMServer]]:
    with ScriptedLLMServer() as openai_like, ScriptedLLMServer() as anthropic_like:
        yield openai_like, anthropic_like


async def create(orch: Orchestrator, **body: Any) -> dict[str, Any]:
    response = await orch.http.post("/agents", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def act(orch: Orchestrator, name: str, query: str) -> dict[str, Any]:
    response = await orch.http.post(f"/agents/{name}/act", json={"query": query})
    assert response.status_code == 200, response.text
    return dict(response.json())


def agent_containers(client: docker.DockerClient, instance: str, name: str) -> list[Any]:
    filters = {"label": [f"anvyl.instance={instance}", f"anvyl.agent={name}"]}
    return list(client.containers.list(all=True, filters=filters))


async def stored_text(database_url: str, table: str) -> str:
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()
    finally:
        await db.close()
    return json.dumps([list(row) for row in rows], default=str)


async def test_two_agents_act_at_once_each_through_its_own_provider_model_prompt_and_container(
    make_orchestrator: OrchestratorFactory,
    providers: tuple[ScriptedLLMServer, ScriptedLLMServer],
    docker_instance: str,
    docker_client: docker.DockerClient,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    openai_like, anthropic_like = providers
    openai_like.push(*script("coder: done", "coder-model"))
    anthropic_like.push(*script("reviewer: done", "claude-reviewer"))
    async with make_orchestrator(workspace_backend="docker") as orch:
        await create(orch, name="coder", provider="openai", base_url=openai_like.openai_url,
                     model="coder-model", api_key=CODER_KEY, system_prompt="You are the coder.")  # fmt: skip
        reviewer = await create(
            orch, name="reviewer", provider="anthropic", provider_host="127.0.0.1",
            provider_port=anthropic_like.port, model="claude-reviewer", api_key=REVIEWER_KEY,
            system_prompt="You are the reviewer.", max_steps=5,
        )  # fmt: skip
        assert reviewer["base_url"] == f"http://127.0.0.1:{anthropic_like.port}"
        assert reviewer["api_key_set"] is True and reviewer["status"] == "created"
        coder_task, reviewer_task = await asyncio.gather(
            act(orch, "coder", "what is in the repository?"),
            act(orch, "reviewer", "review the repository"),
        )
        listed = await orch.http.get("/agents")
        shown = await orch.http.get("/agents/coder", params={"check": "true"})
        events = await orch.http.get(f"/tasks/{coder_task['task_id']}/events?format=json")
        async with orch.http.stream("GET", "/agents/reviewer/logs") as response:
            logs = await read_sse(response)

    # Each task ran as its agent, on its own provider and model, with its own prompt and key.
    for task, name, provider, model in ((coder_task, "coder", "openai", "coder-model"),
                                        (reviewer_task, "reviewer", "anthropic", "claude-reviewer")):  # fmt: skip
        assert task["status"] == "succeeded", task
        assert task["metadata"]["agent"] == name
        assert task["metadata"]["provider"] == provider
        assert task["metadata"]["model"] == model
        assert task["workspace_id"] == f"agent-{name}"
        assert task["metadata"]["model_calls"][0]["endpoint"] == name
    assert coder_task["result"] == "coder: done" and reviewer_task["result"] == "reviewer: done"
    assert coder_task["started_at"] < reviewer_task["finished_at"]  # they ran at the same time
    assert reviewer_task["started_at"] < coder_task["finished_at"]
    assert [r.api for r in openai_like.requests] == ["openai", "openai"]
    assert [r.api for r in anthropic_like.requests] == ["anthropic", "anthropic"]
    for request in openai_like.requests:
        assert request.body["model"] == "coder-model"
        assert request.headers["authorization"] == f"Bearer {CODER_KEY}"
        system = request.body["messages"][0]
        assert system["role"] == "system" and "You are the coder." in system["content"]
        assert "Anvyl" in system["content"]  # added to Anvyl's prompt, not instead of it
    for request in anthropic_like.requests:
        assert request.body["model"] == "claude-reviewer"
        # The Anthropic client library sends the key as x-api-key or as a bearer token.
        sent = request.headers.get("x-api-key") or request.headers["authorization"]
        assert sent in (REVIEWER_KEY, f"Bearer {REVIEWER_KEY}")
        assert "You are the reviewer." in json.dumps(request.body["system"])
        assert "You are the coder." not in json.dumps(request.body)

    # Each in its own container, labelled with its name, without the key.
    for name, key in (("coder", CODER_KEY), ("reviewer", REVIEWER_KEY)):
        containers = agent_containers(docker_client, docker_instance, name)
        assert len(containers) == 1
        assert containers[0].labels["anvyl.workspace"] == f"agent-{name}"
        assert key not in json.dumps(containers[0].attrs["Config"]["Env"])
    assert (
        shown.json()["container"] == agent_containers(docker_client, docker_instance, "coder")[0].id
    )

    # The key is nowhere but encrypted in the database.
    answers = (
        listed.text + shown.text + events.text + json.dumps(logs) + "".join(capsys.readouterr())
    )
    for key in (CODER_KEY, REVIEWER_KEY):
        assert key not in answers
        assert key not in await stored_text(database_url, "tasks")
        assert key not in await stored_text(database_url, "task_events")
        assert key not in await stored_text(database_url, "agents")
    fernet = Fernet((tmp_path / "data" / "secret.key").read_bytes())
    assert ((tmp_path / "data" / "secret.key").stat().st_mode & 0o777) == 0o600
    encrypted = json.loads(await stored_text(database_url, "agents"))
    assert sorted(fernet.decrypt(row[4].encode()).decode() for row in encrypted) == sorted(
        [CODER_KEY, REVIEWER_KEY]
    )
    assert shown.json()["provider_health"]["ok"] is True
    assert [a["name"] for a in listed.json()] == ["coder", "reviewer"]
    assert all(a["api_key_set"] and a["status"] == "running" for a in listed.json())
    assert {e["event"] for e in logs} >= {"task"}
    assert {e["data"]["task_id"] for e in logs if e["event"] == "task"} == {
        reviewer_task["task_id"]
    }

    # A restart keeps the agents, and they act again.
    openai_like.push(ScriptedReply(content="coder: again", model="coder-model"))
    async with make_orchestrator(workspace_backend="docker") as orch:
        names = [a["name"] for a in (await orch.http.get("/agents")).json()]
        again = await act(orch, "coder", "once more")
    assert names == ["coder", "reviewer"]
    assert again["status"] == "succeeded" and again["result"] == "coder: again"
    assert openai_like.requests[-1].headers["authorization"] == f"Bearer {CODER_KEY}"


async def test_an_agent_starts_stops_comes_back_after_its_worker_died_and_is_removed(
    make_orchestrator: OrchestratorFactory,
    docker_instance: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """Its provider does not answer: the built-in planner answers, as for any task."""
    async with make_orchestrator(workspace_backend="docker") as orch:
        started = await create(orch, name="ops", provider_host="127.0.0.1",
                               provider_port=refused_port(), auto_start=True)  # fmt: skip
        (container,) = agent_containers(docker_client, docker_instance, "ops")
        refused = await orch.http.delete("/agents/ops")
        stopped = (await orch.http.post("/agents/ops/stop")).json()
        container.reload()
        stopped_state = container.status
        running = (await orch.http.get("/agents", params={"running": "true"})).json()
        await orch.http.post("/agents/ops/start")
        container.reload()
        container.kill()
        task = await act(orch, "ops", "list files")
        after_death = (await orch.http.get("/agents/ops")).json()
        removed = await orch.http.delete("/agents/ops", params={"force": "true", "purge": "true"})
        gone = await orch.http.get("/agents/ops")
    assert started["status"] == "running" and started["provider"] == "lmstudio"
    assert started["model"] == "default" and started["api_key_set"] is False
    assert refused.status_code == 409
    assert refused.json()["detail"] == "agent ops is running: stop it or pass force"
    assert stopped["status"] == "stopped" and stopped_state == "exited"
    assert running == []
    assert task["status"] == "succeeded", task
    assert task["metadata"]["agent"] == "ops" and task["metadata"]["backend"] == "builtin-planner"
    assert after_death["status"] == "running"
    assert removed.status_code == 204
    assert gone.status_code == 404 and "known: none" in gone.json()["detail"]
    assert agent_containers(docker_client, docker_instance, "ops") == []
    assert not (tmp_path / "data" / "agents" / "ops").exists()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"name": "Bad_Name"}, "name: String should match pattern"),
        ({"name": "-dash-first"}, "name: String should match pattern"),
        ({"name": "a" * 64}, "name: String should"),
        ({"name": "x", "provider": "acme"}, "provider: Input should be 'lmstudio'"),
        ({"name": "x", "provider_port": 0}, "provider_port: Input should be greater than or equal to 1"),
        ({"name": "x", "provider_port": 70000}, "provider_port: Input should be less than or equal to 65535"),
        ({"name": "x", "provider": "mlx"}, "model: provider 'mlx' has no default model; give model"),
        ({"name": "x", "provider": "gpt-oss"}, "provider_host: provider 'gpt-oss' has no default address"),
        ({"name": "x", "backups": [{"provider": "mlx"}]}, "backups.0.model: provider 'mlx' has no default"),
        ({"name": "x", "system_prompt": "p" * 1_000_000}, "system_prompt: String should have at most 32768"),
        ({"name": "x", "repo_url": "relative/path"}, "repo_url: repo_url 'relative/path': a local "
         "repository must be an absolute path"),
        ({"name": "x", "base_url": "http://h:1/v1", "provider_port": 2}, "base_url: give base_url or"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_saying_what_to_fix_and_nothing_is_half_created(
    make_orchestrator: OrchestratorFactory, tmp_path: Path, body: dict[str, Any], says: str
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post("/agents", json=body)
        listed = (await orch.http.get("/agents")).json()
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert listed == []
    assert not (tmp_path / "data" / "agents").exists() or not any(
        (tmp_path / "data" / "agents").iterdir()
    )


async def test_a_duplicate_name_is_409_and_an_unknown_agent_is_named_with_the_known_ones(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        await create(orch, name="alpha", system_prompt="first")
        duplicate = await orch.http.post("/agents", json={"name": "alpha", "provider": "ollama"})
        unknown = await orch.http.post("/orchestrate", json={"query": "ls", "agent": "beta"})
        with_repo = await orch.http.post(
            "/orchestrate", json={"query": "ls", "agent": "alpha", "repo_url": "/tmp"}
        )
        missing = await orch.http.get("/agents/beta")
        act_missing = await orch.http.post("/agents/beta/act", json={"query": "ls"})
        kept = (await orch.http.get("/agents/alpha")).json()
    assert duplicate.status_code == 409 and "an agent named 'alpha' exists" in duplicate.text
    assert kept["provider"] == "lmstudio" and kept["system_prompt"] == "first"
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "agent: no agent named 'beta' exists; known agents: alpha"
    assert with_repo.status_code == 422 and with_repo.json()["detail"].startswith("repo_url:")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no agent named beta; known: alpha"
    assert act_missing.status_code == 404


async def test_a_patch_changes_the_model_chain_of_the_next_task(
    make_orchestrator: OrchestratorFactory, providers: tuple[ScriptedLLMServer, ScriptedLLMServer]
) -> None:
    """The router is cached per agent and rebuilt after a change; the kept key is still sent."""
    openai_like, _ = providers
    openai_like.push(
        ScriptedReply(content="one", model="m-1"), ScriptedReply(content="two", model="m-2")
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        await create(orch, name="writer", provider="openai", base_url=openai_like.openai_url,
                     model="m-1", api_key=CODER_KEY)  # fmt: skip
        first = await act(orch, "writer", "hello")
        patched = await orch.http.patch("/agents/writer", json={"model": "m-2"})
        second = await act(orch, "writer", "hello again")
    assert patched.status_code == 200 and patched.json()["model"] == "m-2"
    assert patched.json()["api_key_set"] is True
    assert (first["metadata"]["model"], second["metadata"]["model"]) == ("m-1", "m-2")
    assert [r.body["model"] for r in openai_like.requests] == ["m-1", "m-2"]
    assert openai_like.requests[-1].headers["authorization"] == f"Bearer {CODER_KEY}"


async def test_the_tasks_of_one_agent_run_one_at_a_time_in_order(
    make_orchestrator: OrchestratorFactory, providers: tuple[ScriptedLLMServer, ScriptedLLMServer]
) -> None:
    openai_like, _ = providers
    first_reply = ScriptedReply(content="first", stall_before_first_token=0.5)
    openai_like.push(first_reply, ScriptedReply(content="second"))
    async with make_orchestrator(workspace_backend="local") as orch:
        await create(orch, name="serial", provider="openai", base_url=openai_like.openai_url)
        accepted = [
            await orch.http.post("/agents/serial/act", json={"query": q, "mode": "background"})
            for q in ("first", "second")
        ]
        ids = [a.json()["task_id"] for a in accepted]
        for task_id in ids:  # the event stream ends with the task
            await orch.http.get(f"/tasks/{task_id}/events")
        first, second = [(await orch.http.get(f"/tasks/{i}")).json() for i in ids]
    assert [a.status_code for a in accepted] == [202, 202]
    assert (first["result"], second["result"]) == ("first", "second")
    assert first["finished_at"] <= second["started_at"]
    assert [r.body["model"] for r in openai_like.requests] == ["gpt-4o-mini"] * 2  # the default


async def test_logs_follow_the_events_of_the_agents_next_task_as_they_happen(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with make_orchestrator(workspace_backend="local", workspace_sandbox="none") as orch:
        await create(orch, name="watched", provider_host="127.0.0.1", provider_port=refused_port())
        async with serving(orch.app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            seen: list[dict[str, Any]] = []

            async def follow() -> None:
                params = {"follow": "true", "tail": "0"}
                async with http.stream("GET", "/agents/watched/logs", params=params) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            seen.append(json.loads(line.removeprefix("data: ")))
                            if seen[-1].get("type") == "result":
                                return

            following = asyncio.create_task(follow())
            await asyncio.sleep(0.5)  # the stream is open before the task is queued
            task = await act(orch, "watched", "list files")
            await asyncio.wait_for(following, 30)
    task_events = [e for e in seen if "task_id" in e]
    assert {e["task_id"] for e in task_events} == {task["task_id"]}
    assert [e["seq"] for e in task_events] == sorted(e["seq"] for e in task_events)
    assert task_events[-1]["type"] == "result"


async def test_with_another_secret_key_the_stored_key_is_refused_clearly_not_used(
    make_orchestrator: OrchestratorFactory, tmp_path: Path
) -> None:
    """ANVYL_SECRET_KEY encrypts the keys; a process with another one says so, and sends nothing."""
    first_key, other_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with make_orchestrator(workspace_backend="local", secret_key=first_key) as orch:
        await create(orch, name="locked", provider="openai", base_url="http://127.0.0.1:9/v1",
                     api_key=CODER_KEY)  # fmt: skip
    async with make_orchestrator(workspace_backend="local", secret_key=other_key) as orch:
        shown = (await orch.http.get("/agents/locked", params={"check": "true"})).json()
        task = await act(orch, "locked", "list files")
    assert not (tmp_path / "data" / "secret.key").exists()  # the setting's key, none generated
    assert shown["provider_health"]["ok"] is False
    assert "ANVYL_SECRET_KEY" in shown["provider_health"]["detail"]
    assert task["status"] == "failed" and "cannot be decrypted" in task["error"]
    assert CODER_KEY not in json.dumps([shown, task])
