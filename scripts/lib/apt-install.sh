# Sourced by scripts/ensure-*.sh: install one of Debian's packages, as root or through
# sudo, without its recommends. Usage: apt_install WHAT PACKAGE
# (WHAT names the tool in the messages when it cannot be installed; output to stderr).

apt_install() {
    local what=$1 package=$2
    local as_root
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "$what is not installed and this user cannot install it (not root, no sudo)." >&2
        echo "Install Debian's '$package' package, or put $what on PATH." >&2
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$what is not installed and apt-get is missing; install $what" >&2
        echo "with this system's package manager." >&2
        return 1
    fi
    echo "installing Debian's '$package' package for $what..." >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$package" >&2
}
