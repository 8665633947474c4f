#!/usr/bin/env bash
# The stress duty cycle in one lab boot: `m2mfuzz limit` (vim2m, 320x240, 1 ms), then `m2mfuzz
# stress` with stress-profiles/lab-duty.toml while an independent tracefs instance counts
# vb2_buf_done by queue type; duty = CAPTURE vb2_buf_done/s over the limit's jobs/s. A benchmark:
# prints figures and writes OUT/duty.{md,json}. See `ci/lab/lab bench-duty --help`
# (lab/src/checks/bench_duty.rs).
#   bench-duty.sh [--out DIR] [--seconds 60] [--limit-seconds 15]
exec "$(dirname "$0")/lab" bench-duty "$@"
