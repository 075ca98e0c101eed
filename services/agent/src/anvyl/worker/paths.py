"""Resolving request paths so that nothing escapes the workspace, symlinks included."""

from __future__ import annotations

import os
from pathlib import Path

MAX_PATH_LENGTH = 4096
MAX_NAME_BYTES = 255


class InvalidPath(ValueError):
    """A request named a path that cannot be used (NUL byte, too long, not text): a 400."""


class PathOutsideWorkspace(InvalidPath):
    """A request named a path that resolves outside the workspace: a 403."""


def _validate(path: str) -> None:
    if "\x00" in path:
        raise InvalidPath("invalid path: contains a NUL byte")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath(f"invalid path {path[:80]!r}: not valid Unicode text") from None
    if len(encoded) > MAX_PATH_LENGTH:
        raise InvalidPath(f"invalid path {path[:80]!r}...: longer than {MAX_PATH_LENGTH} bytes")
    for part in path.split("/"):
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidPath(
                f"invalid path: the name {part[:40]!r}... is longer than {MAX_NAME_BYTES} bytes"
            )


def _inside(root: Path, resolved: Path) -> bool:
    return resolved == root or root in resolved.parents


def _candidate(root: Path, path: str) -> Path:
    _validate(path)
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


def resolve_inside(root: Path, path: str) -> Path:
    """Return `path` (relative to `root`, or absolute inside it) fully resolved.

    `root` must already be resolved. Symlinks are followed before the check, so a link that points
    outside (the final name or any parent directory) is refused like `..` is.
    """
    resolved = Path(os.path.realpath(_candidate(root, path)))
    if not _inside(root, resolved):
        raise PathOutsideWorkspace(f"path {path!r} is outside the workspace")
    return resolved


def resolve_entry(root: Path, path: str) -> Path:
    """Resolve the parent directories of `path` but not its last name (delete and move act on a
    symlink itself, not on what it points to). A symlink that points outside is still refused."""
    candidate = _candidate(root, path)
    name = candidate.name
    if name in ("", ".", "..") or path.endswith("/"):
        return resolve_inside(root, path)
    parent = Path(os.path.realpath(candidate.parent))
    if not _inside(root, parent):
        raise PathOutsideWorkspace(f"path {path!r} is outside the workspace")
    entry = parent / name
    if entry.is_symlink() and not _inside(root, Path(os.path.realpath(entry))):
        raise PathOutsideWorkspace(f"path {path!r} is a symlink that points outside the workspace")
    return entry


def relative(root: Path, path: Path) -> str:
    """The workspace-relative form of a resolved path, as answers show it."""
    rel = path.relative_to(root).as_posix()
    return rel or "."
