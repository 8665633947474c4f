# Shared settings for the lab scripts; sourced, not run.
# The cache outlives the checkout so CI on the same machine reuses kernels and initramfs images.
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=${M2MFUZZ_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/m2mfuzz-lab}
mkdir -p "$LAB_CACHE"

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

# Install Debian packages that are missing; a no-op when all are present.
need_pkgs() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then die "need root to apt-get install ${missing[*]}"; fi
    apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# cargo-fuzz for the fuzz targets (installed into ~/.cargo/bin once).
need_cargo_fuzz() {
    command -v cargo-fuzz >/dev/null && return 0
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked >&2 || die "cargo install cargo-fuzz failed"
}

# Build a fuzz target as a static binary the guest can run: DIR/bin/TARGET.
build_fuzz_target() {
    local target=$1 dest=$2
    need_cargo_fuzz
    mkdir -p "$dest/bin"
    log "building fuzz target $target (static, no sanitizer)"
    (cd "$REPO_DIR" && RUSTFLAGS="-C target-feature=+crt-static" \
        cargo fuzz build -s none --target x86_64-unknown-linux-gnu "$target" >&2)
    cp "$REPO_DIR/fuzz/target/x86_64-unknown-linux-gnu/release/$target" "$dest/bin/"
}
