#!/usr/bin/env bash
# Make sure a headless Chromium is on this machine, for the test that opens the HTML
# validation report in a real browser (tests/validate/test_report_browser.py): the
# plots must be drawn as a browser parses the page, not only as Python writes it.
# Quick and silent when it is there; otherwise installs Debian's `chromium` package
# without its recommends. Prints its path.
set -euo pipefail

found=$(command -v chromium || command -v chromium-browser || true)
if [[ -n $found ]]; then
    echo "chromium: $found"
    exit 0
fi
source "$(dirname "$0")/lib/apt-install.sh"
apt_install "chromium" chromium
echo "chromium: $(command -v chromium)"
