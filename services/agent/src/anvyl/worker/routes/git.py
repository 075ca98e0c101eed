"""`POST /git/*`: the git operations of `anvyl.worker.git`, on a repository inside the workspace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel
from starlette.routing import Route

from anvyl.worker import git as gitops
from anvyl.worker import models
from anvyl.worker.paths import resolve_inside
from anvyl.worker.routes.common import Guard, RequestT, WorkerState, json_endpoint

# The requests that act on a repository already in the workspace, named by `path`.
RepoRequest = (
    models.GitPathRequest
    | models.GitFetchRequest
    | models.GitDiffRequest
    | models.GitLogRequest
    | models.GitCheckoutRequest
    | models.GitCommitRequest
)


def routes(state: WorkerState, guard: Guard) -> list[Route]:
    clone_lock = asyncio.Lock()

    def repo_of(body: RepoRequest) -> Path:
        return state.directory(body.path, repr(body.path))

    async def git_clone(body: models.GitCloneRequest) -> BaseModel:
        # One clone or fetch at a time: a second caller waits and then fetches the finished clone.
        async with clone_lock:
            return await gitops.clone_or_fetch(body, resolve_inside(state.workspace, body.dest))

    async def git_fetch(body: models.GitFetchRequest) -> BaseModel:
        return await gitops.fetch(body, repo_of(body))

    async def git_status(body: models.GitPathRequest) -> BaseModel:
        return await gitops.status(repo_of(body))

    async def git_diff(body: models.GitDiffRequest) -> BaseModel:
        return await gitops.diff(body, repo_of(body))

    async def git_log(body: models.GitLogRequest) -> BaseModel:
        return await gitops.log(body, repo_of(body))

    async def git_checkout(body: models.GitCheckoutRequest) -> BaseModel:
        return await gitops.checkout(body, repo_of(body))

    async def git_commit(body: models.GitCommitRequest) -> BaseModel:
        return await gitops.commit(body, repo_of(body))

    def post(
        path: str, model: type[RequestT], action: Callable[[RequestT], Awaitable[BaseModel]]
    ) -> Route:
        return Route(path, json_endpoint(guard, model, action), methods=["POST"])

    return [
        post("/git/clone", models.GitCloneRequest, git_clone),
        post("/git/fetch", models.GitFetchRequest, git_fetch),
        post("/git/status", models.GitPathRequest, git_status),
        post("/git/diff", models.GitDiffRequest, git_diff),
        post("/git/log", models.GitLogRequest, git_log),
        post("/git/checkout", models.GitCheckoutRequest, git_checkout),
        post("/git/commit", models.GitCommitRequest, git_commit),
    ]
