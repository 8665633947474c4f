#!/usr/bin/env bash
# The fuzz path end to end in the lab: `m2m_vim2m` with a fault switch on must store a finding
# within BUDGET seconds and go on fuzzing after it; the stored input, decoded, must replay (a
# fresh boot, the same switch) with every finding it showed. See `ci/lab/lab fuzz-check --help`
# (lab/src/checks/fuzz_check.rs).
#   fuzz-check.sh [--out DIR] [--budget SECONDS] [--switch "module.param=value …"]
exec "$(dirname "$0")/lab" fuzz-check "$@"
