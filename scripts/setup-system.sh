#!/usr/bin/env bash
# Install and start what the tests need on a Debian machine (run as root): Docker engine, PostgreSQL,
# bubblewrap, debootstrap, Node.js (for the MCP Inspector CLI), docker-compose (the compose stack's
# test), shellcheck (the scripts' lint), uv. Idempotent; starts only what is down.
# Writes the names of the daemons it started to $ANVYL_STARTED (if set) so the caller can stop them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
started=${ANVYL_STARTED:-/dev/null}

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v git >/dev/null || missing+=(git)
command -v npx >/dev/null || missing+=(nodejs npm)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v shellcheck >/dev/null || missing+=(shellcheck)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "==> starting dockerd"
  nohup dockerd >/tmp/anvyl-dockerd.log 2>&1 &
  echo dockerd >>"$started"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /tmp/anvyl-dockerd.log >&2; exit 1; }
fi

cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  pg_createcluster 15 main >/dev/null
  cluster="15 main"
fi
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  echo "==> starting PostgreSQL $cluster"
  # shellcheck disable=SC2086 # "VERSION NAME": two arguments
  pg_ctlcluster $cluster start
  echo "postgresql $cluster" >>"$started"
fi
su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null

command -v uv >/dev/null || { echo "==> pip install uv"; python3 -m pip install -q uv; }
