"""`anvyl agent ...` as a user runs it (the console script, a subprocess) against a real `anvyl serve`
with Docker workers, and scripted model servers speaking the OpenAI and Anthropic wire protocols in
place of LM Studio, Ollama, OpenAI and Anthropic: seed 000's example workflows as written (only the
providers' addresses added), the provider's key kept out of every answer, bad input explained."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from anvyl.orchestrator.llm.testing import (
    ScriptedLLMServer,
    ScriptedReply,
    refused_port,
)
from tests.helpers import ANVYL, ServerProcess, running_server
from tests.orchestrator.test_cli import anvyl, ok, wait_task

PROVIDER_KEY = "sk-test-provider-9f3c1e"  # given with --api-key; must never come back
ORCHESTRATOR_KEY = "orch-key-for-the-cli-test"
TASK_LINE = re.compile(r"^task (\S+)  succeeded$", re.MULTILINE)


def scripted(label: str) -> ScriptedLLMServer:
    """A model that answers every turn with the same final answer naming itself."""
    return ScriptedLLMServer(default=ScriptedReply(content=f"answered by the {label} model"))


def asked(server: ScriptedLLMServer) -> str:
    """Everything the model was sent (to find the instructions in)."""
    return "\n".join(json.dumps(request.body) for request in server.requests)


def provider_at(server: ScriptedLLMServer) -> list[str]:
    return ["--provider-host", "127.0.0.1", "--provider-port", str(server.port)]


@pytest.fixture
def agent_server(
    tmp_path: Path, docker_instance: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerProcess]:
    """`anvyl serve` with Docker workers and no model of its own: every model is an agent's."""
    monkeypatch.delenv("ANVYL_CONFIG", raising=False)
    env = {
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}",
        "ANVYL_INSTANCE": docker_instance,
        "ANVYL_WORKSPACE_BACKEND": "docker",
    }
    with running_server(env, tmp_path / "serve.log", command=(ANVYL,)) as process:
        yield process


def agent_containers(client: docker.DockerClient, instance: str, name: str) -> list[str]:
    """The status of each container of the agent `name`."""
    labels = [f"anvyl.instance={instance}", f"anvyl.agent={name}"]
    return [c.status for c in client.containers.list(all=True, filters={"label": labels})]


def test_seed_workflow_1_one_agent_manages_its_infrastructure(
    agent_server: ServerProcess, docker_client: docker.DockerClient, docker_instance: str
) -> None:
    lmstudio = scripted("lmstudio").start()
    try:
        created = ok(anvyl("agent", "create", "infra-agent", "--provider", "lmstudio", "--auto-start",
                           *provider_at(lmstudio), server=agent_server))  # fmt: skip
        running_after_create = agent_containers(docker_client, docker_instance, "infra-agent")
        instructions = [
            "Add a new host called 'prod-server' with IP 192.168.1.100",
            "List all hosts and their status",
            "Create a web server container with nginx",
            "Show me all running containers",
            "What's the current system status?",
            "Show resource usage for all hosts",
        ]
        results = [ok(anvyl("agent", "act", "infra-agent", text, server=agent_server))
                   for text in instructions]  # fmt: skip
        running = ok(anvyl("agent", "list", "--running", server=agent_server))
        logs = ok(anvyl("agent", "logs", "infra-agent", server=agent_server))
        refused = anvyl("agent", "remove", "infra-agent", server=agent_server)
        stopped = ok(anvyl("agent", "stop", "infra-agent", server=agent_server))
        none_running = json.loads(
            ok(anvyl("agent", "list", "--running", "--json", server=agent_server))
        )
        removed = ok(anvyl("agent", "remove", "infra-agent", "--force", server=agent_server))
        after = json.loads(ok(anvyl("agent", "list", "--json", server=agent_server)))
    finally:
        lmstudio.stop()

    assert "created agent infra-agent (lmstudio/" in created and "status: running" in created
    assert running_after_create == ["running"]
    task_ids = []
    for text, result in zip(instructions, results, strict=True):
        found = TASK_LINE.search(result)
        assert found, result
        task_ids.append(found.group(1))
        assert "answered by the lmstudio model" in result
        assert json.dumps(text)[1:-1] in asked(lmstudio)  # each instruction reached the model
    assert re.search(
        r"│ infra-agent │ running │ lmstudio │ default │ http://127.0.0.1:\d+/v1 │ [0-9a-f]{12} │",
        running,
    ), running
    for task_id in task_ids:  # every task's steps, its result last
        assert re.search(rf"{task_id} #\d+ finished: succeeded", logs), logs
    assert refused.returncode == 1 and "stop it or pass force" in refused.stderr
    assert stopped.strip() == "stopped infra-agent: stopped (files kept)"
    assert none_running == []
    assert removed.strip() == "removed infra-agent (files kept)"
    assert after == []
    assert agent_containers(docker_client, docker_instance, "infra-agent") == []


