"""The app through httpx's ASGITransport (no port): routing, validation and error shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from anvyl.agent.client import WorkerClient, WorkerError
from anvyl.agent.models import ExecRequest
from anvyl.agent.server import MAX_BODY_BYTES, WorkerConfig, create_app

TOKEN = "asgi-test-token-0123456789"


def make_client(tmp_path: Path) -> tuple[httpx.AsyncClient, WorkerClient]:
    app = create_app(WorkerConfig(workspace=tmp_path / "ws", token=TOKEN))
    transport = httpx.ASGITransport(app=app)
    raw = httpx.AsyncClient(
        transport=transport, base_url="http://worker", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return raw, WorkerClient("http://worker", TOKEN, transport=transport)


async def test_errors_are_json_4xx(tmp_path: Path) -> None:
    raw, client = make_client(tmp_path)
    async with raw, client:
        assert (await raw.get("/nope")).json() == {"detail": "Not Found"}
        assert (await raw.get("/exec")).status_code == 405
        unknown = await raw.post("/exec/never-started/kill")
        assert unknown.status_code == 404 and "never-started" in unknown.json()["detail"]
        too_big = await raw.post(
            "/files/write",
            content=b"x",
            headers={"content-length": str(MAX_BODY_BYTES + 1), "content-type": "application/json"},
        )
        assert too_big.status_code == 413
        invalid = await raw.post(
            "/exec",
            content=json.dumps({"argv": ["true"], "stdin": "\ud800"}),
            headers={"content-type": "application/json"},
        )
        assert invalid.status_code == 422 and invalid.json()["detail"][0]["msg"]
        with pytest.raises(WorkerError, match="argv"):
            await client.exec(
                ExecRequest.model_construct(
                    argv=["a\x00b"],
                    command=None,
                    cwd=".",
                    env={},
                    timeout_s=5.0,
                    stdin=None,
                    max_output_bytes=100,
                    exec_id=None,
                )
            )
        result = await client.run("echo", "via asgi")
        assert result.stdout == "via asgi\n"
        health = await client.health()
        assert health.status == "ok" and health.uptime_s >= 0
