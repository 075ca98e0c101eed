"""The OpenAPI document is the contract: schemathesis, with every check, against every route of a
real orchestrator (uvicorn on loopback, its real lifespan, SQLite, the local workspace backend)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.api.schemas import TaskStatus
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.store import ALL_STATES
from tests.helpers import free_port
from tests.mcp_hub.conftest import BackgroundServer

PORT = free_port()
# Every check, valid and invalid requests, the boundary values of every field (coverage phase).
# Whether a repository exists, or a path is in it, is only known when the request arrives: for
# POST /orchestrate a 422 is a correct answer to a request the schema allows (it names the field).
CONFIG = schemathesis.Config.from_dict(
    {
        "base-url": f"http://127.0.0.1:{PORT}",
        "request-timeout": 30,
        "generation": {"mode": "all"},
        "phases": {"coverage": {"enabled": True}},
        "operations": [
            {
                "include-path": "/orchestrate",
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "404", "409", "422"]
                    }
                },
            },
            # An agent's repository, its provider's address and whether its worker starts are
            # only known when the request arrives (422, 503), like a name taken meanwhile (409).
            {
                "include-tag": "agents",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "404", "409", "422", "503"]
                    }
                },
            },
            # Which model endpoints and agents exist is only known when the request arrives: an
            # unknown default_model or default_agent is a 422 naming the field.
            {
                "include-tag": "settings",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "422"]}
                },
            },
            # A2A's JSON-RPC answers a call it cannot take (not JSON, no method, bad params) with a
            # JSON-RPC error in a 200, as the A2A specification says; test_a2a_server.py checks
            # the error codes.
            {
                "include-path": "/a2a",
                "checks": {"negative_data_rejection": {"expected-statuses": ["200", "401"]}},
            },
        ],
    }
)


def orchestrator_app(data: Path) -> FastAPI:
    return create_app(
        Settings(
            data_dir=data,
            database_url=f"sqlite+aiosqlite:///{data / 'anvyl.db'}",
            workspace_backend="local",
            instance=f"t{secrets.token_hex(4)}",
            log_format="json",
        )
    )


# The document every orchestrator serves at /openapi.json (the first test checks it is the same).
DOCUMENT = orchestrator_app(Path("/nonexistent")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def orchestrator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = orchestrator_app(tmp_path_factory.mktemp("contract"))
    server = BackgroundServer(app, PORT, lifespan="on")
    server.start()
    try:
        yield f"http://127.0.0.1:{PORT}"
    finally:
        server.stop()


def test_the_served_document_is_the_one_tested(orchestrator_url: str) -> None:
    assert httpx.get(f"{orchestrator_url}/openapi.json", timeout=10).json() == DOCUMENT


def test_the_documented_task_states_are_the_stores() -> None:
    assert get_args(TaskStatus) == ALL_STATES


# In CI the examples are derived from the test's name (derandomize), so a run there is repeatable;
# on a developer's machine each run tries new ones (ANVYL_CONTRACT_RANDOM=1 in CI as well).
_DERANDOMIZE = os.environ.get("CI") == "true" and not os.environ.get("ANVYL_CONTRACT_RANDOM")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=_DERANDOMIZE)  # fmt: skip
def test_every_route_answers_as_its_openapi_document_says(
    case: schemathesis.Case, orchestrator_url: str
) -> None:
    case.call_and_validate(base_url=orchestrator_url)


def test_sequences_of_calls_that_follow_the_links_keep_the_contract(orchestrator_url: str) -> None:
    """Stateful: a created task is then read, streamed, cancelled, approved... by its real id.

    Without the agent routes: an agent's id is the name the client chose, so hypothesis's replay of
    a sequence meets the agent its first run made (409, not 201) and its links find nothing; the
    agents' sequences are specified in test_agents.py (every route alone is still checked above)."""
    schema.exclude(tag="agents").as_state_machine().run(
        settings=settings(
            max_examples=40, stateful_step_count=4, deadline=None,
            suppress_health_check=list(HealthCheck), derandomize=_DERANDOMIZE,
        )
    )  # fmt: skip
