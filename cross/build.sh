#!/usr/bin/env bash
# Builds a release binary of caretaker for an ARM board on a Debian 12 (bookworm) x86_64 host,
# with Debian's packaged Rust (rustc-web, cargo-web) and GNU cross compilers, no Docker needed.
# Installs the packages it needs when they are missing (apt, as root or through sudo), including
# qemu-user to run the result.
#
# Usage: cross/build.sh TRIPLE [CARGO_BUILD_ARGS...]
#   TRIPLE is aarch64-unknown-linux-gnu (64-bit Raspberry Pi OS) or
#   armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS).
# Output: target/TRIPLE/release/caretaker, built with the board profile (optimized for size)
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

# Bookworm's qemu-user 7.2 was seen to hang at the first pthread_create on newer kernels (6.18),
# so on bookworm qemu-user comes from bookworm-backports (10.0.2 at the time of writing), the
# version that CI's smoke test runs with.
# NOTE: that hang was observed with a mismatched guest glibc as well (see the qemu command
# below), so 7.2 with a matched glibc is untested.
qemu_version=$(dpkg-query -W -f='${Version}' qemu-user)
qemu_version=${qemu_version#*:}
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [[ $codename == bookworm && ${qemu_version%%.*} -lt 8 ]]; then
    backports=/etc/apt/sources.list.d/bookworm-backports.sources
    if ((EUID == 0)); then
        as_root=()
    else
        as_root=(sudo)
    fi
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "cross/build.sh: adding the bookworm-backports apt source in $backports" >&2
        printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
            'Suites: bookworm-backports' 'Components: main' \
            'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
            "${as_root[@]}" tee "$backports" >/dev/null
    fi
    echo "cross/build.sh: qemu-user $qemu_version is older than 8;" \
        "installing qemu-user from bookworm-backports" >&2
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-user
fi

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
# The board profile of Cargo.toml is the release profile optimized for size, and its binary
# still goes to target/TRIPLE/release, where packaging/build-deb.sh and CI take it.
"$debian_cargo" build --profile board --locked --target "$triple" --bin caretaker "$@"
elapsed=$(($(date +%s) - start))

output=target/$triple/release/caretaker
install -D -m 0755 "$CARGO_TARGET_DIR/$triple/board/caretaker" "$output"
echo "cross/build.sh: built $output in ${elapsed}s" >&2
# The cross glibc's ld.so reads the host's /etc/ld.so.cache, which points at the multiarch
# libc6:$deb_arch that libstd-rust-web-dev pulls in. That libc is another build of glibc than
# the loader, and threads then hang at the first pthread_create, so LD_LIBRARY_PATH keeps the
# loader and libc from the same package.
qemu=qemu-${gnu_prefix%%-*}
echo "cross/build.sh: run it with: $qemu -E LD_LIBRARY_PATH=/usr/$gnu_prefix/lib" \
    "-L /usr/$gnu_prefix $output --version" >&2
