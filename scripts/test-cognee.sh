#!/usr/bin/env bash
# The cognee memory backend's test, for real, in its own environment. The orchestrator's `cognee`
# extra is locked in its own fork of uv.lock (pyproject.toml's conflicts): cognee caps
# huggingface-hub, SQLAlchemy, structlog, websockets and rich below what the dev group and gpt-oss's
# mlx extra use, so it never shares their environment. scripts/test.sh runs this after the main
# suite; a failed install fails the run like a failed test.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ANVYL_COGNEE_VENV:-.venv-cognee}

echo "==> uv sync (cognee extra, into $venv)"
if ! UV_PROJECT_ENVIRONMENT=$venv uv sync --all-packages --extra cognee --no-dev --group test \
  --locked --quiet; then
  echo "error: installing the cognee environment failed (uv sync --extra cognee into $venv):" \
    "the cognee backend's test did not run" >&2
  exit 1
fi
echo "==> pytest (cognee backend)"
# Required here: a missing cognee is an error, not a skip.
ANVYL_REQUIRE_COGNEE=1 "$venv/bin/python" -m pytest tests/memory/test_cognee_backend.py "$@"
