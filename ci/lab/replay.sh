#!/usr/bin/env bash
# Regression gate: replay corpus programs in the lab. See `ci/lab/lab replay --help`.
#   replay.sh [--out DIR] PATH…   (default: corpora; LAB_ARCH=arm64: in the arm64 lab)
exec "$(dirname "$0")/lab" replay "$@"
