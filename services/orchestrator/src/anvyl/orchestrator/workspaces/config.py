"""Workspace backends as configuration: one config class per backend, a union discriminated on
`type` (registry.py builds the backend a config describes). Plain data: it imports no backend.

Adding a backend (Kubernetes, say) is its module, one class here added to `WorkspaceConfig`, and
one row in registry.py.
Each field that has a documented environment variable names it (`_env`); the settings fold those
flat spellings (ANVYL_GCP_PROJECT, or `gcp_project` as a keyword or a top-level key of the config
file) into the `workspace` section, so one environment can serve every backend.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "ANVYL_"


def _env(name: str) -> dict[str, Any]:
    """Marks a field as also set by the flat variable ANVYL_{name} (or the flat key `name`)."""
    return {"env": f"{ENV_PREFIX}{name.upper()}"}


@dataclass(frozen=True)
class BackendContext:
    """What every backend gets from the orchestrator besides its own config."""

    instance: str  # label separating the containers/services of two orchestrators
    data_dir: Path  # the orchestrator's data directory


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ContainerFields(_Section):
    image: str = Field(default="anvyl/agent:dev", json_schema_extra=_env("agent_image"))
    cpus: float = Field(default=2.0, gt=0, json_schema_extra=_env("workspace_cpus"))
    memory: str = Field(default="2g", json_schema_extra=_env("workspace_memory"))


class _SnapshotFields(_Section):
    """GCS snapshots of the workspaces (docker and local backends); off without a bucket."""

    gcs_bucket: str | None = Field(
        default=None, description="bucket of the snapshots", json_schema_extra=_env("gcs_bucket")
    )
    gcp_project: str | None = Field(default=None, json_schema_extra=_env("gcp_project"))
    call_timeout_s: float = Field(
        default=60.0, gt=0, description="timeout of one GCS call",
        json_schema_extra=_env("cloud_call_timeout_s"),
    )  # fmt: skip


class _DockerFields(_ContainerFields):
    docker_url: str | None = Field(
        default=None, description="Docker daemon URL; default: env", json_schema_extra=_env("docker_url")
    )  # fmt: skip
    pids: int = Field(default=512, gt=0, json_schema_extra=_env("workspace_pids"))
    network: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="for an orchestrator in a container (compose): workers join this Docker "
        "network and are reached by container name; default: a port on 127.0.0.1",
        json_schema_extra=_env("docker_network"),
    )  # fmt: skip


class _LocalFields(_Section):
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        default="auto", description="run workers inside bubblewrap when available",
        json_schema_extra=_env("workspace_sandbox"),
    )  # fmt: skip


_TYPE = _env("workspace_backend")


class DockerWorkspaceConfig(_DockerFields, _SnapshotFields):
    """One labelled, limited container per workspace, with its own volume."""

    type: Literal["docker"] = Field(default="docker", json_schema_extra=_TYPE)


class LocalWorkspaceConfig(_LocalFields, _SnapshotFields):
    """A worker subprocess per workspace, its files in the data directory."""

    type: Literal["local"] = Field(default="local", json_schema_extra=_TYPE)


class AutoWorkspaceConfig(_DockerFields, _LocalFields, _SnapshotFields):
    """docker when a daemon answers, else local (each reads its own fields)."""

    type: Literal["auto"] = Field(default="auto", json_schema_extra=_TYPE)

    def candidates(self) -> tuple[DockerWorkspaceConfig, LocalWorkspaceConfig]:
        """The docker config to use when a daemon answers, and the local one otherwise."""
        return (DockerWorkspaceConfig(**self._fields_of(DockerWorkspaceConfig)),
                LocalWorkspaceConfig(**self._fields_of(LocalWorkspaceConfig)))  # fmt: skip

    def _fields_of(self, other: builtins.type[_Section]) -> dict[str, Any]:
        return {k: v for k, v in self if k in other.model_fields and k != "type"}


class CloudRunWorkspaceConfig(_ContainerFields):
    """One Cloud Run service per workspace, its files on a GCS volume (the `cloud` extra)."""

    type: Literal["cloudrun"] = Field(default="cloudrun", json_schema_extra=_TYPE)
    gcp_project: str | None = Field(
        default=None, description="project of the Cloud Run services",
        json_schema_extra=_env("gcp_project"),
    )  # fmt: skip
    gcp_region: str = Field(
        default="us-central1", description="region of the Cloud Run services",
        json_schema_extra=_env("gcp_region"),
    )  # fmt: skip
    gcs_bucket: str | None = Field(
        default=None, description="bucket holding the workspaces' files (GCS volume)",
        json_schema_extra=_env("gcs_bucket"),
    )  # fmt: skip
    api_endpoint: str | None = Field(
        default=None, description="Cloud Run Admin API endpoint; default: run.googleapis.com",
        json_schema_extra=_env("cloudrun_api_endpoint"),
    )  # fmt: skip
    ingress: Literal["all", "internal"] = Field(
        default="all", description="ingress of worker services; both require IAM (ID token)",
        json_schema_extra=_env("cloudrun_ingress"),
    )  # fmt: skip
    service_account: str | None = Field(
        default=None,
        description="runtime identity of worker services: a dedicated account with access to "
        "gcs_bucket only (default: the project's compute account, usually far too powerful)",
        json_schema_extra=_env("cloudrun_service_account"),
    )
    operation_timeout_s: float = Field(
        default=300.0, gt=0, description="how long to wait for a Cloud Run deploy or delete",
        json_schema_extra=_env("cloudrun_operation_timeout_s"),
    )  # fmt: skip
    call_timeout_s: float = Field(
        default=60.0, gt=0, description="timeout of one Cloud Run or GCS API call",
        json_schema_extra=_env("cloud_call_timeout_s"),
    )  # fmt: skip


AnyWorkspaceConfig = (
    AutoWorkspaceConfig | DockerWorkspaceConfig | LocalWorkspaceConfig | CloudRunWorkspaceConfig
)
WorkspaceConfig = Annotated[AnyWorkspaceConfig, Field(discriminator="type")]
CONFIGS: dict[str, type[AnyWorkspaceConfig]] = {
    cls.model_fields["type"].default: cls for cls in get_args(AnyWorkspaceConfig)
}


# The flat spellings ---------------------------------------------------------------------------


def flat_keys() -> dict[str, str]:
    """Each documented flat key (`gcp_project`; ANVYL_GCP_PROJECT in the environment) and the
    section key it sets (`gcp_project`; `workspace_cpus` sets `cpus`)."""
    found: dict[str, str] = {}
    for cls in CONFIGS.values():
        for key, field in cls.model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("env"), str):
                found[str(extra["env"]).removeprefix(ENV_PREFIX).lower()] = key
    return found


def fold_flat_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Settings input with its flat workspace keys moved into the `workspace` section.

    The flat keys win over the section (they come from the environment, keywords, or the top of
    the config file). Flat keys another backend uses are dropped (an environment may serve
    several backends), and so are those of a section whose `type` a flat key overrides; unknown
    keys in the section are refused.
    """
    keys = flat_keys()
    section = data.get("workspace") or {}
    if isinstance(section, BaseModel):
        section = section.model_dump(exclude_unset=True)
    if not isinstance(section, dict):
        raise ValueError("workspace: expected a mapping such as {type: docker, cpus: 2}")
    flat = {keys[name]: data.pop(name) for name in list(data) if name in keys}
    kind = str(flat.get("type", section.get("type", "auto")))
    config = CONFIGS.get(kind)
    if config is None:
        raise ValueError(
            f"workspace_backend (ANVYL_WORKSPACE_BACKEND, or `type` of the config file's "
            f"`workspace` section) is {kind!r}: use one of {', '.join(CONFIGS)}"
        )
    mine = {key: value for key, value in flat.items() if key in config.model_fields}
    if section.get("type", kind) != kind:  # a section of another backend, overridden by a variable
        known = {key for cls in CONFIGS.values() for key in cls.model_fields}
        section = {k: v for k, v in section.items() if k in config.model_fields or k not in known}
    return data | {"workspace": {**section, **mine, "type": kind}}


class WorkspaceSettings(Protocol):
    """What the workspaces read of the process's settings (`Settings` has all of it); a protocol, so
    that the workspaces package does not import the settings module, which imports this one."""

    workspace: AnyWorkspaceConfig
    instance: str
    data_dir: Path
    worker_start_timeout_s: float
    workspace_idle_timeout_s: float
    workspace_retention_s: float
    workspace_sweep_interval_s: float
