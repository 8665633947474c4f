#!/usr/bin/env bash
# Build (or reuse) the lab initramfs: busybox, ci/lab/init, and v4l2-compliance with its
# libraries. Project binaries are not in it: the runner passes them through the 9p share.
# Prints the image path on stdout.
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs busybox-static v4l-utils cpio

libs() { ldd "$1" | awk '/=>/ {print $3} /^[ \t]*\/lib/ {print $1}' | grep '^/'; }
files=(/bin/busybox /usr/bin/v4l2-compliance /usr/bin/v4l2-ctl)
for b in /usr/bin/v4l2-compliance /usr/bin/v4l2-ctl; do while read -r l; do files+=("$l"); done < <(libs "$b"); done
key=$( { cat "$LAB_DIR/init" "$0"; for f in "${files[@]}"; do echo "$f"; sha256sum < "$f"; done; } | sha256sum | cut -c1-16)
# Not compressed: under TCG the kernel took 4-5 s to gunzip it, and init waits for that (about 9 MB
# as a plain cpio unpacks in about 0.3 s). Every lockdep shrink step is a boot.
img="$LAB_CACHE/initramfs-$key.cpio"
if [ -f "$img" ]; then echo "$img"; exit 0; fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,etc,proc,sys,dev,tmp,host,lib,lib64}
for f in "${files[@]}"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
done
# Debian's merged /usr: the loader and libraries are looked up under /lib and /lib64.
# The applet links are made here, not by `busybox --install` in the guest (about 400 symlink
# calls at every boot under TCG).
for a in $(/bin/busybox --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
cp "$LAB_DIR/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$img.tmp"
mv "$img.tmp" "$img"
log "initramfs: $img ($(du -h "$img" | cut -f1))"
echo "$img"
