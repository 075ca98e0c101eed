"""The one registry of workspace backends: the backend each kind of config builds.

Each backend module is imported only when a config of its kind is built, so the cloud libraries
(and the Docker SDK) load only where they are used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anvyl.orchestrator.workspaces.base import WorkspaceBackend
from anvyl.orchestrator.workspaces.config import (
    AnyWorkspaceConfig,
    AutoWorkspaceConfig,
    BackendContext,
    CloudRunWorkspaceConfig,
    DockerWorkspaceConfig,
    LocalWorkspaceConfig,
)


def _docker(config: DockerWorkspaceConfig, context: BackendContext) -> WorkspaceBackend:
    from anvyl.orchestrator.workspaces.docker import DockerBackend

    return DockerBackend(config, context)


def _local(config: LocalWorkspaceConfig, context: BackendContext) -> WorkspaceBackend:
    from anvyl.orchestrator.workspaces.local import LocalBackend

    return LocalBackend(config, context)


def _cloudrun(config: CloudRunWorkspaceConfig, context: BackendContext) -> WorkspaceBackend:
    from anvyl.orchestrator.workspaces.cloudrun import CloudRunBackend

    return CloudRunBackend(config, context)


def _auto(config: AutoWorkspaceConfig, context: BackendContext) -> WorkspaceBackend:
    from anvyl.orchestrator.workspaces.docker import docker_available

    docker, local = config.candidates()
    return _docker(docker, context) if docker_available(docker) else _local(local, context)


BUILDERS: dict[type[AnyWorkspaceConfig], Callable[[Any, BackendContext], WorkspaceBackend]] = {
    DockerWorkspaceConfig: _docker,
    LocalWorkspaceConfig: _local,
    CloudRunWorkspaceConfig: _cloudrun,
    AutoWorkspaceConfig: _auto,
}


def get_backend(config: AnyWorkspaceConfig, context: BackendContext) -> WorkspaceBackend:
    return BUILDERS[type(config)](config, context)
