#!/usr/bin/env bash
# Build Anvyl's images from the locked dependencies, offline inside Docker.
#
#   scripts/build-images.sh                    # the worker image (anvyl/agent), FROM python:3.12-slim
#   scripts/build-images.sh orchestrator       # anvyl/orchestrator and anvyl/mcp-hub (Dockerfile.orchestrator)
#   scripts/build-images.sh postgres           # a PostgreSQL image for hosts without a registry
#   scripts/build-images.sh gpt-oss-cpu        # anvyl/gpt-oss:cpu, mlx-lm on the CPU (Dockerfile.gpt-oss)
#   scripts/build-images.sh agent orchestrator postgres
#   BASE_IMAGE=anvyl/base:bookworm scripts/build-images.sh ...
#
# The wheels are downloaded on the host for the base image's Python version (so a proxy, a private
# index or a custom CA configured for pip here just works), then installed with --no-index. The base
# image needs glibc 2.35 or later (Debian bookworm: 2.36) where a wheel is only built for it (mlx-cpu).
# Tags: ANVYL_AGENT_IMAGE, ANVYL_ORCHESTRATOR_IMAGE, ANVYL_MCP_HUB_IMAGE (default anvyl/NAME:dev).
# WHEELS_ONLY=1 stops after the wheels (a remote build, Cloud Build, takes them from there), and
# PYTHON_VERSION=3.12 says the base image's Python without asking a local Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_IMAGE=${BASE_IMAGE:-python:3.12-slim}
AGENT_IMAGE=${ANVYL_AGENT_IMAGE:-anvyl/agent:dev}
ORCHESTRATOR_IMAGE=${ANVYL_ORCHESTRATOR_IMAGE:-anvyl/orchestrator:dev}
MCP_HUB_IMAGE=${ANVYL_MCP_HUB_IMAGE:-anvyl/mcp-hub:dev}
# The name docker-compose.yml expects for PostgreSQL (the official image's where a registry answers).
POSTGRES_IMAGE=${ANVYL_POSTGRES_IMAGE:-postgres:15-bookworm}
wheelhouse=build/wheelhouse  # third-party wheels and requirements-PACKAGE.txt
anvyl_wheels=build/wheelhouse-anvyl  # the workspace's own wheels

images=("$@")
[ ${#images[@]} -gt 0 ] || images=(agent)
packages=()
for image in "${images[@]}"; do
  case $image in
    agent) packages+=(anvyl-agent) ;;
    orchestrator | mcp-hub) packages+=(anvyl-orchestrator anvyl-mcp-hub anvyl-clusters) ;;
    gpt-oss-cpu) packages+=(anvyl-gpt-oss) ;;
    postgres) ;;
    *) echo "unknown image '$image': agent, orchestrator (with mcp-hub), gpt-oss-cpu or postgres" >&2; exit 2 ;;
  esac
done

if [ ${#packages[@]} -gt 0 ]; then
  # Two directories, two image layers: the third-party wheels (the same files until uv.lock changes,
  # so Docker reuses the layer that installs them) and Anvyl's own wheels (new at every change).
  rm -rf "$wheelhouse" "$anvyl_wheels" && mkdir -p "$wheelhouse" "$anvyl_wheels"
  pyver=${PYTHON_VERSION:-$(docker run --rm --entrypoint python3 "$BASE_IMAGE" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
  echo "==> wheels of ${packages[*]} for Python $pyver (base image $BASE_IMAGE)"
  # The locked versions of each package's dependencies (one lockfile: they agree), one file per
  # package for its image; the orchestrator with its cloud extra (the cloudrun backend), gpt-oss
  # with mlx (the cpu flavour).
  for package in "${packages[@]}"; do
    extra=()
    case $package in
      anvyl-orchestrator) extra=(--extra cloud) ;;
      anvyl-gpt-oss) extra=(--extra mlx) ;;
    esac
    uv export --quiet --package "$package" "${extra[@]}" --no-dev --no-hashes --no-emit-workspace \
      --frozen --no-header --no-annotate -o "$wheelhouse/requirements-$package.txt"
  done
  sort -u "$wheelhouse"/requirements-*.txt >build/requirements.txt
  for package in anvyl-agent anvyl-gpt-oss "${packages[@]}"; do
    uv build --quiet --package "$package" --wheel -o "$anvyl_wheels"
  done
  python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$pyver" --implementation cp \
    --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 \
    -r build/requirements.txt -d "$wheelhouse" 2> >(grep -v "is ignored: it is neither" >&2)
fi
[ "${WHEELS_ONLY:-0}" != 1 ] || exit 0

build() {  # build TAG [docker build options...]
  local tag=$1
  shift
  echo "==> docker build $tag"
  docker build --quiet --build-arg BASE_IMAGE="$BASE_IMAGE" "$@" -t "$tag" . >/dev/null
  docker image ls "$tag" --format '    {{.Repository}}:{{.Tag}}  {{.Size}}'
}

for image in "${images[@]}"; do
  case $image in
    agent) build "$AGENT_IMAGE" -f Dockerfile.agent ;;
    orchestrator | mcp-hub)
      build "$ORCHESTRATOR_IMAGE" -f Dockerfile.orchestrator --target orchestrator
      build "$MCP_HUB_IMAGE" -f Dockerfile.orchestrator --target mcp-hub
      ;;
    gpt-oss-cpu) build "${ANVYL_GPT_OSS_CPU_IMAGE:-anvyl/gpt-oss:cpu}" -f Dockerfile.gpt-oss --build-arg FLAVOUR=cpu ;;
    postgres)
      # Where the official image is present (pulled), it is kept: this one only stands in for it
      # (an earlier stand-in, labelled so, is built again: Docker's cache makes that quick).
      stand_in=$(docker image inspect "$POSTGRES_IMAGE" --format '{{index .Config.Labels "org.anvyl.stand-in"}}' 2>/dev/null || echo absent)
      if [ "$stand_in" != absent ] && [ "$stand_in" != postgres ] && [ "${FORCE:-0}" != 1 ]; then
        echo "==> $POSTGRES_IMAGE present"
      else
        build "$POSTGRES_IMAGE" -f Dockerfile.postgres
      fi
      ;;
  esac
done
