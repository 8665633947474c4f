#!/usr/bin/env bash
# The boards' binary (RK3566/RK3588, aarch64), built on an x86_64 Debian 12 machine: a static
# aarch64 m2mfuzz from Debian's Rust (rustc-web, cargo-web, libstd-rust-web-dev:arm64) and the
# cross gcc, all installed here when missing (as root). rustup's toolchain stays the default;
# only this build uses Debian's /usr/bin/cargo and /usr/bin/rustc (ci/lab/common.sh: target_cargo).
#   ci/board-build.sh [--test]
#     --test  also build tests/uapi_layout.rs for aarch64 and run it under qemu-aarch64-static,
#             against the arm64 lab kernel's uapi headers when built (LAB_ARCH=arm64
#             ci/lab/build-kernel.sh), else the cross toolchain's
# Output: target/aarch64-unknown-linux-gnu/release/m2mfuzz. On a board itself, `cargo build --release`.
set -euo pipefail
. "$(dirname "$0")/lab/common.sh"
target=aarch64-unknown-linux-gnu
test=0
for arg in "$@"; do
    case "$arg" in
        --test) test=1 ;;
        *) die "unknown argument $arg (known: --test)" ;;
    esac
done
[ "$(uname -m)" != aarch64 ] || die "this machine is aarch64: build natively with cargo build --release"
cd "$REPO_DIR"
start=$(date +%s)
log "building m2mfuzz for $target (static, release)"
target_cargo "$target" build --release --locked --bin m2mfuzz >&2
bin="target/$target/release/m2mfuzz"
file -L "$bin" 2>/dev/null | grep -q "ARM aarch64.*statically linked" \
    || die "$bin is not a static aarch64 executable: $(file -L "$bin" 2>&1)"
# The binary must start on an aarch64 CPU, not only link.
qemu-aarch64-static "$bin" --version >/dev/null || die "$bin does not run under qemu-aarch64-static"
log "built $bin in $(( $(date +%s) - start )) s"
if [ $test = 1 ]; then
    log "uapi layout test for $target under qemu-aarch64-static"
    # --release: reuses the release build above; the test only compiles itself.
    target_cargo "$target" test --release --locked --test uapi_layout -- --nocapture >&2
fi
echo "$REPO_DIR/$bin"
