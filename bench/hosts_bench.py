"""Hosts (issue 15): what asking another host adds, and what dead hosts cost a broadcast.

    uv run python bench/hosts_bench.py [--queries 40] [--live 8] [--timeout 3]

Real `anvyl serve` processes on loopback (SQLite, local workspace backend), each with its own data
directory and API key, all with the same instant scripted model (real OpenAI wire protocol, a
one-turn answer), no MCP hub.

1. Remote query overhead: `POST /agent/process` on host b (a local query) against
   `POST /agent/remote-query {host_id: b}` on host a (a asks b over HTTP with b's token and the
   forwarding headers; b runs the same task). The two alternate which goes first; the overhead is
   the median of the paired differences (remote minus the local beside it); the first pair warms up.
2. Broadcast to 10 known hosts of which 2 are dead: `--live` real orchestrators, one address that
   refuses connections (a stopped host) and one that accepts and never answers (a hung host, which
   costs the full per-host timeout). Wall time of `POST /agent/broadcast` against the timeout, and
   the same broadcast without the dead ones. Printed as tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.*
from tests.orchestrator.hosts_cluster import (
    Node,
    add_host,
    closed_port,
    make_node,
    silent_port,
    start_all,
)

QUERY = "say ok"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(http: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = http.post(path, json=body)
    took = time.perf_counter() - started
    response.raise_for_status()
    return took * 1000, response.json()


def remote_overhead(a: Node, b: Node, queries: int) -> dict[str, Any]:
    local_ms, remote_ms, diffs = [], [], []
    with a.client() as to_a, b.client() as to_b:
        for i in range(queries + 1):
            order = ["local", "remote"] if i % 2 == 0 else ["remote", "local"]
            pair: dict[str, float] = {}
            for way in order:
                if way == "local":
                    ms, task = timed(to_b, "/agent/process", {"query": QUERY})
                    assert task["status"] == "succeeded", task
                else:
                    ms, answer = timed(
                        to_a, "/agent/remote-query", {"host_id": "b", "query": QUERY}
                    )
                    assert answer["status"] == "succeeded", answer
                pair[way] = ms
            if i == 0:
                continue  # warm-up
            local_ms.append(pair["local"])
            remote_ms.append(pair["remote"])
            diffs.append(pair["remote"] - pair["local"])
    return {"local": local_ms, "remote": remote_ms, "diffs": diffs}


def broadcast(
    a: Node, timeout_s: float, rounds: int = 3
) -> list[tuple[float, list[dict[str, Any]]]]:
    found = []
    with a.client(timeout=timeout_s + 60) as to_a:
        timed(to_a, "/agent/broadcast", {"query": QUERY, "timeout_s": 60})  # warm-up: first tasks
        for _ in range(rounds):
            ms, answers = timed(to_a, "/agent/broadcast", {"query": QUERY, "timeout_s": timeout_s})
            found.append((ms, answers))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--queries", type=int, default=40, help="pairs for the remote query overhead"
    )
    parser.add_argument(
        "--live", type=int, default=8, help="live hosts of the broadcast (plus 2 dead)"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="per-host timeout of the broadcast"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    with (
        tempfile.TemporaryDirectory(prefix="anvyl-hosts-bench-") as tmp,
        ScriptedLLMServer(default=ScriptedReply(content="ok")) as model,
        contextlib.ExitStack() as stack,
    ):
        root = Path(tmp)
        config = root / "model.yaml"
        config.write_text(
            "models:\n  - name: scripted\n    provider: openai\n"
            f"    base_url: {model.openai_url}\n    model: scripted-model\n    api_key: bench\n"
            "routing:\n  primary: scripted\n"
        )
        env = {"ANVYL_CONFIG": str(config), "ANVYL_HOSTS_CHECK_INTERVAL_S": "600"}
        a = make_node(root, "a", extra_env=env)
        live = [make_node(root, f"h{i}", extra_env=env) for i in range(1, args.live + 1)]
        nodes = [a, *live]
        stack.callback(lambda: [node.stop() for node in nodes])
        started = time.perf_counter()
        start_all(nodes)
        print(f"started {len(nodes)} orchestrators in {time.perf_counter() - started:.1f}s")

        # 1. remote query overhead: a asks b (= h1) against b itself.
        b = live[0]
        add_host(a, b, "b", token=b.key)
        overhead = remote_overhead(a, b, args.queries)
        print(
            f"\nRemote query overhead ({args.queries} pairs, one-turn task, instant scripted model)\n"
        )
        print("| way | median ms | p95 ms |")
        print("|---|---|---|")
        for way in ("local", "remote"):
            values = overhead[way]
            label = (
                "POST /agent/process on b (local)"
                if way == "local"
                else "POST /agent/remote-query on a -> b"
            )
            print(f"| {label} | {statistics.median(values):.1f} | {pct(values, 0.95):.1f} |")
        diffs = overhead["diffs"]
        print(
            f"| remote minus local (paired) | **{statistics.median(diffs):.1f}** | {pct(diffs, 0.95):.1f} |"
        )

        # 2. broadcast: the live ones (b is h1 already), then one stopped and one hung host.
        a_http = a.client()
        stack.callback(a_http.close)
        a_http.delete("/agent/hosts/b")
        for node in live:
            add_host(a, node, node.host_id, token=node.key)
        healthy = broadcast(a, args.timeout)
        hung = stack.enter_context(silent_port())
        add_host(a, closed_port(), "stopped")
        add_host(a, hung, "hung")
        with_dead = broadcast(a, args.timeout)
        print(f"\nBroadcast to {args.live} live hosts, then {args.live + 2} with 2 dead "
              f"(per-host timeout {args.timeout:g}s, 3 rounds each after a warm-up)\n")  # fmt: skip
        print(
            "| hosts | wall ms (each round) | slowest live answer ms | live answers ok | dead answers |"
        )
        print("|---|---|---|---|---|")
        for label, rounds in (
            (f"{args.live} live", healthy),
            (f"{args.live} live + 2 dead", with_dead),
        ):
            walls = ", ".join(f"{ms:.0f}" for ms, _ in rounds)
            last = rounds[-1][1]
            alive = [x for x in last if x["host_id"] not in ("stopped", "hung")]
            dead = [x for x in last if x["host_id"] in ("stopped", "hung")]
            slowest = max(x["latency_s"] for _, answers in rounds for x in answers
                          if x["host_id"] not in ("stopped", "hung")) * 1000  # fmt: skip
            ok = sum(x["status"] == "succeeded" for _, answers in rounds for x in answers
                     if x["host_id"] not in ("stopped", "hung"))  # fmt: skip
            dead_text = "; ".join(f"{x['host_id']}: {x['status']} in {x['latency_s'] * 1000:.0f} ms"
                                  for x in dead) or "-"  # fmt: skip
            print(
                f"| {label} | {walls} | {slowest:.0f} | {ok}/{len(alive) * len(rounds)} | {dead_text} |"
            )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
