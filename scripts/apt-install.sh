#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet, and does nothing when all are.
# A name may carry an architecture (`libstd-rust-web-dev:arm64`), which is then added to dpkg
# first. Runs apt as root directly, or through sudo for another user. apt's output is kept
# in a log and printed only when a step fails.
#
# Usage: scripts/apt-install.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    if [[ $status != ii* ]]; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

if ((EUID == 0)); then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "apt-install: packages ${missing[*]} are missing and sudo is not installed." \
        "Install them as root or run this script as root" >&2
    exit 1
fi

native_arch=$(dpkg --print-architecture)
for package in "${missing[@]}"; do
    if [[ $package != *:* ]]; then
        continue
    fi
    arch=${package##*:}
    if [[ $arch == "$native_arch" || $arch == all ]]; then
        continue
    fi
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        echo "apt-install: adding dpkg architecture $arch" >&2
        "${as_root[@]}" dpkg --add-architecture "$arch"
    fi
done

log=$(mktemp -t apt-install.XXXXXX.log)
trap 'rm -f "$log"' EXIT
echo "apt-install: installing ${missing[*]}" >&2
if ! "${as_root[@]}" apt-get update -qq >"$log" 2>&1; then
    cat "$log" >&2
    echo "apt-install: apt-get update failed. Check the apt sources in /etc/apt" >&2
    exit 1
fi
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "apt-install: apt-get install ${missing[*]} failed" >&2
    exit 1
fi
