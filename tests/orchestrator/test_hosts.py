"""Hosts (seed 001): three real orchestrators (`anvyl serve` processes on loopback, each with its
own database and API key) that know each other: info, remote query, broadcast with a stopped host
and a refusing one, a forwarding loop refused, the host tools of a model, the built-in planner's
broadcast, and the known hosts kept across a restart.

a: SQLite, no model (the built-in planner). b: SQLite, a scripted model (the real OpenAI wire
protocol). c: PostgreSQL, no model. All use one real MCP hub (in this process) for the host tools.
The orchestrators are shared by the tests of this module, which run in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet

from anvyl.mcp_hub.app import create_hub
from anvyl.mcp_hub.settings import HubSettings
from anvyl.orchestrator.llm.testing import (
    RecordedRequest,
    ScriptedLLMServer,
    ScriptedReply,
    ScriptedToolCall,
)
from tests.conftest import POSTGRES_URL
from tests.helpers import ANVYL
from tests.mcp_hub.conftest import TEST_TOKEN, serve_app
from tests.orchestrator.hosts_cluster import (
    Node,
    add_host,
    closed_port,
    make_node,
    silent_port,
    start_all,
)

ASK_A = "ask host a about its resources"


def b_model(request: RecordedRequest) -> ScriptedReply:
    """b's model: uses the host tools when asked about other hosts, and reports what they said."""
    messages = request.body["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        return ScriptedReply(content=f"b's model reports: {last['content']}")
    query = next(m["content"] for m in messages if m["role"] == "user")
    if ASK_A in query:
        arguments = {"host_id": "a", "query": "show host resources"}
        return ScriptedReply(
            tool_calls=[ScriptedToolCall("hosts__query_host", json.dumps(arguments))]
        )
    if "all hosts" in query.lower():
        return ScriptedReply(tool_calls=[ScriptedToolCall(
            "hosts__broadcast", json.dumps({"query": "show host resources"}))])  # fmt: skip
    return ScriptedReply(content=f"b's model answers {query!r}")


async def _admin(statement: str) -> None:
    admin = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


class Cluster:
    def __init__(self, a: Node, b: Node, c: Node, model: ScriptedLLMServer) -> None:
        self.a, self.b, self.c, self.model = a, b, c, model


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("hosts")
    hub_settings = HubSettings(_env_file=None, token=TEST_TOKEN)
    c_name = f"anvyl_hosts_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{c_name}"'))
    c_database = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    c_database = f"{c_database}/{c_name}"
    nodes: list[Node] = []
    try:
        with serve_app(create_hub(hub_settings).app) as hub, ScriptedLLMServer(b_model) as model:
            hub_env = {"ANVYL_MCP_HUB_URL": f"http://127.0.0.1:{hub.port}",
                       "ANVYL_MCP_HUB_TOKEN": TEST_TOKEN}  # fmt: skip
            config = root / "b.yaml"
            config.write_text(
                "models:\n  - name: scripted\n    provider: openai\n"
                f"    base_url: {model.openai_url}\n    model: scripted-model\n    api_key: test\n"
                "routing:\n  primary: scripted\n"
            )
            a = make_node(root, "a", extra_env=hub_env)
            b = make_node(root, "b", extra_env=hub_env | {"ANVYL_CONFIG": str(config)})
            c = make_node(root, "c", database_url=c_database, extra_env=hub_env)
            nodes = [a, b, c]
            try:
                start_all(nodes)
                yield Cluster(a, b, c, model)
            finally:  # before the hub and the model stop
                for node in nodes:
                    node.stop()
    finally:
        for node in nodes:
            node.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{c_name}" WITH (FORCE)'))


def wait_until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_each_host_tells_who_it_is(cluster: Cluster) -> None:
    with cluster.a.client() as a, cluster.b.client() as b:
        info_a, info_b = a.get("/agent/info").json(), b.get("/agent/info").json()
        refused = a.get("/agent/info", headers={"Authorization": "Bearer key-b"})
    assert info_a["host_id"] == "a" and info_a["name"] == "machine-a" and info_a["version"]
    assert {"infra", "docker"} <= set(info_a["hub_servers"]) and info_a["tools"] > 0
    assert info_a["models"] == [] and info_b["models"] == ["scripted"]
    assert info_a["load"]["cpu_count"] >= 1 and info_a["load"]["task_slots"] == 4
    assert refused.status_code == 401


def test_known_hosts_are_added_checked_and_their_tokens_encrypted(cluster: Cluster) -> None:
    added = add_host(cluster.a, cluster.b, "b", token="key-b", tags=["lab", "gpu"])
    add_host(cluster.a, cluster.c, "c", token="key-c", tags=["lab"])
    add_host(cluster.b, cluster.a, "a", token="key-a")
    add_host(cluster.b, cluster.c, "c", token="key-c")
    assert added["token_set"] is True and "token" not in added and added["tags"] == ["gpu", "lab"]
    with cluster.a.client() as a:
        listed = wait_until(
            lambda: [h for h in a.get("/agent/hosts").json() if h["status"] == "online"]
        )
        assert {h["host_id"] for h in listed} == {"b", "c"}, a.get("/agent/hosts").json()
        info = a.get("/agent/info").json()
    assert all(
        h["version"] == info["version"] and h["latency_ms"] > 0 and h["last_seen"] for h in listed
    )
    assert info["known_hosts"] == 2
    # At rest: the token only encrypted, with a's own key.
    with sqlite3.connect(cluster.a.data_dir / "anvyl.db") as db:
        (stored,) = db.execute("SELECT token_encrypted FROM hosts WHERE id = 'b'").fetchone()
    assert "key-b" not in stored
    secret = (cluster.a.data_dir / "secret.key").read_bytes().strip()
    assert Fernet(secret).decrypt(stored.encode()) == b"key-b"
    assert "key-b" not in cluster.a.server.log.read_text()  # type: ignore[union-attr]


def test_a_remote_query_is_answered_by_that_host(cluster: Cluster) -> None:
    with cluster.a.client() as a:
        response = a.post(
            "/agent/remote-query", json={"host_id": "c", "query": "show host resources"}
        )
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["host_id"] == "c" and answer["status"] == "succeeded", answer
    assert "cpu" in answer["result"].lower() and answer["latency_s"] > 0
    assert answer["metadata"]["backend"] == "builtin-planner"
    # The task ran on c, forwarded by a (one hop, a on its path).
    with cluster.c.client() as c:
        task = c.get(f"/tasks/{answer['task_id']}").json()
    assert task["status"] == "succeeded" and task["metadata"]["tool_calls"][0]["name"] == (
        "infra__get_host_resources"
    )
    forwarded = task["metadata"]["forwarded"]
    assert forwarded["hops"] == 1 and forwarded["via"] == ["a"] and forwarded["trace_id"]
    assert answer["metadata"]["forwarded"] == forwarded


def test_a_host_that_cannot_answer_is_a_clear_error_that_names_it(cluster: Cluster) -> None:
    with silent_port() as hanging:
        add_host(cluster.a, cluster.b, "wrong-token", token="not-b's-key")
        add_host(cluster.a, closed_port(), "down")
        add_host(cluster.a, hanging, "hanging")
        add_host(cluster.a, "http://127.0.0.1:9", "agent2agent", kind="a2a")
        with cluster.a.client() as a:
            answers = {}
            for host_id in ("wrong-token", "down", "hanging", "agent2agent", "nope"):
                started = time.monotonic()
                response = a.post("/agent/remote-query",
                                  json={"host_id": host_id, "query": "hello", "timeout_s": 2})  # fmt: skip
                answers[host_id] = (response.status_code, response.json()["detail"],
                                    time.monotonic() - started)  # fmt: skip
            for host_id in ("wrong-token", "down", "hanging", "agent2agent"):
                assert a.delete(f"/agent/hosts/{host_id}").status_code == 204
    status, detail, _ = answers["wrong-token"]
    assert status == 502 and "'wrong-token'" in detail and "refused our token (401)" in detail
    status, detail, _ = answers["down"]
    assert status == 502 and "'down'" in detail and "not reachable" in detail
    status, detail, took = answers["hanging"]
    assert status == 504 and "'hanging'" in detail and "within 2s" in detail and took < 10
    status, detail, _ = answers["agent2agent"]
    assert status == 502 and "'agent2agent'" in detail and "A2A at http://127.0.0.1:9" in detail
    status, detail, _ = answers["nope"]
    assert status == 404 and "no host with id 'nope'" in detail and "b, c" in detail


def test_a_forwarding_loop_is_refused(cluster: Cluster) -> None:
    """a asks b; b's model asks a: a refuses, since the query passed a already."""
    with cluster.a.client() as a:
        answer = a.post("/agent/remote-query", json={"host_id": "b", "query": ASK_A}).json()
        direct = a.post("/agent/process", json={"query": "show host resources"},
                        headers={"X-Anvyl-Via": "b,a", "X-Anvyl-Hops": "2"})  # fmt: skip
        too_far = a.post("/agent/process", json={"query": "show host resources"},
                         headers={"X-Anvyl-Hops": "4", "X-Anvyl-Trace-Id": "t-1"})  # fmt: skip
    assert answer["status"] == "succeeded", answer
    with cluster.b.client() as b:
        task = b.get(f"/tasks/{answer['task_id']}").json()
    (call,) = task["metadata"]["tool_calls"]
    assert call["name"] == "hosts__query_host" and call["ok"] is False
    assert "forwarding loop refused" in call["error"] and "(a -> b -> a)" in call["error"]
    assert "forwarding loop refused" in answer["result"]  # what b's model was told
    assert direct.status_code == 409 and "loop" in direct.json()["detail"]
    assert direct.headers["X-Anvyl-Refused"] == "loop"
    assert too_far.status_code == 409 and "limit of 3" in too_far.json()["detail"]


def test_a_model_asks_every_host_with_the_host_tools(cluster: Cluster) -> None:
    """ "Show resource usage for all hosts" with a model: b's model broadcasts, a and c answer
    from their own hubs."""
    with cluster.b.client() as b:
        task = b.post("/agent/process", json={"query": "Show resource usage for all hosts"}).json()
    assert task["status"] == "succeeded", task
    (call,) = task["metadata"]["tool_calls"]
    assert call["name"] == "hosts__broadcast" and call["ok"] is True
    offered = {t["function"]["name"] for t in cluster.model.requests[-2].body["tools"]}
    assert {"hosts__list_hosts", "hosts__query_host", "hosts__broadcast"} <= offered
    for host in ("a", "c"):
        assert f"## host {host} ({host}): succeeded" in task["result"]
    assert task["result"].lower().count("cpu") >= 2


def test_the_planner_broadcasts_a_request_about_all_hosts(cluster: Cluster) -> None:
    """Without a model: a's built-in planner asks every host (and itself) for its resources."""
    with cluster.a.client() as a:
        task = a.post("/agent/process", json={"query": "Show resource usage for all hosts"}).json()
    assert task["status"] == "succeeded", task
    assert task["metadata"]["backend"] == "builtin-planner"
    (call,) = task["metadata"]["tool_calls"]
    assert call["name"] == "hosts__broadcast"
    assert call["arguments"] == {"query": "show host resources", "include_self": True}
    for host in ("machine-a (a)", "host b (b)", "host c (c)"):
        assert f"## {host}: succeeded" in task["result"], task["result"]
    # b has a model: it answered through it; a and c through their planners and hub.
    assert "b's model answers 'show host resources'" in task["result"]


def test_a_broadcast_answers_for_every_host_when_one_is_stopped_and_one_refuses(
    cluster: Cluster,
) -> None:
    add_host(cluster.a, cluster.b, "refusing", token="wrong-key")
    cluster.c.stop()
    try:
        with cluster.a.client() as a:  # the periodic check (every second here) notices
            down = wait_until(lambda: [h for h in a.get("/agent/hosts").json()
                                       if h["host_id"] == "c" and h["status"] == "offline"])  # fmt: skip
        assert down and "'c'" in down[0]["last_error"] and down[0]["last_seen"], down
        with silent_port() as hanging:
            add_host(cluster.a, hanging, "hanging")
            with cluster.a.client() as a:
                started = time.monotonic()
                response = a.post("/agent/broadcast", json={
                    "query": "show host resources", "include_self": True, "timeout_s": 3})  # fmt: skip
                took = time.monotonic() - started
                a.delete("/agent/hosts/hanging")
                a.delete("/agent/hosts/refusing")
    finally:
        cluster.c.start()
    answers = {answer["host_id"]: answer for answer in response.json()}
    assert response.status_code == 200 and set(answers) == {"a", "b", "c", "refusing", "hanging"}
    assert answers["a"]["status"] == "succeeded" and "cpu" in answers["a"]["result"].lower()
    assert answers["b"]["status"] == "succeeded" and answers["b"]["result"]
    assert answers["c"]["status"] == "unreachable" and "'c'" in answers["c"]["error"]
    assert answers["refusing"]["status"] == "refused" and "401" in answers["refusing"]["error"]
    assert answers["hanging"]["status"] == "timeout" and answers["hanging"]["latency_s"] < 5
    assert took < 3 + 5  # the slowest costs its timeout, not more; the others are not held back


def test_known_hosts_are_kept_across_a_restart(cluster: Cluster) -> None:
    cluster.a.stop()
    cluster.a.start()
    with cluster.a.client() as a:
        hosts = a.get("/agent/hosts").json()
        answer = a.post(
            "/agent/remote-query", json={"host_id": "c", "query": "show host resources"}
        )
        tagged = a.post("/agent/broadcast", json={"query": "hello", "tags": ["gpu"]}).json()
    assert [(t["host_id"], t["status"]) for t in tagged] == [("b", "succeeded")]
    assert {h["host_id"] for h in hosts} == {"b", "c"}
    assert all(h["token_set"] for h in hosts)
    # The stored token still decrypts and opens c.
    assert answer.status_code == 200 and answer.json()["status"] == "succeeded", answer.text


def test_bad_host_requests_are_refused_with_what_to_fix(cluster: Cluster) -> None:
    with cluster.a.client() as a:
        cases: list[tuple[str, str, dict[str, Any] | None, dict[str, str], int, str]] = [
            ("POST", "/agent/hosts", {"name": "x", "url": "ftp://x"}, {}, 422, "url"),
            ("POST", "/agent/hosts", {"name": " ", "url": "http://x:1"}, {}, 422, "name"),
            ("POST", "/agent/hosts", {"name": "x", "url": "http://x:1", "host_id": "Bad_Id"}, {}, 422, "host_id"),
            ("POST", "/agent/hosts", {"name": "x", "url": "http://x:1", "token": "a b"}, {}, 422, "token"),
            ("POST", "/agent/hosts", {"name": "x\x00", "url": "http://x:1"}, {}, 422, "NUL"),
            ("POST", "/agent/hosts", {"name": "x", "url": "http://x:1", "kind": "ssh"}, {}, 422, "kind"),
            ("POST", "/agent/hosts", {"name": "x", "url": "http://u:pw@x:1"}, {}, 422, "credentials"),
            ("POST", "/agent/hosts", {"name": "x", "url": "http://x\x13y:1"}, {}, 422, "visible ASCII"),
            ("POST", "/agent/hosts", {"name": "x", "url": "http://x:1", "colour": "red"}, {}, 422, "unknown field"),
            ("POST", "/agent/hosts", {"name": "b", "url": "http://x:1"}, {}, 409, "known already"),
            ("POST", "/agent/hosts", {"name": "a", "url": "http://x:1"}, {}, 422, "own id"),
            ("GET", "/agent/hosts/nope", None, {}, 404, "no host with id 'nope'"),
            ("DELETE", "/agent/hosts/nope", None, {}, 404, "no host with id 'nope'"),
            ("POST", "/agent/remote-query", {"host_id": "b"}, {}, 422, "query"),
            ("POST", "/agent/remote-query", {"host_id": "b", "query": "x", "timeout_s": 0}, {}, 422, "timeout_s"),
            ("POST", "/agent/broadcast", {"query": "   "}, {}, 422, "query is empty"),
            ("POST", "/agent/process", {"query": "x", "files": []}, {}, 422, "unknown field"),
            ("POST", "/agent/process", {"query": "x"}, {"X-Anvyl-Hops": "many"}, 422, "X-Anvyl-Hops"),
            ("POST", "/agent/process", {"query": "x"}, {"X-Anvyl-Via": "a b"}, 422, "X-Anvyl-Via"),
            ("POST", "/agent/process", {"query": "x", "agent": "ghost"}, {}, 422, "ghost"),
        ]  # fmt: skip
        for method, path, body, headers, status, words in cases:
            response = a.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (method, path, body, response.text)
            assert words in response.json()["detail"], (method, path, body, response.text)
        with cluster.c.client() as c:  # PostgreSQL refuses NUL: never asked for such an id
            assert c.get("/agent/hosts/bad%00id").status_code == 404
            nul = c.post("/agent/remote-query", json={"host_id": "x\x00", "query": "hi"})
            assert nul.status_code == 422 and "NUL" in nul.json()["detail"]
        for method, path in [("GET", "/agent/info"), ("GET", "/agent/hosts"), ("POST", "/agent/hosts"),
                             ("DELETE", "/agent/hosts/b"), ("POST", "/agent/remote-query"),
                             ("POST", "/agent/broadcast"), ("POST", "/agent/process")]:  # fmt: skip
            assert (
                a.request(method, path, headers={"Authorization": "Bearer no"}).status_code == 401
            )


def test_the_cli_adds_lists_asks_and_removes_hosts(cluster: Cluster, tmp_path: Path) -> None:
    def anvyl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ANVYL, *args, "--server", cluster.a.url, "--anvyl-api-key", "key-a"],
                              capture_output=True, text=True, timeout=120,
                              env=os.environ | {"COLUMNS": "200"})  # fmt: skip

    added = anvyl("hosts", "add", "Second C", cluster.c.url, "--token", "key-c", "--tag", "lab")
    assert added.returncode == 0 and "added host second-c" in added.stdout, added.stderr
    listed = anvyl("hosts", "list")
    assert listed.returncode == 0 and "second-c" in listed.stdout and "key-c" not in listed.stdout
    me = anvyl("hosts", "info")
    assert me.returncode == 0 and "machine-a" in me.stdout and "known hosts  3" in me.stdout
    asked = anvyl("agent", "query-remote", "second-c", "show host resources")
    assert asked.returncode == 0 and "succeeded" in asked.stdout and "cpu" in asked.stdout.lower()
    everyone = anvyl("agent", "broadcast", "show host resources", "--json")
    assert everyone.returncode == 0, everyone.stderr
    assert {a["host_id"] for a in json.loads(everyone.stdout)} == {"b", "c", "second-c"}
    local = anvyl("agent", "process", "show host resources")
    assert local.returncode == 0 and "builtin-planner" in local.stdout
    unknown = anvyl("agent", "query-remote", "nope", "hi")
    assert unknown.returncode == 1 and "no host with id 'nope'" in unknown.stderr
    assert "anvyl hosts list" in unknown.stderr
    removed = anvyl("hosts", "rm", "second-c")
    assert removed.returncode == 0 and "removed host second-c" in removed.stdout
