#!/usr/bin/env bash
# Run every benchmark in bench/ in sequence; each prints its own table and cleans up after itself.
#
#   bench/run_all.sh                      # worker image from ANVYL_AGENT_IMAGE (default anvyl/agent:dev)
#   ANVYL_AGENT_IMAGE=anvyl/agent:bench bench/run_all.sh
#
# Needs: `uv sync --all-packages --all-groups` done, a Docker daemon with the worker image built
# (scripts/build-images.sh), and PostgreSQL at ANVYL_BENCH_POSTGRES_URL (default the local server)
# for the task API bench. A failing bench is reported and the others still run; the exit status is
# the number of benches that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export LITELLM_LOCAL_MODEL_COST_MAP=True  # LiteLLM must not fetch its price map: no network here

failed=0
for bench in worker_bench.py workspace_bench.py task_api_bench.py db_round_trips.py agent_bench.py agent_act_bench.py a2a_bench.py hosts_bench.py router_bench.py mcp_hub_bench.py cluster_bench.py compose_bench.py memory_bench.py; do
  echo
  echo "===== bench/$bench ($(date -u +%H:%M:%S) UTC)"
  if ! uv run python "bench/$bench"; then
    echo "===== bench/$bench FAILED" >&2
    failed=$((failed + 1))
  fi
done
exit "$failed"
