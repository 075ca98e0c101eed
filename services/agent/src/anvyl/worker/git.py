"""Git operations of the worker: argument validation and the commands themselves."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from anvyl.worker import models
from anvyl.worker.processes import run_command

# Transports git may use; `ext::` and friends (which run arbitrary commands) are never allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
_URL_SCHEME = re.compile(r"^(https?|ssh|git|file)://[^\s]+$")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[^\s]+$")
_REF = re.compile(r"^[\w./~^@{}+-]+$")
_REMOTE_NAME = re.compile(r"^[\w.-]+$")
GIT_TIMEOUT_S = 600.0


class GitArgumentError(ValueError):
    """A git argument was refused before running git."""


def check_argument(name: str, value: str) -> str:
    if value.startswith("-"):
        raise GitArgumentError(f"{name} must not start with '-': {value[:80]!r}")
    if "\x00" in value or "\n" in value:
        raise GitArgumentError(f"{name} contains a control character")
    return value


def check_url(url: str) -> str:
    check_argument("url", url)
    if "::" in url.split("/", 1)[0]:
        raise GitArgumentError(f"git transport helpers such as 'ext::' are refused: {url[:80]!r}")
    if _URL_SCHEME.match(url) or _SCP_LIKE.match(url) or url.startswith("/"):
        return url
    raise GitArgumentError(
        f"unsupported repository URL {url[:80]!r}: use http(s)://, ssh://, git://, user@host:path "
        "or an absolute path"
    )


def check_ref(ref: str) -> str:
    check_argument("ref", ref)
    if not _REF.match(ref) or ".." in ref:
        raise GitArgumentError(f"invalid git ref {ref[:80]!r}")
    return ref


# Global-scope git config for every git the worker runs. safe.directory must be global: the
# workspace or a read-only source mount may belong to another uid, and git ignores `-c` for it.
_GITCONFIG = """\
[safe]
\tdirectory = *
[protocol "ext"]
\tallow = never
[init]
\tdefaultBranch = main
[user]
\tname = Anvyl Agent
\temail = agent@anvyl.invalid
"""


_CONFIG_ITEMS = (
    ("safe.directory", "*"),
    ("protocol.ext.allow", "never"),
    ("init.defaultBranch", "main"),
    ("user.name", "Anvyl Agent"),
    ("user.email", "agent@anvyl.invalid"),
)


@functools.cache
def global_config_path() -> str | None:
    """A private global git config file, or None where no temporary directory is writable."""
    try:
        path = Path(tempfile.gettempdir()) / f"anvyl-worker-{os.getuid()}.gitconfig"
        path.write_text(_GITCONFIG)
        path.chmod(0o600)
    except (OSError, FileNotFoundError):
        return None
    return str(path)


# Only these variables of the worker's own environment reach git and commands; the token never does.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER")


def base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", "/tmp")
    return env


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else base_env())
    env.update(GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS, GIT_TERMINAL_PROMPT="0")
    config = global_config_path()
    if config is not None:
        env["GIT_CONFIG_GLOBAL"] = config
    else:  # no writable /tmp: the same settings as command-line configuration
        env["GIT_CONFIG_GLOBAL"] = "/dev/null"
        env["GIT_CONFIG_COUNT"] = str(len(_CONFIG_ITEMS))
        for i, (key, value) in enumerate(_CONFIG_ITEMS):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


async def git(
    args: list[str],
    cwd: Path,
    timeout_s: float = GIT_TIMEOUT_S,
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    max_output_bytes: int = 1_000_000,
) -> models.ExecResult:
    argv = ["git", *args]
    full_env = git_env()
    if env:
        full_env.update(env)
    return await run_command(
        argv,
        cwd=cwd,
        env=full_env,
        timeout_s=timeout_s,
        stdin=stdin,
        max_output_bytes=max_output_bytes,
    )


class GitCommandFailed(RuntimeError):
    def __init__(self, what: str, result: models.ExecResult) -> None:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        super().__init__(f"{what} failed (exit {result.exit_code}): {detail}")
        self.result = result


async def _checked(args: list[str], cwd: Path, what: str, **kwargs: Any) -> models.ExecResult:
    result = await git(args, cwd, **kwargs)
    if result.exit_code != 0:
        raise GitCommandFailed(what, result)
    return result


async def clone_or_fetch(request: models.GitCloneRequest, dest: Path) -> models.GitCloneResult:
    """Clone into `dest`, or fetch when `dest` already holds a clone of the same URL."""
    url = check_url(request.url)
    ref = check_ref(request.ref) if request.ref else None
    if (dest / ".git").exists():
        origin = (
            await _checked(["remote", "get-url", "origin"], dest, "git remote")
        ).stdout.strip()
        if origin != url:
            raise GitArgumentError(f"workspace already holds a clone of {origin!r}, not {url!r}")
        await _checked(["fetch", "--prune", "origin"], dest, "git fetch")
        if ref:
            await _checked(["checkout", ref], dest, "git checkout")
        action = "fetched"
    else:
        if dest.exists() and any(dest.iterdir()):
            raise GitArgumentError(f"destination {dest.name!r} is not empty and is not a clone")
        dest.mkdir(parents=True, exist_ok=True)
        args = ["clone", "--quiet"]
        if request.depth:
            args += ["--depth", str(request.depth)]
        if ref:
            args += ["--branch", ref]
        await _checked([*args, "--", url, str(dest)], dest.parent, "git clone")
        action = "cloned"
    head = (await git(["rev-parse", "HEAD"], dest)).stdout.strip()
    return models.GitCloneResult(action=action, path=str(dest), head=head)


def check_remote(remote: str) -> str:
    """A remote is a configured name (`origin`) or a URL that passes `check_url`."""
    check_argument("remote", remote)
    if _REMOTE_NAME.match(remote):
        return remote
    return check_url(remote)


def check_pathspecs(paths: list[str]) -> list[str]:
    for path in paths:
        check_argument("path", path)
        if not path:
            raise GitArgumentError("empty path")
    return paths


class NotARepository(GitArgumentError):
    pass


async def _head(repo: Path) -> str | None:
    result = await git(["rev-parse", "--verify", "--quiet", "HEAD"], repo, 30)
    return result.stdout.strip() or None if result.exit_code == 0 else None


async def _branch(repo: Path) -> str | None:
    result = await git(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, 30)
    return result.stdout.strip() or None if result.exit_code == 0 else None


async def require_repo(repo: Path) -> None:
    result = await git(["rev-parse", "--git-dir"], repo, 30)
    if result.exit_code != 0:
        raise NotARepository(f"not a git repository: {result.stderr.strip()[:300]}")


async def fetch(request: models.GitFetchRequest, repo: Path) -> models.GitFetchResult:
    remote = check_remote(request.remote)
    ref = check_ref(request.ref) if request.ref else None
    await require_repo(repo)
    args = ["fetch"]
    if request.prune:
        args.append("--prune")
    if request.depth:
        args += ["--depth", str(request.depth)]
    args += ["--", remote]
    if ref:
        args.append(ref)
    result = await _checked(args, repo, "git fetch")
    return models.GitFetchResult(
        path=str(repo),
        remote=remote,
        head=await _head(repo),
        output=(result.stderr + result.stdout).strip(),
    )


StatusKind = Literal["changed", "renamed", "unmerged", "untracked", "ignored"]
# Porcelain v2 records by tag. Tracked: the number of fields before the path, and the kind; a
# "2" record (rename or copy) is followed by the original path as a record of its own.
_TRACKED_RECORDS: dict[str, tuple[int, StatusKind]] = {
    "1": (8, "changed"),
    "2": (9, "renamed"),
    "u": (10, "unmerged"),
}
_UNTRACKED_RECORDS: dict[str, StatusKind] = {"?": "untracked", "!": "ignored"}


def parse_status_v2(raw: str) -> tuple[dict[str, str], list[models.GitStatusEntry]]:
    """Parse `git status --porcelain=v2 --branch -z`."""
    headers: dict[str, str] = {}
    entries: list[models.GitStatusEntry] = []
    records = raw.split("\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        tag = record[:1]
        if record[1:2] != " ":
            continue
        if tag == "#":
            key, _, value = record[2:].partition(" ")
            headers[key] = value
        elif tag in _TRACKED_RECORDS:
            path_field, kind = _TRACKED_RECORDS[tag]
            parts = record.split(" ", path_field)
            orig = None
            if tag == "2":
                orig = records[i] if i < len(records) else None
                i += 1
            xy = parts[1]
            entries.append(
                models.GitStatusEntry(
                    path=parts[path_field], orig_path=orig, index=xy[0], worktree=xy[1], kind=kind
                )
            )
        elif tag in _UNTRACKED_RECORDS:
            entries.append(
                models.GitStatusEntry(
                    path=record[2:], index=tag, worktree=tag, kind=_UNTRACKED_RECORDS[tag]
                )
            )
    return headers, entries


async def status(repo: Path) -> models.GitStatus:
    await require_repo(repo)
    result = await _checked(
        ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"],
        repo,
        "git status",
        max_output_bytes=10_000_000,
    )
    headers, entries = parse_status_v2(result.stdout)
    oid = headers.get("branch.oid")
    head_name = headers.get("branch.head")
    ahead = behind = 0
    if ab := headers.get("branch.ab"):
        a, _, b = ab.partition(" ")
        ahead, behind = abs(int(a)), abs(int(b))
    return models.GitStatus(
        path=str(repo),
        branch=None if head_name in (None, "(detached)") else head_name,
        head=None if oid in (None, "(initial)") else oid,
        upstream=headers.get("branch.upstream"),
        ahead=ahead,
        behind=behind,
        clean=not [e for e in entries if e.kind != "ignored"],
        entries=entries,
    )


_DIFF_SAFETY = ["--no-ext-diff", "--no-textconv", "--no-color"]


async def diff(request: models.GitDiffRequest, repo: Path) -> models.GitDiff:
    ref = check_ref(request.ref) if request.ref else None
    paths = check_pathspecs(request.paths)
    await require_repo(repo)
    base = ["diff", *_DIFF_SAFETY, f"-U{request.context_lines}"]
    if request.staged:
        base.append("--cached")
    if ref:
        base.append(ref)
    tail = ["--", *paths]
    numstat = await _checked(
        [*base, "--numstat", "-z", *tail], repo, "git diff", max_output_bytes=10_000_000
    )
    files: list[models.GitDiffFile] = []
    records = numstat.stdout.split("\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if not record:
            continue
        fields = record.split("\t", 2)
        if len(fields) != 3:
            continue
        added, deleted, path = fields
        if not path:  # a rename: the old and the new path follow as their own records
            path = records[i + 1] if i + 1 < len(records) else ""
            i += 2
        files.append(
            models.GitDiffFile(
                path=path,
                added=None if added == "-" else int(added),
                deleted=None if deleted == "-" else int(deleted),
            )
        )
    patch = await _checked([*base, *tail], repo, "git diff", max_output_bytes=request.max_bytes)
    return models.GitDiff(diff=patch.stdout, files=files, truncated=patch.truncated)


async def log(request: models.GitLogRequest, repo: Path) -> models.GitLog:
    ref = check_ref(request.ref) if request.ref else None
    paths = check_pathspecs(request.paths)
    await require_repo(repo)
    if ref is None and await _head(repo) is None:
        return models.GitLog(commits=[])  # no commit yet
    fmt = "%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%s%x1f%b"
    args = ["log", "-z", f"--max-count={request.n}", f"--format={fmt}", "--no-color"]
    if ref:
        args.append(ref)
    args += ["--", *paths]
    result = await _checked(args, repo, "git log", max_output_bytes=10_000_000)
    commits = []
    for record in result.stdout.split("\0"):
        if not record.strip():
            continue
        fields = record.split("\x1f")
        if len(fields) < 9:
            continue
        sha, parents, an, ae, at, cn, ce, subject, body = fields[:9]
        commits.append(
            models.GitCommitInfo(
                sha=sha,
                parents=parents.split(),
                author_name=an,
                author_email=ae,
                authored_at=at,
                committer_name=cn,
                committer_email=ce,
                subject=subject,
                body=body.strip(),
            )
        )
    return models.GitLog(commits=commits)


async def checkout(request: models.GitCheckoutRequest, repo: Path) -> models.GitCheckoutResult:
    ref = check_ref(request.ref)
    start = check_ref(request.start_point) if request.start_point else None
    await require_repo(repo)
    if request.create:
        await _checked(["switch", "-c", ref, *([start] if start else [])], repo, "git switch -c")
    else:
        if start:
            raise GitArgumentError("start_point is only for create=true")
        # `git switch` never takes a path, so a ref named like a file cannot discard changes.
        result = await git(["switch", ref], repo)
        if result.exit_code != 0 and "a branch is expected" in result.stderr:
            result = await git(["switch", "--detach", ref], repo)
        if result.exit_code != 0:
            raise GitCommandFailed("git switch", result)
    head = await _head(repo)
    return models.GitCheckoutResult(path=str(repo), branch=await _branch(repo), head=head or "")


class NothingToCommit(GitCommandFailed):
    pass


async def commit(request: models.GitCommitRequest, repo: Path) -> models.GitCommitResult:
    paths = check_pathspecs(request.paths)
    await require_repo(repo)
    if request.add_all:
        await _checked(["add", "--all"], repo, "git add")
    if paths:
        await _checked(["add", "--", *paths], repo, "git add")
    env: dict[str, str] = {}
    if request.author_name:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = request.author_name
    if request.author_email:
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = request.author_email
    args = ["-c", "commit.gpgsign=false", "commit", "--file=-", "--no-edit"]
    if request.allow_empty:
        args.append("--allow-empty")
    result = await git(args, repo, env=env, stdin=request.message)
    if result.exit_code != 0:
        text = result.stdout + result.stderr
        if "nothing to commit" in text or "no changes added to commit" in text:
            raise NothingToCommit("git commit", result)
        raise GitCommandFailed("git commit", result)
    head = await _head(repo) or ""
    summary = (result.stdout.strip().splitlines() or [""])[0]
    return models.GitCommitResult(
        path=str(repo), sha=head, branch=await _branch(repo), summary=summary
    )
