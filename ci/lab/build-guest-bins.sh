#!/usr/bin/env bash
# Build the static binaries the guest runs into DIR/bin. See `ci/lab/lab guest-bins --help`.
#   build-guest-bins.sh DIR
exec "$(dirname "$0")/lab" guest-bins "$@"
