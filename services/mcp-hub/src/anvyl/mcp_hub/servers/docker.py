"""The `docker` server: containers on the Docker daemon the hub runs next to."""

import contextlib
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
import docker
import docker.errors
from docker.models.containers import Container
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from anvyl.mcp_hub.audit import mask_secrets
from anvyl.mcp_hub.base_settings import BaseHubSettings, OptionalCommaList
from anvyl.mcp_hub.servers.base import ToolSpec, run_blocking

T = TypeVar("T")

CREATED_BY_LABEL = "anvyl.mcp_hub.created"
_OUTPUT_LIMIT_BYTES = 256_000
# Slack on top of the daemon-side work, so the socket timeout fires first with its own message.
_TIMEOUT_SLACK_S = 5.0
_DEFAULT_PULL_TIMEOUT_S = 300.0
_MAX_PULL_TIMEOUT_S = 1800.0
RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]


class DockerSettings(BaseHubSettings):
    docker_tools: OptionalCommaList = None
    docker_url: str | None = Field(
        default=None, description="Docker daemon URL; unset uses DOCKER_HOST or the local socket."
    )
    docker_timeout_s: float = Field(default=30.0, gt=0)


ContainerId = Annotated[str, Field(min_length=1, description="Container name or id (or id prefix)")]


class ContainerSummary(BaseModel):
    id: str
    short_id: str
    name: str
    image: str
    status: str
    labels: dict[str, str]


class ContainerList(BaseModel):
    containers: list[ContainerSummary]


class PortBinding(BaseModel):
    container_port: str
    host_ip: str
    host_port: str


class ContainerDetails(ContainerSummary):
    created: str
    running: bool
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    restart_count: int
    command: list[str]
    environment: list[str] = Field(description="KEY=value entries, secret-looking values masked")
    ports: list[PortBinding]
    networks: dict[str, str] = Field(description="network name -> IP address")
    mounts: list[str]


class PublishedPort(BaseModel):
    container_port: Annotated[int, Field(ge=1, le=65535, description="Port inside the container")]
    host_port: Annotated[
        int | None,
        Field(ge=1, le=65535, description="Port on the host; a free one is chosen if unset"),
    ] = None
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: Annotated[
        str,
        Field(
            min_length=1,
            description="Host address to bind; 127.0.0.1 (this host only) unless told otherwise, "
            "`0.0.0.0` for every interface",
        ),
    ] = "127.0.0.1"


def _port_bindings(ports: list[PublishedPort]) -> dict[str, list[tuple[str, int | None]]]:
    bindings: dict[str, list[tuple[str, int | None]]] = {}
    for port in ports:
        bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
            (port.host_ip, port.host_port)
        )
    return bindings


