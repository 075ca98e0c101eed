"""`POST /git/*`: the git operations of `anvyl.worker.git`, on a repository inside the workspace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel
from starlette.routing import Route

from anvyl.worker import git as gitops
from anvyl.worker.models import (
    GitCheckoutRequest,
    GitCloneRequest,
    GitCommitRequest,
    GitDiffRequest,
    GitFetchRequest,
    GitLogRequest,
    GitPathRequest,
)
from anvyl.worker.paths import resolve_inside
from anvyl.worker.routes.common import Guard, RequestT, WorkerState, json_endpoint


def routes(state: WorkerState, guard: Guard) -> list[Route]:
    clone_lock = asyncio.Lock()

    def repo_of(body: GitPathRequest | GitFetchRequest | GitDiffRequest | GitLogRequest
                | GitCheckoutRequest | GitCommitRequest) -> Path:  # fmt: skip
        return state.directory(body.path, repr(body.path))

    async def git_clone(body: GitCloneRequest) -> BaseModel:
        # One clone or fetch at a time: a second caller waits and then fetches the finished clone.
        async with clone_lock:
            return await gitops.clone_or_fetch(body, resolve_inside(state.workspace, body.dest))

    async def git_fetch(body: GitFetchRequest) -> BaseModel:
        return await gitops.fetch(body, repo_of(body))

    async def git_status(body: GitPathRequest) -> BaseModel:
        return await gitops.status(repo_of(body))

    async def git_diff(body: GitDiffRequest) -> BaseModel:
        return await gitops.diff(body, repo_of(body))

    async def git_log(body: GitLogRequest) -> BaseModel:
        return await gitops.log(body, repo_of(body))

    async def git_checkout(body: GitCheckoutRequest) -> BaseModel:
        return await gitops.checkout(body, repo_of(body))

    async def git_commit(body: GitCommitRequest) -> BaseModel:
        return await gitops.commit(body, repo_of(body))

    def post(
        path: str, model: type[RequestT], action: Callable[[RequestT], Awaitable[BaseModel]]
    ) -> Route:
        return Route(path, json_endpoint(guard, model, action), methods=["POST"])

    return [
        post("/git/clone", GitCloneRequest, git_clone),
        post("/git/fetch", GitFetchRequest, git_fetch),
        post("/git/status", GitPathRequest, git_status),
        post("/git/diff", GitDiffRequest, git_diff),
        post("/git/log", GitLogRequest, git_log),
        post("/git/checkout", GitCheckoutRequest, git_checkout),
        post("/git/commit", GitCommitRequest, git_commit),
    ]
