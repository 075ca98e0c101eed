#!/bin/sh
# The engine of the image's flavour: vLLM for cuda, mlx-lm for cpu (ANVYL_GPT_OSS_FLAVOUR).
set -eu
case "${ANVYL_GPT_OSS_FLAVOUR:-cuda}" in
  cpu) engine=mlx ;;
  *) engine=vllm ;;
esac
exec anvyl-gpt-oss serve --engine "$engine" --host 0.0.0.0 --port "${PORT:-8000}" "$@"
