"""The default memory backend: Anvyl's own database, no other server.

Search is full-text (FTS5 on SQLite, tsvector on PostgreSQL). When an embeddings endpoint is
configured every item also keeps its vector; a search then ranks the full-text candidates and the
nearest vectors together (reciprocal rank fusion), so a memory worded differently from the query
still comes up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, insert

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import utcnow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.memory import fts
from anvyl.orchestrator.memory.embeddings import Embedder, from_bytes, to_bytes
from anvyl.orchestrator.memory.records import ARCHIVE, TASK, Hit, Scope, Snippet, TaskMemory
from anvyl.orchestrator.memory.tables import MemoryRow

log = get_logger(__name__)
MAX_LIMIT = 100
_VECTOR_SCAN = 5000  # newest items in scope compared by vector when full text finds too few
_RRF_K = 60


class DatabaseMemory:
    name = "database"

    def __init__(self, db: Database, embedder: Embedder | None = None) -> None:
        self.db = db
        self.embedder = embedder

    async def _vectors(self, texts: list[str]) -> list[bytes | None]:
        """Each text's vector, or None for all when the endpoint fails (full text still works)."""
        if self.embedder is None or not texts:
            return [None] * len(texts)
        try:
            return [to_bytes(v) for v in await self.embedder.embed(texts)]
        except Exception as exc:  # any failure of the endpoint: kept without vectors
            log.warning("memory.embeddings_failed", error=str(exc), texts=len(texts))
            return [None] * len(texts)

    async def remember_task(self, memory: TaskMemory) -> None:
        [vector] = await self._vectors([memory.text])
        row = {"kind": TASK, "text": memory.text, "source": "", "workspace_id": memory.workspace_id,
               "agent": memory.agent, "task_id": memory.task_id, "embedding": vector,
               "created_at": utcnow()}  # fmt: skip
        # One memory per task: a task run again after its lease was lost replaces the first summary.
        same_task = delete(MemoryRow).where(MemoryRow.kind == TASK,
                                            MemoryRow.task_id == memory.task_id)  # fmt: skip

        def replace(connection: Connection) -> None:
            if connection.dialect.name == "postgresql":
                # One statement, one round trip on the task's hot path: the DELETE as a CTE.
                connection.execute(insert(MemoryRow).values(row).add_cte(same_task.cte("gone")))
            else:  # SQLite has no data-modifying CTEs
                connection.execute(same_task)
                connection.execute(insert(MemoryRow), [row])

        await self.db.write_single(replace)

    async def add_files(self, archive: str, files: dict[str, list[Snippet]]) -> int:
        pieces = [(path, s) for path, cut in files.items() for s in cut]
        vectors = await self._vectors([f"{path}\n{s.text}" for path, s in pieces])
        now = utcnow()
        rows = [{"kind": ARCHIVE, "text": s.text, "source": path, "archive": archive, "path": path,
                 "line_start": s.line_start, "line_end": s.line_end, "embedding": v,
                 "created_at": now} for (path, s), v in zip(pieces, vectors, strict=True)]  # fmt: skip
        paths = list(files)

        def replace(connection: Connection) -> int:
            connection.execute(
                delete(MemoryRow).where(MemoryRow.archive == archive, MemoryRow.path.in_(paths))
            )
            if rows:
                connection.execute(insert(MemoryRow), rows)
            return len(rows)

        return await self.db.write(replace)

    async def forget_file(self, archive: str, path: str) -> int:
        statement = delete(MemoryRow).where(MemoryRow.archive == archive, MemoryRow.path == path)
        return await self.db.write(lambda c: c.execute(statement).rowcount)

    async def forget(
        self, *, workspace_id: str | None = None, agent: str | None = None,
        archive: str | None = None,
    ) -> int:  # fmt: skip
        if workspace_id is None and agent is None and archive is None:
            raise ValueError("name a workspace, an agent or an archive to forget")
        statement = delete(MemoryRow)
        if workspace_id is not None:
            statement = statement.where(
                MemoryRow.kind == TASK, MemoryRow.workspace_id == workspace_id
            )
        if agent is not None:
            statement = statement.where(MemoryRow.kind == TASK, MemoryRow.agent == agent)
        if archive is not None:
            statement = statement.where(MemoryRow.kind == ARCHIVE, MemoryRow.archive == archive)
        return await self.db.write(lambda c: c.execute(statement).rowcount)

    async def search(
        self,
        query: str,
        *,
        scope: Scope = "all",
        workspace_id: str | None = None,
        agent: str | None = None,
        limit: int = 10,
    ) -> list[Hit]:
        limit = max(1, min(limit, MAX_LIMIT))
        words = fts.terms(query)
        [query_vector] = await self._vectors([query]) if query.strip() else [None]
        where, params = fts.scope_filter(scope, workspace_id, agent)
        pool = max(limit * 5, 50)

        def read(connection: Connection) -> tuple[list[Any], list[int], dict[int, Any]]:
            found = fts.full_text(connection, words, where, params, pool) if words else []
            if query_vector is None:
                return found, [], {}
            query = from_bytes(query_vector)
            if len(found) >= limit:  # enough matches: the vectors re-rank them
                return found, _nearest(found, query, pool), {}
            # Too few share a word with the query: the nearest vectors in scope join them.
            nearest = _nearest(fts.vectors(connection, where, params, _VECTOR_SCAN), query, pool)
            known = {row.id for row in found}
            more = fts.rows(connection, [key for key in nearest if key not in known])
            return found, nearest, {row.id: row for row in more}

        found, nearest, more = await self.db.read(read)
        if query_vector is None:
            return [_hit(row, float(row.score)) for row in found[:limit]]
        # Reciprocal rank fusion of the full-text order and the cosine order.
        rows = more | {row.id: row for row in found}
        scores: dict[int, float] = {}
        for order in ([row.id for row in found], nearest):
            for rank, key in enumerate(order):
                scores[key] = scores.get(key, 0.0) + 1 / (_RRF_K + rank)
        best = sorted(scores, key=lambda key: -scores[key])[:limit]
        return [_hit(rows[key], scores[key]) for key in best]

    async def close(self) -> None:
        if self.embedder is not None:
            await self.embedder.close()


def _nearest(candidates: list[Any], query: np.ndarray, count: int) -> list[int]:
    """The ids of the `count` candidates closest to the query (cosine: the vectors are unit length)."""
    same = [
        row for row in candidates if len(row.embedding) == query.nbytes
    ]  # another model's: left out
    if not same:
        return []
    matrix = np.frombuffer(b"".join(row.embedding for row in same), dtype="<f4").reshape(
        len(same), -1
    )
    order = np.argsort(-(matrix @ query))[:count]
    return [same[int(index)].id for index in order]


def _hit(row: Any, score: float) -> Hit:
    return Hit(kind=row.kind, text=row.text, score=round(score, 6), workspace_id=row.workspace_id,
               agent=row.agent, task_id=row.task_id, archive=row.archive, path=row.path,
               line_start=row.line_start, line_end=row.line_end,
               created_at=_aware(row.created_at))  # fmt: skip


def _aware(value: Any) -> Any:
    if isinstance(value, str):  # SQLite through text(): ISO text
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
