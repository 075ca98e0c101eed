"""Resolving request paths so that nothing escapes the workspace, symlinks included."""

from __future__ import annotations

import os
from pathlib import Path

MAX_PATH_LENGTH = 4096


class PathOutsideWorkspace(ValueError):
    """A request named a path that resolves outside the workspace."""


def resolve_inside(root: Path, path: str) -> Path:
    """Return `path` (relative to `root`, or absolute inside it) fully resolved.

    Symlinks are followed before the check, so a link that points outside is refused like `..` is.
    """
    if len(path) > MAX_PATH_LENGTH or "\x00" in path:
        raise PathOutsideWorkspace(f"invalid path {path[:80]!r}: too long or contains a NUL byte")
    root = root.resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise PathOutsideWorkspace(f"path {path!r} is outside the workspace")
    return resolved
