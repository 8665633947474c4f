#!/usr/bin/env bash
# Stress throughput with 1, 2 and 4 workers (vim2m, 1 ms transaction time), side by side in one
# lab boot: programs/s, ops/s and CAPTURE frames/s from each run's summary. A benchmark: it
# prints figures and writes OUT/scaling.{md,json}. See `ci/lab/lab bench-scaling --help`
# (lab/src/checks/bench_scaling.rs).
#   bench-scaling.sh [--out DIR] [--seconds S] [--workers "1 2 4"]
exec "$(dirname "$0")/lab" bench-scaling "$@"
