#!/usr/bin/env bash
# The boards' binaries (RK3566/RK3588, aarch64), built on an x86_64 Debian 12 machine: a static
# aarch64 m2mfuzz from Debian's Rust (rustc-web, cargo-web, libstd-rust-web-dev:arm64) and the
# cross gcc, all installed here when missing (as root). rustup's toolchain stays the default;
# only this build uses Debian's /usr/bin/cargo and /usr/bin/rustc (lab/src/guest_bins.rs: cargo).
#   ci/board-build.sh [--fuzz] [--test]
#     --fuzz  also the cargo fuzz targets (fuzz/, one per driver): static aarch64 ELFs built as
#             the lab builds its own (lab/src/fuzz_build.rs), with libFuzzer compiled by the
#             cross g++ (installed when missing)
#     --test  also build tests/uapi_layout.rs for aarch64 and run it under qemu-aarch64-static,
#             against the arm64 lab kernel's uapi headers when built (LAB_ARCH=arm64
#             ci/lab/build-kernel.sh), else the cross toolchain's; with --fuzz, also run m2m_vim2m
#             under qemu-aarch64-static: with no V4L2 node it must refuse to start (exit 2), and
#             on a stand-in node (/dev/null, every ioctl fails) libFuzzer must run its inputs
# Output (paths printed on stdout): target/aarch64-unknown-linux-gnu/release/m2mfuzz, with --fuzz
# fuzz/target/aarch64-unknown-linux-gnu/release/m2m_*. On a board itself, `cargo build
# --release` (and `cargo fuzz build -s none`) as usual. See `ci/lab/lab board-build --help`.
exec "$(dirname "$0")/lab/lab" board-build "$@"
