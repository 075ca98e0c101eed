"""Fixtures for the cluster tests: a local Proxmox API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clusters.fake_pve import TOKEN_ID, TOKEN_SECRET, FakePve
from tests.mcp_hub.conftest import serve_app


@pytest.fixture
def fake_pve() -> Iterator[tuple[FakePve, str]]:
    """The fake Proxmox and its URL (https://host:port form, without /api2/json)."""
    pve = FakePve()
    with serve_app(pve.app) as server:
        yield pve, f"http://127.0.0.1:{server.port}"


@pytest.fixture
def pve_env(fake_pve: tuple[FakePve, str]) -> dict[str, str]:
    return {
        "PROXMOX_API_URL": fake_pve[1] + "/api2/json",
        "PROXMOX_API_TOKEN_ID": TOKEN_ID,
        "PROXMOX_API_TOKEN_SECRET": TOKEN_SECRET,
    }
