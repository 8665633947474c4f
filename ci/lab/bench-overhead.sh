#!/usr/bin/env bash
# Harness overhead: ops/s of `m2mfuzz run --no-oracles --quiet` executing a fixed vim2m program vs
# the same ioctls as a plain C loop (ci/lab/bench/loop.c), alternated in one lab boot; execution
# rate from each side's own clock (`run --timings`' JSON line), whole runs (ci/lab/bench/timeit.c)
# and marginal rates. Prints a table, writes OUT/overhead.{md,json}; asserts nothing. LAB_ARCH=arm64
# runs it in the arm64 lab. See `ci/lab/lab bench-overhead --help` (lab/src/checks/bench_overhead.rs).
#   bench-overhead.sh [--out DIR] [--reps 11] [--n 1000] [--n-ioctls 10000]
exec "$(dirname "$0")/lab" bench-overhead "$@"
