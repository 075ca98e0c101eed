"""Workspace snapshots in a GCS bucket, so a workspace survives the loss of its host.

A snapshot is a tar.gz of the workspace directory with relative member names, stored as
`snapshots/{workspace_id}/{timestamp}.tar.gz`; `snapshots/{workspace_id}/latest` holds the name of
the newest one. Files come from a local directory (local backend) or from a container's
`/workspace` through the Docker archive API (`get_archive` / `put_archive`, what `docker cp` uses).

Restore checks the whole archive before writing anything and refuses a tar slip: absolute names,
`..` components, members below a symbolic link, links (symbolic or hard) that resolve outside the
workspace, device files and fifos, duplicate names. It then replaces the workspace's contents.

Blocking calls (GCS, Docker, tar) run in threads, each with a timeout. `google-cloud-storage` is
part of the orchestrator's `cloud` extra.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Protocol

from anvyl.orchestrator.workspaces.base import WorkspaceError

if TYPE_CHECKING:
    import docker
    import google.cloud.storage as storage
    from google.auth.credentials import Credentials

    from anvyl.orchestrator.workspaces.base import WorkspaceBackend

SNAPSHOT_PREFIX = "snapshots"
LATEST = "latest"
WORKER_UID = 1000
_NAME = re.compile(r"^\d{8}T\d{12}Z$")
_MAX_LINK_DEPTH = 40
_CLOUD_EXTRA_HINT = (
    "GCS snapshots need the orchestrator's `cloud` extra: "
    "pip install 'anvyl-orchestrator[cloud]' (or uv sync --all-extras)"
)


class SnapshotError(WorkspaceError):
    """A snapshot could not be taken, found or restored."""


class SnapshotNotFound(SnapshotError):
    pass


class UnsafeArchive(SnapshotError):
    """The archive would write outside the workspace (tar slip) or holds special files."""


@dataclass(frozen=True)
class SnapshotInfo:
    workspace_id: str
    name: str  # the timestamp, e.g. 20261120T233501123456Z
    object_name: str  # snapshots/{workspace_id}/{name}.tar.gz
    bucket: str
    size: int  # bytes of the tar.gz
    created: datetime
    members: int | None = None  # entries in the archive (known after snapshot and restore)

    @property
    def url(self) -> str:
        return f"gs://{self.bucket}/{self.object_name}"


# Where a workspace's files are -------------------------------------------------------------


class WorkspaceFiles(Protocol):
    def export_tar(self, out: IO[bytes]) -> int:
        """Write the workspace's contents as an uncompressed tar (relative names); return the
        number of entries."""
        ...

    def import_tar(self, archive: Path) -> None:
        """Replace the workspace's contents with those of a checked, uncompressed tar."""
        ...


class DirectoryFiles:
    """A workspace that is a directory on this machine (the local backend)."""

    def __init__(self, root: Path) -> None:
        self.root = root

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
    """A container's /workspace (the docker backend), through the Docker archive API."""

    def __init__(
        self, client: docker.DockerClient, container: str, path: str = "/workspace"
    ) -> None:
        self.client = client
        self.container = container
        self.path = path.rstrip("/")

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


def files_for_backend(backend: WorkspaceBackend) -> Callable[[str], WorkspaceFiles]:
    """Where the files of a workspace of this backend are (docker and local backends)."""
    from anvyl.orchestrator.workspaces.docker import DockerBackend
    from anvyl.orchestrator.workspaces.local import LocalBackend

    if isinstance(backend, DockerBackend):
        docker_backend = backend
        return lambda wid: DockerContainerFiles(
            docker_backend.client, docker_backend.container_name(wid)
        )
    if isinstance(backend, LocalBackend):
        local_backend = backend
        return lambda wid: DirectoryFiles(local_backend.directory(wid))
    raise SnapshotError(
        f"no snapshots for the {backend.name} backend: its files live in GCS already"
    )


# The store ----------------------------------------------------------------------------------


