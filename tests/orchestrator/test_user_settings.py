"""User settings (issue 18): CRUD with every change recorded on both databases, the migration up
and down, and what a task gets from them: the preference decides which of two scripted model
servers (real OpenAI wire protocol on loopback) is asked first, the default model and the default
agent apply to a task naming none, and bad values are 422s naming the field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.migrations import alembic_config
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from anvyl.orchestrator.user_settings import archive_kind
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory

KEY = "settings-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
FINGERPRINT = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()[:12]


@pytest.fixture
def two_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ScriptedLLMServer, ScriptedLLMServer]]:
    """A local endpoint (the gpt-oss vendor) and an online one (`locality: online`: a loopback
    server standing in for a cloud API), configured online first."""
    with ScriptedLLMServer() as local, ScriptedLLMServer() as online:
        local.default = ScriptedReply(content="answer from the local model", model="local-m")
        online.default = ScriptedReply(content="answer from the online model", model="online-m")
        config = tmp_path / "anvyl.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: cloud, provider: openai, base_url: '{online.openai_url}', model: online-m,"
            " api_key: test-key, locality: online}\n"
            f"  - {{name: box, provider: gpt-oss, base_url: '{local.openai_url}', model: local-m}}\n"
            "routing: {primary: cloud, fallbacks: [box]}\n"
        )
        monkeypatch.setenv("ANVYL_CONFIG", str(config))
        yield local, online


async def settings_call(orch: Orchestrator, method: str, body: Any = None) -> dict[str, Any]:
    response = await orch.http.request(method, "/settings", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def task(orch: Orchestrator, **body: Any) -> dict[str, Any]:
    response = await orch.http.post("/orchestrate", json={"query": "say hello", **body},
                                    headers=AUTH)  # fmt: skip
    assert response.status_code == 200, response.text
    answer = dict(response.json())
    assert answer["status"] == "succeeded", answer
    return answer


async def test_settings_crud_with_every_change_recorded_under_the_keys_fingerprint(
    make_orchestrator: OrchestratorFactory,
    two_models: tuple[ScriptedLLMServer, ScriptedLLMServer],
    database_url: str,
) -> None:
    async with make_orchestrator(api_keys=KEY) as orch:
        assert (await orch.http.get("/settings")).status_code == 401
        fresh = await settings_call(orch, "GET")
        assert fresh == {"user_id": "default", "default_model": None, "default_agent": None,
                         "preference": "auto", "rag_archives": [], "memory_enabled": True,
                         "updated_at": None}  # fmt: skip
        archives = ["/srv/docs", "/srv/manual.zip", "~/notes.tar.gz",
                    "https://github.com/example/handbook.git", "git@example.com:org/wiki.git"]  # fmt: skip
        put = await settings_call(orch, "PUT", {"default_model": "box", "preference": "local",
                                                "rag_archives": archives})  # fmt: skip
        assert put["default_model"] == "box" and put["preference"] == "local"
        assert put["rag_archives"] == archives and put["memory_enabled"] is True
        assert put["updated_at"] is not None
        patched = await settings_call(
            orch, "PATCH", {"memory_enabled": False, "default_model": None}
        )
        assert patched["memory_enabled"] is False and patched["default_model"] is None
        assert patched["preference"] == "local" and patched["rag_archives"] == archives
        assert await settings_call(orch, "GET") == patched
        # PUT replaces everything: a field left out goes back to its default.
        replaced = await settings_call(orch, "PUT", {"preference": "online"})
        assert replaced["rag_archives"] == [] and replaced["memory_enabled"] is True
        reset = await settings_call(orch, "DELETE")
        assert {k: reset[k] for k in fresh if k != "updated_at"} == {
            k: v for k, v in fresh.items() if k != "updated_at"
        }
        history = (await orch.http.get("/settings/history", headers=AUTH)).json()
        page = (await orch.http.get("/settings/history?limit=2&offset=1", headers=AUTH)).json()
    changes = [(c["field"], c["old_value"], c["new_value"]) for c in reversed(history)]
    assert changes == [
        ("default_model", None, "box"), ("preference", "auto", "local"),
        ("rag_archives", [], archives),
        ("default_model", "box", None), ("memory_enabled", True, False),
        ("preference", "local", "online"), ("rag_archives", archives, []),
        ("memory_enabled", False, True),
        ("preference", "online", "auto"),
    ]  # fmt: skip
    assert {c["api_key"] for c in history} == {FINGERPRINT}
    assert page == history[1:3]
    # The key itself is stored nowhere.
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            stored = (await connection.execute(text("SELECT * FROM user_settings_changes"))).all()
    finally:
        await db.close()
    assert KEY not in str(stored) and len(stored) == len(history)


async def test_bad_values_are_422s_naming_the_field(
    make_orchestrator: OrchestratorFactory,
    two_models: tuple[ScriptedLLMServer, ScriptedLLMServer],
) -> None:
    cases: list[tuple[str, dict[str, Any] | str, list[str]]] = [
        ("PATCH", {"default_model": "gpt-9"}, ["default_model", "'gpt-9'", "known: cloud, box"]),
        ("PUT", {"default_agent": "nobody"}, ["default_agent", "'nobody'", "create one"]),
        ("PATCH", {"preference": "fastest"}, ["preference", "'local', 'online' or 'auto'"]),
        ("PATCH", {"rag_archives": ["docs/handbook"]}, ["rag_archives.0", "relative path"]),
        ("PATCH", {"rag_archives": ["/x.zip", "/srv/a.rar"]}, ["rag_archives.1", ".zip"]),
        ("PATCH", {"rag_archives": ["/a", "/a"]}, ["rag_archives", "listed twice"]),
        ("PATCH", {"rag_archives": ["ftp://host/a.zip"]}, ["rag_archives.0", "'ftp'"]),
        ("PATCH", '{"rag_archives": ["/a\\ud800"]}', ["rag_archives.0", "unicode"]),
        ("PATCH", {"memory_enabled": "sometimes"}, ["memory_enabled"]),
        ("PATCH", {"memory_enabled": 0}, ["memory_enabled"]),
        ("PUT", {"memory_enabled": "no"}, ["memory_enabled"]),
        ("PATCH", {"colour": "blue"}, ["colour", "unknown field"]),
    ]  # fmt: skip
    async with make_orchestrator() as orch:
        for method, body, words in cases:
            raw = body if isinstance(body, str) else json.dumps(body)  # (str: JSON as sent)
            response = await orch.http.request(method, "/settings", content=raw,
                                               headers={"content-type": "application/json"})  # fmt: skip
            assert response.status_code == 422, (body, response.text)
            detail = response.json()["detail"]
            assert all(word in detail for word in words), (body, detail)
        assert (await orch.http.get("/settings/history")).json() == []
        assert (await orch.http.get("/settings")).json()["updated_at"] is None


def test_archive_shapes() -> None:
    assert archive_kind("/srv/docs") == "directory"
    assert archive_kind("file:///srv/docs") == "directory"
    assert archive_kind("/srv/a.ZIP") == "zip"
    assert archive_kind("https://example.com/dump.tgz") == "tar.gz"
    assert archive_kind("https://github.com/org/repo") == "git"
    assert archive_kind("ssh://git@example.com/org/repo.git") == "git"
    assert archive_kind("/srv/repo.git/") == "git"
    for bad in ("", " /a", "a/b", "https:///x", "/a\nb", "/a\ud800", "mailto://x@y", "/x.7z"):
        with pytest.raises(ValueError):
            archive_kind(bad)


async def test_the_preference_decides_which_model_server_is_asked_first(
    make_orchestrator: OrchestratorFactory,
    two_models: tuple[ScriptedLLMServer, ScriptedLLMServer],
) -> None:
    local, online = two_models
    async with make_orchestrator() as orch:
        answers = {}
        for preference in ("auto", "local", "online"):
            await settings_call(orch, "PATCH", {"preference": preference})
            local.requests.clear()
            online.requests.clear()
            answer = await task(orch)
            answers[preference] = (answer, len(local.requests), len(online.requests))
    auto, on_local, on_online = answers["auto"], answers["local"], answers["online"]
    # auto: the configured order (cloud first)
    assert auto[0]["result"] == "answer from the online model" and auto[1:] == (0, 1)
    assert auto[0]["metadata"]["settings"] == {"preference": "auto", "default_agent": None,
                                               "default_model": None, "memory_enabled": True,
                                               "order": ["cloud", "box"]}  # fmt: skip
    assert on_local[0]["result"] == "answer from the local model" and on_local[1:] == (1, 0)
    assert on_local[0]["metadata"]["endpoint"] == "box"
    assert on_local[0]["metadata"]["settings"]["preference"] == "local"
    assert on_local[0]["metadata"]["settings"]["order"] == ["box", "cloud"]
    assert on_online[0]["result"] == "answer from the online model" and on_online[1:] == (0, 1)
    assert on_online[0]["metadata"]["settings"]["order"] == ["cloud", "box"]


async def test_a_local_preference_falls_back_to_the_online_model_when_the_local_one_fails(
    make_orchestrator: OrchestratorFactory,
    two_models: tuple[ScriptedLLMServer, ScriptedLLMServer],
) -> None:
    local, online = two_models
    local.default = ScriptedReply.error(503, message="overloaded")
    async with make_orchestrator() as orch:
        await settings_call(orch, "PATCH", {"preference": "local"})
        answer = await task(orch)
    assert local.requests and len(online.requests) == 1
    assert answer["metadata"]["endpoint"] == "cloud"


async def test_the_default_model_applies_to_a_task_naming_none(
    make_orchestrator: OrchestratorFactory,
    two_models: tuple[ScriptedLLMServer, ScriptedLLMServer],
) -> None:
    local, online = two_models
    async with make_orchestrator() as orch:
        await settings_call(orch, "PATCH", {"default_model": "box", "preference": "online"})
        by_default = await task(orch)
        named = await task(orch, model="cloud")
    assert by_default["metadata"]["endpoint"] == "box"
    # The default model first, then the rest in the preference's order.
    assert by_default["metadata"]["settings"] == {"preference": "online", "default_agent": None,
                                                  "default_model": "box", "memory_enabled": True,
                                                  "order": ["box", "cloud"]}  # fmt: skip
    assert named["metadata"]["endpoint"] == "cloud"
    assert named["metadata"]["settings"]["default_model"] is None
    assert len(local.requests) == 1 and len(online.requests) == 1


async def test_the_default_agent_runs_a_task_naming_no_agent_model_or_repository(
    make_orchestrator: OrchestratorFactory,
    two_models: tuple[ScriptedLLMServer, ScriptedLLMServer],
    sample_repo: Path,
) -> None:
    local, online = two_models
    with ScriptedLLMServer() as agents_model:
        agents_model.default = ScriptedReply(content="answer from the agent", model="agent-m")
        async with make_orchestrator(workspace_backend="local") as orch:
            created = await orch.http.post("/agents", json={
                "name": "helper", "provider": "openai", "base_url": agents_model.openai_url,
                "model": "agent-m", "api_key": "sk-agent-key"})  # fmt: skip
            assert created.status_code == 201, created.text
            await settings_call(orch, "PATCH", {"default_agent": "helper", "default_model": "box",
                                                "preference": "online"})  # fmt: skip
            as_agent = await task(orch)
            # A task naming a repository works there, with the default model instead.
            with_repo = await task(orch, repo_url=str(sample_repo))
            # The default agent removed: the default model answers.
            removed = await orch.http.delete("/agents/helper?force=true&purge=true")
            assert removed.status_code == 204, removed.text
            after = await task(orch)
    assert as_agent["result"] == "answer from the agent"
    assert as_agent["metadata"]["agent"] == "helper"
    assert as_agent["metadata"]["settings"]["default_agent"] == "helper"
    assert with_repo["metadata"]["endpoint"] == "box" and "agent" not in with_repo["metadata"]
    assert with_repo["metadata"]["settings"]["default_model"] == "box"
    assert (
        after["metadata"]["endpoint"] == "box"
        and after["metadata"]["settings"]["default_agent"] is None
    )
    assert len(agents_model.requests) == 1 and len(local.requests) == 2 and not online.requests


async def test_user_settings_tables_come_with_0008_and_go_with_its_downgrade(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO user_settings (user_id, preference, rag_archives, memory_enabled, "
                "updated_at) VALUES ('default', 'local', '[]', true, CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            await connection.execute(text(
                "INSERT INTO user_settings_changes (user_id, field, old_value, new_value, api_key, "
                "changed_at) VALUES ('default', 'preference', '\"auto\"', '\"local\"', 'auth-off', "
                "CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            # Down to 0007, the revision before it (later ones go first).
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0007"))
            tables_down = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            rows_again = await connection.scalar(text("SELECT count(*) FROM user_settings"))
    finally:
        await db.close()
    assert "user_settings" not in tables_down and "user_settings_changes" not in tables_down
    assert "agents" in tables_down and "hosts" in tables_down and "memories" not in tables_down
    assert rows_again == 0
