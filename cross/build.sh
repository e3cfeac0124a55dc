#!/usr/bin/env bash
# Builds a release binary of caretaker for an ARM board on a Debian 12 (bookworm) x86_64 host,
# with Debian's packaged Rust (rustc-web, cargo-web) and GNU cross compilers, no Docker needed.
# Installs the packages it needs when they are missing (apt, as root or through sudo), including
# qemu-user to run the result.
#
# Usage: cross/build.sh TRIPLE [CARGO_BUILD_ARGS...]
#   TRIPLE is aarch64-unknown-linux-gnu (64-bit Raspberry Pi OS) or
#   armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS).
# Output: target/TRIPLE/release/caretaker
#
# Debian's rustc-web 1.96 from bookworm-security installs /usr/bin/rustc and /usr/bin/cargo.
# Those are used for this build only, through absolute paths, so a rustup toolchain earlier in
# PATH stays the one for host builds. The build has its own target dir, target/cross, because
# the host builds use another rustc version in target/ and would otherwise wait on its lock.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if (($# < 1)); then
    echo "usage: cross/build.sh TRIPLE [CARGO_BUILD_ARGS...]" >&2
    echo "TRIPLE: aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf" >&2
    exit 2
fi
triple=$1
shift

case "$triple" in
aarch64-unknown-linux-gnu)
    deb_arch=arm64
    gnu_prefix=aarch64-linux-gnu
    ;;
armv7-unknown-linux-gnueabihf)
    deb_arch=armhf
    gnu_prefix=arm-linux-gnueabihf
    ;;
*)
    echo "cross/build.sh: unsupported target $triple." \
        "Use aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf" >&2
    exit 2
    ;;
esac

scripts/apt-install.sh \
    rustc-web cargo-web "libstd-rust-web-dev:$deb_arch" \
    "gcc-$gnu_prefix" "libc6-dev-$deb_arch-cross" qemu-user

debian_rustc=/usr/bin/rustc
debian_cargo=/usr/bin/cargo
if [[ ! -d /usr/lib/rustlib/$triple/lib ]]; then
    echo "cross/build.sh: Debian's rustc has no standard library for $triple in" \
        "/usr/lib/rustlib. Reinstall libstd-rust-web-dev:$deb_arch" >&2
    exit 1
fi

# Cargo and the cc crate read these per-target variables: the linker for Rust code, and the C
# compiler and archiver for bundled C (SQLite in rusqlite, ring's C and assembly).
triple_upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
triple_lower=${triple//-/_}
export "CARGO_TARGET_${triple_upper}_LINKER=$gnu_prefix-gcc"
export "CC_${triple_lower}=$gnu_prefix-gcc"
export "AR_${triple_lower}=$gnu_prefix-ar"
export RUSTC=$debian_rustc
export CARGO_TARGET_DIR=$repo/target/cross

echo "cross/build.sh: building caretaker for $triple with $("$debian_rustc" --version)" >&2
start=$(date +%s)
"$debian_cargo" build --release --locked --target "$triple" --bin caretaker "$@"
elapsed=$(($(date +%s) - start))

output=target/$triple/release/caretaker
install -D -m 0755 "$CARGO_TARGET_DIR/$triple/release/caretaker" "$output"
echo "cross/build.sh: built $output in ${elapsed}s" >&2
echo "cross/build.sh: run it with: qemu-${gnu_prefix%%-*} -L /usr/$gnu_prefix $output --version" >&2
