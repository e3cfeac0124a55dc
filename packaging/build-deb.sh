#!/usr/bin/env bash
# Builds the caretaker .deb for one architecture with cargo-deb, from the release binary that
# cross/build.sh leaves in target/TRIPLE/release/caretaker (built first when it is missing).
# Installs cargo-deb with `cargo install` when it is missing.
#
# Usage: packaging/build-deb.sh TRIPLE
#   TRIPLE is aarch64-unknown-linux-gnu (arm64) or armv7-unknown-linux-gnueabihf (armhf).
# Output: target/debian/caretaker_VERSION-1_ARCH.deb
#
# The package's /etc/caretaker/gateway.toml is firmware-config/gateway.toml with the paths of a
# packaged install: the database in /var/lib/caretaker and the shipped models in
# /usr/share/caretaker/models. This script writes it to target/packaging/gateway.toml, where
# `[package.metadata.deb]` in Cargo.toml takes it from.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if (($# != 1)); then
    echo "usage: packaging/build-deb.sh TRIPLE" >&2
    echo "TRIPLE: aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf" >&2
    exit 2
fi
triple=$1
case "$triple" in
aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf) ;;
*)
    echo "packaging/build-deb.sh: unsupported target $triple." \
        "Use aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf" >&2
    exit 2
    ;;
esac

# The rustup toolchain's cargo comes first in PATH, as in .ci/run, ahead of the /usr/bin/cargo
# that Debian's cargo-web installs for the cross build.
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if [[ -d $cargo_bin ]]; then
    PATH=$cargo_bin:$PATH
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "packaging/build-deb.sh: installing cargo-deb" >&2
    cargo install --locked --quiet cargo-deb --version 3.8.0
fi

binary=target/$triple/release/caretaker
if [[ ! -x $binary ]]; then
    cross/build.sh "$triple"
fi

staged=target/packaging/gateway.toml
mkdir -p "$(dirname "$staged")"
python3 - firmware-config/gateway.toml "$staged" <<'PYTHON'
import sys

source, staged = sys.argv[1:3]
with open(source) as f:
    text = f.read()
# Each replacement must match, so that a changed example config fails the build here instead of
# shipping a path that points nowhere on the board.
replacements = [
    ("#   caretaker check-config firmware-config/gateway.toml",
     "#   caretaker check-config /etc/caretaker/gateway.toml"),
    ('path = "caretaker.db"', 'path = "/var/lib/caretaker/caretaker.db"'),
    ('path = "../models/', 'path = "/usr/share/caretaker/models/'),
]
for old, new in replacements:
    count = text.count(old)
    if count == 0:
        sys.exit(f"packaging/build-deb.sh: {old!r} not found in {source}; update the "
                 "replacements in packaging/build-deb.sh")
    text = text.replace(old, new)
with open(staged, "w") as f:
    f.write(text)
PYTHON

# The release profile strips symbols already, and the host's strip cannot read ARM binaries.
cargo deb --no-build --no-strip --target "$triple" --output target/debian/
