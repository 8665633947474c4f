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
