#!/usr/bin/env bash
# The main job without hardware: `m2mfuzz stress` (lab-smoke, 10 minutes) in the lab, its report
# (lab-out/main/report.md) and the tracefs count check. See `ci/lab/lab main --help`.
#   main.sh [--duration 10m] [--profile stress-profiles/lab-smoke.toml] [--cmdline "ARGS"] [-- STRESS-ARGS…]
# Exit code: 0 clean, 1 findings, 124/125 the guest timed out/died, 2 another error.
exec "$(dirname "$0")/lab" main "$@"
