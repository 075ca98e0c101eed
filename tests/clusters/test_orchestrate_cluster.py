"""POST /orchestrate "provision a dev cluster with 2 workers": the model calls the hub's
proxmox__cluster_create, the task waits for approval (a destructive tool), and only then the
project is generated (scripted model on the OpenAI wire protocol, the real hub, the local Proxmox)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anvyl.mcp_hub.app import create_hub
from anvyl.mcp_hub.settings import HubSettings
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.clusters.fake_pve import TOKEN_ID, TOKEN_SECRET, FakePve
from tests.mcp_hub.conftest import TEST_TOKEN, serve_app
from tests.orchestrator.conftest import (  # noqa: F401 (fixtures)
    Orchestrator,
    OrchestratorFactory,
    call,
    make_orchestrator,
    model,
    tools,
)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the database is not what this test is about."""
    return f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}"


@pytest.fixture
def cluster_hub(
    fake_pve: tuple[FakePve, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    clusters = tmp_path / "clusters"
    monkeypatch.delenv("OLLAMA_URL", raising=False)  # the hub's tools use the parser here
    settings = HubSettings(_env_file=None, token=TEST_TOKEN, proxmox_url=fake_pve[1],
                           proxmox_token_id=TOKEN_ID, proxmox_token_secret=TOKEN_SECRET,
                           proxmox_clusters_dir=clusters)  # fmt: skip
    with serve_app(create_hub(settings).app) as server:
        monkeypatch.setenv("ANVYL_MCP_HUB_URL", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("ANVYL_MCP_HUB_TOKEN", TEST_TOKEN)
        yield clusters


async def events_of(orch: Orchestrator, task_id: str) -> list[dict[str, Any]]:
    return list((await orch.http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json())


async def test_provision_a_dev_cluster_waits_for_approval(
    make_orchestrator: OrchestratorFactory,  # noqa: F811
    model: ScriptedLLMServer,  # noqa: F811
    cluster_hub: Path,
) -> None:
    model.push(
        tools(call("proxmox__cluster_preview", intent="dev cluster with 2 workers")),
        tools(call("proxmox__cluster_create", intent="dev cluster with 2 workers")),
        ScriptedReply(content="The dev cluster's project is generated."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        body = {"query": "provision a dev cluster with 2 workers", "mode": "background"}
        task_id = (await orch.http.post("/orchestrate", json=body)).json()["task_id"]
        async with asyncio.timeout(120):
            while not any(e["data"].get("pending") for e in await events_of(orch, task_id)):
                await asyncio.sleep(0.1)
        waiting = (await orch.http.get(f"/tasks/{task_id}")).json()
        nothing_yet = not cluster_hub.exists()
        decided = await orch.http.post(f"/tasks/{task_id}/approve", json={"note": "go"})
        async with asyncio.timeout(180):
            while (task := (await orch.http.get(f"/tasks/{task_id}")).json())["status"] not in (
                "succeeded",
                "failed",
            ):
                await asyncio.sleep(0.1)
        events = await events_of(orch, task_id)

    pending = next(e["data"]["pending"] for e in events if e["data"].get("pending"))
    assert waiting["status"] == "waiting_approval" and nothing_yet
    assert pending["tool"] == "proxmox__cluster_create" and "destructive" in pending["reason"]
    assert decided.status_code == 200
    assert task["status"] == "succeeded", task["error"]
    calls = task["metadata"]["tool_calls"]
    assert [c["name"] for c in calls] == ["proxmox__cluster_preview", "proxmox__cluster_create"]
    assert all(c["ok"] for c in calls), calls
    inventory = (cluster_hub / "dev" / "ansible" / "inventory.ini").read_text()
    assert "dev-worker-2 ansible_host=192.168.1.106" in inventory  # after the used addresses
    assert "192.168.1.104" in model.requests[1].body["messages"][-1]["content"]  # the preview
