#!/usr/bin/env bash
# The board's way to shrink a lockdep finding (one report per boot), checked in the lab through
# shrink.sh (`shrink --state`, then `--resume` in a fresh boot whenever it exits 3): a fault-corpus
# program padded with unrelated ops on a second context must come back no longer than the
# hand-written program, must have needed more than one boot, and must replay as written.
# See `ci/lab/lab shrink-resume --help` (lab/src/checks/shrink_resume.rs).
#   shrink-resume-check.sh [--out DIR] [PROGRAM]
exec "$(dirname "$0")/lab" shrink-resume "$@"
