"""Git operations of the worker: argument validation and the commands themselves."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from anvyl.agent.models import ExecResult, GitCloneRequest, GitCloneResult
from anvyl.agent.processes import run_command

# Transports git may use; `ext::` and friends (which run arbitrary commands) are never allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
_URL_SCHEME = re.compile(r"^(https?|ssh|git|file)://[^\s]+$")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[^\s]+$")
_REF = re.compile(r"^[\w./-]+$")
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


@functools.cache
def global_config_path() -> str:
    path = Path(tempfile.gettempdir()) / f"anvyl-worker-{os.getuid()}.gitconfig"
    path.write_text(_GITCONFIG)
    path.chmod(0o600)
    return str(path)


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else os.environ)
    env.update(
        GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS,
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_GLOBAL=global_config_path(),
    )
    return env


async def git(args: list[str], cwd: Path, timeout_s: float = GIT_TIMEOUT_S) -> ExecResult:
    argv = ["git", *args]
    return await run_command(
        argv, cwd=cwd, env=git_env(), timeout_s=timeout_s, stdin=None, max_output_bytes=1_000_000
    )


class GitCommandFailed(RuntimeError):
    def __init__(self, what: str, result: ExecResult) -> None:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        super().__init__(f"{what} failed (exit {result.exit_code}): {detail}")
        self.result = result


async def _checked(args: list[str], cwd: Path, what: str) -> ExecResult:
    result = await git(args, cwd)
    if result.exit_code != 0:
        raise GitCommandFailed(what, result)
    return result


async def clone_or_fetch(request: GitCloneRequest, dest: Path) -> GitCloneResult:
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
    return GitCloneResult(action=action, path=str(dest), head=head)
