#!/usr/bin/env bash
# Install what the host tests need beyond the Rust toolchain (the lab scripts install their own).
set -euo pipefail
. "$(dirname "$0")/lab/common.sh"
# aarch64 cross compiler and headers: the uapi layout test checks the board's ABI with them;
# g++ builds libFuzzer for the fuzz crate; the report's plots write their text in DejaVu Sans.
need_pkgs gcc g++ gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross python3 strace \
    fonts-dejavu-core
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
