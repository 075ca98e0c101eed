#!/usr/bin/env bash
# Install everything and run the whole test suite (lint, types, tests on SQLite and PostgreSQL,
# against a real Docker engine). This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
ANVYL_STARTED=$(mktemp /tmp/anvyl-started.XXXXXX)
export ANVYL_STARTED
stop_started() {
  # Stop only the daemons this run started, so a developer's own services stay up.
  # shellcheck disable=SC2046 # "VERSION NAME": two arguments
  if grep -q '^postgresql' "$ANVYL_STARTED"; then pg_ctlcluster $(grep '^postgresql' "$ANVYL_STARTED" | cut -d' ' -f2-) stop || true; fi
  if grep -q '^dockerd' "$ANVYL_STARTED"; then pkill -x dockerd || true; fi
  rm -f "$ANVYL_STARTED"
}
trap stop_started EXIT

if [ "$(id -u)" = 0 ]; then scripts/setup-system.sh; fi
echo "==> uv sync"
uv sync --all-packages --extra mlx --extra cloud --all-groups --quiet

scripts/build-base-image.sh anvyl/base:bookworm
# The worker, orchestrator and hub images, and PostgreSQL under the compose file's name where no
# registry image is present (tests/deploy/test_compose.py runs the stack); layers are reused.
BASE_IMAGE=anvyl/base:bookworm ANVYL_AGENT_IMAGE=anvyl/agent:dev scripts/build-images.sh agent orchestrator postgres

echo "==> ruff"
uv run ruff check .
uv run ruff format --check .
echo "==> mypy"
uv run mypy
echo "==> pytest"
export ANVYL_TEST_POSTGRES_URL=${ANVYL_TEST_POSTGRES_URL:-postgresql://postgres:postgres@127.0.0.1:5432/postgres}
uv run pytest "$@"
# The cognee backend in its own environment (its extra never shares the dev one: see the script).
scripts/test-cognee.sh -q
