"""The snapshot archive format: a tar.gz of a workspace's contents with relative member names,
named by its UTC time (20261120T233501123456Z), checked as a whole before anything is restored.

The check refuses a tar slip: absolute names, `..` components, members below a symbolic link,
links (symbolic or hard) that resolve outside the workspace, device files and fifos, duplicate
names.
"""

from __future__ import annotations

import builtins
import contextlib
import gzip
import re
import tarfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from anvyl.orchestrator.workspaces.base import WorkspaceError

NAME_FORMAT = "%Y%m%dT%H%M%S%fZ"
NAME = re.compile(r"^\d{8}T\d{12}Z$")
_MAX_LINK_DEPTH = 40


class SnapshotError(WorkspaceError):
    """A snapshot could not be taken, found or restored."""


class SnapshotNotFound(SnapshotError):
    pass


class UnsafeArchive(SnapshotError):
    """The archive would write outside the workspace (tar slip) or holds special files."""


def new_name() -> str:
    return datetime.now(UTC).strftime(NAME_FORMAT)


def created(name: str) -> datetime:
    return datetime.strptime(name, NAME_FORMAT).replace(tzinfo=UTC)


@contextlib.contextmanager
def gzip_writer(raw: IO[bytes]) -> Iterator[IO[bytes]]:
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        yield gz  # type: ignore[misc]


def checked_plain_tar(packed: Path, plain: Path) -> int:
    """Decompress a snapshot to a plain tar with clean names, after checking all of it (raises
    UnsafeArchive); return the number of entries."""
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
    return len(members)


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
