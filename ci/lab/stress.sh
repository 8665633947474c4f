#!/usr/bin/env bash
# `m2mfuzz stress` in the lab and its report on the host. See `ci/lab/lab stress --help`.
#   stress.sh [--out DIR] [--profile FILE] [--cmdline "ARGS"] [--timeout S] [--check-trace] [-- STRESS-ARGS…]
# Exit code: m2mfuzz's (0 clean, 1 findings), 124 the guest timed out, 125 it died, 2 another error.
exec "$(dirname "$0")/lab" stress "$@"
