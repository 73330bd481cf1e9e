#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are on this machine,
# for the tests that start a real, throwaway server (tests/fixtures/postgres.py).
# Quick and silent when they are already there; otherwise installs Debian's
# `postgresql` package. Prints the folder that holds the binaries.
set -euo pipefail

find_bin_dir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$newest" && -x "$newest/initdb" && -x "$newest/pg_ctl" ]]; then
        echo "$newest"
        return 0
    fi
    return 1
}

if bin_dir=$(find_bin_dir); then
    echo "PostgreSQL binaries: $bin_dir"
    exit 0
fi

source "$(dirname "$0")/lib/apt-install.sh"
apt_install "PostgreSQL (initdb, pg_ctl)" postgresql

if ! bin_dir=$(find_bin_dir); then
    echo "apt-get installed postgresql but initdb/pg_ctl were not found under /usr/lib/postgresql" >&2
    exit 1
fi
echo "PostgreSQL binaries: $bin_dir"
