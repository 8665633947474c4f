#!/usr/bin/env bash
# Does the stress engine find each fault? A boot per corpora/faults/*.m2m (or PROGRAM) and seed,
# `m2mfuzz stress --until` the program's `# expect:` finding under its `# switch:`, for up to
# BUDGET seconds; a table of the time to it (median and max over the seeds) in OUT/results.md and
# OUT/results.jsonl. See `ci/lab/lab stress-faults --help` (lab/src/checks/stress_faults.rs).
#   stress-faults.sh [--out DIR] [--budget SECONDS] [--seeds "1 2 3"] [PROGRAM…]
# Exit code: 0 every fault found, 1 a fault missed or a guest timed out or died, 2 another error.
exec "$(dirname "$0")/lab" stress-faults "$@"
