"""Memory: recall latency with 10,000 memories, and archive indexing throughput, on SQLite and
PostgreSQL, with full text alone and with vectors from the real embeddings endpoint.

    uv run python bench/memory_bench.py [--memories 10000] [--queries 300] [--files 2000] [--no-vectors]

Recall: N task summaries of 12 words each, drawn from 5,000 made-up words, go in through
`remember_task` (the path a finished task takes); each query is 3 words of a random memory, and
that memory must come back in the top 5 (recall@5 is printed beside the latencies). With vectors
the gpt-oss /v1/embeddings endpoint (WordLlama; `anvyl-gpt-oss embeddings` in its own process)
embeds each memory and each query. Indexing: a directory of text files (2 KB each, 40-line
snippets) indexed from scratch, then again unchanged (fingerprints only), and the same files as a
.zip.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from anvyl.gpt_oss.embeddings import DEFAULT_MODEL
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.memory.embeddings import Embedder
from anvyl.orchestrator.memory.indexer import ArchiveIndexer
from anvyl.orchestrator.memory.records import TaskMemory
from anvyl.orchestrator.memory.store import DatabaseMemory
from common import free_port, fresh_postgres, serving_process

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "dra", "qu", "zen", "bor", "fi",
              "gal", "hu", "jo", "kre", "lum", "mor"]  # fmt: skip


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def recall(
    url: str, memories: int, queries: int, embedder: Embedder | None
) -> dict[str, float]:
    rng = random.Random(7)
    words = vocabulary(5000, rng)
    texts = [" ".join(rng.sample(words, 12)) for _ in range(memories)]
    db = Database(url)
    await db.upgrade()
    try:
        memory = DatabaseMemory(db, embedder)
        began = time.perf_counter()
        for i, text in enumerate(texts):
            await memory.remember_task(TaskMemory(task_id=f"t{i}", text=text, workspace_id="bench"))
        insert_s = time.perf_counter() - began
        latencies, found = [], 0
        for _ in range(queries):
            target = rng.randrange(memories)
            query = " ".join(rng.sample(texts[target].split(), 3))
            began = time.perf_counter()
            hits = await memory.search(query, scope="tasks", workspace_id="bench", limit=5)
            latencies.append((time.perf_counter() - began) * 1000)
            found += any(h.task_id == f"t{target}" for h in hits)
        return {"insert_per_s": memories / insert_s, "p50": statistics.median(latencies),
                "p99": pct(latencies, 0.99), "recall": found / queries}  # fmt: skip
    finally:
        await db.close()


def make_files(root: Path, count: int) -> None:
    rng = random.Random(11)
    words = vocabulary(3000, rng)
    for i in range(count):
        folder = root / f"part{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [" ".join(rng.sample(words, 6)) for _ in range(50)]  # about 2 KB
        (folder / f"note{i:05d}.md").write_text("\n".join(lines))


async def indexing(url: str, files: int, embedder: Embedder | None, work: Path) -> dict[str, float]:
    tree = work / "tree"
    if not tree.exists():
        make_files(tree, files)
        with zipfile.ZipFile(work / "tree.zip", "w") as archive:
            for path in sorted(tree.rglob("*.md")):
                archive.write(path, path.relative_to(tree).as_posix())
    db = Database(url)
    await db.upgrade()
    try:
        indexer = ArchiveIndexer(db, DatabaseMemory(db, embedder), work / "data")
        figures = {}
        for name, locations in (("directory", [str(tree)]), ("unchanged", [str(tree)]),
                                ("zip", [str(work / "tree.zip")])):  # fmt: skip
            began = time.perf_counter()
            [progress] = await indexer.sync(locations)
            assert progress.state == "done" and progress.files_seen == files, progress
            figures[name] = files / (time.perf_counter() - began)
        return figures
    finally:
        await db.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--no-vectors", action="store_true")
    args = parser.parse_args()
    modes = [False] if args.no_vectors else [False, True]
    rows = []
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, serving_process(
        [sys.executable, "-m", "anvyl.gpt_oss", "embeddings", "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}/health", Path(tmp) / "embeddings.log",
    ):  # fmt: skip
        for vectors in modes:
            embedder = Embedder(f"http://127.0.0.1:{port}/v1", DEFAULT_MODEL) if vectors else None
            for database in ("sqlite", "postgresql"):
                work = Path(tmp) / f"{database}-{vectors}"
                work.mkdir()
                if database == "sqlite":
                    url = f"sqlite+aiosqlite:///{work / 'anvyl.db'}"
                    r = await recall(url, args.memories, args.queries, embedder)
                    url2 = f"sqlite+aiosqlite:///{work / 'index.db'}"
                    i = await indexing(url2, args.files, embedder, Path(tmp))
                else:
                    async with fresh_postgres() as url:
                        r = await recall(url, args.memories, args.queries, embedder)
                    async with fresh_postgres() as url:
                        i = await indexing(url, args.files, embedder, Path(tmp))
                rows.append((database, "full text + vectors" if vectors else "full text", r, i))
                print(f"done: {rows[-1][:2]}", flush=True)
            if embedder is not None:
                await embedder.close()
    print(f"\nrecall with {args.memories} memories, {args.queries} queries (3 words of one memory; "
          f"hit = it is in the top 5); indexing {args.files} files of 2 KB\n")  # fmt: skip
    print("| database | search | remember/s | recall p50 | recall p99 | recall@5 | index dir files/s "
          "| re-index unchanged files/s | index zip files/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for database, mode, r, i in rows:
        print(f"| {database} | {mode} | {r['insert_per_s']:.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms "
              f"| {r['recall']:.3f} | {i['directory']:.0f} | {i['unchanged']:.0f} | {i['zip']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
