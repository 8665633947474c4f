#!/usr/bin/env bash
# The device tests in the lab (LAB_ARCH=arm64 for the arm64 one). See `ci/lab/lab tests --help`.
#   run-tests.sh [--out DIR] [--cmdline "ARGS"]
exec "$(dirname "$0")/lab" tests "$@"
