#!/usr/bin/env bash
# Run a cargo fuzz target in the lab: built statically without a sanitizer, run in a fresh boot
# for SECONDS against the lab's drivers, with kernel coverage guiding it (KCOV=on), only counted
# (observe) or not collected (off). Results in OUT/share/out: fuzz.log (libFuzzer's output),
# edges ("EXECS EDGES"), corpus/, findings/ (one directory per finding signature), artifacts/
# (libFuzzer's own). Prints one summary line. See `ci/lab/lab fuzz --help` (lab/src/checks/fuzz.rs).
#   fuzz.sh [--out DIR] [--target m2m_vim2m] [--seconds 300] [--kcov on|observe|off]
#           [--mutator programs|bytes] [--cmdline "SWITCHES"] [--seeds DIR] [-- LIBFUZZER-ARGS…]
exec "$(dirname "$0")/lab" fuzz "$@"
