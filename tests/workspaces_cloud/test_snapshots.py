"""Snapshots to GCS (gcp-storage-emulator) and back: a local directory and a real container."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.workspaces.local import LocalBackend
from anvyl.orchestrator.workspaces.manager import create_backend
from anvyl.orchestrator.workspaces.snapshot_archive import (
    SnapshotError,
    SnapshotNotFound,
    UnsafeArchive,
    check_members,
)
from anvyl.orchestrator.workspaces.snapshot_files import DirectoryFiles, DockerContainerFiles
from anvyl.orchestrator.workspaces.snapshots import SnapshotStore, new_snapshot_store

from .conftest import BUCKET, PROJECT

AGENT_IMAGE = os.environ.get("ANVYL_AGENT_IMAGE", "anvyl/agent:dev")
TEST_LABEL = {"anvyl.test": "cloud"}
WID = "widget-5a192d1cb5"


def tree(root: Path) -> dict[str, Any]:
    """Everything that must survive a round trip: type, mode, content hash, link target."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = ("dir", path.stat().st_mode & 0o777)
        else:
            found[rel] = (
                "file",
                path.stat().st_mode & 0o777,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return found


def fill(root: Path) -> None:
    (root / "src/pkg").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "README.md").write_text("# widget\n")
    (root / "src/pkg/mod.py").write_text("print('hi')\n" * 100)
    (root / "data.bin").write_bytes(secrets.token_bytes(200_000))
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o755)
    (root / "latest-src").symlink_to("src/pkg")
    (root / ".git").mkdir()
    (root / ".git/HEAD").write_text("ref: refs/heads/main\n")


