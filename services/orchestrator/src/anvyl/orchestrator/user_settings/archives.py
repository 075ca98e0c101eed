"""The shape of a RAG archive entry: a directory, a .zip, a .tar.gz or a git repository, by path or
URL. Only the shape is checked here (the memory part opens them); a bad one says what to write."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

ArchiveKind = Literal["directory", "zip", "tar.gz", "git"]
MAX_ARCHIVE_CHARS = 2048
_URL_SCHEMES = {"http", "https", "ssh", "git", "file"}
# user@host:path, the scp-like form git understands (git@github.com:org/repo.git)
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\\].*$")
_UNSUPPORTED = (".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".7z", ".rar", ".gz")
_SUPPORTED = "a directory, a .zip, a .tar.gz (.tgz) or a git repository"


def archive_kind(entry: str) -> ArchiveKind:
    """What `entry` is, by its shape; ValueError (saying what to write) when it is none of them."""
    if not entry or entry != entry.strip():
        raise ValueError("empty, or starts or ends with spaces: give a path or URL")
    if len(entry) > MAX_ARCHIVE_CHARS:
        raise ValueError(f"longer than {MAX_ARCHIVE_CHARS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in entry):
        # (a lone surrogate, "\ud800" in JSON, is no text a database or file system takes)
        raise ValueError("contains control characters or lone surrogates: give a path or URL")
    lowered = entry.lower().rstrip("/")
    if _SCP_LIKE.match(entry):
        return "git"
    if "://" in entry:
        parts = urlsplit(entry)
        if parts.scheme.lower() not in _URL_SCHEMES:
            raise ValueError(f"URL scheme {parts.scheme!r} is not supported; use "
                             f"{', '.join(sorted(_URL_SCHEMES))}")  # fmt: skip
        if parts.scheme.lower() != "file" and not parts.hostname:
            raise ValueError("the URL names no host")
        lowered = parts.path.lower().rstrip("/")
        by_suffix = _by_suffix(lowered)
        if by_suffix is not None:
            return by_suffix
        if parts.scheme.lower() == "file":
            return "directory"
        return "git"  # https://host/org/repo: a repository to clone
    if not (entry.startswith("/") or entry.startswith("~")):
        raise ValueError(f"{entry!r} is a relative path: give an absolute path (or ~/...) or a URL")
    by_suffix = _by_suffix(lowered)
    return by_suffix if by_suffix is not None else "directory"


def _by_suffix(path: str) -> ArchiveKind | None:
    if path.endswith(".zip"):
        return "zip"
    if path.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if path.endswith(".git"):
        return "git"
    if path.endswith(_UNSUPPORTED):
        raise ValueError(f"{path.rsplit('/', 1)[-1]!r}: this kind of archive is not supported; "
                         f"give {_SUPPORTED}")  # fmt: skip
    return None
