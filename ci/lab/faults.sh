#!/usr/bin/env bash
# Ground truth for the oracles: run each corpora/faults/*.m2m in a fresh lab boot with the kernel
# command line from its `# switch:` header, and check the symptom its `# symptom:` header names:
#   hang        a `wait` on a published vb2 fence timed out and the fence is still unsignalled
#   leak        the tracefs ledger has a vb2 fence emitted (published) but never signalled
#   splat TEXT  the console log contains TEXT
#   stale       a fence said signalled (the stub) and a later `check` found the canary
#   early       a vb2 fence said signalled and a later `check` found the canary
#   unfreed     the tracefs ledger has a vb2 fence emitted (published) but never destroyed
# These checks are independent of m2mfuzz's oracles; the oracles' findings (JSON lines of
# `m2mfuzz run --json`) must in turn equal the program's `# expect:` lines exactly.
# Then run every program in one boot with no switch (the control), where no symptom and no
# finding may appear. Lockdep reports once per boot, hence a boot per program.
#   faults.sh [--out DIR] [--update-docs] [PROGRAM…]
# --update-docs writes the switch → finding table of this run into README.md and ci/lab/README.md.
# The check is lab/src/checks/faults.rs (`cargo lab faults`).
exec "$(dirname "$0")/lab" faults "$@"