def test_seed_workflow_2_specialised_agents_on_three_providers(
    agent_server: ServerProcess, docker_client: docker.DockerClient, docker_instance: str
) -> None:
    servers = {label: scripted(label).start() for label in ("openai", "ollama", "anthropic")}
    try:
        created = [
            ok(anvyl("agent", "create", "monitoring-agent", "--provider", "openai", "--model",
                     "gpt-4o-mini", "--api-key", PROVIDER_KEY, *provider_at(servers["openai"]),
                     server=agent_server)),
            ok(anvyl("agent", "create", "deployment-agent", "--provider", "ollama", "--model",
                     "llama3.2:1b", *provider_at(servers["ollama"]), server=agent_server)),
            ok(anvyl("agent", "create", "security-agent", "--provider", "anthropic", "--model",
                     "claude-3-haiku-20240307", *provider_at(servers["anthropic"]), "--verbose",
                     server=agent_server)),
        ]  # fmt: skip
        started = [ok(anvyl("agent", "start", name, server=agent_server))
                   for name in ("monitoring-agent", "deployment-agent", "security-agent")]  # fmt: skip
        acted = {
            "openai": ok(anvyl("agent", "act", "monitoring-agent",
                               "Analyze system performance and identify bottlenecks", server=agent_server)),
            "ollama": ok(anvyl("agent", "act", "deployment-agent",
                               "Deploy the latest version of the web application", server=agent_server)),
            "anthropic": ok(anvyl("agent", "act", "security-agent",
                                  "Check for security vulnerabilities in running containers",
                                  server=agent_server)),
        }  # fmt: skip
        running = json.loads(ok(anvyl("agent", "list", "--running", "--json", server=agent_server)))
        table = ok(anvyl("agent", "list", server=agent_server))
        info = ok(anvyl("agent", "info", "monitoring-agent", server=agent_server))
        removed = [ok(anvyl("agent", "remove", name, "--force", "--purge", server=agent_server))
                   for name in ("monitoring-agent", "deployment-agent", "security-agent")]  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()

    assert "status: created" in created[0]
    verbose = created[2].splitlines()
    assert any(re.match(r"provider\s+anthropic$", line) for line in verbose), created[2]
    assert any(re.match(r"model\s+claude-3-haiku-20240307$", line) for line in verbose)
    assert re.search(r"^provider anthropic at \S+: reachable", created[2], re.MULTILINE), created[2]
    assert all(re.match(r"started \S+: running, container \S+", line) for line in started), started
    for label, out in acted.items():  # each agent used its own provider, in its own wire protocol
        assert TASK_LINE.search(out) and f"answered by the {label} model" in out, out
        assert {r.api for r in servers[label].requests} == {
            label if label == "anthropic" else "openai"
        }
    assert "Analyze system performance" in asked(servers["openai"])
    assert "Deploy the latest version" in asked(servers["ollama"])
    assert "Check for security vulnerabilities" in asked(servers["anthropic"])
    # The key given with --api-key is what the provider got, and nothing ever showed it.
    assert {r.headers.get("authorization") for r in servers["openai"].requests} == {
        f"Bearer {PROVIDER_KEY}"
    }
    assert [a["name"] for a in running] == [
        "deployment-agent",
        "monitoring-agent",
        "security-agent",
    ]
    assert [a["api_key_set"] for a in running] == [False, True, False]
    assert re.search(r"^api key\s+\*+ \(set\)$", info, re.MULTILINE), info
    assert re.search(r"^provider openai at \S+: reachable", info, re.MULTILINE), info
    for shown in (json.dumps(running), table, info, *created, agent_server.log.read_text()):
        assert PROVIDER_KEY not in shown
    assert removed == [f"removed {name} and its files\n"
                       for name in ("monitoring-agent", "deployment-agent", "security-agent")]  # fmt: skip
    for name in ("monitoring-agent", "deployment-agent", "security-agent"):
        assert agent_containers(docker_client, docker_instance, name) == []


