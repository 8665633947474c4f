#!/usr/bin/env bash
# C reproducers reproduce: for each corpus program, `m2mfuzz repro --c`, compile it statically on
# the host, run it in a fresh lab boot (its # switch: on the kernel command line) under
# `m2mfuzz watch` (a threaded program that expects a finding repeats for up to 60 s, until a
# finding or a kernel report), and require the findings its # expect: lines name: exactly those, or with
# --at-least those and maybe more (a shrunk stress finding names the one finding it was shrunk
# for; lockdep may report the same bad lock use as another class too). See `ci/lab/lab repro --help`
# (lab/src/checks/repro.rs).
#   repro-check.sh [--out DIR] [--at-least] [PROGRAM…]   (default: corpora/*/*.m2m)
exec "$(dirname "$0")/lab" repro "$@"
