#!/usr/bin/env bash
# Build the worker image (anvyl/agent) from the locked dependencies, offline inside Docker.
#
#   scripts/build-images.sh            # FROM python:3.12-slim (pulled)
#   BASE_IMAGE=anvyl/base:bookworm scripts/build-images.sh
#
# The wheels are downloaded on the host for the base image's Python version (so a proxy, a private
# index or a custom CA configured for pip here just works), then installed with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_IMAGE=${BASE_IMAGE:-python:3.12-slim}
AGENT_IMAGE=${ANVYL_AGENT_IMAGE:-anvyl/agent:dev}
wheelhouse=build/wheelhouse
rm -rf "$wheelhouse" && mkdir -p "$wheelhouse"

pyver=$(docker run --rm --entrypoint python3 "$BASE_IMAGE" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
echo "==> worker wheels for Python $pyver (base image $BASE_IMAGE)"
uv export --quiet --package anvyl-agent --no-dev --no-hashes --no-emit-workspace --frozen \
  -o build/agent-requirements.txt
uv build --quiet --package anvyl-agent --wheel -o "$wheelhouse"
python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version "$pyver" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -r build/agent-requirements.txt -d "$wheelhouse" 2> >(grep -v "is ignored: it is neither" >&2)

echo "==> docker build $AGENT_IMAGE"
docker build --quiet --build-arg BASE_IMAGE="$BASE_IMAGE" -f Dockerfile.agent -t "$AGENT_IMAGE" . >/dev/null
docker image ls "$AGENT_IMAGE" --format '    {{.Repository}}:{{.Tag}}  {{.Size}}'
