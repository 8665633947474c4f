#!/usr/bin/env bash
# Kernel coverage benchmark: the same fuzz target for the same time in fresh boots, KCOV guiding
# vs only counted. Prints a table, writes OUT/coverage.{md,json}; asserts nothing. See
# `ci/lab/lab bench-coverage --help` (lab/src/checks/bench_coverage.rs).
#   bench-coverage.sh [--out DIR] [--target m2m_vim2m] [--seconds 300]
exec "$(dirname "$0")/lab" bench-coverage "$@"
