#!/usr/bin/env bash
# Build (or reuse) the lab kernel for LAB_ARCH; prints the image's path. See `ci/lab/lab kernel --help`.
#   build-kernel.sh [--fences=n]   (--fences=n: CONFIG_VIDEOBUF2_RELEASE_FENCES=n, the patches must still build)
case "${1:-}" in
    "") exec "$(dirname "$0")/lab" kernel ;;
    --fences=n) exec "$(dirname "$0")/lab" kernel --variant fences-off ;;
    *) echo "[lab] error: unknown argument $1 (known: --fences=n)" >&2; exit 2 ;;
esac
