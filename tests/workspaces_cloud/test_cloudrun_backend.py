from __future__ import annotations

import pytest
from anvyl.agent.models import ExecRequest
from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.cloudrun_backend import CloudRunBackend
from anvyl.orchestrator.workspaces.repos import parse_repo

from .fake_cloudrun import FakeGoogleCloud

REPO = parse_repo("https://example.com/team/widget.git")


async def test_create_sends_the_service_spec(backend: CloudRunBackend, fake_cloud: FakeGoogleCloud) -> None:
    endpoint = await backend.ensure_running(REPO)
    posts = fake_cloud.admin_requests("POST")
    assert len(posts) == 1
    print(posts[0].path, posts[0].query, posts[0].body)
    assert endpoint.started
