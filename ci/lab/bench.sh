#!/usr/bin/env bash
# The benchmark: every figure m2mfuzz is judged by, measured in the lab (fresh boots, TCG) and
# printed as one Markdown report plus JSON (OUT/bench.{md,json}). A benchmark, not a test: it
# asserts nothing (exit 1 when a find boot timed out or died: its figures are not times).
#   overhead  ops/s of m2mfuzz executing a program vs a C loop doing the same ioctls, same boot
#             (target ratio >= 0.90; whole runs too)
#   find      time to first finding per fault switch, median and max over SEEDS (target <= 60 s)
#   shrink    a stress finding per fault switch shrunk (reboots included) vs the hand-written
#             program (target: equal length, <= 3 min)
#   scaling   m2m frames/s with 1, 2, 4, 8 workers, vim2m 1 ms jobs (target: 4 >= 1.6 x 1)
#   coverage  kernel edges in SECONDS of m2m_vim2m with KCOV guiding vs only counted
#   duty      stress duty cycle: CAPTURE vb2_buf_done/s during stress over `m2mfuzz limit`'s
#             jobs/s, same boot (target >= 0.5)
# See `ci/lab/lab bench --help` (lab/src/checks/bench.rs).
#   bench.sh [--out DIR] [--parts "overhead find shrink scaling coverage duty"] [--seeds "1 2 3 4 5"]
#            [--budget S] [--faults "NAME…"] [--coverage-seconds S]
exec "$(dirname "$0")/lab" bench "$@"
