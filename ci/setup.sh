#!/usr/bin/env bash
# Install what the host tests need beyond the Rust toolchain (the lab runner installs its own).
# aarch64 cross compiler and headers: the uapi layout test checks the board's ABI with them;
# g++ builds libFuzzer for the fuzz crate; the report's plots write their text in DejaVu Sans.
set -euo pipefail
pkgs=(gcc g++ gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross strace
      fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "setup: need root to apt-get install ${missing[*]}" >&2; exit 1; }
    echo "setup: installing ${missing[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