class SnapshotStore:
    def __init__(
        self,
        bucket: str,
        files: Callable[[str], WorkspaceFiles],
        *,
        project: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 60.0,
        transfer_timeout_s: float = 900.0,
        work_dir: Path | None = None,
    ) -> None:
        try:
            import google.cloud.storage as storage
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise SnapshotError(_CLOUD_EXTRA_HINT) from exc
        self.bucket_name = bucket
        self.files = files
        self.timeout_s = timeout_s
        self.transfer_timeout_s = transfer_timeout_s
        self.work_dir = work_dir
        import google.auth.exceptions

        try:
            self.client: storage.Client = storage.Client(project=project, credentials=credentials)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise SnapshotError(
                f"snapshots found no Google credentials: {exc} (set GOOGLE_APPLICATION_CREDENTIALS"
                " or run `gcloud auth application-default login`)"
            ) from exc
        self.bucket: storage.Bucket = self.client.bucket(bucket)

    def _prefix(self, workspace_id: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,99}", workspace_id):
            raise SnapshotError(f"invalid workspace id {workspace_id!r}")
        return f"{SNAPSHOT_PREFIX}/{workspace_id}/"

    async def _run(self, what: str, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
        except TimeoutError as exc:
            raise SnapshotError(f"{what}: no result after {timeout:.0f}s") from exc
        except SnapshotError:
            raise
        except Exception as exc:
            raise SnapshotError(f"{what}: {exc}") from exc

    # API ------------------------------------------------------------------------------------

    async def snapshot(self, workspace_id: str) -> SnapshotInfo:
        prefix = self._prefix(workspace_id)
        name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        object_name = f"{prefix}{name}.tar.gz"
        files = self.files(workspace_id)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            path = Path(tmp) / "snapshot.tar.gz"

            def pack() -> int:
                with path.open("wb") as raw, _gzip_writer(raw) as gz:
                    return files.export_tar(gz)

            members = await self._run(
                f"archiving workspace {workspace_id}", self.transfer_timeout_s, pack
            )
            size = path.stat().st_size

            def upload() -> None:
                blob = self.bucket.blob(object_name)
                blob.upload_from_filename(
                    str(path), content_type="application/gzip", timeout=self.transfer_timeout_s
                )
                self.bucket.blob(prefix + LATEST).upload_from_string(
                    name, content_type="text/plain", timeout=self.timeout_s
                )

            await self._run(
                f"uploading gs://{self.bucket_name}/{object_name}",
                self.transfer_timeout_s + self.timeout_s,
                upload,
            )
        return SnapshotInfo(
            workspace_id, name, object_name, self.bucket_name, size, _created(name), members
        )

    async def restore(self, workspace_id: str, snapshot: str | None = None) -> SnapshotInfo:
        prefix = self._prefix(workspace_id)
        name = await self._resolve(workspace_id, snapshot)
        object_name = f"{prefix}{name}.tar.gz"
        files = self.files(workspace_id)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            packed = Path(tmp) / "snapshot.tar.gz"
            plain = Path(tmp) / "snapshot.tar"

            def download() -> None:
                from google.api_core import exceptions

                try:
                    self.bucket.blob(object_name).download_to_filename(
                        str(packed), timeout=self.transfer_timeout_s
                    )
                except exceptions.NotFound as exc:
                    raise SnapshotNotFound(
                        f"no snapshot {name} of workspace {workspace_id} in "
                        f"gs://{self.bucket_name}/{prefix}"
                    ) from exc

            await self._run(
                f"downloading gs://{self.bucket_name}/{object_name}",
                self.transfer_timeout_s,
                download,
            )
            size = packed.stat().st_size

            def check_and_unpack() -> int:
                # Decompress once to a plain tar (checked as a whole before anything is written).
                with tarfile.open(packed, mode="r:gz") as src, plain.open("wb") as out:
                    members = src.getmembers()
                    check_members(members)
                    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as dst:
                        for member in members:
                            member.name = _normal(member.name)
                            if member.islnk():
                                member.linkname = _normal(member.linkname)
                            data = src.extractfile(member) if member.isreg() else None
                            dst.addfile(member, data)
                files.import_tar(plain)
                return len(members)

            members = await self._run(
                f"restoring {name} into workspace {workspace_id}",
                self.transfer_timeout_s,
                check_and_unpack,
            )
        return SnapshotInfo(
            workspace_id, name, object_name, self.bucket_name, size, _created(name), members
        )

    async def list(self, workspace_id: str) -> builtins.list[SnapshotInfo]:
        """The workspace's snapshots, oldest first."""
        prefix = self._prefix(workspace_id)

        def names() -> builtins.list[SnapshotInfo]:
            found = []
            for blob in self.client.list_blobs(
                self.bucket_name, prefix=prefix, timeout=self.timeout_s
            ):
                name = blob.name[len(prefix) :].removesuffix(".tar.gz")
                if blob.name.endswith(".tar.gz") and _NAME.match(name):
                    found.append(
                        SnapshotInfo(
                            workspace_id,
                            name,
                            blob.name,
                            self.bucket_name,
                            int(blob.size or 0),
                            _created(name),
                        )
                    )
            return sorted(found, key=lambda info: info.name)

        result: builtins.list[SnapshotInfo] = await self._run(
            f"listing gs://{self.bucket_name}/{prefix}", self.timeout_s * 3, names
        )
        return result

    async def _resolve(self, workspace_id: str, snapshot: str | None) -> str:
        prefix = self._prefix(workspace_id)
        if snapshot is not None:
            name = PurePosixPath(snapshot).name.removesuffix(".tar.gz")
            if not _NAME.match(name):
                raise SnapshotNotFound(
                    f"{snapshot!r} is not a snapshot name (expected e.g. 20261120T233501123456Z)"
                )
            return name

        def latest() -> str:
            from google.api_core import exceptions

            try:
                return str(
                    self.bucket.blob(prefix + LATEST).download_as_text(timeout=self.timeout_s)
                ).strip()
            except exceptions.NotFound as exc:
                raise SnapshotNotFound(
                    f"workspace {workspace_id} has no snapshot in gs://{self.bucket_name}/{prefix}"
                ) from exc

        latest_name: str = await self._run(
            f"reading gs://{self.bucket_name}/{prefix}{LATEST}", self.timeout_s, latest
        )
        if not _NAME.match(latest_name):
            raise SnapshotError(f"gs://{self.bucket_name}/{prefix}{LATEST} holds {latest_name!r}")
        return latest_name

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


# Archive checks -----------------------------------------------------------------------------


def check_members(members: Iterable[tarfile.TarInfo]) -> None:
    """Refuse an archive that would write outside its destination (raises UnsafeArchive)."""
    members = builtins.list(members)
    seen: dict[str, tarfile.TarInfo] = {}
    symlinks: dict[str, str] = {}
    for member in members:
        name = _normal(member.name)
        if name in seen:
            raise UnsafeArchive(f"archive entry {member.name!r} appears twice")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchive(
                f"archive entry {member.name!r} is a device, fifo or other special file"
            )
        seen[name] = member
        if member.issym():
            if member.linkname.startswith("/") or not member.linkname:
                raise UnsafeArchive(
                    f"symbolic link {member.name!r} -> {member.linkname!r} is absolute"
                )
            symlinks[name] = member.linkname
    for name, member in seen.items():
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in symlinks:
                raise UnsafeArchive(f"archive entry {member.name!r} lies below a symbolic link")
        if member.issym():
            target = [*parts[:-1], *member.linkname.split("/")]
            if _resolve(target, symlinks, 0) is None:
                raise UnsafeArchive(
                    f"symbolic link {member.name!r} -> {member.linkname!r} points outside"
                )
        if member.islnk():
            original = seen.get(_normal(member.linkname))
            if (
                original is None
                or not original.isreg()
                or members.index(original) > members.index(member)
            ):
                raise UnsafeArchive(
                    f"hard link {member.name!r} -> {member.linkname!r} names no earlier file"
                )


def _normal(name: str) -> str:
    """A member name as a clean relative path; refuses absolute names and `..`."""
    if "\x00" in name:
        raise UnsafeArchive(f"archive entry {name!r} has a NUL byte")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchive(f"archive entry {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"archive entry {name!r} contains '..'")
    if not parts:
        raise UnsafeArchive(f"archive entry {name!r} names the workspace itself")
    return "/".join(parts)


def _resolve(
    parts: builtins.list[str], symlinks: dict[str, str], depth: int
) -> builtins.list[str] | None:
    """Resolve a path inside the archive, following its symbolic links; None when it escapes."""
    if depth > _MAX_LINK_DEPTH:
        return None
    stack: builtins.list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        link = symlinks.get("/".join(stack))
        if link is not None:
            if link.startswith("/"):
                return None
            resolved = _resolve([*stack[:-1], *link.split("/")], symlinks, depth + 1)
            if resolved is None:
                return None
            stack = resolved
    return stack


# Helpers ------------------------------------------------------------------------------------


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


def _created(name: str) -> datetime:
    return datetime.strptime(name, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


@contextlib.contextmanager
def _gzip_writer(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    import gzip

    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        yield gz  # type: ignore[misc]


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


def new_snapshot_store(
    settings: Any,
    backend: WorkspaceBackend,
    *,
    credentials: Credentials | None = None,
) -> SnapshotStore:
    """A store in settings.gcs_bucket for the workspaces of this backend."""
    if not settings.gcs_bucket:
        raise SnapshotError("snapshots need ANVYL_GCS_BUCKET")
    return SnapshotStore(
        settings.gcs_bucket,
        files_for_backend(backend),
        project=settings.gcp_project,
        credentials=credentials,
        timeout_s=settings.cloud_call_timeout_s,
    )
