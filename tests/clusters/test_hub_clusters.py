"""cluster_preview and cluster_create on the hub's proxmox server, through the real hub and the
MCP SDK's client, against the local Proxmox API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.clusters.fake_pve import TOKEN_ID, TOKEN_SECRET, USED_IPS, FakePve
from tests.mcp_hub.conftest import HubFactory, mcp_session, result_text, start_hub  # noqa: F401


def settings(url: str, clusters: Path) -> dict[str, object]:
    return {"proxmox_url": url, "proxmox_token_id": TOKEN_ID, "proxmox_token_secret": TOKEN_SECRET,
            "proxmox_clusters_dir": str(clusters)}  # fmt: skip


async def test_preview_and_create_through_the_hub(
    start_hub: HubFactory,  # noqa: F811
    fake_pve: tuple[FakePve, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_URL", raising=False)  # the parser, not a model
    hub = start_hub(**settings(fake_pve[1], tmp_path / "clusters"))
    async with mcp_session(hub.url("proxmox")) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        preview = await session.call_tool(
            "cluster_preview", {"intent": "dev cluster with 2 workers"}
        )
        created = await session.call_tool(
            "cluster_create", {"intent": "dev cluster with 2 workers"}
        )
        bad = await session.call_tool("cluster_preview", {"intent": "1000 workers"})

    # The orchestrator asks for approval before a destructive tool; preview needs none.
    assert tools["cluster_create"].annotations.destructive_hint is True
    assert tools["cluster_create"].annotations.read_only_hint is False
    assert tools["cluster_preview"].annotations.read_only_hint is True

    assert not preview.is_error, result_text(preview)
    plan = preview.structured_content
    assert plan["spec"]["worker_count"] == 2 and plan["source"] == "parser"
    assert plan["host"].startswith("Proxmox node pve")
    assert not set(USED_IPS) & set(json.dumps(plan["spec"]["ip_start"]).split())
    assert plan["spec"]["ip_start"] == "192.168.1.104"

    assert not created.is_error, result_text(created)
    done = created.structured_content
    root = tmp_path / "clusters" / "dev"
    assert done["directory"] == str(root)
    assert {w["action"] for w in done["written"]} == {"create"}
    assert "dev-worker-2 ansible_host=192.168.1.106" in (root / "ansible/inventory.ini").read_text()
    assert done["pipeline_ran"] == []

    assert bad.is_error and "1000 workers is more than the 50" in result_text(bad)


async def test_read_only_hub_hides_cluster_create(
    start_hub: HubFactory,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_URL", raising=False)
    hub = start_hub(read_only=True, proxmox_clusters_dir=str(tmp_path))
    async with mcp_session(hub.url("proxmox")) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        preview = await session.call_tool("cluster_preview", {"intent": "minimal cluster"})
    assert "cluster_create" not in names and "cluster_preview" in names
    assert not preview.is_error
    assert any("Proxmox not configured" in w for w in preview.structured_content["warnings"])


async def test_hub_asks_the_model_at_ollama_url(
    start_hub: HubFactory,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = json.dumps({"name": "gpu-lab", "control_plane_count": 1, "worker_count": 4,
                         "worker_cores": 8, "worker_memory_mb": 16384, "addons": ["prometheus"],
                         "reasoning": "four workers for training jobs"})  # fmt: skip
    with ScriptedLLMServer(default=ScriptedReply(content=answer)) as server:
        monkeypatch.setenv("OLLAMA_URL", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("OLLAMA_MODEL", "mistral")
        hub = start_hub(proxmox_clusters_dir=str(tmp_path))
        async with mcp_session(hub.url("proxmox")) as session:
            preview = await session.call_tool(
                "cluster_preview", {"intent": "ML lab with 4 workers"}
            )
    assert not preview.is_error, result_text(preview)
    plan = preview.structured_content
    assert plan["source"] == "model:ollama/mistral"
    assert plan["spec"]["name"] == "gpu-lab" and plan["spec"]["worker_count"] == 4
    assert server.requests[0].body["model"] == "mistral"
