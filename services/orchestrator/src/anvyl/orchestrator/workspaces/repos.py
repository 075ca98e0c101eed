"""Repository references: validating what a user sends and deriving a stable workspace id from it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>[\w.-]+):(?P<path>[^\s]+)$")
_REMOTE_SCHEMES = {"http", "https", "ssh", "git"}


class InvalidRepository(ValueError):
    """The repo_url is neither a local git repository nor a git URL we accept."""


@dataclass(frozen=True)
class RepoRef:
    url: str  # as given, normalized (credentials kept: the worker needs them to clone)
    local_path: Path | None  # set for a repository on this machine
    workspace_id: str
    # Extra labels of its worker (a named agent's: anvyl.agent=NAME); the docker backend sets them.
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def display_url(self) -> str:
        """The URL with any credentials removed, for logs, events and answers."""
        return redact_url(self.url)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"***@{host}"))
    return url


def parse_repo(repo_url: str) -> RepoRef:
    value = repo_url.strip()
    if not value:
        raise InvalidRepository("repo_url is empty: give a local git repository path or a git URL")
    if value.startswith("-") or any(ch in value for ch in "\x00\n\r"):
        raise InvalidRepository("repo_url must not start with '-' or contain control characters")
    if "::" in value.split("/", 1)[0]:
        raise InvalidRepository("git transport helpers such as 'ext::' are not allowed in repo_url")
    parts = urlsplit(value)
    if parts.scheme in _REMOTE_SCHEMES:
        if not parts.hostname or parts.path in ("", "/"):
            raise InvalidRepository(
                f"repo_url {redact_url(value)!r} needs a host and a repository path"
            )
        key = f"{parts.hostname.lower()}{parts.path.rstrip('/').removesuffix('.git')}"
        return RepoRef(value, None, workspace_id_for(key))
    if match := _SCP_LIKE.match(value):
        key = f"{match['host'].lower()}/{match['path'].rstrip('/').removesuffix('.git')}"
        return RepoRef(value, None, workspace_id_for(key))
    if parts.scheme == "file":
        value = parts.path
    elif parts.scheme:
        raise InvalidRepository(
            f"repo_url scheme {parts.scheme!r} is not supported: use https://, ssh://, git://, "
            "user@host:path or a local path"
        )
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise InvalidRepository(f"repo_url {value!r}: a local repository must be an absolute path")
    path = path.resolve()
    if not path.is_dir():
        raise InvalidRepository(f"repo_url {value!r}: no such directory on the orchestrator's host")
    if not (
        (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
    ):
        raise InvalidRepository(f"repo_url {value!r} is a directory but not a git repository")
    return RepoRef(str(path), path, workspace_id_for(str(path)))


def workspace_id_for(key: str) -> str:
    """A readable, stable id: the repository's name plus a hash of its normalized location."""
    name = re.sub(r"[^a-z0-9]+", "-", key.rsplit("/", 1)[-1].lower()).strip("-")[:40] or "repo"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"{name}-{digest}"
