"""The cloudrun backend: one Cloud Run service per workspace, from the agent image.

Each service runs the worker with at most one instance (one worker per workspace), IAM-protected
ingress, CPU/memory limits from the settings, and its `/workspace` on a GCS volume: the bucket
`gcs_bucket`, directory `workspaces/{instance}/{workspace_id}` (gcsfuse `only-dir`). Deleting the
service keeps that directory, so `stop` deletes the service and the next `ensure_running` deploys
a fresh one onto the same files; `remove(purge=True)` also deletes the directory's objects.

The worker token is a plain environment variable of the service (ANVYL_WORKER_TOKEN), not a Secret
Manager reference: the service is only reachable with an ID token of a principal holding
`run.routes.invoke`, so the worker token is a second factor, and the orchestrator reads it back
from the service (`services.get`) to re-adopt workers after a restart, as the docker backend reads
container env. The cost: principals with `run.services.get` on the project can read the token.

Requests to a worker carry two credentials: a Google ID token whose audience is the service URL in
`X-Serverless-Authorization` (Cloud Run checks it, strips its signature and forwards the request),
and the worker token in `Authorization: Bearer`, which Cloud Run passes through untouched when
`X-Serverless-Authorization` is present; the worker needs no change.

The `google-cloud-run` library (REST transport, blocking calls run in threads, with a timeout on
each call and on each long-running operation) is part of the orchestrator's `cloud` extra.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.workspaces.base import (
    WORKER_PORT,
    OwnedWorker,
    WorkerEndpoint,
    WorkspaceError,
)
from anvyl.orchestrator.workspaces.repos import RepoRef
from anvyl.worker.client import WorkerClient

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import run_v2

LABEL_MANAGED = "anvyl-managed"
LABEL_WORKSPACE = "anvyl-workspace"
LABEL_INSTANCE = "anvyl-instance"
TOKEN_ENV = "ANVYL_WORKER_TOKEN"
WORKSPACE_MOUNT = "/workspace"
VOLUME_NAME = "workspace"
WORKER_UID = 1000  # the agent image's user: files on the GCS volume belong to it
ID_TOKEN_HEADER = "X-Serverless-Authorization"
REQUEST_TIMEOUT_S = 3600
_MAX_SERVICE_NAME = 49
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_ID_TOKEN_REFRESH_MARGIN_S = 300.0

CLOUD_EXTRA_HINT = (
    "the cloudrun backend and GCS snapshots need the orchestrator's `cloud` extra: "
    "pip install 'anvyl-orchestrator[cloud]' (or uv sync --all-extras)"
)


class CloudExtraMissing(WorkspaceError):
    """google-cloud-run / google-cloud-storage is not installed."""


def _run_v2() -> Any:
    try:
        from google.cloud import run_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CloudExtraMissing(CLOUD_EXTRA_HINT) from exc
    return run_v2


def service_id_for(workspace_id: str, instance: str) -> str:
    """A Cloud Run service name: lowercase, starts with a letter, at most 49 characters.

    Long names keep a readable head and end with a hash of the full name, so they stay unique.
    """
    base = f"anvyl-{workspace_id}" if instance == "default" else f"anvyl-{instance}-{workspace_id}"
    base = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")
    if len(base) <= _MAX_SERVICE_NAME:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    return f"{base[: _MAX_SERVICE_NAME - 11].rstrip('-')}-{digest}"


def workspace_prefix(workspace_id: str, instance: str) -> str:
    """The bucket directory holding a workspace's files (no trailing slash)."""
    return f"workspaces/{instance}/{workspace_id}"


