"""Intent to validated files, without a model: seed 002's eight intents, median over rounds.

Stages per intent: the deterministic parser, generation of every file, python-hcl2 on the HCL
files, and the external checks (`terraform fmt -check` where installed, `ansible-inventory --list`,
`ansible-playbook --syntax-check` of site.yml and addons.yml) on a scratch copy, run at once and
one by one. Side by side: the
same intent through an instant scripted model on the OpenAI wire protocol (real HTTP), which shows
what the model path adds besides the model's own latency.

    uv run python bench/cluster_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.clusters.seed_table import SEED_TABLE

from anvyl.clusters.generate import generate_project
from anvyl.clusters.intent import parse_intent
from anvyl.clusters.interpret import interpret, openai_ask
from anvyl.clusters.validate import check_hcl, check_tools, write_tree
from anvyl.orchestrator.llm.testing import RecordedRequest, ScriptedLLMServer, ScriptedReply


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def one_round(intent: str) -> dict[str, float]:
    times: dict[str, float] = {}
    began = time.perf_counter()
    spec = parse_intent(intent)
    times["parse"] = time.perf_counter() - began
    mark = time.perf_counter()
    files = generate_project(spec)
    times["generate"] = time.perf_counter() - mark
    mark = time.perf_counter()
    assert all(check.ok for check in check_hcl(files))
    times["hcl2"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anvyl-cluster-bench-") as scratch:
        write_tree(Path(scratch), files)
        checks = check_tools(Path(scratch))
    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
    times["tools"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anvyl-cluster-bench-") as scratch:
        write_tree(Path(scratch), files)
        assert all(check.ok for check in check_tools(Path(scratch), concurrent=False))
    times["tools_sequential"] = time.perf_counter() - mark
    times["total"] = times["parse"] + times["generate"] + times["hcl2"] + times["tools"]
    return times


async def model_round(intent: str, server: ScriptedLLMServer) -> float:
    ask = openai_ask(server.openai_url, "bench", timeout_s=30)
    began = time.perf_counter()
    result = await interpret(intent, ask=ask, model_name="bench")
    elapsed = time.perf_counter() - began
    assert result.source == "model:bench", result.warnings
    return elapsed


def answer_for(request: RecordedRequest) -> ScriptedReply:
    """The parser's spec as the model's answer: an instant, valid reply."""
    intent = request.body["messages"][-1]["content"].rsplit("Intent: ", 1)[1]
    return ScriptedReply(content=json.dumps(parse_intent(intent).model_dump(mode="json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"CPUs: {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"rounds per intent: {args.rounds}")  # fmt: skip
    rows = []
    with ScriptedLLMServer(answer_for) as server:
        for intent in SEED_TABLE:
            rounds = [one_round(intent) for _ in range(args.rounds)]
            model = [asyncio.run(model_round(intent, server)) for _ in range(args.rounds)]
            median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
            rows.append((intent, median, statistics.median(model)))
    header = f"{'intent':<36} {'parse ms':>9} {'model ms':>9} {'generate ms':>12} {'hcl2 ms':>8} {'tools s':>8} {'one by one s':>13} {'total s':>8}"
    print(header)
    print("-" * len(header))
    for intent, median, model in rows:
        print(f"{intent:<36} {_ms(median['parse']):>9} {_ms(model):>9} {_ms(median['generate']):>12} "
              f"{_ms(median['hcl2']):>8} {median['tools']:>8.2f} {median['tools_sequential']:>13.2f} "
              f"{median['total']:>8.2f}")  # fmt: skip
    totals = [median["total"] for _, median, _ in rows]
    parse = [median["parse"] for _, median, _ in rows]
    in_process = [median["parse"] + median["generate"] + median["hcl2"] for _, median, _ in rows]
    print("-" * len(header))
    print(f"median over the table: parse {_ms(statistics.median(parse))} ms, "
          f"scripted model (instant) {_ms(statistics.median(m for _, _, m in rows))} ms, "
          f"in-process (parse + generate + hcl2) {_ms(statistics.median(in_process))} ms, "
          f"intent -> validated files {statistics.median(totals):.2f} s (checks one by one: "
          f"{statistics.median(m['tools_sequential'] for _, m, _ in rows):.2f} s of checks)")  # fmt: skip


if __name__ == "__main__":
    main()
