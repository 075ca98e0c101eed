"""Workspace snapshots in a GCS bucket, so a workspace survives the loss of its host.

A snapshot (snapshot_archive.py) is stored as `snapshots/{workspace_id}/{name}.tar.gz`;
`snapshots/{workspace_id}/latest` holds the name of the newest one. The files come from the
backend (snapshot_files.py). Restore checks the whole archive before writing anything, then
replaces the workspace's contents.

Blocking calls (GCS, Docker, tar) run in threads, each with a timeout. `google-cloud-storage` is
part of the orchestrator's `cloud` extra.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from anvyl.orchestrator.workspaces.snapshot_archive import (
    NAME,
    SnapshotError,
    SnapshotNotFound,
    checked_plain_tar,
    created,
    gzip_writer,
    new_name,
)
from anvyl.orchestrator.workspaces.snapshot_files import WorkspaceFiles, files_for_backend

if TYPE_CHECKING:
    import google.cloud.storage as storage
    from google.auth.credentials import Credentials

    from anvyl.orchestrator.workspaces.base import WorkspaceBackend
    from anvyl.orchestrator.workspaces.config import WorkspaceSettings

SNAPSHOT_PREFIX = "snapshots"
LATEST = "latest"
_CLOUD_EXTRA_HINT = (
    "GCS snapshots need the orchestrator's `cloud` extra: "
    "pip install 'anvyl-orchestrator[cloud]' (or uv sync --all-extras)"
)
NO_BUCKET = (
    "snapshots need a bucket: set ANVYL_GCS_BUCKET (or gcs_bucket in the config file's "
    "`workspace` section)"
)


class SnapshotsUnavailable(SnapshotError):
    """No bucket is configured, or the backend keeps no files to snapshot."""


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
        name = new_name()
        object_name = f"{prefix}{name}.tar.gz"
        files = self.files(workspace_id)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            path = Path(tmp) / "snapshot.tar.gz"

            def pack() -> int:
                with path.open("wb") as raw, gzip_writer(raw) as gz:
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
            workspace_id, name, object_name, self.bucket_name, size, created(name), members
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
                members = checked_plain_tar(packed, plain)
                files.import_tar(plain)
                return members

            members = await self._run(
                f"restoring {name} into workspace {workspace_id}",
                self.transfer_timeout_s,
                check_and_unpack,
            )
        return SnapshotInfo(
            workspace_id, name, object_name, self.bucket_name, size, created(name), members
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
                if blob.name.endswith(".tar.gz") and NAME.match(name):
                    found.append(
                        SnapshotInfo(
                            workspace_id,
                            name,
                            blob.name,
                            self.bucket_name,
                            int(blob.size or 0),
                            created(name),
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
            if not NAME.match(name):
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
        if not NAME.match(latest_name):
            raise SnapshotError(f"gs://{self.bucket_name}/{prefix}{LATEST} holds {latest_name!r}")
        return latest_name

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def new_snapshot_store(
    settings: WorkspaceSettings,
    backend: WorkspaceBackend,
    *,
    credentials: Credentials | None = None,
) -> SnapshotStore:
    """A store in the workspace config's bucket for the workspaces of this backend (raises
    SnapshotsUnavailable without a bucket, or for a backend without files of its own)."""
    config = settings.workspace
    bucket = getattr(config, "gcs_bucket", None)
    if not bucket:
        raise SnapshotsUnavailable(NO_BUCKET)
    try:
        files = files_for_backend(backend)
    except SnapshotError as exc:
        raise SnapshotsUnavailable(str(exc)) from exc
    return SnapshotStore(
        bucket,
        files.workspace_files,
        project=getattr(config, "gcp_project", None),
        credentials=credentials,
        timeout_s=getattr(config, "call_timeout_s", 60.0),
    )
