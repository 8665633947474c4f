#!/usr/bin/env bash
# All tests: formatting and lints, host unit and property tests, then the device tests and the
# v4l2-compliance peer suite inside the QEMU lab; then the boards' architecture, aarch64: the
# static binary and fuzz targets, the layout test and a fuzz target under qemu-user, device
# tests and corpus replay in the arm64 lab. Installs what it needs; builds are cached.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
# Cheap checks first, so a formatting slip fails in seconds, not after a kernel build.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz crate is its own workspace (cargo fuzz builds it with its own flags).
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --locked -- -D warnings
# The lab kernel build also installs the 6.12 uapi headers the layout test compares against.
ci/lab/build-kernel.sh >/dev/null
# The patches must keep building with the release fences configured out.
ci/lab/build-kernel.sh --fences=n >/dev/null
cargo test --workspace --locked
ci/lab/run-tests.sh
ci/lab/compliance.sh
ci/lab/faults.sh
# The switch only two threads on one context find (vim2m.race_mode): its ground truth in C, a
# single-threaded loop never shows it, a two-thread loop does (faults.sh and stress-faults.sh
# check m2mfuzz finds it).
ci/lab/race-check.sh
ci/lab/replay.sh corpora
ci/lab/repro-check.sh
ci/lab/recover-check.sh
ci/lab/fuzz-check.sh
ci/lab/shrink-resume-check.sh
ci/lab/stress-faults.sh --budget 180 --seeds 1
# A driver that lies (ci/lab/README.md, evil-driver switches) costs m2mfuzz a finding, not a crash.
ci/lab/stress-faults.sh --budget 120 --seeds 1 --out lab-out/stress-evil corpora/faults/evil/*.m2m
# aarch64 (the boards): the arm64 kernel first, as it installs the headers the layout test reads.
LAB_ARCH=arm64 ci/lab/build-kernel.sh >/dev/null
ci/board-build.sh --fuzz --test >/dev/null
LAB_ARCH=arm64 ci/lab/run-tests.sh
LAB_ARCH=arm64 ci/lab/replay.sh corpora