def store_for(files: Any, tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(
        BUCKET,
        files,
        project=PROJECT,
        credentials=AnonymousCredentials(),
        timeout_s=20,
        transfer_timeout_s=60,
        work_dir=tmp_path,
    )


async def test_directory_round_trip(gcs_emulator: str, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    fill(root)
    before = tree(root)
    store = store_for(lambda wid: DirectoryFiles(root), tmp_path)
    try:
        info = await store.snapshot(WID)
        assert info.object_name == f"snapshots/{WID}/{info.name}.tar.gz"
        assert info.url == f"gs://{BUCKET}/{info.object_name}"
        assert info.members == len(before)
        assert info.size > 200_000  # random bytes do not compress

        shutil.rmtree(root)  # the host lost its disk
        restored = await store.restore(WID)
        assert restored.name == info.name and restored.members == len(before)
        assert tree(root) == before
        assert (root / "latest-src/mod.py").read_text().startswith("print")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]  # no staging or temp left
    finally:
        await store.close()


async def test_restore_replaces_contents_and_picks_named_or_latest(
    gcs_emulator: str, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("one\n")
    store = store_for(lambda wid: DirectoryFiles(root), tmp_path)
    try:
        first = await store.snapshot(WID)
        (root / "a.txt").write_text("two\n")
        (root / "b.txt").write_text("new\n")
        second = await store.snapshot(WID)
        listed = await store.list(WID)
        assert [s.name for s in listed] == [first.name, second.name]
        assert all(s.size > 0 and s.workspace_id == WID for s in listed)

        await store.restore(WID, first.name)
        assert tree(root) == {"a.txt": ("file", 0o644, hashlib.sha256(b"one\n").hexdigest())}
        await store.restore(WID, None)  # latest
        assert (root / "a.txt").read_text() == "two\n" and (root / "b.txt").exists()
        await store.restore(WID, f"snapshots/{WID}/{first.name}.tar.gz")  # object name works too
        assert not (root / "b.txt").exists()
        assert await store.list("other-0000000000") == []
    finally:
        await store.close()


async def test_missing_snapshot_is_a_clear_error(gcs_emulator: str, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    store = store_for(lambda wid: DirectoryFiles(root), tmp_path)
    try:
        with pytest.raises(SnapshotNotFound, match=f"workspace {WID} has no snapshot in gs://"):
            await store.restore(WID)
        with pytest.raises(SnapshotNotFound, match="no snapshot 20200101T000000000000Z"):
            await store.restore(WID, "20200101T000000000000Z")
        with pytest.raises(SnapshotNotFound, match="not a snapshot name"):
            await store.restore(WID, "../../etc/passwd")
        with pytest.raises(SnapshotError, match="invalid workspace id"):
            await store.snapshot("../escape")
        with pytest.raises(SnapshotError, match="does not exist"):
            await store_for(lambda wid: DirectoryFiles(tmp_path / "nope"), tmp_path).snapshot(WID)
    finally:
        await store.close()


async def test_store_for_the_local_backend(gcs_emulator: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        gcs_bucket=BUCKET,
        gcp_project=PROJECT,
        workspace_backend="local",
    )
    backend = create_backend(settings)
    assert isinstance(backend, LocalBackend)
    store = new_snapshot_store(settings, backend, credentials=AnonymousCredentials())
    try:
        directory = backend.directory(WID)
        directory.mkdir(parents=True)
        (directory / "f.txt").write_text("local\n")
        info = await store.snapshot(WID)
        shutil.rmtree(directory)
        await store.restore(WID, info.name)
        assert (directory / "f.txt").read_text() == "local\n"
    finally:
        await store.close()
        await backend.close()


# Tar slip -------------------------------------------------------------------------------------


def member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x"
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


SLIPS = {
    "parent": ([member("ok.txt"), member("../evil.txt")], "contains '..'"),
    "nested-parent": ([member("a/../../evil.txt")], "contains '..'"),
    "absolute": ([member("/tmp/evil.txt")], "absolute path"),
    "absolute-link": ([member("etc", tarfile.SYMTYPE, "/etc")], "is absolute"),
    "link-out": ([member("up", tarfile.SYMTYPE, "../../outside")], "points outside"),
    "link-chain": (
        [member("here", tarfile.SYMTYPE, "."), member("x", tarfile.SYMTYPE, "here/..")],
        "points outside",
    ),
    "below-link": (
        [member("d", tarfile.DIRTYPE), member("l", tarfile.SYMTYPE, "d"), member("l/f.txt")],
        "below a symbolic link",
    ),
    "hardlink-out": ([member("h", tarfile.LNKTYPE, "../../etc/passwd")], "contains '..'"),
    "hardlink-missing": ([member("h", tarfile.LNKTYPE, "nothing")], "names no earlier file"),
    "device": ([member("dev", tarfile.CHRTYPE)], "special file"),
    "fifo": ([member("pipe", tarfile.FIFOTYPE)], "special file"),
    "duplicate": ([member("a"), member("a")], "appears twice"),
}


@pytest.mark.parametrize("case", sorted(SLIPS))
async def test_tar_slip_is_refused_and_nothing_is_written(
    case: str, gcs_emulator: str, tmp_path: Path
) -> None:
    members, message = SLIPS[case]
    root = tmp_path / "deep" / "ws"
    root.mkdir(parents=True)
    (root / "keep.txt").write_text("still here\n")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
    name = "20260101T000000000000Z"
    client.bucket(BUCKET).blob(f"snapshots/{WID}/{name}.tar.gz").upload_from_string(
        archive(*members)
    )
    client.close()
    store = store_for(lambda wid: DirectoryFiles(root), tmp_path)
    try:
        with pytest.raises(UnsafeArchive, match=message):
            await store.restore(WID, name)
    finally:
        await store.close()
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert after == before
    assert (root / "keep.txt").read_text() == "still here\n"


def test_inside_links_are_accepted() -> None:
    infos = [
        m[0]
        for m in (
            member("node_modules/pkg/bin/cli.js"),
            member("node_modules/.bin", tarfile.DIRTYPE),
            member("node_modules/.bin/cli", tarfile.SYMTYPE, "../pkg/bin/cli.js"),
            member("self", tarfile.SYMTYPE, "."),
            member("hard", tarfile.LNKTYPE, "node_modules/pkg/bin/cli.js"),
        )
    ]
    check_members(infos)  # raises on a refusal
    assert [i.name for i in infos][-1] == "hard"


# A real container -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=60)
    client.ping()
    client.images.get(AGENT_IMAGE)  # fails the test clearly when the image is missing
    yield client
    client.close()


class Containers:
    """Worker containers run as the docker backend runs them, labelled anvyl.test=cloud."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.names: list[str] = []
        self.volumes: list[str] = []

    def run(self) -> str:
        suffix = secrets.token_hex(4)
        name, volume = f"anvyl-test-cloud-{suffix}", f"anvyl-test-cloud-{suffix}-files"
        self.names.append(name)
        self.volumes.append(volume)
        self.client.volumes.create(volume, labels=TEST_LABEL)
        self.client.containers.run(
            AGENT_IMAGE,
            name=name,
            labels=TEST_LABEL,
            environment={"ANVYL_WORKER_TOKEN": secrets.token_urlsafe(32)},
            volumes={volume: {"bind": "/workspace", "mode": "rw"}},
            init=True,
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
            user="1000:1000",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="256m",
            pids_limit=128,
            detach=True,
        )
        return name

    def destroy(self, name: str) -> None:
        index = self.names.index(name)
        self.client.containers.get(name).remove(force=True)
        self.client.volumes.get(self.volumes[index]).remove(force=True)

    def sh(self, name: str, script: str) -> str:
        result = self.client.containers.get(name).exec_run(
            ["sh", "-c", script], user="1000:1000", workdir="/workspace"
        )
        output = bytes(result.output).decode()
        assert result.exit_code == 0, output
        return output

    def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(name).remove(force=True)
        for volume in self.volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(volume).remove(force=True)


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[Containers]:
    made = Containers(docker_client)
    try:
        yield made
    finally:
        made.cleanup()


LISTING = (
    "find . -mindepth 1 \\( -type f -exec sha256sum {} \\; \\) -o -printf '%p %y %m %l\\n' "
    "| sort; find . -mindepth 1 -type f -printf '%p %m %U\\n' | sort"
)


async def test_container_round_trip(
    gcs_emulator: str, tmp_path: Path, containers: Containers, docker_client: docker.DockerClient
) -> None:
    first = containers.run()
    containers.sh(
        first,
        "mkdir -p src/pkg empty .git && printf '# widget\\n' > README.md "
        "&& seq 1 5000 > src/pkg/numbers.txt && head -c 100000 /dev/urandom > data.bin "
        "&& printf '#!/bin/sh\\necho run\\n' > run.sh && chmod 755 run.sh "
        "&& ln -s src/pkg latest-src && echo 'ref: refs/heads/main' > .git/HEAD",
    )
    before = containers.sh(first, LISTING)
    assert "latest-src l 777 src/pkg" in before
    current = {"name": first}
    store = store_for(lambda wid: DockerContainerFiles(docker_client, current["name"]), tmp_path)
    try:
        info = await store.snapshot(WID)
        assert info.members == 10  # 6 files, 3 directories, 1 link

        containers.destroy(first)  # container and volume gone: the host is lost
        current["name"] = containers.run()
        assert containers.sh(current["name"], "ls -A | wc -l").strip() == "0"
        restored = await store.restore(WID)
        assert restored.name == info.name
        assert containers.sh(current["name"], LISTING) == before
        # The worker's user owns the restored files and can change them.
        containers.sh(current["name"], "echo more >> README.md && rm -r src/pkg && touch new")
        # A restore into a non-empty workspace replaces its contents.
        await store.restore(WID)
        assert containers.sh(current["name"], LISTING) == before
    finally:
        await store.close()


async def test_stopped_container_is_a_clear_error(
    gcs_emulator: str, tmp_path: Path, containers: Containers, docker_client: docker.DockerClient
) -> None:
    name = containers.run()
    containers.sh(name, "echo hi > a.txt")
    store = store_for(lambda wid: DockerContainerFiles(docker_client, name), tmp_path)
    try:
        await store.snapshot(WID)
        docker_client.containers.get(name).stop(timeout=2)
        with pytest.raises(SnapshotError, match="is exited: start it first"):
            await store.restore(WID)
        with pytest.raises(SnapshotError, match="not found"):
            await store_for(
                lambda wid: DockerContainerFiles(docker_client, "anvyl-test-cloud-missing"),
                tmp_path,
            ).snapshot(WID)
    finally:
        await store.close()


def test_no_credentials_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(SnapshotError, match="no Google credentials"):
        SnapshotStore(BUCKET, lambda wid: DirectoryFiles(tmp_path))
