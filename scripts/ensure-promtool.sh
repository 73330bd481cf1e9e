#!/usr/bin/env bash
# Make sure Prometheus's promtool is on this machine, for the tests that check the
# exported rule file and the fleet endpoint with the real tool (tests/observe).
# Quick and silent when it is there; otherwise installs Debian's `prometheus`
# package without its recommends (the service is not started). Prints its path.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "promtool: $(command -v promtool)"
    exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "promtool is not installed and this user cannot install it (not root, no sudo)." >&2
    echo "Install Debian's 'prometheus' package, or put promtool on PATH." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is not installed and apt-get is missing; install Prometheus's promtool" >&2
    echo "with this system's package manager." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2
echo "promtool: $(command -v promtool)"
