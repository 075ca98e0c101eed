"""The `infra` server: facts about the host the hub runs on, and allow-listed commands."""

import asyncio
import contextlib
import os
import platform
import shlex
import shutil
import signal
import socket
import time
from typing import Annotated

import psutil
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from anvyl.mcp_hub.audit import is_secret_name
from anvyl.mcp_hub.base_settings import BaseHubSettings, CommaList, OptionalCommaList
from anvyl.mcp_hub.servers.base import ToolSpec, run_blocking

# Pseudo and snapshot filesystems say nothing useful about free space.
_IGNORED_FS_TYPES = frozenset(
    {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2", "nsfs"}
)
_HOST_QUERY_TIMEOUT_S = 10.0

# Commands that only read state whatever their arguments (the policy checks argv[0] only, so
# `cat` (any file), `hostname`/`date` (set as root) and `ip` (reconfigures) are left out).
DEFAULT_COMMAND_ALLOW_LIST: tuple[str, ...] = (
    "uptime",
    "uname",
    "df",
    "free",
    "whoami",
    "id",
    "ls",
    "echo",
    "ps",
)


class InfraSettings(BaseHubSettings):
    infra_tools: OptionalCommaList = None
    # execute_command policy: argv[0] must be in this list (by name or absolute path).
    command_allow_list: CommaList = Field(default_factory=lambda: list(DEFAULT_COMMAND_ALLOW_LIST))
    command_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    command_output_limit_bytes: int = Field(default=64_000, gt=0)


class HostInfo(BaseModel):
    hostname: str
    fqdn: str
    os: str
    os_release: str
    os_version: str
    architecture: str
    python_version: str
    cpu_count_logical: int
    cpu_count_physical: int | None
    boot_time: float = Field(description="Unix time the host booted")
    uptime_s: float


class MemoryUsage(BaseModel):
    total_bytes: int
    available_bytes: int
    used_bytes: int
    percent: float


class DiskUsage(BaseModel):
    mountpoint: str
    device: str
    fstype: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float


class HostResources(BaseModel):
    cpu_percent: float = Field(description="CPU use since the previous call, all cores")
    cpu_count: int
    load_average: tuple[float, float, float] = Field(description="1, 5 and 15 minute load")
    memory: MemoryUsage
    swap: MemoryUsage
    disks: list[DiskUsage]


class CommandResult(BaseModel):
    argv: list[str]
    exit_code: int | None = Field(description="None when the command was killed on timeout")
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_s: float


class CommandPolicy:
    """Allow-list policy for `execute_command`: deny by default, match on argv[0], no shell."""

    def __init__(self, allowed_commands: list[str]) -> None:
        self.allowed_commands = frozenset(allowed_commands)

    def parse(self, command: str) -> list[str]:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ToolError(f"cannot parse command: {exc}") from exc
        if not argv:
            raise ToolError("empty command")
        program = argv[0]
        # A path must be listed as that exact path: a bare name in the list must not admit
        # `/tmp/x/ls`, and a listed name is resolved only through PATH.
        if program not in self.allowed_commands:
            allowed = ", ".join(sorted(self.allowed_commands)) or "(none)"
            raise ToolError(
                f"command '{program}' is not in the execute_command allow-list "
                f"(ANVYL_MCP_HUB_COMMAND_ALLOW_LIST); allowed: {allowed}"
            )
        if "/" not in program and shutil.which(program) is None:
            raise ToolError(f"command '{program}' is allowed but not found on PATH")
        return argv


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    """Read the whole stream (so the child never blocks on a full pipe), keeping `limit` bytes."""
    if stream is None:
        return b"", False
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if room > 0:
            kept.extend(chunk[:room])
        if len(chunk) > room:
            truncated = True
    return bytes(kept), truncated


def command_environment() -> dict[str, str]:
    """The hub's environment without its own settings and anything secret-looking, so an
    allowed command cannot read the hub token or the Proxmox secret from its environment."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ANVYL_") and not is_secret_name(name)
    }


async def run_command(
    argv: list[str], timeout_s: float, output_limit: int, cwd: str | None = None
) -> CommandResult:
    started = time.perf_counter()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=command_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Own process group, so a timeout kills the command's children too.
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolError(f"cannot start '{argv[0]}': {exc}") from exc
    readers = asyncio.gather(
        _read_capped(process.stdout, output_limit), _read_capped(process.stderr, output_limit)
    )
    timed_out = False
    try:
        (stdout, stdout_truncated), (stderr, stderr_truncated) = await asyncio.wait_for(
            asyncio.shield(readers), timeout_s
        )
        await asyncio.wait_for(process.wait(), timeout=5)
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        try:
            # A child that left the process group may still hold the pipes open.
            (stdout, stdout_truncated), (stderr, stderr_truncated) = await asyncio.wait_for(
                readers, 2
            )
        except TimeoutError:
            stdout, stdout_truncated, stderr, stderr_truncated = b"", True, b"", True
    return CommandResult(
        argv=argv,
        exit_code=None if timed_out else process.returncode,
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace"),
        stdout_truncated=stdout_truncated,
        stderr_truncated=stderr_truncated,
        timed_out=timed_out,
        duration_s=round(time.perf_counter() - started, 4),
    )


class InfraTools:
    instructions = (
        "Host information, resource usage and allow-listed command execution on the hub's host."
    )

    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.command_policy = CommandPolicy(settings.command_allow_list)
        self._static_host_info: HostInfo | None = None
        # Prime the counter: psutil reports CPU use since the previous call.
        psutil.cpu_percent(interval=None)

    async def aclose(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    async def get_host_info(self) -> HostInfo:
        """Describe the host the hub runs on: name, OS, kernel, architecture, CPUs, uptime."""
        if self._static_host_info is None:
            # Name resolution (getfqdn) and CPU topology do not change while the hub runs.
            # getfqdn may wait on a slow resolver.
            self._static_host_info = await run_blocking(
                _static_host_info, _HOST_QUERY_TIMEOUT_S, "host name lookup did not finish in time"
            )
        return self._static_host_info.model_copy(
            update={"uptime_s": round(time.time() - self._static_host_info.boot_time, 1)}
        )

    async def get_host_resources(self) -> HostResources:
        """Current CPU, memory, swap, disk use and load average of the host."""
        # Disk queries can hang on a dead network mount: keep them off the event loop, bounded.
        return await run_blocking(
            _collect_resources,
            _HOST_QUERY_TIMEOUT_S,
            f"host resource query took over {_HOST_QUERY_TIMEOUT_S:.0f}s",
        )

    async def execute_command(
        self,
        command: Annotated[
            str,
            Field(description="Command line, split like a POSIX shell but run without one"),
        ],
        timeout_s: Annotated[
            float | None, Field(gt=0, description="Seconds before the command is killed")
        ] = None,
        cwd: Annotated[str | None, Field(description="Working directory")] = None,
    ) -> CommandResult:
        """Run an allow-listed command on the host (no shell: pipes, globs and redirects are
        plain arguments). Commands outside ANVYL_MCP_HUB_COMMAND_ALLOW_LIST are refused."""
        argv = self.command_policy.parse(command)
        limit = self.settings.command_timeout_s
        effective_timeout = min(timeout_s, limit) if timeout_s is not None else limit
        return await run_command(
            argv, effective_timeout, self.settings.command_output_limit_bytes, cwd=cwd
        )

    def tool_specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                self.get_host_info, "Host info", read_only=True, destructive=False, idempotent=True
            ),
            ToolSpec(
                self.get_host_resources,
                "Host resources",
                read_only=True,
                destructive=False,
                idempotent=True,
            ),
            ToolSpec(
                self.execute_command,
                "Execute host command",
                read_only=False,
                destructive=True,
                idempotent=False,
            ),
        ]


def _static_host_info() -> HostInfo:
    boot_time = psutil.boot_time()
    uname = platform.uname()
    return HostInfo(
        hostname=socket.gethostname(),
        fqdn=socket.getfqdn(),
        os=uname.system,
        os_release=uname.release,
        os_version=uname.version,
        architecture=uname.machine,
        python_version=platform.python_version(),
        cpu_count_logical=psutil.cpu_count(logical=True) or 0,
        cpu_count_physical=psutil.cpu_count(logical=False),
        boot_time=boot_time,
        uptime_s=round(time.time() - boot_time, 1),
    )


def _collect_resources() -> HostResources:
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    disks: list[DiskUsage] = []
    for partition in psutil.disk_partitions(all=False):
        if partition.fstype in _IGNORED_FS_TYPES:
            continue
        try:
            usage = psutil.disk_usage(partition.mountpoint)
        except OSError:
            continue
        disks.append(
            DiskUsage(
                mountpoint=partition.mountpoint,
                device=partition.device,
                fstype=partition.fstype,
                total_bytes=usage.total,
                used_bytes=usage.used,
                free_bytes=usage.free,
                percent=usage.percent,
            )
        )
    load_1, load_5, load_15 = psutil.getloadavg()
    return HostResources(
        cpu_percent=psutil.cpu_percent(interval=None),
        cpu_count=psutil.cpu_count(logical=True) or 0,
        load_average=(load_1, load_5, load_15),
        memory=MemoryUsage(
            total_bytes=memory.total,
            available_bytes=memory.available,
            used_bytes=memory.used,
            percent=memory.percent,
        ),
        swap=MemoryUsage(
            total_bytes=swap.total,
            available_bytes=swap.free,
            used_bytes=swap.used,
            percent=swap.percent,
        ),
        disks=disks,
    )
