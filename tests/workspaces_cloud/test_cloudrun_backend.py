"""Contract tests of the cloudrun backend: the real google-cloud-run client (REST transport)
against a local server speaking the Cloud Run Admin API v2 wire protocol, real workers behind it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials

from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.cloudrun import CloudRunBackend
from anvyl.orchestrator.workspaces.cloudrun_auth import ID_TOKEN_HEADER
from anvyl.orchestrator.workspaces.cloudrun_spec import service_id_for
from anvyl.orchestrator.workspaces.manager import create_backend
from anvyl.orchestrator.workspaces.repos import parse_repo
from anvyl.worker.client import WorkerClient, WorkerError
from anvyl.worker.models import ExecRequest

from .conftest import BUCKET, PROJECT, REGION, WorkerFarm, cloud_backend, cloud_settings
from .fake_cloudrun import FakeGoogleCloud, Fault

REPO = parse_repo("https://example.com/team/widget.git")
PARENT = f"/v2/projects/{PROJECT}/locations/{REGION}/services"


async def test_create_sends_the_service_spec(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    endpoint = await backend.ensure_running(REPO)

    [create] = fake_cloud.admin_requests("POST")
    service_id = backend.service_id(REPO.workspace_id)
    assert create.path == PARENT
    assert create.query["serviceId"] == service_id
    body = create.body
    labels = {
        "anvyl-managed": "true",
        "anvyl-instance": "ci",
        "anvyl-workspace": REPO.workspace_id,
    }
    assert body["labels"] == labels
    assert body["template"]["labels"] == labels
    assert body["ingress"] in (1, "INGRESS_TRAFFIC_ALL")
    template = body["template"]
    assert template["scaling"]["maxInstanceCount"] == 1
    assert template["timeout"] == "3600s"
    assert template["serviceAccount"] == "anvyl-worker@test-project.iam.gserviceaccount.com"
    assert template["executionEnvironment"] in (2, "EXECUTION_ENVIRONMENT_GEN2")
    [container] = template["containers"]
    assert container["image"] == "europe-west1-docker.pkg.dev/test-project/anvyl/agent:1.0"
    [env] = container["env"]
    assert env["name"] == "ANVYL_WORKER_TOKEN"
    assert len(env["value"]) >= 32
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert container["ports"] == [{"name": "http1", "containerPort": 8000}]
    assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace"}]
    [volume] = template["volumes"]
    assert volume["name"] == "workspace"
    assert volume["gcs"]["bucket"] == BUCKET
    assert f"only-dir=workspaces/ci/{REPO.workspace_id}" in volume["gcs"]["mountOptions"]
    assert "uid=1000" in volume["gcs"]["mountOptions"]

    assert endpoint.started
    assert endpoint.workspace_id == REPO.workspace_id
    assert endpoint.base_url == f"{fake_cloud.base_url}/run/{service_id}"
    assert endpoint.token == env["value"]
    assert endpoint.handle == f"projects/{PROJECT}/locations/{REGION}/services/{service_id}"
    # The create operation was polled until done.
    assert any("/operations/" in r.path for r in fake_cloud.admin_requests("GET"))


async def test_get_or_create_is_idempotent(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    first = await backend.ensure_running(REPO)
    second = await backend.ensure_running(REPO)
    assert len(fake_cloud.admin_requests("POST")) == 1
    assert not second.started
    assert (second.base_url, second.token, second.handle) == (
        first.base_url,
        first.token,
        first.handle,
    )
    # A second orchestrator (same settings, new client) adopts the same service and token.
    other = CloudRunBackend(backend.config, backend.context, credentials=AnonymousCredentials())
    try:
        adopted = await other.ensure_running(REPO)
    finally:
        await other.close()
    assert adopted.token == first.token and not adopted.started
    assert len(fake_cloud.admin_requests("POST")) == 1


async def test_create_race_answered_409_adopts_the_existing_service(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    first = await backend.ensure_running(REPO)
    # Make the next GET say NotFound, as if the service appeared between GET and POST.
    fake_cloud.faults.append(Fault("GET", "/services/", 404, "not found (race)"))
    again = await backend.ensure_running(REPO)
    assert again.token == first.token
    assert [r.method for r in fake_cloud.admin_requests()][-3:] == ["GET", "POST", "GET"]


async def test_list_owned_filters_by_label(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud, tmp_path: Path
) -> None:
    repos = [parse_repo(f"https://example.com/team/repo{i}.git") for i in range(3)]
    for repo in repos:
        await backend.ensure_running(repo)
    # Services of another instance and a service not made by anvyl share the project.
    other = cloud_backend(cloud_settings(fake_cloud, tmp_path, instance="other"))
    try:
        await other.ensure_running(repos[0])
    finally:
        await other.close()
    fake_cloud.services[f"projects/{PROJECT}/locations/{REGION}/services/hello"] = {
        "name": f"projects/{PROJECT}/locations/{REGION}/services/hello",
        "labels": {"team": "web"},
        "uri": "https://hello.example",
    }
    owned = await backend.list_owned()
    assert sorted(o.workspace_id for o in owned) == sorted(r.workspace_id for r in repos)
    assert all(o.running for o in owned)
    assert {o.handle for o in owned} == {
        f"projects/{PROJECT}/locations/{REGION}/services/{backend.service_id(r.workspace_id)}"
        for r in repos
    }
    # 5 services and a page size of 2: the pager followed nextPageToken.
    lists = [r for r in fake_cloud.admin_requests("GET") if r.path == PARENT]
    assert len(lists) == 3


async def test_stop_deletes_the_service_and_keeps_files(
    backend: CloudRunBackend,
    fake_cloud: FakeGoogleCloud,
    worker_farm: WorkerFarm,
    service_account_file: Path,
) -> None:
    endpoint = await backend.ensure_running(REPO)
    files = worker_farm.root / f"workspaces/ci/{REPO.workspace_id}"
    async with backend.worker_client(endpoint) as client:
        await client.health()
        result = await client.exec(ExecRequest(command="echo kept > note.txt", timeout_s=10))
        assert result.exit_code == 0
    assert (files / "note.txt").read_text() == "kept\n"

    await backend.stop(REPO.workspace_id)
    assert fake_cloud.services == {}
    assert fake_cloud.admin_requests("DELETE")[-1].path.endswith(
        f"/services/{backend.service_id(REPO.workspace_id)}"
    )
    assert await backend.list_owned() == []
    await backend.stop(REPO.workspace_id)  # stopping a stopped workspace is fine
    # The next ensure_running deploys a new service onto the same files.
    endpoint = await backend.ensure_running(REPO)
    assert endpoint.started
    async with backend.worker_client(endpoint) as client:
        result = await client.exec(ExecRequest(command="cat note.txt", timeout_s=10))
    assert result.stdout == "kept\n"


async def test_remove_deletes_the_service(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    await backend.ensure_running(REPO)
    await backend.remove(REPO.workspace_id, purge=False)
    assert fake_cloud.services == {}
    await backend.remove(REPO.workspace_id, purge=False)  # already gone: no error
    assert len(fake_cloud.admin_requests("DELETE")) == 2


async def test_round_trip_through_the_cloud_run_front_end(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud, service_account_file: Path
) -> None:
    endpoint = await backend.ensure_running(REPO)
    async with backend.worker_client(endpoint) as client:
        health = await client.health()
        assert health.status == "ok"
        result = await client.exec(ExecRequest(argv=["sh", "-c", "echo hello from $PWD"]))
        assert result.exit_code == 0
        assert result.stdout.startswith("hello from ")
    # The ID token was fetched by google-auth from the service account's token endpoint,
    # for the service URL, once (cached).
    assert [t["aud"] for t in fake_cloud.issued_id_tokens] == [endpoint.base_url]
    assert fake_cloud.issued_id_tokens[0]["email"].startswith("orchestrator@")
    assert len(fake_cloud.proxied) == 2

    # Without the ID token, Cloud Run refuses; without the worker token, the worker refuses.
    async with WorkerClient(endpoint.base_url, endpoint.token) as plain:
        with pytest.raises(WorkerError) as refused:
            await plain.health()
    assert refused.value.status_code == 403
    async with httpx.AsyncClient(trust_env=False) as http:
        id_token = backend._id_tokens[endpoint.base_url].token()
        answer = await http.post(
            f"{endpoint.base_url}/exec",
            json={"argv": ["true"]},
            headers={
                ID_TOKEN_HEADER: f"Bearer {id_token}",
                "Authorization": "Bearer wrong-token-123456",
            },
        )
    assert answer.status_code == 401


async def test_missing_id_token_source_is_a_clear_error(
    backend: CloudRunBackend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = await backend.ensure_running(REPO)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    async with backend.worker_client(endpoint) as client:
        with pytest.raises(WorkspaceError, match="cannot get a Google ID token"):
            await client.health()


@pytest.mark.parametrize(
    ("method", "status", "words"),
    [
        ("GET", 403, "HTTP 403 .*Permission 'run.services.get' denied.*credentials"),
        ("GET", 500, "HTTP 500 .*backend exploded.*API failed"),
        ("POST", 403, "HTTP 403 .*Permission 'run.services.create' denied"),
        ("POST", 404, "HTTP 404 .*Location europe-west1 not found"),
        ("POST", 500, "HTTP 500 .*backend exploded"),
    ],
)
async def test_api_errors_are_clear(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud, method: str, status: int, words: str
) -> None:
    messages = {
        ("GET", 403): "Permission 'run.services.get' denied on resource",
        ("POST", 403): "Permission 'run.services.create' denied on resource",
        ("POST", 404): "Location europe-west1 not found",
    }
    message = messages.get((method, status), "backend exploded")
    fake_cloud.faults.append(Fault(method, "/services", status, message, times=10))
    with pytest.raises(WorkspaceError, match=words):
        await backend.ensure_running(REPO)


async def test_delete_conflict_is_a_clear_error(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    await backend.ensure_running(REPO)
    fake_cloud.faults.append(Fault("DELETE", "/services/", 409, "Conflict for resource", times=1))
    with pytest.raises(WorkspaceError, match=r"Cloud Run delete service: HTTP 409 .*conflict"):
        await backend.stop(REPO.workspace_id)
    assert len(fake_cloud.services) == 1


async def test_list_error_is_a_clear_error(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    fake_cloud.faults.append(Fault("GET", "/services", 403, "Permission denied", times=1))
    with pytest.raises(WorkspaceError, match="list services: HTTP 403"):
        await backend.list_owned()


async def test_operation_timeout(fake_cloud: FakeGoogleCloud, tmp_path: Path) -> None:
    fake_cloud.polls_until_done = None  # the deploy never finishes
    slow = cloud_backend(cloud_settings(fake_cloud, tmp_path, cloudrun_operation_timeout_s=2.0))
    started = time.monotonic()
    try:
        with pytest.raises(WorkspaceError, match="did not finish within 2s"):
            await slow.ensure_running(REPO)
    finally:
        await slow.close()
    assert time.monotonic() - started < 15


async def test_failed_operation_is_a_clear_error(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    fake_cloud.faults.append(
        Fault("GET", "/operations/", 500, "Revision failed: container failed to start")
    )
    with pytest.raises(WorkspaceError, match="container failed to start"):
        await backend.ensure_running(REPO)


def test_service_names_follow_cloud_run_rules() -> None:
    long_id = parse_repo("https://example.com/t/" + "x" * 60).workspace_id
    for instance in ("default", "a" * 31, "9lives"):
        for workspace_id in (REPO.workspace_id, long_id, "0abc-1234567890"):
            name = service_id_for(workspace_id, instance)
            assert len(name) <= 49
            assert name[0].isalpha() and name[-1] != "-"
            assert name == name.lower()
    assert service_id_for(long_id, "a" * 31) != service_id_for(long_id + "y", "a" * 31)


def test_create_backend_picks_cloudrun(
    fake_cloud: FakeGoogleCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    with pytest.raises(WorkspaceError, match="no Google credentials"):
        create_backend(cloud_settings(fake_cloud, tmp_path))
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(fake_cloud.service_account_info()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    backend = create_backend(cloud_settings(fake_cloud, tmp_path))
    assert isinstance(backend, CloudRunBackend) and backend.name == "cloudrun"
    backend.client.transport.close()
    with pytest.raises(WorkspaceError, match="ANVYL_GCS_BUCKET"):
        cloud_backend(cloud_settings(fake_cloud, tmp_path, gcs_bucket=None), credentials=None)


def test_local_repositories_are_refused(backend: CloudRunBackend, tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    with pytest.raises(WorkspaceError, match="only reaches remote git URLs"):
        backend.clone_url(parse_repo(str(tmp_path / "repo")))


async def test_failed_service_is_a_clear_error_and_not_ready(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud
) -> None:
    await backend.ensure_running(REPO)
    [service] = fake_cloud.services.values()
    service["terminalCondition"] = {
        "type": "Ready",
        "state": "CONDITION_FAILED",
        "message": "Image 'europe-west1-docker.pkg.dev/test-project/anvyl/agent:1.0' not found.",
    }
    with pytest.raises(WorkspaceError, match=r"failed: Image .* not found"):
        await backend.ensure_running(REPO)
    [owned] = await backend.list_owned()
    assert not owned.running


async def test_remove_with_purge_deletes_the_workspace_files(
    backend: CloudRunBackend, fake_cloud: FakeGoogleCloud, gcs_emulator: str
) -> None:
    from google.cloud import storage

    await backend.ensure_running(REPO)
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
    bucket = client.bucket(BUCKET)
    mine = [f"workspaces/ci/{REPO.workspace_id}/{n}" for n in ("a.txt", "src/b.py", ".git/HEAD")]
    others = [
        f"workspaces/ci/{REPO.workspace_id}x/a.txt",  # a prefix of another workspace id
        f"workspaces/other/{REPO.workspace_id}/a.txt",  # another instance
        f"snapshots/{REPO.workspace_id}/latest",
    ]
    for name in mine + others:
        bucket.blob(name).upload_from_string(b"data")
    try:
        await backend.remove(REPO.workspace_id, purge=True)
        left = sorted(b.name for b in client.list_blobs(BUCKET))
    finally:
        client.close()
    assert left == sorted(others)
    assert fake_cloud.services == {}
