#!/usr/bin/env bash
# Installs what the integration tests run beside caretaker, and does nothing when all of it is
# there already:
# - Debian packages: Mosquitto (broker and clients), socat (pty pairs for Modbus RTU), sqlite3,
#   openssl (test certificates), PostgreSQL (initdb, pg_ctl and psql for the central office's
#   tests, which start their own cluster unless CARETAKER_TEST_PG_URL names a server),
#   Chromium and chromedriver (headless browser for the dashboard's tests);
# - a Python virtual environment in target/test-venv with the packages pinned in
#   tests/support/requirements.txt (pymodbus, the independent Modbus device), when that file
#   exists. A venv sidesteps Debian's rule against pip installs into the system Python (PEP 668).
# The tests find that Python through CARETAKER_TEST_PYTHON, which scripts/test.sh exports.
#
# Usage: scripts/install-test-deps.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/apt-install.sh mosquitto mosquitto-clients socat sqlite3 openssl postgresql \
    chromium chromium-driver

requirements=tests/support/requirements.txt
venv=target/test-venv
stamp=$venv/requirements.sha256
if [[ ! -f $requirements ]]; then
    echo "install-test-deps: $requirements does not exist, so no Python packages were installed" >&2
    exit 0
fi

# The stamp records the requirements that the venv was last built from, so an unchanged file
# costs one checksum. A venv whose interpreter no longer starts (its base Python was removed)
# is made anew.
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]] && "$venv/bin/python3" -c '' 2>/dev/null; then
    exit 0
fi

log=$(mktemp -t install-test-deps.XXXXXX.log)
trap 'rm -f "$log"' EXIT

# The python3 first in PATH is tried first: pyenv's, for one, has venv and pip built in.
# Debian's own python3 makes a venv only with python3-venv installed.
make_venv() {
    local python=$1
    rm -rf "$venv"
    command -v "$python" >/dev/null && "$python" -m venv "$venv" >"$log" 2>&1
}
if ! make_venv python3; then
    scripts/apt-install.sh python3 python3-venv
    if ! make_venv /usr/bin/python3; then
        cat "$log" >&2
        echo "install-test-deps: /usr/bin/python3 -m venv $venv failed" >&2
        exit 1
    fi
fi

echo "install-test-deps: installing $requirements into $venv" >&2
if ! "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
    -r "$requirements" >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-test-deps: pip install -r $requirements failed" >&2
    exit 1
fi
echo "$wanted" >"$stamp"
