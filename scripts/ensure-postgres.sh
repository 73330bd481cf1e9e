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

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "PostgreSQL is not installed and this user cannot install it (not root, no sudo)." >&2
    echo "Install Debian's 'postgresql' package, or put initdb and pg_ctl on PATH." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL is not installed and apt-get is missing; install PostgreSQL's server" >&2
    echo "binaries (initdb, pg_ctl) with this system's package manager." >&2
    exit 1
fi

echo "installing PostgreSQL with apt-get..." >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if ! bin_dir=$(find_bin_dir); then
    echo "apt-get installed postgresql but initdb/pg_ctl were not found under /usr/lib/postgresql" >&2
    exit 1
fi
echo "PostgreSQL binaries: $bin_dir"
