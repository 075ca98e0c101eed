"""The database backend: recall finds the one relevant earlier task among hundreds, on SQLite and
PostgreSQL, with full text alone and with vectors from the real embeddings endpoint; scopes keep
workspaces and agents apart; forget removes what it names and nothing else."""

from __future__ import annotations

import random

import pytest

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.memory.embeddings import Embedder
from anvyl.orchestrator.memory.records import TaskMemory
from anvyl.orchestrator.memory.store import DatabaseMemory

_VERBS = ["Updated", "Refactored", "Documented", "Tested", "Renamed", "Reviewed", "Cleaned up"]
_THINGS = ["the login form", "the CSV export", "the settings page", "the README", "the CI job",
           "the docker image", "the user model", "the search index", "the cache layer",
           "the logging setup", "the API client", "the unit tests", "the type hints"]  # fmt: skip
_HOW = ["for clarity", "to fix a typo", "after review", "to add examples", "to drop dead code",
        "to speed it up", "for the new release"]  # fmt: skip
RELEVANT = ("Fix the flaky websocket reconnect in the billing dashboard -> the retry backoff now "
            "doubles up to 30 s and resets after a successful ping")  # fmt: skip


def distractors(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(_VERBS)} {rng.choice(_THINGS)} {rng.choice(_HOW)} -> done, step {i}"
            for i in range(count)]  # fmt: skip


async def fill(memory: DatabaseMemory, workspace: str = "ws-a", count: int = 400) -> None:
    texts = distractors(count)
    texts.insert(count // 2, RELEVANT)
    for i, text in enumerate(texts):
        await memory.remember_task(TaskMemory(task_id=f"{workspace}-t{i}", text=text,
                                              workspace_id=workspace,
                                              agent="alice" if i % 2 else None))  # fmt: skip


@pytest.mark.parametrize("with_vectors", [False, True], ids=["full-text", "vectors"])
async def test_recall_finds_the_one_relevant_task_among_hundreds(
    db: Database, embedder: Embedder, with_vectors: bool
) -> None:
    memory = DatabaseMemory(db, embedder if with_vectors else None)
    await fill(memory)
    hits = await memory.search("why does the billing dashboard websocket keep reconnecting?",
                               scope="tasks", workspace_id="ws-a", limit=5)  # fmt: skip
    assert hits and hits[0].text == RELEVANT, [h.text for h in hits]
    assert (hits[0].kind, hits[0].workspace_id, hits[0].task_id) == ("task", "ws-a", "ws-a-t200")
    # Another workspace's tasks are not recalled into this one.
    assert await memory.search("billing websocket", scope="tasks", workspace_id="ws-b") == []


async def test_vectors_recall_a_task_that_shares_no_word_with_the_query(
    db: Database, embedder: Embedder
) -> None:
    memory = DatabaseMemory(db, embedder)
    await fill(memory, count=200)
    await memory.remember_task(TaskMemory(task_id="pg", workspace_id="ws-a",
                                          text="PostgreSQL migration failed with a lock timeout"))  # fmt: skip
    query = "database schema upgrade aborted"
    assert await DatabaseMemory(db).search(query, scope="tasks", workspace_id="ws-a") == []
    hits = await memory.search(query, scope="tasks", workspace_id="ws-a", limit=3)
    assert "PostgreSQL migration failed" in hits[0].text, [h.text for h in hits]


async def test_any_text_is_a_query_and_odd_ones_find_nothing(db: Database) -> None:
    memory = DatabaseMemory(db)
    await fill(memory, count=20)
    for query in ['"', "' OR 1=1 --", "NEAR(a b)", "*", "a | b & !c", "\x01", "   ", "é"]:
        assert isinstance(await memory.search(query), list)
    assert [h.text for h in await memory.search('billing" OR "x')] == [RELEVANT]


async def test_forget_removes_what_it_names_and_nothing_else(db: Database) -> None:
    memory = DatabaseMemory(db)
    await fill(memory, workspace="ws-a", count=10)
    await fill(memory, workspace="ws-b", count=10)
    assert len(await memory.search("billing", scope="tasks")) == 2
    assert await memory.forget(workspace_id="ws-a") == 11
    left = await memory.search("billing", scope="tasks")
    assert [h.workspace_id for h in left] == ["ws-b"]
    assert await memory.forget(agent="alice") == 5  # ws-b's odd-numbered tasks
    assert await memory.search("done", scope="tasks", agent="alice", limit=100) == []
    assert len(await memory.search("done", scope="tasks", workspace_id="ws-b", limit=100)) == 6
    with pytest.raises(ValueError, match="name a workspace"):
        await memory.forget()


async def test_a_task_remembered_again_keeps_one_memory_the_last(db: Database) -> None:
    """A task run again (its lease lost, another orchestrator took it over) replaces its summary."""
    memory = DatabaseMemory(db)
    await fill(memory, count=10)
    await memory.remember_task(TaskMemory(task_id="again", workspace_id="ws-a",
                                          text="Rotated the staging certificate, first try"))  # fmt: skip
    await memory.remember_task(TaskMemory(task_id="again", workspace_id="ws-a",
                                          text="Rotated the staging certificate, second try"))  # fmt: skip
    hits = await memory.search("staging certificate", scope="tasks", workspace_id="ws-a")
    assert [(h.task_id, h.text) for h in hits] == [
        ("again", "Rotated the staging certificate, second try")
    ]
