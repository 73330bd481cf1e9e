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
source "$(dirname "$0")/lib/apt-install.sh"
apt_install promtool prometheus
echo "promtool: $(command -v promtool)"
