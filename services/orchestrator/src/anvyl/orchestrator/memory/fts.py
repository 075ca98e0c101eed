"""Full-text queries for each database: SQLite FTS5 (bm25) and PostgreSQL tsvector (ts_rank_cd).

The user's words never reach the query syntax: they are cut to letters and digits first, and
joined with OR, so any text is a valid query and a memory sharing more (rarer) words ranks higher.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, bindparam, text

from anvyl.orchestrator.memory.records import ARCHIVE, TASK, Scope

MAX_TERMS = 32
_WORD = re.compile(r"[^\W_]+")
COLUMNS = ("m.id, m.kind, m.text, m.workspace_id, m.agent, m.task_id, m.archive, m.path, "
           "m.line_start, m.line_end, m.created_at, m.embedding")  # fmt: skip


def terms(query: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if len(word) > 1 or word.isdigit():
            seen.setdefault(word[:64], None)
    return list(seen)[:MAX_TERMS]


def scope_filter(
    scope: Scope, workspace_id: str | None, agent: str | None
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on `m` for the scope: task memories of the workspace or agent (any, when
    neither is given), archive snippets (everyone's)."""
    params: dict[str, Any] = {"task_kind": TASK, "archive_kind": ARCHIVE}
    owners = []
    if workspace_id is not None:
        owners.append("m.workspace_id = :workspace_id")
        params["workspace_id"] = workspace_id
    if agent is not None:
        owners.append("m.agent = :agent")
        params["agent"] = agent
    tasks = "m.kind = :task_kind" + (f" AND ({' OR '.join(owners)})" if owners else "")
    archives = "m.kind = :archive_kind"
    where = {"tasks": tasks, "archives": archives, "all": f"({tasks}) OR ({archives})"}[scope]
    return f"({where})", params


def full_text(
    connection: Connection, words: list[str], where: str, params: dict[str, Any], limit: int
) -> list[Any]:
    """The best `limit` rows matching any of the words, best first; the last column is the score
    (higher is better)."""
    if connection.dialect.name == "sqlite":
        match = " OR ".join(f'"{word}"' for word in words)
        # `where` comes from scope_filter's fixed text; every value is a bound parameter.
        sql = (f"SELECT {COLUMNS}, -bm25(memories_fts) AS score FROM memories_fts "  # noqa: S608
               f"JOIN memories m ON m.id = memories_fts.rowid "
               f"WHERE memories_fts MATCH :match AND {where} ORDER BY score DESC LIMIT :limit")  # fmt: skip
    else:
        match = " | ".join(words)
        sql = (f"SELECT {COLUMNS}, ts_rank_cd(m.tsv, q) AS score "  # noqa: S608
               f"FROM memories m, to_tsquery('english', :match) q "
               f"WHERE m.tsv @@ q AND {where} ORDER BY score DESC LIMIT :limit")  # fmt: skip
    return list(connection.execute(text(sql), params | {"match": match, "limit": limit}))


def vectors(connection: Connection, where: str, params: dict[str, Any], limit: int) -> list[Any]:
    """(id, embedding) of the newest `limit` rows in scope that have a vector."""
    sql = (f"SELECT m.id, m.embedding FROM memories m "  # noqa: S608
           f"WHERE m.embedding IS NOT NULL AND {where} ORDER BY m.id DESC LIMIT :limit")  # fmt: skip
    return list(connection.execute(text(sql), params | {"limit": limit}))


def rows(connection: Connection, ids: list[int]) -> list[Any]:
    if not ids:
        return []
    sql = text(f"SELECT {COLUMNS}, 0.0 AS score FROM memories m WHERE m.id IN :ids")  # noqa: S608
    return list(connection.execute(sql.bindparams(bindparam("ids", expanding=True)), {"ids": ids}))
