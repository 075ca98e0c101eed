"""The app through httpx's ASGITransport (no port): routing, validation and error shapes; and the
typed client's view of the same errors, on a real loopback port."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from anvyl.worker.app import WorkerConfig, create_app
from anvyl.worker.client import WorkerError
from anvyl.worker.models import ExecRequest
from anvyl.worker.routes.common import MAX_BODY_BYTES

from .conftest import Worker

TOKEN = "asgi-test-token-0123456789"


def make_raw_client(tmp_path: Path) -> httpx.AsyncClient:
    app = create_app(WorkerConfig(workspace=tmp_path / "ws", token=TOKEN))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://worker",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def test_errors_are_json_4xx(tmp_path: Path) -> None:
    async with make_raw_client(tmp_path) as raw:
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


async def test_the_client_turns_a_refusal_into_a_worker_error_that_names_the_field(
    worker: Worker,
) -> None:
    client = worker.client
    with pytest.raises(WorkerError, match="argv") as refused:
        await client.exec(
            ExecRequest.model_construct(
                argv=["a\x00b"], command=None, cwd=".", env={}, timeout_s=5.0, stdin=None,
                max_output_bytes=100, exec_id=None,
            )
        )  # fmt: skip
    assert refused.value.status_code == 422
    # The same client goes on working after a refusal.
    result = await client.run("echo", "after a refusal")
    assert result.stdout == "after a refusal\n"
    health = await client.health()
    assert health.status == "ok" and health.uptime_s >= 0
