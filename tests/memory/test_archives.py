"""Archives: a directory, a zip, a tar.gz and a git repository are indexed; a question whose answer
sits in one file gets that file's snippet with its archive, path and lines; changed files are read
again, unchanged ones not, removed ones forgotten; skipped files are reported with the reason."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.memory.archives import Limits
from anvyl.orchestrator.memory.indexer import ArchiveIndexer
from anvyl.orchestrator.memory.store import DatabaseMemory

FILLER = "\n".join(f"line {i} of general notes about the project" for i in range(60))
ANSWER = "The staging database password rotates every 90 days; ask the on-call engineer for it."


def write_tree(root: Path) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "intro.md").write_text("# Intro\n" + FILLER)
    (root / "docs" / "operations.md").write_text(FILLER + "\n\n" + ANSWER + "\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def main() -> None:\n    print('hello')\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (root / "data.txt").write_bytes(b"\0binary\0" * 10)
    (root / "huge.md").write_text("x" * 5000)
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1")


def zip_of(tree: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file() and "node_modules" not in path.parts:
                archive.write(path, path.relative_to(tree).as_posix())
    return target


async def test_a_directory_and_a_zip_are_indexed_and_the_answer_comes_with_its_path(
    db: Database, tmp_path: Path
) -> None:
    tree = tmp_path / "notes"
    write_tree(tree)
    archive = zip_of(tree, tmp_path / "notes.zip")
    memory = DatabaseMemory(db)
    indexer = ArchiveIndexer(db, memory, tmp_path / "data", Limits(max_file_bytes=4000))
    directory, zipped = await indexer.sync([str(tree), str(archive)])

    for progress in (directory, zipped):
        assert progress.state == "done", progress.error
        assert progress.files_indexed == 3  # intro.md, operations.md, app.py
        reasons = {s.path: s.reason for s in progress.skipped}
        assert "is not indexed" in reasons["logo.png"]
        assert reasons["data.txt"] == "binary content"
        assert "over the 4000-byte limit" in reasons["huge.md"]
    assert {s.path for s in directory.skipped} >= {"node_modules/"}

    hits = await memory.search(
        "How often does the staging database password rotate?", scope="archives"
    )
    top = {(h.archive, h.path) for h in hits[:2]}
    assert top == {(str(tree), "docs/operations.md"), (str(archive), "docs/operations.md")}
    assert ANSWER in hits[0].text
    assert (hits[0].line_start, hits[0].line_end) == (41, 62)  # the second run of 40 lines
    assert hits[0].source.endswith("docs/operations.md:41-62")
    stored = {p.location: p for p in await indexer.stored_progress()}
    assert stored[str(archive)].files_indexed == 3 and stored[str(archive)].state == "done"


async def test_only_changed_files_are_read_again_and_removed_ones_are_forgotten(
    db: Database, tmp_path: Path
) -> None:
    tree = tmp_path / "notes"
    write_tree(tree)
    memory = DatabaseMemory(db)
    indexer = ArchiveIndexer(db, memory, tmp_path / "data")
    await indexer.sync([str(tree)])
    (tree / "src" / "app.py").write_text("def main() -> None:\n    print('the kraken release')\n")
    (tree / "docs" / "intro.md").unlink()
    [again] = await indexer.sync([str(tree)])
    assert (again.files_indexed, again.files_removed) == (1, 1)
    assert again.files_unchanged == 2  # operations.md, huge.md
    assert [h.path for h in await memory.search("kraken release")] == ["src/app.py"]
    assert await memory.search("Intro general notes line", scope="archives", limit=50)
    assert all(h.path != "docs/intro.md" for h in await memory.search("Intro", limit=50))
    # An archive no longer listed is forgotten.
    await indexer.sync([])
    assert await memory.search("kraken") == [] and await indexer.stored_progress() == []


async def test_a_tar_gz_and_a_git_repository_are_indexed(db: Database, tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    write_tree(tree)
    (tree / ".gitignore").write_text("ignored.md\n")
    (tree / "ignored.md").write_text("the secret word is platypus")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "notes"], check=True)
    tarball = tmp_path / "notes.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        data = ANSWER.encode()
        member = tarfile.TarInfo("ops/rotation.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    memory = DatabaseMemory(db)
    indexer = ArchiveIndexer(db, memory, tmp_path / "data")
    url = f"file://{tree}"
    results = await indexer.sync([str(tree), str(tarball), url, str(tmp_path / "missing")])
    assert [p.state for p in results] == ["done", "done", "done", "failed"]
    assert "no such directory" in (results[3].error or "")
    hits = await memory.search("staging database password rotates", scope="archives", limit=10)
    assert {(h.archive, h.path) for h in hits} >= {
        (str(tree), "docs/operations.md"), (str(tarball), "ops/rotation.txt"),
        (url, "docs/operations.md"),
    }  # fmt: skip
    # git's own files and the ignored ones are not indexed
    assert await memory.search("platypus") == []
    assert all(".git/" not in (h.path or "") for h in await memory.search("HEAD refs", limit=50))
