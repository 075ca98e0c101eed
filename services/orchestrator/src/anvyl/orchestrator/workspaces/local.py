"""The local backend: the same worker as a subprocess with its own directory.

Inside bubblewrap when `bwrap` exists: the host is mounted read-only, the workspace directory is the
only writable place besides a private /tmp, and the orchestrator's data directory is hidden.
The worker's environment holds its token and a minimal PATH, never the orchestrator's own variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anvyl.orchestrator.workspaces.base import OwnedWorker, WorkerEndpoint, WorkspaceError
from anvyl.orchestrator.workspaces.config import BackendContext, LocalWorkspaceConfig
from anvyl.orchestrator.workspaces.repos import RepoRef
from anvyl.worker.client import WorkerClient

if TYPE_CHECKING:
    from anvyl.orchestrator.workspaces.snapshot_files import DirectoryFiles

_STOP_TIMEOUT_S = 5.0
_LOG_LINES_KEPT = 200


_HAS_PROC = Path("/proc/self/stat").exists()


def _alive(pid: int) -> bool:
    """Whether the worker's process still runs. `returncode` alone can lag: asyncio sets it when
    the event loop runs its child watcher's callback, which on a busy host can be long after the
    process died (a zombie, or already reaped by the watcher's thread) and the next task found the
    worker dead."""
    if not _HAS_PROC:  # no /proc (macOS): a zombie passes as alive until it is reaped
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")  # zombie, dead


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    endpoint: WorkerEndpoint
    log: Path


def bwrap_path(config: LocalWorkspaceConfig) -> str | None:
    if config.sandbox == "none":
        return None
    found = shutil.which("bwrap")
    if found is None and config.sandbox == "bwrap":
        raise WorkspaceError("workspace_sandbox=bwrap but bubblewrap (bwrap) is not installed")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalBackend:
    name = "local"

    def __init__(self, config: LocalWorkspaceConfig, context: BackendContext) -> None:
        self.config = config
        self.data_dir = context.data_dir
        self.root = context.data_dir / "workspaces"
        self._bwrap = bwrap_path(config)
        self._workers: dict[str, _Worker] = {}

    def directory(self, workspace_id: str) -> Path:
        return self.root / workspace_id / "files"

    def workspace_files(self, workspace_id: str) -> DirectoryFiles:
        """The workspace's files (its directory), for snapshots."""
        from anvyl.orchestrator.workspaces.snapshot_files import DirectoryFiles

        return DirectoryFiles(self.directory(workspace_id))

    def worker_client(self, endpoint: WorkerEndpoint) -> WorkerClient:
        return WorkerClient(endpoint.base_url, endpoint.token)

    def clone_url(self, repo: RepoRef) -> str:
        return repo.url

    def _command(self, workspace: Path, port: int, source: Path | None) -> list[str]:
        worker = [sys.executable, "-m", "anvyl.worker", "serve", "--host", "127.0.0.1",
                  "--port", str(port), "--workspace", str(workspace)]  # fmt: skip
        if self._bwrap is None:
            return worker
        return [
            self._bwrap, "--die-with-parent", "--new-session",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", str(self.data_dir.resolve()),
            "--bind", str(workspace), str(workspace),
            # The worker's own Python (a virtualenv or editable sources may sit under the private /tmp).
            *(arg for path in self._hidden_python_paths() for arg in ("--ro-bind", str(path), str(path))),
            # The repository to clone from, read-only (it may sit under the private /tmp).
            *(["--ro-bind", str(source), str(source)] if source is not None else []),
            "--chdir", str(workspace),
            *worker,
        ]  # fmt: skip

    def _hidden_python_paths(self) -> list[Path]:
        """Directories of this Python environment that the sandbox's private mounts would hide."""
        hidden_roots = [Path("/tmp"), self.data_dir.resolve()]
        found: list[Path] = []
        for entry in sorted({Path(p).resolve() for p in (sys.prefix, *sys.path) if p}):
            if not entry.is_dir() or not any(entry.is_relative_to(root) for root in hidden_roots):
                continue
            if not any(entry.is_relative_to(kept) for kept in found):  # a parent is bound already
                found.append(entry)
        return found

    async def ensure_running(self, repo: RepoRef) -> WorkerEndpoint:
        current = self._workers.get(repo.workspace_id)
        if current is not None:
            if current.process.returncode is None and _alive(current.process.pid):
                return dataclasses.replace(current.endpoint, started=False)
            await self.stop(repo.workspace_id)  # reaps it: a dead worker is not handed out again
        workspace = self.directory(repo.workspace_id)
        workspace.mkdir(parents=True, exist_ok=True)
        log = workspace.parent / "worker.log"
        token = secrets.token_urlsafe(32)
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workspace),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "ANVYL_WORKER_TOKEN": token,
        }
        with log.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *self._command(workspace, port, repo.local_path),
                env=env,
                cwd=workspace,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        endpoint = WorkerEndpoint(
            workspace_id=repo.workspace_id,
            base_url=f"http://127.0.0.1:{port}",
            token=token,
            handle=str(process.pid),
            started=True,
        )
        self._workers[repo.workspace_id] = _Worker(process, endpoint, log)
        return endpoint

    async def logs(self, workspace_id: str, lines: int = 50) -> str:
        log = self.directory(workspace_id).parent / "worker.log"
        if not log.exists():
            return ""
        return "\n".join(
            log.read_text(errors="replace").splitlines()[-min(lines, _LOG_LINES_KEPT) :]
        )

    async def stop(self, workspace_id: str) -> None:
        worker = self._workers.pop(workspace_id, None)
        if worker is None or worker.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.process.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGKILL)
            await worker.process.wait()

    async def remove(self, workspace_id: str, *, purge: bool) -> None:
        await self.stop(workspace_id)
        if purge:
            await asyncio.to_thread(shutil.rmtree, self.root / workspace_id, ignore_errors=True)

    async def list_owned(self) -> list[OwnedWorker]:
        return [
            OwnedWorker(wid, w.endpoint.handle, w.process.returncode is None)
            for wid, w in self._workers.items()
        ]

    async def close(self) -> None:
        for workspace_id in list(self._workers):
            await self.stop(workspace_id)
