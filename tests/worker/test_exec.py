"""Auth, health/info and exec against the real worker on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest

from anvyl.worker.client import WorkerClient, WorkerError
from anvyl.worker.models import ExecRequest

from .conftest import Worker, pid_alive, wait_for


async def test_health_is_open_and_info_needs_the_token(worker: Worker) -> None:
    async with httpx.AsyncClient(base_url=worker.url, trust_env=False) as http:
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": f"Basic {worker.token}"},
        ):
            for method, path in (
                ("GET", "/info"),
                ("POST", "/exec"),
                ("POST", "/files/read"),
                ("POST", "/git/status"),
                ("POST", "/exec/x/kill"),
            ):
                response = await http.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.json() == {"detail": "missing or wrong worker token"}
    info = await worker.client.info()
    assert info.python_version.count(".") == 2
    assert info.git_version and info.git_version[0].isdigit()
    assert info.worker_version and info.workspace == str(worker.workspace)
    assert info.disk.total_bytes > 0 and info.disk.workspace_bytes is not None
    assert info.memory.worker_rss_bytes and info.memory.worker_rss_bytes > 0


async def test_wrong_token_raises_worker_error(worker: Worker) -> None:
    async with WorkerClient(worker.url, "not-the-token-at-all") as bad:
        with pytest.raises(WorkerError) as caught:
            await bad.run("true")
    assert caught.value.status_code == 401


async def test_exec_argv_shell_stdin_env_cwd(worker: Worker) -> None:
    (worker.workspace / "sub").mkdir()
    result = await worker.client.run("echo", "hello world")
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "hello world\n", False)
    assert result.duration_s > 0
    shell = await worker.client.shell("echo out; echo err >&2; exit 3")
    assert (shell.exit_code, shell.stdout, shell.stderr) == (3, "out\n", "err\n")
    piped = await worker.client.exec(ExecRequest(argv=["cat"], stdin="from stdin\n"))
    assert piped.stdout == "from stdin\n"
    env = await worker.client.exec(
        ExecRequest(command="echo $FOO; echo ${ANVYL_WORKER_TOKEN:-none}", env={"FOO": "bar"})
    )
    assert env.stdout == "bar\nnone\n"  # the worker's token never reaches commands
    cwd = await worker.client.run("pwd", cwd="sub")
    assert cwd.stdout.strip() == str(worker.workspace / "sub")


async def test_exec_bad_requests_are_clear_4xx(worker: Worker) -> None:
    cases = [
        ({"argv": ["true"], "cwd": "../"}, 403),
        ({"argv": ["true"], "cwd": "/etc"}, 403),
        ({"argv": ["true"], "cwd": "missing-dir"}, 400),
        ({"argv": ["no-such-program-xyz"]}, 400),
        ({"argv": ["echo", "a\x00b"]}, 422),
        ({"command": "echo \ud800"}, 422),
        ({"argv": ["true"], "env": {"A=B": "x"}}, 422),
        ({"argv": ["true"], "command": "true"}, 422),
        ({}, 422),
        ({"argv": ["true"], "unknown": 1}, 422),
        ({"argv": ["true"], "timeout_s": -1}, 422),
    ]
    async with httpx.AsyncClient(
        base_url=worker.url, trust_env=False, headers={"Authorization": f"Bearer {worker.token}"}
    ) as http:
        for body, status in cases:
            # ensure_ascii: a lone surrogate travels as a \ud800 escape, as a real client may send
            response = await http.post(
                "/exec", content=json.dumps(body), headers={"content-type": "application/json"}
            )
            assert response.status_code == status, (body, response.text)
            assert response.json()["detail"]
        garbage = await http.post(
            "/exec", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert garbage.status_code == 422
        assert (await http.get("/nope")).status_code == 404
    with pytest.raises(WorkerError, match="outside the workspace") as caught:
        await worker.client.run("true", cwd="..")
    assert caught.value.status_code == 403


async def test_timeout_kills_the_whole_process_group(worker: Worker) -> None:
    started = time.monotonic()
    result = await worker.client.exec(
        ExecRequest(command="sleep 300 & echo $! > child.pid; echo started; wait", timeout_s=1)
    )
    assert result.timed_out and result.exit_code != 0
    assert "started" in result.stdout and "timed out" in result.stderr
    assert time.monotonic() - started < 10
    child = int((worker.workspace / "child.pid").read_text())
    assert await wait_for(lambda: not pid_alive(child), 5), "background child survived the timeout"


async def test_leftover_background_processes_are_killed_when_the_command_ends(
    worker: Worker,
) -> None:
    result = await worker.client.shell("sleep 300 & echo $!")
    assert result.exit_code == 0
    child = int(result.stdout)
    assert await wait_for(lambda: not pid_alive(child), 5)


async def test_output_cap_sets_truncated(worker: Worker) -> None:
    result = await worker.client.exec(
        ExecRequest(
            command="head -c 100000 /dev/zero | tr '\\0' x; echo done >&2", max_output_bytes=1000
        )
    )
    assert result.truncated and len(result.stdout) == 1000 and result.stderr == "done\n"
    small = await worker.client.run("echo", "hi")
    assert not small.truncated


async def test_client_disconnect_kills_the_command(worker: Worker) -> None:
    task = asyncio.create_task(
        worker.client.exec(
            ExecRequest(
                command="sleep 300 & echo $! > child.pid; echo $$ > leader.pid; wait", timeout_s=600
            )
        )
    )
    pidfile = worker.workspace / "child.pid"
    assert await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", 10)
    child = int(pidfile.read_text())
    leader = int((worker.workspace / "leader.pid").read_text())
    assert pid_alive(child) and pid_alive(leader)
    task.cancel()  # closes the HTTP connection mid-request
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_for(lambda: not pid_alive(child) and not pid_alive(leader), 5), (
        "command survived the disconnect"
    )


async def test_kill_by_exec_id(worker: Worker) -> None:
    task = asyncio.create_task(
        worker.client.exec(
            ExecRequest(
                command="sleep 300 & echo $! > child.pid; wait", exec_id="job-1", timeout_s=600
            )
        )
    )
    pidfile = worker.workspace / "child.pid"
    assert await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", 10)
    assert (await worker.client.info()).running_execs == ["job-1"]
    with pytest.raises(WorkerError) as duplicate:
        await worker.client.exec(ExecRequest(argv=["true"], exec_id="job-1"))
    assert duplicate.value.status_code == 409
    killed = await worker.client.kill("job-1")
    assert killed.killed
    result = await asyncio.wait_for(task, 10)
    assert result.killed and result.exit_code != 0 and result.exec_id == "job-1"
    assert await wait_for(lambda: not pid_alive(int(pidfile.read_text())), 5)
    with pytest.raises(WorkerError) as unknown:
        await worker.client.kill("job-1")
    assert unknown.value.status_code == 404


async def test_streaming_delivers_output_before_the_command_ends(worker: Worker) -> None:
    started = time.monotonic()
    seen: list[tuple[str, str, float]] = []
    result = None
    async for event in worker.client.exec_stream(
        ExecRequest(command="echo first; echo warn >&2; sleep 3; echo second")
    ):
        if event.result is not None:
            result = event.result
        else:
            seen.append((event.stream, event.data, time.monotonic() - started))
    assert result is not None and result.exit_code == 0
    assert result.stdout == "first\nsecond\n" and result.stderr == "warn\n"
    first = next(t for s, d, t in seen if s == "stdout" and "first" in d)
    assert first < 2.0, f"first output arrived after {first:.2f}s"
    assert ("stderr", "warn\n") in [(s, d) for s, d, _ in seen]
    assert time.monotonic() - started >= 3


async def test_streaming_disconnect_kills_the_command(worker: Worker) -> None:
    request = ExecRequest(
        command="echo $$ > leader.pid; sleep 300 & echo $! > child.pid; echo ready; wait",
        timeout_s=600,
    )
    async with contextlib.aclosing(worker.client.exec_stream(request)) as events:
        async for event in events:
            if "ready" in event.data:
                break  # leaving the loop (and closing the generator) closes the connection
    child = int((worker.workspace / "child.pid").read_text())
    leader = int((worker.workspace / "leader.pid").read_text())
    assert await wait_for(lambda: not pid_alive(child) and not pid_alive(leader), 5)


async def test_streaming_errors_and_timeout(worker: Worker) -> None:
    with pytest.raises(WorkerError) as caught:
        async for _ in worker.client.exec_stream(ExecRequest(argv=["true"], cwd="/etc")):
            pass
    assert caught.value.status_code == 403
    events = [
        e
        async for e in worker.client.exec_stream(
            ExecRequest(command="echo a; sleep 30", timeout_s=0.5)
        )
    ]
    assert events[-1].result is not None and events[-1].result.timed_out
    assert events[0].data == "a\n"


async def test_commands_inherit_no_worker_descriptors(worker: Worker) -> None:
    """close_fds=False is safe only because every descriptor the worker opens is non-inheritable."""
    for _ in range(3):  # with open client connections and a running server
        result = await worker.client.run(
            "python3", "-c", "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"
        )
        assert result.stdout.strip() == "[0, 1, 2, 3]", result.stdout  # 3: the listdir itself
