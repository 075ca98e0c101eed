#!/usr/bin/env bash
# Install Anvyl and run one real task: the orchestrator with embedded defaults (SQLite; Docker
# workspaces when a daemon answers, otherwise local ones; the built-in planner when no model is
# configured) against a sample repository it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || { echo "==> installing uv"; python3 -m pip install -q uv; }
echo "==> installing the Python packages"
uv sync --all-packages --quiet
if docker info >/dev/null 2>&1; then
  if [ -z "${BASE_IMAGE:-}" ]; then
    # The public image when a registry answers, else a local one built with debootstrap.
    if docker image inspect python:3.12-slim >/dev/null 2>&1 || timeout 60 docker pull -q python:3.12-slim >/dev/null 2>&1; then
      BASE_IMAGE=python:3.12-slim
    else
      echo "==> no registry reachable: building a local base image"
      scripts/build-base-image.sh anvyl/base:bookworm
      BASE_IMAGE=anvyl/base:bookworm
    fi
  fi
  BASE_IMAGE=$BASE_IMAGE scripts/build-images.sh
else
  echo "==> no Docker daemon answers: workspaces run as local processes"
fi
exec uv run anvyl demo "$@"
