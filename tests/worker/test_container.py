"""The worker in a real container from the agent image, run the way the workspace manager runs it:
--init, --read-only with a /tmp tmpfs, a workspace volume, non-root, all capabilities dropped."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from anvyl.worker.client import WorkerClient, WorkerError
from anvyl.worker.models import (
    ExecRequest,
    GitCheckoutRequest,
    GitCloneRequest,
    GitCommitRequest,
    GitLogRequest,
)

from .conftest import Container

pytestmark = pytest.mark.docker

PROC_STATES = "import glob\nfor p in glob.glob('/proc/[0-9]*/stat'):\n    try:\n        s = open(p).read()\n    except OSError:\n        continue\n    print(s.split(' ')[0], s.rsplit(')', 1)[1].split()[0], s[s.index('(') + 1:s.rindex(')')])\n"


async def processes(c: Container) -> dict[int, tuple[str, str]]:
    out = (await c.client.run("python3", "-c", PROC_STATES)).stdout
    result = {}
    for line in out.splitlines():
        pid, state, name = line.split(" ", 2)
        result[int(pid)] = (state, name)
    return result


async def test_health_auth_and_identity(container: Container) -> None:
    async with httpx.AsyncClient(base_url=container.url, trust_env=False) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.post("/exec", json={"argv": ["true"]})).status_code == 401
    async with WorkerClient(container.url, "wrong-token-wrong-token") as bad:
        with pytest.raises(WorkerError) as caught:
            await bad.run("id")
    assert caught.value.status_code == 401
    uid = await container.client.run("id", "-u")
    assert uid.exit_code == 0 and uid.stdout.strip() != "0"
    info = await container.client.info()
    assert info.uid != 0 and info.workspace == "/workspace" and info.git_version
    assert info.memory.limit_bytes == 1024**3  # the container's cgroup limit
    init = (await container.client.run("cat", "/proc/1/cmdline")).stdout
    assert "init" in init  # docker --init (tini) is PID 1 and reaps orphans


async def test_read_only_root_but_workspace_and_tmp_writable(container: Container) -> None:
    etc = await container.client.shell("echo x > /etc/anvyl-test")
    assert etc.exit_code != 0 and "Read-only file system" in etc.stderr
    usr = await container.client.run("touch", "/opt/anvyl/x")
    assert usr.exit_code != 0
    ok = await container.client.shell(
        "echo ws > /workspace/rw.txt && echo tmp > /tmp/rw.txt && cat /workspace/rw.txt /tmp/rw.txt"
    )
    assert ok.exit_code == 0 and ok.stdout == "ws\ntmp\n"
    written = await container.client.write_file("rw/api.txt", "via api\n")
    assert (
        written.created and (await container.client.read_file("rw/api.txt")).content == "via api\n"
    )
    with pytest.raises(WorkerError) as outside:
        await container.client.write_file("/etc/passwd", "x")
    assert outside.value.status_code == 403


async def test_orphans_are_reaped_no_zombies(container: Container) -> None:
    # The orphan escapes the command's process group (setsid), outlives its parent, then exits:
    # only PID 1 can reap it.
    left = await container.client.shell(
        "setsid sh -c 'sleep 0.5; exit 0' </dev/null >/dev/null 2>&1 & echo $!"
    )
    assert left.exit_code == 0
    for _ in range(5):  # several at once
        await container.client.shell("(setsid sleep 0.3 </dev/null >/dev/null 2>&1 &) ; true")
    await asyncio.sleep(1.5)
    states = await processes(container)
    zombies = {pid: v for pid, v in states.items() if v[0] == "Z"}
    assert not zombies, f"zombies left: {zombies}"
    assert not any(name == "sleep" for _, name in states.values())
    ps = await container.client.shell("ps -eo stat,comm 2>/dev/null || true")
    assert "<defunct>" not in ps.stdout and " Z" not in ps.stdout


async def test_timeout_and_kill_by_id_kill_the_group_in_the_container(container: Container) -> None:
    c = container.client
    await c.run("mkdir", "-p", "k")
    result = await c.exec(ExecRequest(command="sleep 301 & echo $!; wait", timeout_s=1, cwd="k"))
    assert result.timed_out
    child = int(result.stdout)
    states = await processes(container)
    assert child not in states or states[child][0] == "Z"
    task = asyncio.create_task(
        c.exec(
            ExecRequest(
                command="sleep 302 & echo $! > k/child.pid; wait", exec_id="c-job", timeout_s=300
            )
        )
    )
    for _ in range(200):
        if (await c.run("cat", "k/child.pid")).stdout.strip():
            break
        await asyncio.sleep(0.02)
    child = int((await c.run("cat", "k/child.pid")).stdout)
    await c.kill("c-job")
    killed = await asyncio.wait_for(task, 10)
    assert killed.killed
    await asyncio.sleep(0.2)
    assert child not in await processes(container)
    # a client that goes away kills its command too
    task = asyncio.create_task(
        c.exec(ExecRequest(command="sleep 303 & echo $! > k/child2.pid; wait", timeout_s=300))
    )
    for _ in range(200):
        if (await c.run("cat", "k/child2.pid")).stdout.strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert not any(name == "sleep" for _, name in (await processes(container)).values())


async def test_streaming_in_the_container(container: Container) -> None:
    started = time.monotonic()
    first_at = None
    result = None
    async for event in container.client.exec_stream(
        ExecRequest(command="echo one; sleep 3; echo two")
    ):
        if event.result is not None:
            result = event.result
        elif first_at is None:
            first_at = time.monotonic() - started
    assert result is not None and result.stdout == "one\ntwo\n"
    assert first_at is not None and first_at < 2.0


async def test_git_round_trip_in_the_container(container: Container) -> None:
    c = container.client
    setup = await c.shell(
        "rm -rf g && mkdir -p g/origin && cd g/origin && git init -q && echo hi > a.txt && git add -A && git commit -qm init && git branch -M main"
    )
    assert setup.exit_code == 0, setup.stderr
    cloned = await c.git_clone(GitCloneRequest(url="file:///workspace/g/origin", dest="g/clone"))
    assert cloned.action == "cloned"
    await c.git_checkout(GitCheckoutRequest(path="g/clone", ref="work", create=True))
    await c.write_file("g/clone/b.txt", "b\n")
    commit = await c.git_commit(
        GitCommitRequest(
            path="g/clone",
            message="add b",
            add_all=True,
            author_name="Bot",
            author_email="bot@example.com",
        )
    )
    assert commit.branch == "work"
    log = await c.git_log(GitLogRequest(path="g/clone"))
    assert [x.subject for x in log.commits] == ["add b", "init"] and log.commits[
        0
    ].author_email == "bot@example.com"
    with pytest.raises(WorkerError) as injected:
        await c.git_clone(GitCloneRequest(url="ext::sh -c touch% /tmp/pwned", dest="g/x"))
    assert injected.value.status_code == 400
    assert (await c.run("test", "-e", "/tmp/pwned")).exit_code != 0


async def test_symlink_escape_in_the_container(container: Container) -> None:
    c = container.client
    await c.shell("ln -sfn /etc esc-dir && ln -sfn /etc/passwd esc-file")
    for path in ("esc-file", "esc-dir/passwd", "../etc/passwd", "/etc/hostname"):
        with pytest.raises(WorkerError) as caught:
            await c.read_file(path)
        assert caught.value.status_code == 403
    with pytest.raises(WorkerError):
        await c.delete("esc-file")
    with pytest.raises(WorkerError):
        await c.move("esc-dir", "elsewhere")


async def test_reaps_orphans_without_docker_init() -> None:
    """Without --init (Cloud Run has no such flag) the worker is PID 1 and reaps orphans itself."""
    import secrets

    from .conftest import _docker_ok, remove_container, start_container, wait_healthy

    reason = _docker_ok()
    if reason:
        pytest.fail(f"the container tests need Docker and the worker image: {reason}")
    name = f"anvyl-test-worker-noinit-{secrets.token_hex(4)}"
    volume = f"{name}-ws"
    token = secrets.token_urlsafe(24)
    try:
        url = start_container(name, token, volume, init=False)
        await asyncio.to_thread(wait_healthy, url)
        async with WorkerClient(url, token) as client:
            c = Container(name=name, url=url, token=token, client=client)
            assert "anvyl-worker" in (await client.run("cat", "/proc/1/cmdline")).stdout
            for _ in range(5):
                await client.shell("(setsid sleep 0.2 </dev/null >/dev/null 2>&1 &) ; true")
            await asyncio.sleep(1.0)
            states = await processes(c)
            assert not [v for v in states.values() if v[0] == "Z"], states
            assert (await client.run("id", "-u")).stdout.strip() != "0"
    finally:
        await asyncio.to_thread(remove_container, name, volume)
