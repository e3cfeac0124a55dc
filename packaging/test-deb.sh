#!/usr/bin/env bash
# Installs a caretaker .deb into a scratch root and checks what it installed, without touching
# this machine's own root filesystem. The scratch root is an overlay of / whose changes go to a
# temporary folder, mounted in a mount namespace of its own (unshare). It needs root.
#
# Usage: packaging/test-deb.sh target/debian/caretaker_VERSION-1_ARCH.deb
#
# Checks, in order: the package's conffiles and control fields; installation (the maintainer
# scripts create the user `caretaker` and the permission overrides); `systemd-analyze verify` on
# the installed unit; `caretaker check-config /etc/caretaker/gateway.toml` with the installed
# binary under qemu-user; that reinstalling over an edited /etc/caretaker/gateway.toml keeps
# the edit; and that a purge removes /etc/caretaker and /var/lib/caretaker. Inside the overlay
# `systemctl` finds no running systemd, so the service is enabled but not started.
set -euo pipefail

if (($# != 1)) || [[ ! -f $1 ]]; then
    echo "usage: packaging/test-deb.sh PATH.deb" >&2
    exit 2
fi
deb=$(realpath "$1")
if ((EUID != 0)); then
    echo "packaging/test-deb.sh: needs root for unshare and mount" >&2
    exit 1
fi

arch=$(dpkg-deb -f "$deb" Architecture)
# LD_LIBRARY_PATH keeps the guest's libc from the cross glibc of its loader, because the host's
# ld.so.cache points at the multiarch libc6:ARCH, another glibc build on which threads hang.
case $arch in
arm64)
    sysroot=/usr/aarch64-linux-gnu
    qemu=(qemu-aarch64 -E "LD_LIBRARY_PATH=$sysroot/lib" -L "$sysroot")
    ;;
armhf)
    sysroot=/usr/arm-linux-gnueabihf
    qemu=(qemu-arm -E "LD_LIBRARY_PATH=$sysroot/lib" -L "$sysroot")
    ;;
*) qemu=() ;;
esac

echo "== control fields and conffiles of $deb"
dpkg-deb -f "$deb" Package Version Architecture Depends
conffiles=$(dpkg-deb -I "$deb" conffiles)
echo "$conffiles"
for expected in /etc/caretaker/gateway.toml /etc/caretaker/devices/circulation-pump.toml; do
    if ! grep -qx "$expected" <<<"$conffiles"; then
        echo "packaging/test-deb.sh: $expected is not a conffile of $deb" >&2
        exit 1
    fi
done

scratch=$(mktemp -d /tmp/caretaker-deb-test.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch"/{upper,work,root}

# Runs inside the mount namespace: the overlay root, then the checks through chroot.
inside=$(
    cat <<'INSIDE'
set -euo pipefail
root=$SCRATCH/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work" "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
in_root() { chroot "$root" "$@"; }
# Runs a check and names it when it fails.
check() {
    if ! "$@"; then
        echo "packaging/test-deb.sh: check failed: $*" >&2
        exit 1
    fi
}
absent() {
    if in_root test -e "$1"; then
        echo "packaging/test-deb.sh: $1 still exists after the purge" >&2
        exit 1
    fi
}

echo "== install"
# The ARM package's dependencies are amd64 packages here; their presence is not under test.
in_root dpkg --force-depends --force-architecture -i "/deb/$(basename "$DEB")"
in_root dpkg -s caretaker | grep -E '^(Status|Version):'

echo "== files, owners and modes"
in_root stat -c '%A %U:%G %n' /usr/bin/caretaker /etc/caretaker /etc/caretaker/gateway.toml \
    /etc/caretaker/devices/circulation-pump.toml \
    /usr/share/caretaker/models/circulation-pump.json \
    /usr/lib/systemd/system/caretaker.service
check test "$(in_root stat -c '%a %U:%G' /etc/caretaker/gateway.toml)" = "640 root:caretaker"
check test "$(in_root stat -c '%a %U:%G' /etc/caretaker)" = "750 root:caretaker"
in_root id caretaker
check grep -qw dialout <<<"$(in_root id -nG caretaker)"
check in_root test -L /etc/systemd/system/multi-user.target.wants/caretaker.service
check grep -q '^path = "/var/lib/caretaker/caretaker.db"$' "$root/etc/caretaker/gateway.toml"

echo "== systemd-analyze verify"
in_root systemd-analyze verify /usr/lib/systemd/system/caretaker.service

echo "== check-config with the installed binary"
in_root "${QEMU[@]}" /usr/bin/caretaker check-config /etc/caretaker/gateway.toml

echo "== reinstall keeps an edited config"
sed -i 's/^id = "building-7"$/id = "edited-by-operator"/' "$root/etc/caretaker/gateway.toml"
in_root dpkg --force-depends --force-architecture --force-confold -i "/deb/$(basename "$DEB")"
check grep -q '^id = "edited-by-operator"$' "$root/etc/caretaker/gateway.toml"
check test "$(in_root stat -c '%a %U:%G' /etc/caretaker/gateway.toml)" = "640 root:caretaker"

echo "== purge"
in_root mkdir -p /var/lib/caretaker
in_root touch /var/lib/caretaker/caretaker.db
in_root dpkg --force-depends --purge caretaker
absent /etc/caretaker
absent /var/lib/caretaker
if in_root dpkg-statoverride --list /etc/caretaker/gateway.toml; then
    echo "packaging/test-deb.sh: the permission override outlived the purge" >&2
    exit 1
fi
echo "packaging/test-deb.sh: all checks passed"
INSIDE
)

mkdir -p "$scratch/upper/deb"
cp "$deb" "$scratch/upper/deb/"
SCRATCH=$scratch DEB=$deb QEMU="${qemu[*]}" unshare --mount --propagation private \
    bash -c "QEMU=(\$QEMU); $inside"
