#!/usr/bin/env bash
# Peer suite: v4l2-compliance (Debian v4l-utils) with streaming tests on each lab node, in the lab.
# Prints per-node totals, stores them in OUT/summary.txt, and fails if any node has more failures
# than ci/lab/compliance-baseline.txt (the stock lab kernel's figures).
#   compliance.sh [--out DIR] [--cmdline "ARGS"] [--write-baseline]
# The check is lab/src/checks/compliance.rs (`cargo lab compliance`).
exec "$(dirname "$0")/lab" compliance "$@"
