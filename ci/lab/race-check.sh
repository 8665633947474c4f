#!/usr/bin/env bash
# vim2m.race_mode (patches/0008) is found by two threads and only by two threads. Each run is
# a fresh lab boot; the programs (ci/lab/race/) run under `m2mfuzz watch --json`, so the
# oracles judge the kernel log independently of the programs' own kmsg check:
#   single  race_mode=1: race-single ITERATIONS (one thread, every cancel right after the QBUF
#           that started the job): no symptom, no finding
#   threads race_mode=1, BOOTS boots: race-threads SECONDS (a streamer and a STREAMOFF/ON
#           thread on one context): the symptom (a WARNING in vb2_buffer_done in the console)
#           and the finding "splat: WARNING in vb2_buffer_done" in at least NEED of them
#   control race_mode=0: race-threads SECONDS, then race-single ITERATIONS: nothing, and
#           lockdep still on
# Prints a table (also OUT/results.md); exit 1 when an expectation fails.
#   race-check.sh [--out DIR] [--boots 5] [--need 4] [--seconds 60] [--iterations 200]
# The check is lab/src/checks/race_check.rs (`cargo lab race-check`).
exec "$(dirname "$0")/lab" race-check "$@"
