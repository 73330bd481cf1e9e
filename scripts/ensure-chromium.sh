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
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "chromium is not installed and this user cannot install it (not root, no sudo)." >&2
    echo "Install Debian's 'chromium' package, or put chromium on PATH." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed and apt-get is missing; install Chromium" >&2
    echo "with this system's package manager." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >&2
echo "chromium: $(command -v chromium)"
