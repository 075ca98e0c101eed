"""What a workspace's Cloud Run service is: its name, labels and service spec (no API calls).

Each service runs the worker with at most one instance (one worker per workspace), IAM-protected
ingress, CPU/memory limits from the config, and its `/workspace` on a GCS volume: the bucket
`gcs_bucket`, directory `workspaces/{instance}/{workspace_id}` (gcsfuse `only-dir`).

The worker token is a plain environment variable of the service (ANVYL_WORKER_TOKEN), not a Secret
Manager reference: the service is only reachable with an ID token of a principal holding
`run.routes.invoke`, so the worker token is a second factor, and the orchestrator reads it back
from the service (`services.get`) to re-adopt workers after a restart, as the docker backend reads
container env. The cost: principals with `run.services.get` on the project can read the token.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from anvyl.orchestrator.workspaces.base import WORKER_PORT, WorkspaceError
from anvyl.orchestrator.workspaces.cloudrun_auth import run_v2_module
from anvyl.orchestrator.workspaces.config import CloudRunWorkspaceConfig

if TYPE_CHECKING:
    from google.cloud import run_v2


LABEL_MANAGED = "anvyl-managed"
LABEL_WORKSPACE = "anvyl-workspace"
LABEL_INSTANCE = "anvyl-instance"
TOKEN_ENV = "ANVYL_WORKER_TOKEN"
WORKSPACE_MOUNT = "/workspace"
VOLUME_NAME = "workspace"
WORKER_UID = 1000  # the worker image's user: files on the GCS volume belong to it
REQUEST_TIMEOUT_S = 3600
_MAX_SERVICE_NAME = 49
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
# google.cloud.run_v2.Condition.State
CONDITION_FAILED = 3
CONDITION_SUCCEEDED = 4


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


def labels(workspace_id: str, instance: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: _label(instance, "instance"),
        LABEL_WORKSPACE: _label(workspace_id, "workspace id"),
    }


def service_spec(
    config: CloudRunWorkspaceConfig, instance: str, workspace_id: str, token: str
) -> run_v2.Service:
    run_v2 = run_v2_module()
    memory = config.memory.strip()
    # Cloud Run wants Kubernetes quantities: 2g -> 2Gi, 512m -> 512Mi.
    if re.fullmatch(r"\d+[gmk]", memory, flags=re.IGNORECASE):
        memory = f"{memory[:-1]}{memory[-1].upper()}i"
    cpu = f"{config.cpus:g}"
    mount_options = [
        f"only-dir={workspace_prefix(workspace_id, instance)}",
        f"uid={WORKER_UID}",
        f"gid={WORKER_UID}",
        "implicit-dirs",
    ]
    ingress = (
        run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
        if config.ingress == "internal"
        else run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
    )
    return run_v2.Service(
        labels=labels(workspace_id, instance),
        ingress=ingress,
        invoker_iam_disabled=False,  # every request needs an ID token with run.routes.invoke
        template=run_v2.RevisionTemplate(
            labels=labels(workspace_id, instance),
            scaling=run_v2.RevisionScaling(min_instance_count=0, max_instance_count=1),
            max_instance_request_concurrency=80,
            # Long commands and clones: Cloud Run's request limit is 60 minutes.
            timeout=timedelta(seconds=REQUEST_TIMEOUT_S),
            service_account=config.service_account or "",
            execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
            containers=[
                run_v2.Container(
                    name="worker",
                    image=config.image,
                    env=[run_v2.EnvVar(name=TOKEN_ENV, value=token)],
                    ports=[run_v2.ContainerPort(name="http1", container_port=WORKER_PORT)],
                    resources=run_v2.ResourceRequirements(limits={"cpu": cpu, "memory": memory}),
                    volume_mounts=[
                        run_v2.VolumeMount(name=VOLUME_NAME, mount_path=WORKSPACE_MOUNT)
                    ],
                )
            ],
            volumes=[
                run_v2.Volume(
                    name=VOLUME_NAME,
                    gcs=run_v2.GCSVolumeSource(
                        bucket=config.gcs_bucket, read_only=False, mount_options=mount_options
                    ),
                )
            ],
        ),
    )


def worker_token(service: Any) -> str | None:
    """The worker token a service was deployed with (its ANVYL_WORKER_TOKEN)."""
    return next(
        (
            env.value
            for container in service.template.containers
            for env in container.env
            if env.name == TOKEN_ENV
        ),
        None,
    )


def is_ready(service: Any) -> bool:
    condition = service.terminal_condition
    return bool(service.uri) and int(condition.state) == CONDITION_SUCCEEDED
