#!/usr/bin/env bash
# Shrink a program whose finding the kernel gives once per boot (lockdep): every candidate runs
# in a fresh lab boot with the program's # switch: on the kernel command line.
#   shrink.sh PROGRAM [m2mfuzz shrink options…]   (the shrunk program goes to stdout)
set -euo pipefail
. "$(dirname "$0")/common.sh"
prog=${1:?usage: shrink.sh PROGRAM [--finding "kind: title"] [-o OUT]}; shift
out="$REPO_DIR/lab-out/shrink"
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
"$LAB_DIR/build-kernel.sh" >/dev/null
"$LAB_DIR/mkinitramfs.sh" >/dev/null
cd "$REPO_DIR"
cargo build --release --locked --bin m2mfuzz >&2
target/release/m2mfuzz shrink --lab "$out/share" "$prog" "$@"