def test_act_follows_queues_and_execute_is_its_alias_and_logs_follow_live(
    agent_server: ServerProcess,
) -> None:
    ollama = scripted("ollama").start()
    follower: subprocess.Popen[str] | None = None
    try:
        ok(anvyl("agent", "create", "dev-agent", "--provider", "ollama", *provider_at(ollama),
                 "--auto-start", server=agent_server))  # fmt: skip
        followed = ok(
            anvyl("agent", "act", "dev-agent", "Run the tests", "--follow", server=agent_server)
        )
        queued = ok(
            anvyl("agent", "act", "dev-agent", "Lint it", "--background", server=agent_server)
        )
        executed = ok(
            anvyl("agent", "execute", "dev-agent", "Show system status", server=agent_server)
        )
        wait_task(agent_server, queued.strip(), "succeeded")
        follower = subprocess.Popen(
            [ANVYL, "agent", "logs", "dev-agent", "--follow", "--tail", "0"], text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=os.environ | {"COLUMNS": "200", "ANVYL_URL": agent_server.url},
        )  # fmt: skip
        assert follower.stderr is not None and follower.stdout is not None
        opened = follower.stderr.readline()  # once the orchestrator answered: from now on, live
        built = ok(anvyl("agent", "act", "dev-agent", "Build it", "--background",
                         server=agent_server)).strip()  # fmt: skip
        live = []
        for line in follower.stdout:  # (pytest-timeout bounds a stream that never gets there)
            live.append(line)
            if line.startswith(built) and "finished: succeeded" in line:
                break
        tail = ok(anvyl("agent", "logs", "dev-agent", "--tail", "2", server=agent_server))
        ok(anvyl("agent", "remove", "dev-agent", "--force", server=agent_server))
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait()
        ollama.stop()

    lines = followed.splitlines()
    assert lines[0].startswith("#1 status: queued"), followed
    assert any(
        re.match(r"#\d+ model \S+ \(.*\) in [\d.]+s -> final answer", line) for line in lines
    )
    assert any(re.match(r"#\d+ finished: succeeded", line) for line in lines)
    assert "answered by the ollama model" in followed
    assert re.fullmatch(r"[0-9a-zA-Z_-]{8,}\n", queued), queued
    assert TASK_LINE.search(executed) and "answered by the ollama model" in executed
    assert "Build it" in asked(ollama) and "Lint it" in asked(ollama)
    assert opened == "following dev-agent's logs (Ctrl-C to stop)\n"
    steps = [line for line in live if re.match(r"\S+ #\d+ ", line)]  # (the rest: worker log lines)
    assert steps[0].startswith(f"{built} #1 status: queued"), live  # --tail 0: nothing from before
    assert not any(queued.strip() in line for line in live)
    assert 0 < len(tail.splitlines()) <= 4, tail  # the last 2 task steps and 2 log lines at most


def test_bad_input_and_unreachable_orchestrators_say_what_to_do(
    tmp_path: Path, instance: str
) -> None:
    env = {
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}",
        "ANVYL_INSTANCE": instance,
        "ANVYL_WORKSPACE_BACKEND": "local",
        "ANVYL_API_KEYS": ORCHESTRATOR_KEY,
    }
    with running_server(env, tmp_path / "serve.log", command=(ANVYL,)) as orch:
        port = orch.url.rsplit(":", 1)[1]
        at = [
            "--anvyl-host",
            "127.0.0.1",
            "--anvyl-port",
            port,
            "--anvyl-api-key",
            ORCHESTRATOR_KEY,
        ]
        ok(anvyl("agent", "create", "alpha", *at))
        ok(anvyl("agent", "create", "beta", "--provider", "ollama", *at))
        unknown = anvyl("agent", "info", "gamma", *at)
        duplicate = anvyl("agent", "create", "alpha", *at)
        bad_provider = anvyl("agent", "create", "delta", "--provider", "openia", *at)
        bad_name = anvyl("agent", "create", "Bad_Name", *at)
        bad_port = anvyl("agent", "create", "epsilon", "--provider-port", "70000", *at)
        no_key = anvyl("agent", "list", "--anvyl-host", "127.0.0.1", "--anvyl-port", port,
                       env={"ANVYL_API_KEY": ""})  # fmt: skip
        by_url = json.loads(ok(anvyl("agent", "list", "--json", env={
            "ANVYL_URL": orch.url, "ANVYL_API_KEY": ORCHESTRATOR_KEY})))  # fmt: skip
        for name in ("alpha", "beta"):
            ok(anvyl("agent", "remove", name, *at))
    nobody = anvyl("agent", "list", "--anvyl-port", str(refused_port()))

    assert unknown.returncode == 1, unknown
    assert "no agent named" in unknown.stderr and "gamma" in unknown.stderr
    assert "alpha, beta" in unknown.stderr and "anvyl agent list" in unknown.stderr
    assert duplicate.returncode == 1 and "alpha" in duplicate.stderr
    assert "`anvyl agent remove alpha`" in duplicate.stderr
    assert "`anvyl agent create --help`" in bad_provider.stderr
    assert bad_provider.returncode == 2 and "provider" in bad_provider.stderr
    assert all(p in bad_provider.stderr for p in ("lmstudio", "ollama", "openai", "anthropic"))
    assert bad_name.returncode == 2 and "name" in bad_name.stderr
    assert bad_port.returncode == 2 and "--provider-port" in bad_port.stderr
    assert no_key.returncode == 1 and "--anvyl-api-key" in no_key.stderr
    assert [a["name"] for a in by_url] == ["alpha", "beta"]
    assert (
        nobody.returncode == 1
        and "cannot reach the orchestrator at http://127.0.0.1:" in nobody.stderr
    )
    assert "anvyl serve" in nobody.stderr
