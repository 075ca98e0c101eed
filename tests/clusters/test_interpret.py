"""Interpretation through a scripted model on the OpenAI wire protocol (real HTTP, the real
router and SDK): the seed's eight intents, a repaired answer, and a refused one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from anvyl.clusters.interpret import interpret, openai_ask
from anvyl.orchestrator.cli.clusters import _router, _router_ask
from anvyl.orchestrator.llm.testing import RecordedRequest, ScriptedLLMServer, ScriptedReply
from tests.clusters.seed_table import SEED_TABLE, assert_row


def model_answer(row: dict[str, Any], name: str) -> str:
    """What a model would answer for a row of the seed's table: the row as ClusterSpec JSON."""
    answer: dict[str, Any] = {
        "name": name,
        "control_plane_count": row["control_plane_count"],
        "worker_count": row["worker_count"],
        "cni": row["cni"],
        "addons": row["addons"],
        "kubernetes_version": "1.31",
        "reasoning": f"sized as asked for a {name} cluster",
    }
    if "cores" in row:
        for kind in ("control_plane", "worker"):
            answer[f"{kind}_cores"] = row["cores"]
            answer[f"{kind}_memory_mb"] = row["memory_mb"]
    return json.dumps(answer)


def row_for(request: RecordedRequest) -> str:
    prompt = request.body["messages"][-1]["content"]
    intent = prompt.rsplit("Intent: ", 1)[1]
    return model_answer(SEED_TABLE[intent], "seed")


async def test_seed_intents_through_the_router() -> None:
    with ScriptedLLMServer(lambda request: ScriptedReply(content=row_for(request))) as server:
        router, name = _router("llama3", f"http://127.0.0.1:{server.port}")
        assert router is not None
        async with router:
            for intent in SEED_TABLE:
                result = await interpret(intent, ask=_router_ask(router), model_name=name)
                assert result.source == "model:ollama/llama3", result.warnings
                assert_row(intent, result.spec)
        body = server.requests[0].body
        assert body["model"] == "llama3"
        assert body["response_format"]["type"] == "json_schema"
        assert "control_plane_count" in json.dumps(body["response_format"])


async def test_invalid_json_once_is_repaired() -> None:
    good = model_answer(SEED_TABLE["dev cluster"], "dev")
    with ScriptedLLMServer(
        [ScriptedReply(content="sure! {not json"), ScriptedReply(content=good)]
    ) as server:
        router, name = _router("llama3", f"http://127.0.0.1:{server.port}")
        assert router is not None
        async with router:
            result = await interpret("dev cluster", ask=_router_ask(router), model_name=name)
        assert result.source.startswith("model:")
        assert_row("dev cluster", result.spec)
        assert len(server.requests) == 2
        assert "not valid JSON" in json.dumps(server.requests[1].body["messages"])


async def test_invalid_spec_is_repaired_with_the_reason() -> None:
    bad = json.dumps({"control_plane_count": 2, "worker_count": 3})
    good = model_answer(SEED_TABLE["HA cluster with monitoring"], "ha")
    with ScriptedLLMServer([ScriptedReply(content=bad), ScriptedReply(content=good)]) as server:
        ask = openai_ask(server.openai_url, "m", timeout_s=10)
        result = await interpret("HA cluster with monitoring", ask=ask, model_name="m")
        assert result.source == "model:m"
        assert any("even number" in w for w in result.warnings)
        assert "even number" in server.requests[1].body["messages"][-1]["content"]


@pytest.mark.parametrize("second", ["still not json", json.dumps({"worker_count": -3})])
async def test_invalid_twice_falls_back_to_the_parser_and_says_so(second: str) -> None:
    with ScriptedLLMServer(
        [ScriptedReply(content="nope"), ScriptedReply(content=second)]
    ) as server:
        router, name = _router("llama3", f"http://127.0.0.1:{server.port}")
        assert router is not None
        async with router:
            result = await interpret(
                "CI/CD runner cluster", ask=_router_ask(router), model_name=name
            )
    assert result.source == "parser"
    assert_row("CI/CD runner cluster", result.spec)
    assert any("deterministic parser was used" in w for w in result.warnings)


async def test_model_down_falls_back() -> None:
    with ScriptedLLMServer([ScriptedReply.error(500)], default=ScriptedReply.error(500)) as server:
        ask = openai_ask(server.openai_url, "m", timeout_s=5)
        result = await interpret("dev cluster", ask=ask)
    assert result.source == "parser"
    assert "could not be asked" in result.warnings[0]


async def test_ollama_variables_and_the_host_in_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_URL / OLLAMA_MODEL pick the model as in the seed; the prompt carries the host."""
    from anvyl.clusters.discovery import VM, HostContext

    host = HostContext(node="pve", cpus=8, memory_total_mb=24576, memory_used_mb=14336,
                       storage="local-lvm", storage_free_gb=60,
                       vms=[VM(100, "gitlab", "running", 4, 8192, False)],
                       used_ips=["192.168.1.100"])  # fmt: skip
    good = model_answer(SEED_TABLE["dev cluster"], "dev")
    for name in ("ANVYL_CONFIG", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "XAI_API_KEY", "GROQ_API_KEY",
                 "ANVYL_GPT_OSS_URL", "ANVYL_LMSTUDIO_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    with ScriptedLLMServer(default=ScriptedReply(content=good)) as server:
        monkeypatch.setenv("OLLAMA_URL", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("OLLAMA_MODEL", "mistral")
        router, name = _router(None, None)
        assert router is not None
        async with router:
            result = await interpret(
                "dev cluster", host=host, ask=_router_ask(router), model_name=name
            )
    assert result.source.startswith("model:") and "mistral" in result.source
    body = server.requests[0].body
    assert body["model"] == "mistral"
    prompt = body["messages"][-1]["content"]
    assert "Proxmox node pve: 8 CPUs" in prompt and "192.168.1.100" in prompt and "gitlab" in prompt
