#!/bin/sh
# Stop a docker build at once, with the command to run, when the wheels it installs are missing:
# the images install the locked dependencies offline from build/wheelhouse, which
# scripts/build-images.sh fills (a fresh clone has none).
#   require-wheel.sh WHEEL_DIR PACKAGE IMAGE
set -eu
ls "$1"/"$(echo "$2" | tr - _)"-*.whl >/dev/null 2>&1 && exit 0
echo "build/wheelhouse has no $2 wheel: run  scripts/build-images.sh $3  (it downloads the locked wheels, then builds the image)" >&2
exit 1