def _label(value: str, what: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise WorkspaceError(f"{what} {value!r} is not a valid Cloud Run label value")
    return value


# ID tokens ------------------------------------------------------------------------------------


class IDTokenSource:
    """Google ID tokens for one audience (the service URL), cached until shortly before expiry.

    Uses google-auth's `fetch_id_token`: a service-account key file named by
    GOOGLE_APPLICATION_CREDENTIALS, or the metadata server on Google Cloud (Cloud Run, GCE, GKE).
    """

    def __init__(self, audience: str, timeout_s: float = 30.0) -> None:
        self.audience = audience
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._expiry = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expiry - _ID_TOKEN_REFRESH_MARGIN_S:
                self._token, self._expiry = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        try:
            import google.auth.exceptions
            import google.auth.transport.requests
            from google.auth import jwt
            from google.oauth2 import id_token
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CloudExtraMissing(CLOUD_EXTRA_HINT) from exc
        request = google.auth.transport.requests.Request()
        try:
            token = id_token.fetch_id_token(request, self.audience)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise WorkspaceError(
                f"cannot get a Google ID token for {self.audience}: {exc} (set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or run on Google Cloud)"
            ) from exc
        claims = jwt.decode(token, verify=False)
        return token, float(claims.get("exp", time.time() + 600))


class CloudRunWorkerClient(WorkerClient):
    """A WorkerClient whose requests also carry a Google ID token for the Cloud Run service.

    The worker token stays `Authorization: Bearer ...` (set by WorkerClient); Cloud Run reads the
    ID token from X-Serverless-Authorization.
    """

    def __init__(
        self, base_url: str, token: str, *, id_tokens: IDTokenSource | None = None
    ) -> None:
        source = id_tokens or IDTokenSource(base_url.rstrip("/"))

        async def id_token_header() -> dict[str, str]:
            # google-auth is synchronous (a token fetch is an HTTP call): off the event loop.
            return {ID_TOKEN_HEADER: f"Bearer {await asyncio.to_thread(source.token)}"}

        super().__init__(base_url, token, extra_headers=id_token_header)


# The backend ----------------------------------------------------------------------------------


class CloudRunBackend:
    name = "cloudrun"

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials | None = None,
    ) -> None:
        if not settings.gcp_project:
            raise WorkspaceError("workspace_backend=cloudrun needs ANVYL_GCP_PROJECT")
        if not settings.gcs_bucket:
            raise WorkspaceError("workspace_backend=cloudrun needs ANVYL_GCS_BUCKET")
        run = _run_v2()
        self.settings = settings
        self.project = settings.gcp_project
        self.region = settings.gcp_region
        self.bucket = settings.gcs_bucket
        self._credentials = credentials
        options: dict[str, Any] = {}
        if settings.cloudrun_api_endpoint:
            options["api_endpoint"] = settings.cloudrun_api_endpoint
        import google.auth.exceptions

        try:
            self.client: run_v2.ServicesClient = run.ServicesClient(
                credentials=credentials, transport="rest", client_options=options or None
            )
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise WorkspaceError(
                f"the cloudrun backend found no Google credentials: {exc} (set "
                "GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`)"
            ) from exc
        self._id_tokens: dict[str, IDTokenSource] = {}

    # Names ------------------------------------------------------------------------------------

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def service_id(self, workspace_id: str) -> str:
        return service_id_for(workspace_id, self.settings.instance)

    def service_name(self, workspace_id: str) -> str:
        return f"{self.parent}/services/{self.service_id(workspace_id)}"

    def labels(self, workspace_id: str) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: _label(self.settings.instance, "instance"),
            LABEL_WORKSPACE: _label(workspace_id, "workspace id"),
        }

    def clone_url(self, repo: RepoRef) -> str:
        if repo.local_path is not None:
            raise WorkspaceError(
                f"the cloudrun backend cannot clone the local repository {repo.display_url}: "
                "a Cloud Run worker only reaches remote git URLs"
            )
        return repo.url

    def worker_client(self, endpoint: WorkerEndpoint) -> CloudRunWorkerClient:
        """The client for a worker of this backend: worker token plus an ID token."""
        source = self._id_tokens.setdefault(endpoint.base_url, IDTokenSource(endpoint.base_url))
        return CloudRunWorkerClient(endpoint.base_url, endpoint.token, id_tokens=source)

    # The service spec -------------------------------------------------------------------------

    def service_spec(self, workspace_id: str, token: str) -> run_v2.Service:
        run_v2 = _run_v2()
        settings = self.settings
        memory = settings.workspace_memory.strip()
        # Cloud Run wants Kubernetes quantities: 2g -> 2Gi, 512m -> 512Mi.
        if re.fullmatch(r"\d+[gmk]", memory, flags=re.IGNORECASE):
            memory = f"{memory[:-1]}{memory[-1].upper()}i"
        cpu = f"{settings.workspace_cpus:g}"
        mount_options = [
            f"only-dir={workspace_prefix(workspace_id, settings.instance)}",
            f"uid={WORKER_UID}",
            f"gid={WORKER_UID}",
            "implicit-dirs",
        ]
        ingress = (
            run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
            if settings.cloudrun_ingress == "internal"
            else run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
        )
        return run_v2.Service(
            labels=self.labels(workspace_id),
            ingress=ingress,
            invoker_iam_disabled=False,  # every request needs an ID token with run.routes.invoke
            template=run_v2.RevisionTemplate(
                labels=self.labels(workspace_id),
                scaling=run_v2.RevisionScaling(min_instance_count=0, max_instance_count=1),
                max_instance_request_concurrency=80,
                # Long commands and clones: Cloud Run's request limit is 60 minutes.
                timeout=timedelta(seconds=REQUEST_TIMEOUT_S),
                service_account=settings.cloudrun_service_account or "",
                execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
                containers=[
                    run_v2.Container(
                        name="worker",
                        image=settings.agent_image,
                        env=[run_v2.EnvVar(name=TOKEN_ENV, value=token)],
                        ports=[run_v2.ContainerPort(name="http1", container_port=WORKER_PORT)],
                        resources=run_v2.ResourceRequirements(
                            limits={"cpu": cpu, "memory": memory}
                        ),
                        volume_mounts=[
                            run_v2.VolumeMount(name=VOLUME_NAME, mount_path=WORKSPACE_MOUNT)
                        ],
                    )
                ],
                volumes=[
                    run_v2.Volume(
                        name=VOLUME_NAME,
                        gcs=run_v2.GCSVolumeSource(
                            bucket=self.bucket, read_only=False, mount_options=mount_options
                        ),
                    )
                ],
            ),
        )

    # Calls ------------------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        timeout = self.settings.cloud_call_timeout_s
        kwargs.setdefault("timeout", timeout)
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), timeout + 5)
        except TimeoutError as exc:
            raise WorkspaceError(f"Cloud Run {what}: no answer after {timeout:.0f}s") from exc
        except Exception as exc:
            raise _api_error(what, exc) from exc

    async def _wait(self, what: str, operation: Any) -> Any:
        timeout = self.settings.cloudrun_operation_timeout_s
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(operation.result, timeout=timeout), timeout + 5
            )
        except (TimeoutError, _concurrent_timeout()) as exc:
            raise WorkspaceError(
                f"Cloud Run {what}: the operation did not finish within {timeout:.0f}s"
            ) from exc
        except Exception as exc:
            raise _api_error(what, exc) from exc

    async def _get(self, workspace_id: str) -> run_v2.Service | None:
        from google.api_core import exceptions

        try:
            return await self._call(
                "get service", self.client.get_service, name=self.service_name(workspace_id)
            )
        except WorkspaceError as exc:
            if isinstance(exc.__cause__, exceptions.NotFound):
                return None
            raise

    # Lifecycle --------------------------------------------------------------------------------

    async def ensure_running(self, repo: RepoRef) -> WorkerEndpoint:
        from google.api_core import exceptions

        workspace_id = repo.workspace_id
        started = False
        service = await self._get(workspace_id)
        if service is None:
            spec = self.service_spec(workspace_id, secrets.token_urlsafe(32))
            try:
                operation = await self._call(
                    "create service",
                    self.client.create_service,
                    parent=self.parent,
                    service=spec,
                    service_id=self.service_id(workspace_id),
                )
                service = await self._wait("create service", operation)
                started = True
            except WorkspaceError as exc:
                if not isinstance(exc.__cause__, exceptions.Conflict):  # 409 (ALREADY_EXISTS)
                    raise
                service = await self._get(workspace_id)  # created meanwhile by another caller
                if service is None:
                    raise
        return self._endpoint(workspace_id, service, started)

    def _endpoint(
        self, workspace_id: str, service: run_v2.Service, started: bool
    ) -> WorkerEndpoint:
        condition = service.terminal_condition
        if int(condition.state) == _CONDITION_FAILED:
            raise WorkspaceError(
                f"Cloud Run service {service.name} failed: {condition.message or condition.reason}"
                f" (fix it, or remove the workspace to deploy it again)"
            )
        if not service.uri:
            raise WorkspaceError(f"Cloud Run service {service.name} has no URL (not ready?)")
        token = next(
            (
                env.value
                for container in service.template.containers
                for env in container.env
                if env.name == TOKEN_ENV
            ),
            None,
        )
        if not token:
            raise WorkspaceError(f"Cloud Run service {service.name} has no {TOKEN_ENV}")
        return WorkerEndpoint(
            workspace_id=workspace_id,
            base_url=service.uri,
            token=token,
            handle=service.name,
            started=started,
        )

    async def logs(self, workspace_id: str, lines: int = 50) -> str:
        # Worker logs go to Cloud Logging; point there instead of pulling them.
        return (
            f"logs of {self.service_id(workspace_id)} are in Cloud Logging: gcloud run services "
            f"logs read {self.service_id(workspace_id)} --region {self.region} "
            f"--project {self.project} --limit {lines}"
        )

    async def stop(self, workspace_id: str) -> None:
        """Delete the service; the workspace's files stay in the bucket."""
        await self._delete(workspace_id)

    async def _delete(self, workspace_id: str) -> None:
        from google.api_core import exceptions

        try:
            operation = await self._call(
                "delete service", self.client.delete_service, name=self.service_name(workspace_id)
            )
        except WorkspaceError as exc:
            if isinstance(exc.__cause__, exceptions.NotFound):
                return
            raise
        await self._wait("delete service", operation)

    async def remove(self, workspace_id: str, *, purge: bool) -> None:
        await self._delete(workspace_id)
        if purge:
            await self._purge_files(workspace_id)

    async def _purge_files(self, workspace_id: str) -> None:
        try:
            import google.cloud.storage as storage
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CloudExtraMissing(CLOUD_EXTRA_HINT) from exc
        prefix = workspace_prefix(workspace_id, self.settings.instance) + "/"
        timeout = self.settings.cloud_call_timeout_s

        def purge() -> None:
            client = storage.Client(project=self.project, credentials=self._credentials)
            try:
                bucket = client.bucket(self.bucket)
                for blob in client.list_blobs(bucket, prefix=prefix, timeout=timeout):
                    blob.delete(timeout=timeout)
            finally:
                client.close()

        try:
            await asyncio.wait_for(asyncio.to_thread(purge), timeout * 10)
        except TimeoutError as exc:
            raise WorkspaceError(f"deleting gs://{self.bucket}/{prefix} timed out") from exc
        except Exception as exc:
            raise WorkspaceError(f"cannot delete gs://{self.bucket}/{prefix}: {exc}") from exc

    async def list_owned(self) -> list[OwnedWorker]:
        def owned(timeout: float) -> list[OwnedWorker]:
            # ListServices has no label filter: filter here.
            result = []
            pager = self.client.list_services(parent=self.parent, timeout=timeout)
            for service in pager:
                labels = dict(service.labels)
                if (
                    labels.get(LABEL_MANAGED) != "true"
                    or labels.get(LABEL_INSTANCE) != self.settings.instance
                    or LABEL_WORKSPACE not in labels
                ):
                    continue
                result.append(
                    OwnedWorker(labels[LABEL_WORKSPACE], service.name, _is_ready(service))
                )
            return result

        return list(await self._call("list services", owned))

    async def close(self) -> None:
        await asyncio.to_thread(self.client.transport.close)


