#!/bin/sh
# The entrypoint of the orchestrator and hub images: runs the command as the image's user (1000).
#
# Under docker-compose it does two things more, so that `.env` needs no editing:
# - ANVYL_SECRETS_ENV names the file of generated secrets (the one-shot `secrets-init` service writes it:
#   the hub token, the database URL); its variables are exported for the command;
# - started as root (the orchestrator, which gets the Docker socket), it joins the group owning the
#   socket, whatever its number on this host, then drops to 1000:1000 with no capabilities left.
set -eu
if [ -n "${ANVYL_SECRETS_ENV:-}" ]; then
  if [ ! -r "$ANVYL_SECRETS_ENV" ]; then
    echo "anvyl-entrypoint: cannot read ANVYL_SECRETS_ENV=$ANVYL_SECRETS_ENV (the compose service \`secrets-init\` writes it)" >&2
    exit 1
  fi
  set -a
  # shellcheck disable=SC1090  # written by anvyl.orchestrator.compose_secrets, values shell-quoted
  . "$ANVYL_SECRETS_ENV"
  set +a
fi
if [ "$(id -u)" = 0 ]; then
  socket=/var/run/docker.sock
  if [ -S "$socket" ]; then
    groups="--groups=$(stat -c %g "$socket")"
  else
    groups=--clear-groups
  fi
  exec setpriv --reuid=1000 --regid=1000 "$groups" --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- "$@"
fi
exec "$@"
