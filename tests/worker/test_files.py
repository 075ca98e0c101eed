"""Files: read, write, list, search, delete, move, and every way out of the workspace refused."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from anvyl.worker.client import WorkerError

from .conftest import Worker


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("top secret\n")
    return path


async def post(worker: Worker, path: str, body: dict) -> httpx.Response:
    return await worker.post(path, body)


async def test_write_then_read_with_line_ranges(worker: Worker) -> None:
    c = worker.client
    written = await c.write_file("src/pkg/mod.py", "".join(f"line {i}\n" for i in range(1, 101)))
    assert written.created and written.size == sum(len(f"line {i}\n") for i in range(1, 101))
    assert written.path == "src/pkg/mod.py"
    full = await c.read_file("src/pkg/mod.py")
    assert full.content.startswith("line 1\n") and full.total_lines == 100 and not full.truncated
    assert not full.binary and full.encoding == "utf-8"
    part = await c.read_file("src/pkg/mod.py", start_line=10, end_line=12)
    assert part.content == "line 10\nline 11\nline 12\n" and (part.start_line, part.end_line) == (
        10,
        12,
    )
    assert part.total_lines is None  # the read stopped before the end
    tail = await c.read_file("src/pkg/mod.py", start_line=99)
    assert tail.content == "line 99\nline 100\n" and tail.total_lines == 100
    capped = await c.read_file("src/pkg/mod.py", max_bytes=20)
    assert capped.truncated and capped.content == "line 1\nline 2\nline 3"[:20]
    again = await c.write_file("src/pkg/mod.py", "new\n")
    assert not again.created and (worker.workspace / "src/pkg/mod.py").read_text() == "new\n"
    with pytest.raises(WorkerError) as exists:
        await c.write_file("src/pkg/mod.py", "x", overwrite=False)
    assert exists.value.status_code == 409
    with pytest.raises(WorkerError) as missing:
        await c.read_file("nope.txt")
    assert missing.value.status_code == 404
    with pytest.raises(WorkerError) as directory:
        await c.read_file("src")
    assert directory.value.status_code == 400
    os.mkfifo(worker.workspace / "fifo")
    with pytest.raises(WorkerError, match="not a regular file"):
        await c.read_file("fifo")


async def test_binary_and_unicode(worker: Worker) -> None:
    blob = bytes(range(256)) * 10
    await worker.client.write_file("data.bin", blob)
    content = await worker.client.read_file("data.bin")
    assert content.binary and content.encoding == "base64"
    assert await worker.client.read_bytes("data.bin") == blob
    await worker.client.write_file("ünïcødé/日本語 файл.txt", "héllo ✓\n")
    text = await worker.client.read_file("ünïcødé/日本語 файл.txt")
    assert text.content == "héllo ✓\n" and not text.binary


async def test_write_is_atomic_and_keeps_mode(worker: Worker) -> None:
    target = worker.workspace / "script.sh"
    target.write_text("old")
    target.chmod(0o755)
    inode_before = target.stat().st_ino
    await worker.client.write_file("script.sh", "#!/bin/sh\necho new\n")
    stat = target.stat()
    assert target.read_text() == "#!/bin/sh\necho new\n"
    assert stat.st_ino != inode_before  # replaced by rename, never rewritten in place
    assert stat.st_mode & 0o777 == 0o755
    assert not [
        p for p in worker.workspace.iterdir() if p.name.startswith(".anvyl-")
    ]  # no temp files left
    await worker.client.write_file("private", "x", mode=0o600)
    assert (worker.workspace / "private").stat().st_mode & 0o777 == 0o600


async def test_list_with_glob_depth_and_git_hidden(worker: Worker) -> None:
    ws = worker.workspace
    for rel in ("a.py", "b.txt", "src/c.py", "src/deep/d.py", ".git/config", ".env"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text("x")
    top = await worker.client.list_files()
    assert [e.path for e in top.entries] == [".env", "a.py", "b.txt", "src"]
    assert {e.path: e.type for e in top.entries}["src"] == "dir"
    deep = await worker.client.list_files(glob="*.py", depth=5)
    assert [e.path for e in deep.entries] == ["a.py", "src/c.py", "src/deep/d.py"]
    with_git = await worker.client.list_files(include_git=True)
    assert ".git" in [e.path for e in with_git.entries]
    no_hidden = await worker.client.list_files(include_hidden=False)
    assert ".env" not in [e.path for e in no_hidden.entries]
    sub = await worker.client.list_files("src", depth=2)
    assert [e.path for e in sub.entries] == ["src/c.py", "src/deep", "src/deep/d.py"]
    capped = await worker.client.list_files(depth=5, max_entries=2)
    assert capped.truncated and len(capped.entries) == 2


async def test_search(worker: Worker) -> None:
    ws = worker.workspace
    (ws / "src").mkdir()
    (ws / "src/a.py").write_text("def alpha():\n    return 1\n\ndef beta():\n    pass\n")
    (ws / "README.md").write_text("Alpha and Omega\n")
    (ws / "bin.dat").write_bytes(b"\x00def alpha")
    (ws / ".git").mkdir()
    (ws / ".git/x").write_text("def alpha\n")
    found = await worker.client.search(r"def \w+\(")
    assert [(m.path, m.line, m.text) for m in found.matches] == [
        ("src/a.py", 1, "def alpha():"),
        ("src/a.py", 4, "def beta():"),
    ]
    insensitive = await worker.client.search("alpha", case_insensitive=True, glob="*.md")
    assert [(m.path, m.line) for m in insensitive.matches] == [("README.md", 1)]
    capped = await worker.client.search("a", max_results=2)
    assert capped.truncated and len(capped.matches) == 2
    one_file = await worker.client.search("beta", path="src/a.py")
    assert [m.line for m in one_file.matches] == [4]
    with pytest.raises(WorkerError) as bad:
        await worker.client.search("(unclosed")
    assert bad.value.status_code == 400


async def test_delete_and_move(worker: Worker) -> None:
    ws = worker.workspace
    (ws / "d/e").mkdir(parents=True)
    (ws / "d/e/f.txt").write_text("f")
    (ws / "g.txt").write_text("g")
    moved = await worker.client.move("g.txt", "new/place/h.txt")
    assert moved.dst == "new/place/h.txt" and (ws / "new/place/h.txt").read_text() == "g"
    (ws / "i.txt").write_text("i")
    with pytest.raises(WorkerError) as exists:
        await worker.client.move("i.txt", "new/place/h.txt")
    assert exists.value.status_code == 409
    await worker.client.move("i.txt", "new/place/h.txt", overwrite=True)
    assert (ws / "new/place/h.txt").read_text() == "i"
    with pytest.raises(WorkerError) as not_empty:
        await worker.client.delete("d")
    assert not_empty.value.status_code == 409
    assert (await worker.client.delete("d", recursive=True)).deleted and not (ws / "d").exists()
    with pytest.raises(WorkerError) as missing:
        await worker.client.delete("d")
    assert missing.value.status_code == 404
    assert not (await worker.client.delete("d", missing_ok=True)).deleted
    for root in (".", "", "/", str(ws)):
        response = await post(worker, "/files/delete", {"path": root or ".", "recursive": True})
        assert response.status_code in (403, 422), root
    assert ws.exists()
    # a symlink inside pointing inside: delete removes the link, never its target
    (ws / "target.txt").write_text("t")
    (ws / "link").symlink_to("target.txt")
    await worker.client.delete("link")
    assert not (ws / "link").is_symlink() and (ws / "target.txt").exists()


async def test_path_escapes_are_refused(worker: Worker, outside: Path) -> None:
    ws = worker.workspace
    (ws / "out-link").symlink_to(outside / "secret.txt")
    (ws / "out-dir").symlink_to(outside)
    (ws / "dangling-out").symlink_to(outside / "not-yet.txt")
    (ws / "ok.txt").write_text("ok")
    escapes = [
        "../outside/secret.txt",
        str(outside / "secret.txt"),
        "/etc/passwd",
        "a/../../outside/secret.txt",
        "out-link",
        "out-dir/secret.txt",
        "dangling-out",
        "out-dir/new.txt",
    ]
    for path in escapes:
        read = await post(worker, "/files/read", {"path": path})
        assert read.status_code == 403, (path, read.text)
        assert "outside the workspace" in read.json()["detail"]
        write = await post(worker, "/files/write", {"path": path, "content": "pwned"})
        assert write.status_code == 403, (path, write.text)
        delete = await post(worker, "/files/delete", {"path": path, "recursive": True})
        assert delete.status_code == 403, (path, delete.text)
        move_from = await post(worker, "/files/move", {"src": path, "dst": "moved"})
        assert move_from.status_code == 403, (path, move_from.text)
        move_to = await post(
            worker, "/files/move", {"src": "ok.txt", "dst": path, "overwrite": True}
        )
        assert move_to.status_code == 403, (path, move_to.text)
        for endpoint in ("/files/list", "/files/search"):
            body = {"path": path} if endpoint == "/files/list" else {"path": path, "pattern": "x"}
            response = await post(worker, endpoint, body)
            assert response.status_code == 403, (endpoint, path, response.text)
    # writing through a symlinked parent directory, creating parents under it
    deep = await post(worker, "/files/write", {"path": "out-dir/sub/new.txt", "content": "x"})
    assert deep.status_code == 403
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert (ws / "ok.txt").read_text() == "ok" and (ws / "out-link").is_symlink()


async def test_odd_names_are_clear_4xx(worker: Worker) -> None:
    cases = [
        {"path": "a\x00b"},
        {"path": "x" * 300},
        {"path": "d/" * 3000},
        {"path": "bad-\ud800-surrogate"},
    ]
    for body in cases:
        for endpoint in ("/files/read", "/files/write", "/files/delete", "/files/list"):
            payload = dict(body, content="x") if endpoint == "/files/write" else body
            response = await post(worker, endpoint, payload)
            assert 400 <= response.status_code < 500, (endpoint, body, response.text)
            assert response.json()["detail"], response.text
        move = await post(worker, "/files/move", {"src": body["path"], "dst": "y"})
        assert 400 <= move.status_code < 500
    # long but valid: 255 bytes in one name works, 256 does not
    ok = await worker.client.write_file("n" * 255, "x")
    assert ok.size == 1
    with pytest.raises(WorkerError) as long_name:
        await worker.client.write_file("n" * 256, "x")
    assert long_name.value.status_code == 400 and "longer than 255" in str(long_name.value)
    bad_base64 = await post(
        worker, "/files/write", {"path": "b", "content": "!!!", "encoding": "base64"}
    )
    assert bad_base64.status_code == 400
    # control characters and odd but valid unicode are fine as names
    weird = "tab\there\u202enew\u200b\U0001f600"
    await worker.client.write_file(weird, "w")
    assert (worker.workspace / weird).read_text() == "w"
    assert os.path.exists(worker.workspace / weird)
