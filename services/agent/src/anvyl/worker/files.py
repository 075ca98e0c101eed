"""File operations of the worker. Every path goes through `paths` first; these functions are
blocking and run in a thread."""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import errno
import fnmatch
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path

from anvyl.worker import models
from anvyl.worker.paths import PathOutsideWorkspace, relative, resolve_entry, resolve_inside

_SNIFF_BYTES = 8192
_MAX_MATCH_TEXT = 500
_MAX_SEARCH_LINE = 20_000  # longer lines are cut before matching (keeps regex cost bounded)


class FileOperationError(ValueError):
    """A file operation that cannot be done as asked (a 4xx with `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _is_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return True
    return False


def read_file(root: Path, request: models.FileReadRequest) -> models.FileContent:
    path = resolve_inside(root, request.path)
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise FileOperationError(f"{request.path!r} is a directory")
    if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
        raise FileOperationError(f"{request.path!r} is not a regular file")
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        sample = handle.read(_SNIFF_BYTES)
        binary = _is_binary(sample)
        handle.seek(0)
        rel = relative(root, path)
        cap = request.max_bytes
        if binary:
            data = handle.read(cap + 1)
            return models.FileContent(
                path=rel,
                size=size,
                binary=True,
                encoding="base64",
                content=base64.b64encode(data[:cap]).decode("ascii"),
                truncated=len(data) > cap,
            )
        if request.start_line is None and request.end_line is None:
            data = handle.read(cap + 1)
            truncated = len(data) > cap
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            text = decoder.decode(data[:cap], final=not truncated)
            total = None if truncated else text.count("\n") + (0 if text.endswith("\n") else 1)
            return models.FileContent(
                path=rel,
                size=size,
                binary=False,
                encoding="utf-8",
                content=text,
                truncated=truncated,
                total_lines=total if text else 0,
            )
        start = request.start_line or 1
        end = request.end_line
        kept: list[bytes] = []
        used = 0
        truncated = False
        last: int | None = None
        lines_seen = 0
        reached_end = True
        for line in handle:
            lines_seen += 1
            if lines_seen < start:
                continue
            if end is not None and lines_seen > end:
                reached_end = False
                break
            if used + len(line) > cap:
                truncated = True
                reached_end = False
                break
            kept.append(line)
            used += len(line)
            last = lines_seen
        return models.FileContent(
            path=rel,
            size=size,
            binary=False,
            encoding="utf-8",
            content=b"".join(kept).decode("utf-8", errors="replace"),
            truncated=truncated,
            start_line=start,
            end_line=last,
            total_lines=lines_seen if reached_end else None,
        )


def write_file(root: Path, request: models.FileWriteRequest) -> models.FileWriteResult:
    """Write atomically: a temporary file in the same directory, then rename over the target."""
    if request.encoding == "base64":
        try:
            data = base64.b64decode(request.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FileOperationError(f"content is not valid base64: {exc}") from exc
    else:
        data = request.content.encode("utf-8", errors="strict")
    path = resolve_inside(root, request.path)
    if path == root or request.path.endswith("/"):
        raise FileOperationError(f"{request.path!r} names a directory, not a file")
    parent = path.parent
    if not parent.exists():
        if not request.create_parents:
            raise FileOperationError(
                f"parent directory of {request.path!r} does not exist", status=404
            )
        parent.mkdir(parents=True, exist_ok=True)
        # Re-check after creating: a racing symlink must not carry the write outside.
        if not resolve_inside(root, relative(root, parent)) == parent:
            raise PathOutsideWorkspace(f"path {request.path!r} is outside the workspace")
    elif not parent.is_dir():
        raise FileOperationError(f"parent of {request.path!r} is not a directory")
    existing: os.stat_result | None
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise FileOperationError(f"{request.path!r} is a directory")
        if not request.overwrite:
            raise FileOperationError(f"{request.path!r} exists", status=409)
    if request.mode is not None:
        mode = request.mode
    elif existing is not None:
        mode = stat.S_IMODE(existing.st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    tmp = parent / f".anvyl-{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return models.FileWriteResult(
        path=relative(root, path), size=len(data), created=existing is None
    )


def _entry_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _matches(glob: str | None, rel: str, name: str) -> bool:
    if glob is None:
        return True
    return fnmatch.fnmatch(rel if "/" in glob else name, glob)


def list_files(root: Path, request: models.FileListRequest) -> models.FileList:
    base = resolve_inside(root, request.path)
    if not base.is_dir():
        raise FileOperationError(f"{request.path!r} is not a directory")
    entries: list[models.FileEntry] = []
    truncated = False
    # Breadth-first, depth-limited, never following symlinked directories.
    level = [base]
    for _depth in range(request.depth):
        next_level: list[Path] = []
        for directory in level:
            try:
                children = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            for child in children:
                if child.name == ".git" and not request.include_git:
                    continue
                if child.name.startswith(".") and not request.include_hidden:
                    continue
                try:
                    st = child.stat(follow_symlinks=False)
                except OSError:
                    continue
                kind = _entry_type(st.st_mode)
                child_path = Path(child.path)
                rel = relative(root, child_path)
                if kind == "dir":
                    next_level.append(child_path)
                if _matches(request.glob, relative(base, child_path), child.name):
                    if len(entries) >= request.max_entries:
                        truncated = True
                        break
                    entries.append(
                        models.FileEntry(
                            path=rel, type=kind, size=st.st_size if kind == "file" else None
                        )
                    )
            if truncated:
                break
        if truncated:
            break
        level = next_level
    return models.FileList(path=relative(root, base), entries=entries, truncated=truncated)


def search(root: Path, request: models.SearchRequest) -> models.SearchResult:
    flags = re.IGNORECASE if request.case_insensitive else 0
    try:
        regex = re.compile(request.pattern.encode("utf-8"), flags)
    except re.error as exc:
        raise FileOperationError(f"invalid regular expression: {exc}") from exc
    base = resolve_inside(root, request.path)
    deadline = time.monotonic() + request.timeout_s
    matches: list[models.SearchMatch] = []
    scanned = 0

    def scan(path: Path) -> bool:
        """Scan one file; False when the result cap or the deadline is reached."""
        nonlocal scanned
        try:
            st = os.stat(path, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size > request.max_file_bytes:
                return True
            with open(path, "rb") as handle:
                data = handle.read(request.max_file_bytes)
        except OSError:
            return True
        if b"\x00" in data[:_SNIFF_BYTES]:
            return True
        scanned += 1
        rel = relative(root, path)
        for number, line in enumerate(data.splitlines(), start=1):
            if regex.search(line[:_MAX_SEARCH_LINE]):
                text = line.decode("utf-8", errors="replace")
                matches.append(
                    models.SearchMatch(path=rel, line=number, text=text[:_MAX_MATCH_TEXT])
                )
                if len(matches) >= request.max_results:
                    return False
            if number % 1000 == 0 and time.monotonic() > deadline:
                return False
        return time.monotonic() <= deadline

    if not base.is_dir():
        scan(base)
        return _search_result(matches, request, scanned, deadline)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if request.include_git or d != ".git")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not _matches(request.glob, relative(base, path), name):
                continue
            if not scan(path):
                return _search_result(matches, request, scanned, deadline)
    return _search_result(matches, request, scanned, deadline)


def _search_result(
    matches: list[models.SearchMatch], request: models.SearchRequest, scanned: int, deadline: float
) -> models.SearchResult:
    timed_out = time.monotonic() > deadline
    return models.SearchResult(
        matches=matches,
        truncated=len(matches) >= request.max_results or timed_out,
        timed_out=timed_out,
        files_scanned=scanned,
    )


def delete(root: Path, request: models.FileDeleteRequest) -> models.FileDeleteResult:
    path = resolve_entry(root, request.path)
    if path == root:
        raise FileOperationError("refusing to delete the workspace root", status=403)
    rel = relative(root, path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if request.missing_ok:
            return models.FileDeleteResult(path=rel, deleted=False)
        raise FileOperationError(f"{request.path!r} does not exist", status=404) from None
    if stat.S_ISDIR(st.st_mode):
        if request.recursive:
            shutil.rmtree(path)
        else:
            try:
                os.rmdir(path)
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:
                    raise FileOperationError(
                        f"directory {request.path!r} is not empty (pass recursive=true)",
                        status=409,
                    ) from None
                raise
    else:
        os.unlink(path)  # a symlink is removed itself, never what it points to
    return models.FileDeleteResult(path=rel, deleted=True)


def move(root: Path, request: models.FileMoveRequest) -> models.FileMoveResult:
    src = resolve_entry(root, request.src)
    dst = resolve_entry(root, request.dst)
    if src == root or dst == root:
        raise FileOperationError("refusing to move the workspace root", status=403)
    if not os.path.lexists(src):
        raise FileOperationError(f"{request.src!r} does not exist", status=404)
    if src in dst.parents:
        raise FileOperationError(f"cannot move {request.src!r} into itself")
    if os.path.lexists(dst) and not request.overwrite:
        raise FileOperationError(f"{request.dst!r} exists (pass overwrite=true)", status=409)
    if not dst.parent.exists():
        if not request.create_parents:
            raise FileOperationError(
                f"parent directory of {request.dst!r} does not exist", status=404
            )
        dst.parent.mkdir(parents=True, exist_ok=True)
        if resolve_inside(root, relative(root, dst.parent)) != dst.parent:
            raise PathOutsideWorkspace(f"path {request.dst!r} is outside the workspace")
    os.replace(src, dst)
    return models.FileMoveResult(src=relative(root, src), dst=relative(root, dst))
