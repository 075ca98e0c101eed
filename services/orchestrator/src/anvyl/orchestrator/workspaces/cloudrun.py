"""The cloudrun backend: one Cloud Run service per workspace, from the worker image.

The service (cloudrun_spec.py) keeps its files on a GCS volume. Deleting the service keeps them,
so `stop` deletes the service and the next `ensure_running` deploys a fresh one onto the same
files; `remove(purge=True)` also deletes the files' objects. Workers are reached with an ID token
and the worker token (cloudrun_auth.py).

The `google-cloud-run` library (REST transport, blocking calls run in threads, with a timeout on
each call and on each long-running operation) is part of the orchestrator's `cloud` extra.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anvyl.orchestrator.workspaces.base import OwnedWorker, WorkerEndpoint, WorkspaceError
from anvyl.orchestrator.workspaces.cloudrun_auth import (
    CLOUD_EXTRA_HINT,
    CloudExtraMissing,
    CloudRunWorkerClient,
    IDTokenSource,
    run_v2_module,
)
from anvyl.orchestrator.workspaces.cloudrun_spec import (
    CONDITION_FAILED,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_WORKSPACE,
    TOKEN_ENV,
    is_ready,
    labels,
    service_id_for,
    service_spec,
    worker_token,
    workspace_prefix,
)
from anvyl.orchestrator.workspaces.config import BackendContext, CloudRunWorkspaceConfig
from anvyl.orchestrator.workspaces.repos import RepoRef

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import run_v2


class CloudRunBackend:
    name = "cloudrun"

    def __init__(
        self,
        config: CloudRunWorkspaceConfig,
        context: BackendContext,
        *,
        credentials: Credentials | None = None,
    ) -> None:
        where = "(or that key of the config file's `workspace` section)"
        if not config.gcp_project:
            raise WorkspaceError(f"workspace_backend=cloudrun needs ANVYL_GCP_PROJECT {where}")
        if not config.gcs_bucket:
            raise WorkspaceError(f"workspace_backend=cloudrun needs ANVYL_GCS_BUCKET {where}")
        run = run_v2_module()
        self.config = config
        self.context = context
        self.instance = context.instance
        self.project: str = config.gcp_project
        self.region = config.gcp_region
        self.bucket: str = config.gcs_bucket
        self._credentials = credentials
        options: dict[str, Any] = {}
        if config.api_endpoint:
            options["api_endpoint"] = config.api_endpoint
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
        return service_id_for(workspace_id, self.instance)

    def service_name(self, workspace_id: str) -> str:
        return f"{self.parent}/services/{self.service_id(workspace_id)}"

    def labels(self, workspace_id: str) -> dict[str, str]:
        return labels(workspace_id, self.instance)

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

    def service_spec(self, workspace_id: str, token: str) -> run_v2.Service:
        return service_spec(self.config, self.instance, workspace_id, token)

    # Calls ------------------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        timeout = self.config.call_timeout_s
        kwargs.setdefault("timeout", timeout)
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), timeout + 5)
        except TimeoutError as exc:
            raise WorkspaceError(f"Cloud Run {what}: no answer after {timeout:.0f}s") from exc
        except Exception as exc:
            raise _api_error(what, exc) from exc

    async def _wait(self, what: str, operation: Any) -> Any:
        timeout = self.config.operation_timeout_s
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
        if int(condition.state) == CONDITION_FAILED:
            raise WorkspaceError(
                f"Cloud Run service {service.name} failed: {condition.message or condition.reason}"
                f" (fix it, or remove the workspace to deploy it again)"
            )
        if not service.uri:
            raise WorkspaceError(f"Cloud Run service {service.name} has no URL (not ready?)")
        token = worker_token(service)
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
        prefix = workspace_prefix(workspace_id, self.instance) + "/"
        timeout = self.config.call_timeout_s

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
                found = dict(service.labels)
                if (
                    found.get(LABEL_MANAGED) != "true"
                    or found.get(LABEL_INSTANCE) != self.instance
                    or LABEL_WORKSPACE not in found
                ):
                    continue
                result.append(OwnedWorker(found[LABEL_WORKSPACE], service.name, is_ready(service)))
            return result

        return list(await self._call("list services", owned))

    async def close(self) -> None:
        await asyncio.to_thread(self.client.transport.close)


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