def _split_reference(image: str) -> tuple[str, str | None]:
    """`repo[:tag][@digest]` as the SDK's pull wants it (a port in the registry is no tag)."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return repository, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, "latest"


class ContainerState(BaseModel):
    id: str
    name: str
    status: str


class RemovedContainer(BaseModel):
    id: str
    name: str
    removed: bool


class ContainerLogs(BaseModel):
    id: str
    logs: str
    truncated: bool


class ExecResult(BaseModel):
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool


def _cap(data: bytes | None, limit: int = _OUTPUT_LIMIT_BYTES) -> tuple[str, bool]:
    data = data or b""
    return data[:limit].decode(errors="replace"), len(data) > limit


def _summary(container: Container) -> ContainerSummary:
    image_tags = container.attrs.get("Config", {}).get("Image", "")
    return ContainerSummary(
        id=container.id or "",
        short_id=container.short_id,
        name=container.name or "",
        image=image_tags,
        status=container.status,
        labels=container.labels,
    )


def _details(container: Container) -> ContainerDetails:
    attrs = container.attrs
    state = attrs.get("State", {})
    config = attrs.get("Config", {})
    network_settings = attrs.get("NetworkSettings", {})
    ports = [
        PortBinding(
            container_port=container_port,
            host_ip=binding.get("HostIp", ""),
            host_port=binding.get("HostPort", ""),
        )
        for container_port, bindings in (network_settings.get("Ports") or {}).items()
        for binding in bindings or []
    ]
    return ContainerDetails(
        **_summary(container).model_dump(),
        created=attrs.get("Created", ""),
        running=bool(state.get("Running")),
        exit_code=state.get("ExitCode"),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        restart_count=attrs.get("RestartCount", 0),
        command=list(config.get("Entrypoint") or []) + list(config.get("Cmd") or []),
        environment=[str(mask_secrets(entry)) for entry in config.get("Env") or []],
        ports=ports,
        networks={
            name: network.get("IPAddress", "")
            for name, network in (network_settings.get("Networks") or {}).items()
        },
        mounts=[
            f"{mount.get('Source', '')}:{mount.get('Destination', '')}"
            for mount in attrs.get("Mounts") or []
        ],
    )


class DockerTools:
    instructions = (
        "Containers on the Docker daemon next to the hub. Tools that act on one container take "
        "`container_id`, a container name or id."
    )

    def __init__(self, settings: DockerSettings) -> None:
        self.settings = settings
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()

    def _docker(self) -> docker.DockerClient:
        # Connect lazily: the hub must start (and serve the other servers) without a daemon.
        with self._client_lock:
            if self._client is None:
                timeout = int(self.settings.docker_timeout_s)
                if self.settings.docker_url:
                    self._client = docker.DockerClient(
                        base_url=self.settings.docker_url, timeout=timeout
                    )
                else:
                    self._client = docker.from_env(timeout=timeout)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def aclose(self) -> None:
        self.close()

    async def _run(self, function: Callable[[], T], timeout_s: float | None = None) -> T:
        """Run a blocking docker SDK call in a thread, bounded; daemon errors become tool errors."""
        limit = (timeout_s or 0) + self.settings.docker_timeout_s + _TIMEOUT_SLACK_S
        try:
            return await run_blocking(
                function, limit, f"Docker daemon did not answer within {limit:.0f}s"
            )
        except docker.errors.ImageNotFound as exc:
            raise ToolError(f"image not found: {exc.explanation or exc}") from exc
        except docker.errors.NotFound as exc:
            raise ToolError(f"not found: {exc.explanation or exc}") from exc
        except docker.errors.APIError as exc:
            raise ToolError(f"Docker API error: {exc.explanation or exc}") from exc
        except docker.errors.DockerException as exc:
            raise ToolError(f"cannot reach the Docker daemon: {exc}") from exc

    def _container(self, container_id: str) -> Container:
        container: Container = self._docker().containers.get(container_id)
        return container

    async def list_containers(
        self,
        all: Annotated[bool, Field(description="Include stopped containers")] = False,
        labels: Annotated[
            list[str] | None, Field(description="Only containers with these labels (`k` or `k=v`)")
        ] = None,
    ) -> ContainerList:
        """List containers on the local Docker daemon."""

        def query() -> list[Container]:
            filters: dict[str, Any] = {"label": labels} if labels else {}
            found: list[Container] = self._docker().containers.list(all=all, filters=filters)
            return found

        containers = await self._run(query)
        return ContainerList(containers=[_summary(container) for container in containers])

    async def get_container_info(self, container_id: ContainerId) -> ContainerDetails:
        """Details of one container: state, image, command, ports, networks, mounts."""
        return _details(await self._run(lambda: self._container(container_id)))

    async def create_container(
        self,
        image: Annotated[
            str,
            Field(
                min_length=1,
                description="Image reference, e.g. `nginx`, `nginx:1.27` or `ghcr.io/o/app:tag`; "
                "pulled from its registry when the daemon does not have it",
            ),
        ],
        name: Annotated[str | None, Field(description="Container name")] = None,
        ports: Annotated[
            list[PublishedPort] | None,
            Field(
                description='Ports to publish, e.g. `[{"container_port": 80, "host_port": '
                "8080}]` makes the container's port 80 reachable on the host's port 8080"
            ),
        ] = None,
        command: Annotated[
            list[str] | None, Field(description="argv; the image's default command if unset")
        ] = None,
        environment: Annotated[dict[str, str] | None, Field(description="Environment")] = None,
        labels: Annotated[dict[str, str] | None, Field(description="Labels to set")] = None,
        restart_policy: Annotated[
            RestartPolicy,
            Field(description="Restart the container when it exits (or when the daemon restarts)"),
        ] = "no",
        working_dir: Annotated[str | None, Field(description="Working directory")] = None,
        pull_timeout_s: Annotated[
            float, Field(gt=0, le=_MAX_PULL_TIMEOUT_S, description="Seconds to wait for a pull")
        ] = _DEFAULT_PULL_TIMEOUT_S,
    ) -> ContainerDetails:
        """Create and start a container from an image (pulled when missing), with published
        ports (bound to 127.0.0.1 unless `host_ip` says otherwise), environment, command,
        restart policy and labels. Answers the started container's details, its ports included."""
        all_labels = {**(labels or {}), CREATED_BY_LABEL: "true"}
        await self._ensure_image(image, pull_timeout_s)
        port_bindings = _port_bindings(ports or [])

        def create_and_start() -> Container:
            container: Container = self._docker().containers.create(
                image,
                command=command,
                name=name,
                environment=environment,
                labels=all_labels,
                working_dir=working_dir,
                ports=port_bindings or None,
                restart_policy={"Name": restart_policy} if restart_policy != "no" else None,
                detach=True,
            )
            try:
                container.start()
            except docker.errors.APIError:
                # A container that cannot start (port taken, bad command) is not left behind.
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
                raise
            container.reload()
            return container

        return _details(await self._run(create_and_start))

    async def _ensure_image(self, image: str, timeout_s: float) -> None:
        """Pull the image unless the daemon has it; a registry that does not answer in time, or
        refuses, is a tool error that says so."""

        def present() -> bool:
            try:
                self._docker().images.get(image)
            except docker.errors.ImageNotFound:
                return False
            return True

        if await self._run(present):
            return
        repository, tag = _split_reference(image)

        def pull() -> None:
            self._docker().images.pull(repository, tag=tag)

        try:
            await run_blocking(pull, timeout_s, "pull timed out")
        except ToolError as exc:  # run_blocking's timeout
            raise ToolError(
                f"image {image} is not on the daemon and no registry answered within "
                f"{timeout_s:g}s (pull_timeout_s); build or load it there, or reach a registry"
            ) from exc
        except docker.errors.DockerException as exc:
            detail = getattr(exc, "explanation", None) or exc
            raise ToolError(
                f"image {image} is not on the daemon and could not be pulled: {detail}"
            ) from exc

    async def start_container(self, container_id: ContainerId) -> ContainerState:
        """Start a container; starting a running one changes nothing."""

        def start() -> Container:
            container = self._container(container_id)
            container.start()
            container.reload()
            return container

        container = await self._run(start)
        return ContainerState(
            id=container.id or "", name=container.name or "", status=container.status
        )

    async def stop_container(
        self,
        container_id: ContainerId,
        timeout_s: Annotated[
            int, Field(ge=0, le=600, description="Grace period before SIGKILL")
        ] = 10,
    ) -> ContainerState:
        """Stop a running container (SIGTERM, then SIGKILL after the grace period)."""

        def stop() -> Container:
            container = self._container(container_id)
            container.stop(timeout=timeout_s)
            container.reload()
            return container

        container = await self._run(stop, timeout_s=timeout_s)
        return ContainerState(
            id=container.id or "", name=container.name or "", status=container.status
        )

    async def remove_container(
        self,
        container_id: ContainerId,
        force: Annotated[bool, Field(description="Kill it first if it is running")] = False,
        remove_volumes: Annotated[bool, Field(description="Also remove anonymous volumes")] = False,
    ) -> RemovedContainer:
        """Remove a container."""

        def remove() -> Container:
            container = self._container(container_id)
            container.remove(force=force, v=remove_volumes)
            return container

        container = await self._run(remove)
        return RemovedContainer(id=container.id or "", name=container.name or "", removed=True)

    async def container_logs(
        self,
        container_id: ContainerId,
        tail: Annotated[int, Field(ge=1, le=10_000, description="Last N lines")] = 200,
        timestamps: bool = False,
    ) -> ContainerLogs:
        """Recent stdout and stderr of a container."""

        def logs() -> tuple[str, bytes]:
            container = self._container(container_id)
            output: bytes = container.logs(tail=tail, timestamps=timestamps, stream=False)
            return container.id or "", output

        resolved_id, output = await self._run(logs)
        text, truncated = _cap(output)
        return ContainerLogs(id=resolved_id, logs=text, truncated=truncated)

    async def exec_in_container(
        self,
        container_id: ContainerId,
        command: Annotated[list[str], Field(min_length=1, description="argv, run without a shell")],
        workdir: str | None = None,
        user: str | None = None,
        environment: dict[str, str] | None = None,
        timeout_s: Annotated[
            float, Field(gt=0, le=600, description="Seconds to wait for the command")
        ] = 30,
    ) -> ExecResult:
        """Run a command inside a running container and return its output and exit code.
        On timeout the hub stops waiting; Docker cannot kill an exec, so it may keep running."""

        def run_exec() -> tuple[int | None, tuple[bytes | None, bytes | None]]:
            container = self._container(container_id)
            result = container.exec_run(
                command, workdir=workdir, user=user or "", environment=environment, demux=True
            )
            return result.exit_code, result.output

        try:
            with anyio.fail_after(timeout_s):
                exit_code, (stdout, stderr) = await self._run(run_exec, timeout_s=timeout_s)
        except TimeoutError as exc:
            raise ToolError(f"command did not finish within {timeout_s}s") from exc
        stdout_text, stdout_truncated = _cap(stdout)
        stderr_text, stderr_truncated = _cap(stderr)
        return ExecResult(
            exit_code=exit_code,
            stdout=stdout_text,
            stderr=stderr_text,
            truncated=stdout_truncated or stderr_truncated,
        )

    def tool_specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(self.list_containers, "List containers", True, False, True),
            ToolSpec(self.get_container_info, "Container info", True, False, True),
            ToolSpec(self.container_logs, "Container logs", True, False, True),
            # Runs any image on this host, pulled from any registry, on published ports: a person
            # approves it first.
            ToolSpec(
                self.create_container,
                "Create and start container",
                False,
                True,
                False,
                open_world=True,
            ),
            ToolSpec(self.start_container, "Start container", False, False, True),
            # Stopping ends the processes inside: destructive, but repeating it changes nothing.
            ToolSpec(self.stop_container, "Stop container", False, True, True),
            ToolSpec(self.remove_container, "Remove container", False, True, True),
            ToolSpec(self.exec_in_container, "Exec in container", False, True, False),
        ]
