"""Concurrent enqueues share one transaction (group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import IntegrityError


class GroupCommit:
    """Concurrent enqueues share one transaction (group commit).

    While one batch is being written, the next requests gather; the batch after it writes them all at
    once. One client sees no added wait (its batch of one is written at once); many clients pay one
    commit per batch instead of one each, which is what bounds enqueue throughput on both databases.
    """

    def __init__(self, write: Callable[[list[dict[str, Any]]], Awaitable[None]],
                 max_batch: int = 256) -> None:  # fmt: skip
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, task: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((task, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="enqueue-group-commit")
        # The write goes on if this request is cancelled: the task is queued or it is not, never half.
        await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = (self._pending[: self._max_batch],
                                    self._pending[self._max_batch :])  # fmt: skip
            try:
                await self._write([task for task, _ in batch])
            except IntegrityError as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                # One bad row must not fail the others: write them one by one to find it.
                for task, future in batch:
                    try:
                        await self._write([task])
                    except Exception as one:
                        _settle(future, one)
                    else:
                        _settle(future, None)
            except Exception as exc:
                # The database itself failed (unreachable, timed out): the whole batch fails at
                # once, rather than each request waiting for a try of its own.
                for _, future in batch:
                    _settle(future, exc)
            else:
                for _, future in batch:
                    _settle(future, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
