#!/usr/bin/env bash
# Runs caretaker's whole test suite: installs the test peers when they are missing
# (scripts/install-test-deps.sh), then runs the doc tests and the tests of the library, the
# binary and tests/, with cargo-nextest when it is installed and `cargo test` otherwise.
# Benchmarks are left out: they have their own harness, which runs the whole benchmark when it
# is started as a test. `cargo clippy --all-targets` in CI still compiles them.
#
# Usage: scripts/test.sh [FILTER...]
#   Each FILTER is passed to the test runner and selects tests by name; with a filter the doc
#   tests are skipped.
# Environment: when target/test-venv exists, its bin folder goes first in PATH, so that
# `python3` in a test is the venv's Python with pymodbus, and CARETAKER_TEST_PYTHON is set to
# that Python unless it is set already.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/install-test-deps.sh

venv_bin=$repo/target/test-venv/bin
if [[ -x $venv_bin/python3 ]]; then
    export PATH=$venv_bin:$PATH
    export CARETAKER_TEST_PYTHON=${CARETAKER_TEST_PYTHON:-$venv_bin/python3}
fi
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

# nextest does not run doc tests, so `cargo test --doc` runs them in both cases. It goes first
# so that the summary of the whole suite is the last thing printed.
if (($# == 0)); then
    cargo test --doc
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
