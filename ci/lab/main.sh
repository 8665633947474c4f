#!/usr/bin/env bash
# The main job without hardware: boot the lab kernel and run `m2mfuzz stress` with the lab-smoke
# profile (vim2m + visl, 10 minutes), then write the report (lab-out/main/report.md) and check its
# dma_fence/vb2 counts against an independent tracefs instance (lab-out/main/trace-check.md).
#   main.sh [--duration 10m] [--profile stress-profiles/lab-smoke.toml] [--cmdline "ARGS"] [-- STRESS-ARGS…]
# Exit code: 0 clean, 1 findings (see the report and lab-out/main/share/out/run/findings/).
set -euo pipefail
. "$(dirname "$0")/common.sh"
profile="stress-profiles/lab-smoke.toml" cmdline="" duration=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown argument $1" ;;
    esac
done
args=("$@")
[ -z "$duration" ] || args=(--duration "$duration" "${args[@]}")
exec "$LAB_DIR/stress.sh" --out "$REPO_DIR/lab-out/main" --profile "$profile" --cmdline "$cmdline" --check-trace \
    -- "${args[@]}"
