#!/usr/bin/env bash
# Shrink a program or a stress finding directory in the lab the way a board does: `m2mfuzz shrink
# --state` in one boot, then `m2mfuzz shrink --resume` in a fresh boot each time it exits 3 (a
# lockdep report switched lockdep off, so the next candidate needs a new boot), until it ends.
# The program's `# switch:` (or the finding's switches) are set at run time in each boot.
# Writes OUT/shrunk.m2m (OUT/shrunk.m2m.N.m2m when the interleaving is kept) and OUT/result.json
# (ops before/after, boots, candidates, runs, wall seconds incl. boots); prints the result line.
# --each-boot: shrink on the host, each candidate in a fresh boot. See `ci/lab/lab shrink --help`
# (lab/src/checks/shrink.rs).
#   shrink.sh [--out DIR] [--max-boots N] [--each-boot] INPUT [m2mfuzz shrink options, e.g. --finding "kind: title"]
exec "$(dirname "$0")/lab" shrink "$@"
