#!/usr/bin/env bash
# Boot the lab kernel (LAB_ARCH: x86_64, default, or arm64) under QEMU and run a job script in the guest.
#   run.sh [--out DIR] [--timeout SECONDS] [--cmdline "ARGS"] [--share DIR] [--kernel IMAGE] [--follow] JOB.sh
# Exit code: the job's; 124 on a time-out; 125 when the guest died. See `ci/lab/lab boot --help`.
exec "$(dirname "$0")/lab" boot "$@"
