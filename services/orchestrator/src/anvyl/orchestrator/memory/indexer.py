"""Keeps the user's archives indexed: `sync(locations)` reads each archive, indexes the files that
are new or changed since the last run (by fingerprint), drops the files that are gone and forgets
archives no longer listed. `start` runs it in the background; `progress` says how far it got and
what was skipped, and why."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Executable, delete, insert, select

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import utcnow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.memory.archives import (
    Entry,
    Limits,
    Source,
    open_archive,
    skip_reason,
    snippets,
)
from anvyl.orchestrator.memory.base import Memory
from anvyl.orchestrator.memory.records import Snippet
from anvyl.orchestrator.memory.tables import ArchiveFileRow, ArchiveRow

log = get_logger(__name__)
MAX_REPORTED_SKIPS = 200
_SAVE_EVERY = 200  # files: the stored progress is at most this far behind
_BATCH_FILES, _BATCH_BYTES = 64, 4_000_000  # changed files read and stored together


def _executor(statement: Executable) -> Callable[[Connection], object]:
    return lambda connection: connection.execute(statement)


class Skipped(BaseModel):
    path: str
    reason: str


class ArchiveProgress(BaseModel):
    location: str
    state: Literal["pending", "indexing", "done", "failed"] = "pending"
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_skipped: int = 0
    snippets: int = 0
    skipped: list[Skipped] = Field(
        default_factory=list, description=f"the first {MAX_REPORTED_SKIPS}"
    )
    error: str | None = None
    updated_at: datetime | None = None

    def skip(self, path: str, reason: str) -> None:
        self.files_skipped += 1
        if len(self.skipped) < MAX_REPORTED_SKIPS:
            self.skipped.append(Skipped(path=path, reason=reason))


class ArchiveIndexer:
    def __init__(
        self, db: Database, memory: Memory, data_dir: Path, limits: Limits | None = None
    ) -> None:
        self.db = db
        self.memory = memory
        self.clones = data_dir / "memory" / "clones"
        self.limits = limits or Limits()
        self._progress: dict[str, ArchiveProgress] = {}
        self._task: asyncio.Task[list[ArchiveProgress]] | None = None
        self._lock = asyncio.Lock()  # one sync at a time

    def start(self, locations: list[str]) -> asyncio.Task[list[ArchiveProgress]]:
        """Sync in the background (a sync already running finishes first)."""
        self._task = asyncio.create_task(self.sync(locations), name="archive-indexer")
        return self._task

    def progress(self) -> list[ArchiveProgress]:
        return [p.model_copy(deep=True) for p in self._progress.values()]

    async def stored_progress(self) -> list[ArchiveProgress]:
        rows = await self.db.read(lambda c: list(c.execute(select(ArchiveRow))))
        stored = {r.location: ArchiveProgress.model_validate(r._mapping, from_attributes=False)
                  for r in rows}  # fmt: skip
        return list((stored | {p.location: p for p in self.progress()}).values())

    async def sync(self, locations: list[str]) -> list[ArchiveProgress]:
        async with self._lock:
            wanted = list(dict.fromkeys(locations))
            for location in wanted:
                self._progress[location] = ArchiveProgress(location=location)
            known = await self.db.read(lambda c: list(c.scalars(select(ArchiveRow.location))))
            for gone in set(known) - set(wanted):
                await self.forget(gone)
            return [await self._index(location) for location in wanted]

    async def forget(self, location: str) -> int:
        """Drop an archive: its snippets, fingerprints and progress."""
        removed = await self.memory.forget(archive=location)

        def drop(connection: Connection) -> None:
            connection.execute(delete(ArchiveFileRow).where(ArchiveFileRow.archive == location))
            connection.execute(delete(ArchiveRow).where(ArchiveRow.location == location))

        await self.db.write(drop)
        self._progress.pop(location, None)
        return removed

    async def _index(self, location: str) -> ArchiveProgress:
        progress = self._progress[location]
        progress.state = "indexing"
        stack = contextlib.ExitStack()
        try:
            source: Source = await asyncio.to_thread(
                lambda: stack.enter_context(open_archive(location, self.clones))
            )
            try:
                await self._files(source, progress)
            finally:
                await asyncio.to_thread(stack.close)
            progress.state = "done"
        except (OSError, ValueError) as exc:
            progress.state, progress.error = "failed", str(exc)
            log.warning("memory.archive_failed", archive=location, error=str(exc))
        progress.updated_at = utcnow()
        await self._save(progress)
        log.info("memory.archive_indexed", archive=location, state=progress.state,
                 indexed=progress.files_indexed, unchanged=progress.files_unchanged,
                 skipped=progress.files_skipped, removed=progress.files_removed)  # fmt: skip
        return progress.model_copy(deep=True)

    async def _files(self, source: Source, progress: ArchiveProgress) -> None:
        location = source.location
        before = dict(await self.db.read(lambda c: list(c.execute(
            select(ArchiveFileRow.path, ArchiveFileRow.fingerprint).where(ArchiveFileRow.archive == location)
        ))))  # fmt: skip
        for folder in source.excluded:
            progress.skip(folder + "/", "directory excluded by name")
        seen: set[str] = set()
        batch: list[Entry] = []
        for count, entry in enumerate(source.entries):
            progress.files_seen += 1
            if count >= self.limits.max_files:
                progress.skip(entry.path, f"over the {self.limits.max_files}-file limit")
                continue
            if (reason := skip_reason(entry.path, entry.size, self.limits)) is not None:
                progress.skip(entry.path, reason)
                continue
            seen.add(entry.path)
            fingerprint, _, reason = before.get(entry.path, "").partition("|")
            if fingerprint == entry.fingerprint:
                if reason:  # read before and found not to be text: still reported
                    progress.skip(entry.path, reason)
                else:
                    progress.files_unchanged += 1
                continue
            batch.append(entry)
            if len(batch) >= _BATCH_FILES or sum(e.size for e in batch) >= _BATCH_BYTES:
                await self._batch(source, batch, progress)
                batch = []
            if progress.files_seen % _SAVE_EVERY == 0:
                await self._save(progress)
        if batch:
            await self._batch(source, batch, progress)
        for path in set(before) - seen:
            await self.memory.forget_file(location, path)
            gone = delete(ArchiveFileRow).where(ArchiveFileRow.archive == location,
                                                ArchiveFileRow.path == path)  # fmt: skip
            await self.db.write(_executor(gone))
            progress.files_removed += 1

    async def _batch(self, source: Source, entries: list[Entry], progress: ArchiveProgress) -> None:
        """Read, cut and store several files: one thread hop, one memory write, one fingerprint write."""

        def read_all() -> list[bytes | OSError]:
            found: list[bytes | OSError] = []
            for entry in entries:
                try:
                    found.append(source.read(entry))
                except OSError as exc:
                    found.append(exc)
            return found

        files: dict[str, list[Snippet]] = {}
        fingerprints = []
        for entry, data in zip(entries, await asyncio.to_thread(read_all), strict=True):
            if isinstance(data, OSError):
                progress.skip(entry.path, f"unreadable: {data}")
                continue
            cut = snippets(data, self.limits)
            fingerprint = entry.fingerprint
            if isinstance(cut, str):
                progress.skip(entry.path, cut)
                # Recorded with the reason: not read again until it changes, and still reported.
                fingerprint, cut = f"{fingerprint}|{cut}", []
            else:
                progress.files_indexed += 1
            files[entry.path] = cut
            fingerprints.append({"archive": source.location, "path": entry.path,
                                 "fingerprint": fingerprint[:128]})  # fmt: skip
        progress.snippets += await self.memory.add_files(source.location, files)
        paths = list(files)

        def record(connection: Connection) -> None:
            connection.execute(delete(ArchiveFileRow).where(
                ArchiveFileRow.archive == source.location, ArchiveFileRow.path.in_(paths)))  # fmt: skip
            if fingerprints:
                connection.execute(insert(ArchiveFileRow), fingerprints)

        await self.db.write(record)

    async def _save(self, progress: ArchiveProgress) -> None:
        values = progress.model_dump(mode="json", exclude={"updated_at"}) | {"updated_at": utcnow()}

        def save(connection: Connection) -> None:
            connection.execute(delete(ArchiveRow).where(ArchiveRow.location == progress.location))
            connection.execute(insert(ArchiveRow), [values])

        await self.db.write(save)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
