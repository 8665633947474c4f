#!/usr/bin/env bash
# Build (or reuse) the lab initramfs for LAB_ARCH; prints its path. See `ci/lab/lab initramfs --help`.
exec "$(dirname "$0")/lab" initramfs "$@"
