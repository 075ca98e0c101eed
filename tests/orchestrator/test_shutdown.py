"""An orchestrator stops promptly, whatever its runners are doing when it is told to."""

from __future__ import annotations

import asyncio

from tests.orchestrator.conftest import OrchestratorFactory


async def test_it_stops_right_after_a_task_is_queued(
    make_orchestrator: OrchestratorFactory,
) -> None:
    # The enqueue wakes a runner as the shutdown cancels it: on Python 3.11 asyncio.wait_for
    # dropped that cancel and the runner (and so the shutdown) never ended.
    async def queue_then_stop() -> None:
        async with make_orchestrator(workspace_backend="local") as orchestrator:
            answer = await orchestrator.http.post(
                "/orchestrate", json={"query": "ls", "mode": "background"}
            )
            assert answer.status_code == 202, answer.text

    for _ in range(3):
        await asyncio.wait_for(queue_then_stop(), 30)
