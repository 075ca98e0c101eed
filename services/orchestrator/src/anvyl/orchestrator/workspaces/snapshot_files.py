"""Where a workspace's files are, for snapshots: a directory on this machine (local backend) or a
container's `/workspace` through the Docker archive API (`get_archive` / `put_archive`, what
`docker cp` uses). A backend offers snapshots by having `workspace_files(workspace_id)`.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from anvyl.orchestrator.workspaces.snapshot_archive import SnapshotError

if TYPE_CHECKING:
    import docker

    from anvyl.orchestrator.workspaces.base import WorkspaceBackend

WORKER_UID = 1000


class WorkspaceFiles(Protocol):
    def present(self) -> bool:
        """Whether the workspace's files exist on this machine."""
        ...

    def export_tar(self, out: IO[bytes]) -> int:
        """Write the workspace's contents as an uncompressed tar (relative names); return the
        number of entries."""
        ...

    def import_tar(self, archive: Path) -> None:
        """Replace the workspace's contents with those of a checked, uncompressed tar."""
        ...


@runtime_checkable
class HasWorkspaceFiles(Protocol):
    def workspace_files(self, workspace_id: str) -> WorkspaceFiles: ...


def files_for_backend(backend: WorkspaceBackend) -> HasWorkspaceFiles:
    """The backend, when its workspaces' files can be snapshot (docker and local backends)."""
    if not isinstance(backend, HasWorkspaceFiles):
        raise SnapshotError(
            f"no snapshots for the {backend.name} backend: its files live in GCS already"
        )
    return backend


class DirectoryFiles:
    """A workspace that is a directory on this machine (the local backend)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def present(self) -> bool:
        return self.root.is_dir()

    def export_tar(self, out: IO[bytes]) -> int:
        if not self.root.is_dir():
            raise SnapshotError(f"workspace directory {self.root} does not exist")
        count = 0
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk(self.root):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(self.root).as_posix())
                if info is None:  # a socket: nothing to keep
                    continue
                if info.isreg():
                    with path.open("rb") as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)
                count += 1
        return count

    def import_tar(self, archive: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.restore-", dir=self.root.parent))
        try:
            with tarfile.open(archive, mode="r:") as tar:
                # Checked already; the "data" filter is a second line of defence.
                tar.extractall(staging, filter="data")
            # Replace the contents in place: a running worker keeps its directory.
            for child in list(self.root.iterdir()):
                _remove(child)
            for child in list(staging.iterdir()):
                child.rename(self.root / child.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class DockerContainerFiles:
    """A container's /workspace (the docker backend), through the Docker archive API; the files
    are present when its volume (or, without one, the container) exists."""

    def __init__(
        self,
        client: docker.DockerClient,
        container: str,
        path: str = "/workspace",
        *,
        volume: str | None = None,
    ) -> None:
        self.client = client
        self.container = container
        self.path = path.rstrip("/")
        self.volume = volume

    def present(self) -> bool:
        import docker.errors

        try:
            if self.volume is not None:
                self.client.volumes.get(self.volume)
            else:
                self.client.containers.get(self.container)
        except docker.errors.NotFound:
            return False
        return True

    def _get(self) -> Any:
        import docker.errors

        try:
            return self.client.containers.get(self.container)
        except docker.errors.NotFound as exc:
            raise SnapshotError(f"workspace container {self.container} not found") from exc

    def export_tar(self, out: IO[bytes]) -> int:
        container = self._get()
        chunks, _ = container.get_archive(self.path)
        top = PurePosixPath(self.path).name  # entries come as workspace/...
        count = 0
        source = _ChunkReader(chunks)
        with (
            tarfile.open(fileobj=source, mode="r|") as src,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst,
        ):
            for member in src:
                parts = PurePosixPath(member.name).parts
                if not parts or parts[0] != top:
                    raise SnapshotError(f"unexpected entry {member.name!r} from docker")
                if len(parts) == 1:
                    continue  # the workspace directory itself
                member.name = PurePosixPath(*parts[1:]).as_posix()
                if member.islnk():  # hard links name the other entry with the same prefix
                    link_parts = PurePosixPath(member.linkname).parts
                    member.linkname = PurePosixPath(*link_parts[1:]).as_posix()
                data = src.extractfile(member) if member.isreg() else None
                dst.addfile(member, data)
                count += 1
        return count

    def import_tar(self, archive: Path) -> None:
        container = self._get()
        if container.status != "running":
            raise SnapshotError(
                f"workspace container {self.container} is {container.status}: start it first"
            )
        # Empty /workspace first (as the worker's user), then unpack as that user's files.
        result = container.exec_run(
            ["find", self.path, "-mindepth", "1", "-delete"], user=f"{WORKER_UID}:{WORKER_UID}"
        )
        if result.exit_code != 0:
            raise SnapshotError(
                f"cannot empty {self.path} in {self.container}: "
                f"{bytes(result.output).decode(errors='replace')[-500:]}"
            )
        with tempfile.TemporaryFile() as owned:
            with (
                tarfile.open(archive, mode="r:") as src,
                tarfile.open(fileobj=owned, mode="w:", format=tarfile.PAX_FORMAT) as dst,
            ):
                for member in src:
                    member.uid = member.gid = WORKER_UID
                    member.uname = member.gname = ""
                    dst.addfile(member, src.extractfile(member) if member.isreg() else None)
            owned.seek(0)
            if not container.put_archive(self.path, owned.read()):
                raise SnapshotError(f"docker refused the archive for {self.container}")


def _walk(root: Path) -> Iterator[Path]:
    """Every entry below root, directories before their contents, symlinks not followed."""
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            yield path
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (the Docker archive API's answer)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