# google.cloud.run_v2.Condition.State
_CONDITION_FAILED = 3
_CONDITION_SUCCEEDED = 4


def _is_ready(service: Any) -> bool:
    condition = service.terminal_condition
    return bool(service.uri) and int(condition.state) == _CONDITION_SUCCEEDED


def _concurrent_timeout() -> type[BaseException]:
    import concurrent.futures

    return concurrent.futures.TimeoutError


def _api_error(what: str, exc: BaseException) -> WorkspaceError:
    """A WorkspaceError that says what the Cloud Run API answered (its cause is kept)."""
    try:
        from google.api_core import exceptions
    except ImportError:  # pragma: no cover
        return WorkspaceError(f"Cloud Run {what}: {exc}")
    if isinstance(
        exc,
        exceptions.PermissionDenied
        | exceptions.Unauthenticated
        | exceptions.Forbidden
        | exceptions.Unauthorized,
    ):
        hint = "check the orchestrator's credentials and its roles (roles/run.admin, iam.serviceAccountUser)"
    elif isinstance(exc, exceptions.NotFound):
        hint = "not found (project, region or service)"
    elif isinstance(exc, exceptions.AlreadyExists | exceptions.Conflict):
        hint = "conflict: it exists already or is being changed"
    elif isinstance(exc, exceptions.GoogleAPICallError):
        hint = "the Cloud Run API failed"
    else:
        hint = "unexpected error"
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    status = f"HTTP {int(code)} " if isinstance(code, int) else ""
    return WorkspaceError(f"Cloud Run {what}: {status}{message} ({hint})")
