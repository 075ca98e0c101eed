"""Fixtures: a fake Google Cloud (Cloud Run Admin API, token endpoint, Cloud Run front end) on
loopback with real workers behind it, and a GCS emulator; everything torn down after each test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from google.auth.credentials import AnonymousCredentials, Credentials

from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.workspaces.cloudrun import CloudRunBackend
from anvyl.orchestrator.workspaces.config import BackendContext, CloudRunWorkspaceConfig
from anvyl.worker.app import WorkerConfig, create_app
from tests.orchestrator.conftest import make_orchestrator  # noqa: F401 (an orchestrator per test)

from .fake_cloudrun import FakeGoogleCloud, free_port

PROJECT = "test-project"
REGION = "europe-west1"
BUCKET = "anvyl-test-bucket"


class WorkerFarm:
    """Runs a real worker (anvyl.worker.app) per deployed service, its files in a local dir
    standing in for the GCS volume's `only-dir`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[str, tuple[uvicorn.Server, threading.Thread]] = {}

    def deploy(self, service: dict[str, Any]) -> str:
        container = service["template"]["containers"][0]
        token = next(e["value"] for e in container["env"] if e["name"] == "ANVYL_WORKER_TOKEN")
        options = service["template"]["volumes"][0]["gcs"]["mountOptions"]
        only_dir = next(o.split("=", 1)[1] for o in options if o.startswith("only-dir="))
        workspace = self.root / only_dir
        port = free_port()
        app = create_app(WorkerConfig(workspace=workspace, token=token))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not start")
            time.sleep(0.01)
        self.running[service["name"]] = (server, thread)
        return f"http://127.0.0.1:{port}"

    def undeploy(self, name: str) -> None:
        entry = self.running.pop(name, None)
        if entry is not None:
            entry[0].should_exit = True
            entry[1].join(timeout=10)

    def close(self) -> None:
        for name in list(self.running):
            self.undeploy(name)


@pytest.fixture
def worker_farm(tmp_path: Path) -> Iterator[WorkerFarm]:
    farm = WorkerFarm(tmp_path / "bucket")
    yield farm
    farm.close()


@pytest.fixture
def fake_cloud(worker_farm: WorkerFarm) -> Iterator[FakeGoogleCloud]:
    fake = FakeGoogleCloud(deploy=worker_farm.deploy, undeploy=worker_farm.undeploy)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def service_account_file(
    fake_cloud: FakeGoogleCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A service-account key whose token endpoint is the fake: google-auth fetches ID tokens
    from it exactly as from oauth2.googleapis.com."""
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(fake_cloud.service_account_info()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


def cloud_settings(fake: FakeGoogleCloud, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        workspace_backend="cloudrun",
        gcp_project=PROJECT,
        gcp_region=REGION,
        gcs_bucket=BUCKET,
        cloudrun_api_endpoint=fake.base_url,
        agent_image="europe-west1-docker.pkg.dev/test-project/anvyl/agent:1.0",
        workspace_cpus=1.0,
        workspace_memory="512m",
        cloudrun_operation_timeout_s=20.0,
        cloud_call_timeout_s=10.0,
        instance="ci",
        cloudrun_service_account="anvyl-worker@test-project.iam.gserviceaccount.com",
    )
    values.update(overrides)
    return Settings(**values)


def cloud_backend(
    settings: Settings, credentials: Credentials | None = AnonymousCredentials()
) -> CloudRunBackend:
    """The cloudrun backend of these settings (anonymous: the fake Cloud Run checks no token)."""
    assert isinstance(settings.workspace, CloudRunWorkspaceConfig)
    context = BackendContext(settings.instance, settings.data_dir)
    return CloudRunBackend(settings.workspace, context, credentials=credentials)


@pytest.fixture
async def backend(fake_cloud: FakeGoogleCloud, tmp_path: Path) -> Any:
    backend = cloud_backend(cloud_settings(fake_cloud, tmp_path))
    try:
        yield backend
    finally:
        await backend.close()


# GCS emulator ---------------------------------------------------------------------------------


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """gcp-storage-emulator in this process on a free loopback port, with an empty bucket."""
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        host = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
        client.create_bucket(BUCKET)
        client.close()
        yield host
    finally:
        server.stop()
