#!/usr/bin/env bash
# Lose nothing when the kernel dies: boot the lab running a long stress run and kill the guest
# mid-run (QEMU killed, as a hard hang or power loss would); boot again and run
# `m2mfuzz stress --recover` on the run directory. It must name, per worker, the program running
# when the guest died: the same program as that worker's last marker in the dead boot's console.
# Then the wedge: the stress check (`stress.sh`) with `videobuf2_common.rf_fault=128` (a release
# fence put twice) on the kernel command line, whose refcount underflow wedges the kernel so the
# run stores nothing itself; the guest must time out or die, and the stress check must by itself
# recover a stored splat finding "refcount bug in <caller>" from the console, attributed to the
# programs running then. See `ci/lab/lab recover --help` (lab/src/checks/recover.rs).
#   recover-check.sh [--out DIR] [--kill-after SECONDS] [--wedge-limit SECONDS]
exec "$(dirname "$0")/lab" recover "$@"
