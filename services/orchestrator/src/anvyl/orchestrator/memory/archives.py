"""Reading the user's archives: directories, .zip, .tar.gz/.tgz files and git repositories (a
local clone, or a URL cloned into the data directory). Each yields its files with a fingerprint;
only files of known text types under the size limit are read, the rest are reported as skipped."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from anvyl.orchestrator.memory.records import Snippet

TEXT_SUFFIXES = frozenset(
    [
        ".md",
        ".markdown",
        ".txt",
        ".rst",
        ".adoc",
        ".org",
        ".tex",
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".conf",
        ".env.example",
        ".xml",
        ".html",
        ".htm",
        ".css",
        ".scss",
        ".py",
        ".pyi",
        ".ipynb",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".go",
        ".rs",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".rb",
        ".php",
        ".swift",
        ".m",
        ".lua",
        ".r",
        ".pl",
        ".sh",
        ".bash",
        ".zsh",
        ".fish",
        ".ps1",
        ".sql",
        ".graphql",
        ".proto",
        ".tf",
        ".hcl",
        ".dockerfile",
        ".vue",
        ".svelte",
        ".ex",
        ".exs",
        ".erl",
        ".hs",
        ".ml",
        ".clj",
        ".dart",
        ".nim",
        ".zig",
        ".jl",
        ".gradle",
        ".properties",
        ".mk",
        ".cmake",
    ]
)
TEXT_NAMES = frozenset({"Dockerfile", "Makefile", "README", "LICENSE", "CHANGELOG", "Justfile",
                        "Procfile", "Gemfile", "Rakefile", ".gitignore"})  # fmt: skip
SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                          ".mypy_cache", ".pytest_cache", ".ruff_cache"})  # fmt: skip
GIT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 1_000_000
    max_files: int = 20_000
    lines_per_snippet: int = 40
    max_snippet_chars: int = 4_000


@dataclass(frozen=True)
class Entry:
    path: str  # POSIX, relative to the archive's root
    size: int
    fingerprint: str


@dataclass
class Source:
    """An opened archive: its entries and a way to read one."""

    location: str
    entries: list[Entry] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # directories left out by name
    _root: Path | None = None
    _zip: zipfile.ZipFile | None = None
    _tar: tarfile.TarFile | None = None

    def read(self, entry: Entry) -> bytes:
        if self._root is not None:
            return (self._root / entry.path).read_bytes()
        if self._zip is not None:
            return self._zip.read(entry.path)
        assert self._tar is not None
        member = self._tar.extractfile(entry.path)
        if member is None:
            raise OSError(f"{entry.path} is not a regular file")
        with member:
            return member.read()


def is_remote(location: str) -> bool:
    return location.startswith(("http://", "https://", "ssh://", "git://", "git@", "file://"))


def skip_reason(path: str, size: int, limits: Limits) -> str | None:
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in TEXT_SUFFIXES and name not in TEXT_NAMES:
        return f"file type {suffix or name!r} is not indexed"
    if size > limits.max_file_bytes:
        return f"{size} bytes is over the {limits.max_file_bytes}-byte limit"
    if size == 0:
        return "empty"
    return None


def snippets(data: bytes, limits: Limits) -> list[Snippet] | str:
    """The file cut into runs of lines, or why it is not text."""
    if b"\0" in data[:8192]:
        return "binary content"
    lines = data.decode("utf-8", errors="replace").splitlines()
    step = limits.lines_per_snippet
    found = []
    for start in range(0, len(lines), step):
        chunk = "\n".join(lines[start : start + step]).strip()
        if chunk:
            found.append(Snippet(text=chunk[: limits.max_snippet_chars], line_start=start + 1,
                                 line_end=min(start + step, len(lines))))  # fmt: skip
    return found or "no text"


@contextmanager
def open_archive(location: str, clones: Path) -> Iterator[Source]:
    """Blocking: run it on a thread. Raises OSError (or ValueError) when it cannot be read."""
    if is_remote(location):
        yield _directory(location, _clone(location, clones), git=True)
        return
    path = Path(location).expanduser()
    if path.is_dir():
        yield _directory(location, path, git=(path / ".git").exists())
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            source = Source(location, _zip=archive)
            source.entries = [Entry(i.filename, i.file_size, f"{i.file_size}:{i.CRC:08x}")
                              for i in archive.infolist() if not i.is_dir()]  # fmt: skip
            yield source
    elif path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(path) as archive:
            source = Source(location, _tar=archive)
            source.entries = [Entry(m.name, m.size, f"{m.size}:{m.mtime}")
                              for m in archive.getmembers() if m.isfile()]  # fmt: skip
            yield source
    elif not path.exists():
        raise FileNotFoundError(f"{location}: no such directory or file")
    else:
        raise ValueError(f"{location}: not a directory, .zip, .tar.gz or git repository")


def _directory(location: str, root: Path, *, git: bool) -> Source:
    source = Source(location, _root=root)
    paths = _git_files(root) if git else None
    if paths is None:
        paths = []
        for folder, dirs, files in os.walk(root):
            for name in [d for d in dirs if d in SKIPPED_DIRS]:
                dirs.remove(name)
                source.excluded.append(str(Path(folder, name).relative_to(root)))
            paths += [str(Path(folder, f).relative_to(root)) for f in files]
    for relative in sorted(paths):
        full = root / relative
        try:
            stat = full.lstat()
        except OSError:
            continue
        if full.is_symlink() or not full.is_file():
            continue  # a link may point out of the archive
        source.entries.append(Entry(PurePosixPath(Path(relative)).as_posix(), stat.st_size,
                                    f"{stat.st_size}:{stat.st_mtime_ns}"))  # fmt: skip
    return source


def _git_files(root: Path) -> list[str] | None:
    """The repository's tracked files (its .gitignore respected), or None when git cannot tell."""
    try:
        done = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                              timeout=GIT_TIMEOUT_S, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return [p for p in done.stdout.decode(errors="replace").split("\0") if p]


def _clone(url: str, clones: Path) -> Path:
    """A shallow clone of the URL's default branch, updated on each call."""
    target = clones / hashlib.sha256(url.encode()).hexdigest()[:16]
    env = os.environ | {"GIT_TERMINAL_PROMPT": "0"}
    try:
        if (target / ".git").exists():
            for argv in (
                ["fetch", "--depth", "1", "origin", "HEAD"],
                ["reset", "--hard", "FETCH_HEAD"],
            ):
                subprocess.run(["git", "-C", str(target), *argv], capture_output=True, check=True,
                               timeout=GIT_TIMEOUT_S, env=env)  # fmt: skip
        else:
            clones.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "clone", "--depth", "1", "--quiet", url, str(target)],
                           capture_output=True, check=True, timeout=GIT_TIMEOUT_S, env=env)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise OSError(
            f"git could not fetch {url}: {exc.stderr.decode(errors='replace').strip()}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"git did not fetch {url} within {GIT_TIMEOUT_S:g} s") from exc
    return target
