#!/usr/bin/env bash
# Build a minimal Debian base image (python3, venv, git) without any registry: for air-gapped hosts
# and CI. Reused when it exists; FORCE=1 rebuilds it.
#   scripts/build-base-image.sh [IMAGE]      (default anvyl/base:bookworm)
set -euo pipefail
IMAGE=${1:-anvyl/base:bookworm}
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "==> base image $IMAGE present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is needed: apt-get install -y debootstrap" >&2; exit 1; }
rootfs=$(mktemp -d /tmp/anvyl-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "==> debootstrap bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,git,ca-certificates bookworm "$rootfs" \
  >/tmp/anvyl-debootstrap.log 2>&1 || { tail -20 /tmp/anvyl-debootstrap.log >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import - "$IMAGE" >/dev/null
echo "==> base image $IMAGE built"
