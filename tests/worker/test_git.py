"""Git: clone, fetch, status, diff, log, checkout, commit, and argument injection refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from anvyl.worker.client import WorkerError
from anvyl.worker.models import (
    GitCheckoutRequest,
    GitCloneRequest,
    GitCommitRequest,
    GitDiffRequest,
    GitFetchRequest,
    GitLogRequest,
)

from .conftest import Worker

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Origin",
    "GIT_AUTHOR_EMAIL": "origin@example.com",
    "GIT_COMMITTER_NAME": "Origin",
    "GIT_COMMITTER_EMAIL": "origin@example.com",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("hello\n")
    (repo / "app.py").write_text("print('v1')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first commit")
    git(repo, "checkout", "-qb", "feature")
    (repo / "feature.txt").write_text("feature\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feature work")
    git(repo, "checkout", "-q", "main")
    return repo


async def post(worker: Worker, path: str, body: dict) -> httpx.Response:
    return await worker.post(path, body)


async def test_clone_status_diff_commit_log(worker: Worker, origin: Path) -> None:
    c = worker.client
    cloned = await c.git_clone(GitCloneRequest(url=f"file://{origin}", dest="repo"))
    assert cloned.action == "cloned" and len(cloned.head) == 40
    status = await c.git_status("repo")
    assert status.clean and status.branch == "main" and status.upstream == "origin/main"
    assert status.head == cloned.head and (status.ahead, status.behind) == (0, 0)

    ws = worker.workspace / "repo"
    (ws / "app.py").write_text("print('v2')\n")
    (ws / "new.txt").write_text("new\n")
    (ws / "README.md").rename(ws / "README.rst")
    status = await c.git_status("repo")
    assert not status.clean
    by_path = {e.path: e for e in status.entries}
    assert (by_path["app.py"].index, by_path["app.py"].worktree, by_path["app.py"].kind) == (
        ".",
        "M",
        "changed",
    )
    assert by_path["new.txt"].kind == "untracked" and by_path["README.rst"].kind == "untracked"
    assert by_path["README.md"].worktree == "D"

    diff = await c.git_diff(GitDiffRequest(path="repo"))
    assert "-print('v1')\n+print('v2')" in diff.diff
    assert {(f.path, f.added, f.deleted) for f in diff.files} == {
        ("app.py", 1, 1),
        ("README.md", 0, 1),
    }
    only = await c.git_diff(GitDiffRequest(path="repo", paths=["app.py"]))
    assert [f.path for f in only.files] == ["app.py"]
    assert (await c.git_diff(GitDiffRequest(path="repo", staged=True))).diff == ""

    committed = await c.git_commit(
        GitCommitRequest(
            path="repo",
            message="Update app\n\nLonger body.",
            add_all=True,
            author_name="Ada Lovelace",
            author_email="ada@example.com",
        )
    )
    assert committed.branch == "main" and len(committed.sha) == 40
    staged_rename = await c.git_diff(GitDiffRequest(path="repo", ref="HEAD~1"))
    assert {f.path for f in staged_rename.files} >= {"app.py", "new.txt"}
    log = await c.git_log(GitLogRequest(path="repo", n=5))
    assert [x.subject for x in log.commits] == ["Update app", "first commit"]
    top = log.commits[0]
    assert (top.author_name, top.author_email, top.body) == (
        "Ada Lovelace",
        "ada@example.com",
        "Longer body.",
    )
    assert top.sha == committed.sha and top.parents == [cloned.head]
    assert (await c.git_status("repo")).clean
    assert (await c.git_status("repo")).ahead == 1
    assert len((await c.git_log(GitLogRequest(path="repo", n=1))).commits) == 1

    with pytest.raises(WorkerError) as nothing:
        await c.git_commit(GitCommitRequest(path="repo", message="empty"))
    assert nothing.value.status_code == 409 and "nothing" in str(nothing.value)
    (ws / "only.txt").write_text("x")
    (ws / "other.txt").write_text("y")
    partial = await c.git_commit(
        GitCommitRequest(path="repo", message="only one", paths=["only.txt"])
    )
    assert partial.sha != committed.sha
    assert [e.path for e in (await c.git_status("repo")).entries] == ["other.txt"]


async def test_fetch_and_checkout(worker: Worker, origin: Path) -> None:
    c = worker.client
    await c.git_clone(GitCloneRequest(url=f"file://{origin}", dest="repo"))
    (origin / "later.txt").write_text("later\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "later")
    fetched = await c.git_fetch(GitFetchRequest(path="repo"))
    assert fetched.remote == "origin"
    assert (await c.git_status("repo")).behind == 1
    switched = await c.git_checkout(GitCheckoutRequest(path="repo", ref="feature"))
    assert switched.branch == "feature" and (worker.workspace / "repo/feature.txt").exists()
    created = await c.git_checkout(
        GitCheckoutRequest(path="repo", ref="agent/task-1", create=True, start_point="origin/main")
    )
    assert created.branch == "agent/task-1" and (worker.workspace / "repo/later.txt").exists()
    first = (await c.git_log(GitLogRequest(path="repo", ref="main", n=1))).commits[0].sha
    detached = await c.git_checkout(GitCheckoutRequest(path="repo", ref=first))
    assert detached.branch is None and detached.head == first
    # a ref named like a file never restores (discards) that file
    (worker.workspace / "repo/README.md").write_text("local edit\n")
    with pytest.raises(WorkerError):
        await c.git_checkout(GitCheckoutRequest(path="repo", ref="README.md"))
    assert (worker.workspace / "repo/README.md").read_text() == "local edit\n"
    with pytest.raises(WorkerError) as unknown:
        await c.git_checkout(GitCheckoutRequest(path="repo", ref="no-such-branch"))
    assert unknown.value.status_code == 422
    again = await c.git_clone(GitCloneRequest(url=f"file://{origin}", dest="repo"))
    assert again.action == "fetched"


async def test_init_repo_without_commits(worker: Worker) -> None:
    await worker.client.run("git", "init", "-q", "fresh")
    status = await worker.client.git_status("fresh")
    assert status.head is None and status.clean
    assert (await worker.client.git_log(GitLogRequest(path="fresh"))).commits == []
    await worker.client.write_file("fresh/a.txt", "a\n")
    done = await worker.client.git_commit(
        GitCommitRequest(path="fresh", message="-starts with a dash", add_all=True)
    )
    log = await worker.client.git_log(GitLogRequest(path="fresh"))
    assert log.commits[0].subject == "-starts with a dash" and log.commits[0].sha == done.sha
    assert log.commits[0].author_name == "Anvyl Agent"  # the worker's default identity
    with pytest.raises(WorkerError) as not_repo:
        await worker.client.git_status(".")
    assert not_repo.value.status_code == 400


async def test_git_argument_injection_is_refused(
    worker: Worker, origin: Path, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    await worker.client.git_clone(GitCloneRequest(url=f"file://{origin}", dest="repo"))
    bad_requests: list[tuple[str, dict[str, Any]]] = [
        ("/git/clone", {"url": f"--upload-pack=touch {pwned}", "dest": "x"}),
        ("/git/clone", {"url": f"ext::sh -c touch% {pwned}", "dest": "x"}),
        ("/git/clone", {"url": f"fd::17/{pwned}", "dest": "x"}),
        ("/git/clone", {"url": "-c", "dest": "x"}),
        ("/git/clone", {"url": f"file://{origin}", "ref": "--upload-pack=touch", "dest": "x"}),
        ("/git/clone", {"url": f"file://{origin}", "dest": "../x"}),
        ("/git/fetch", {"path": "repo", "remote": f"--upload-pack=touch {pwned}"}),
        ("/git/fetch", {"path": "repo", "remote": f"ext::sh -c touch% {pwned}"}),
        ("/git/fetch", {"path": "repo", "ref": "-c"}),
        ("/git/diff", {"path": "repo", "paths": [f"--output={pwned}"]}),
        ("/git/diff", {"path": "repo", "ref": f"--output={pwned}"}),
        ("/git/log", {"path": "repo", "ref": f"--output={pwned}"}),
        ("/git/log", {"path": "repo", "paths": ["-c"]}),
        ("/git/checkout", {"path": "repo", "ref": "-c"}),
        (
            "/git/checkout",
            {"path": "repo", "ref": "main", "create": True, "start_point": "--orphan"},
        ),
        (
            "/git/commit",
            {"path": "repo", "message": "m", "paths": [f"--pathspec-from-file={pwned}"]},
        ),
        ("/git/commit", {"path": "repo", "message": "m", "author_name": "x>\nevil"}),
        ("/git/status", {"path": "../"}),
    ]
    for endpoint, body in bad_requests:
        response = await post(worker, endpoint, body)
        assert response.status_code in (400, 403, 422), (endpoint, body, response.text)
        assert response.json()["detail"]
        assert (
            "must not start with '-'" in str(response.json()["detail"])
            or response.status_code != 500
        )
    assert not pwned.exists()
    assert not (worker.workspace / "x").exists()
