#!/usr/bin/env bash
# Runs every benchmark and fails when a figure is worse than its floor in BENCHMARKS.md.
#
# Usage: scripts/bench-floors.sh [--no-run]
#   --no-run  check the JSON files in target/bench/ from earlier runs instead of running the
#             benchmarks
#
# Every `[[bench]]` target of Cargo.toml runs as `cargo bench --bench NAME`, with `--quick`
# for the long ones (ingest_load, detect_cost). Each benchmark writes its figures to
# target/bench/NAME.json as {"figures": {"NAME": VALUE, ...}}. The script merges the `figures`
# of every target/bench/*.json, including those that benchmarks run by other means write (such
# as target/bench/triage.json), and checks them against the fenced `floors` block of
# BENCHMARKS.md, one line per figure:
#   FIGURE >= VALUE   the figure must be at least VALUE (throughput, scores)
#   FIGURE <= VALUE   the figure must be at most VALUE (CPU, memory, disk, latency, losses)
# `#` starts a comment. Exits 1 when a benchmark failed, when two files report the same figure,
# or when a figure misses its floor or is missing, naming the figure, the measured value and
# the floor.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

bench_dir=target/bench
run=1
for arg in "$@"; do
    case $arg in
        --no-run) run=0 ;;
        *)
            echo "usage: scripts/bench-floors.sh [--no-run]" >&2
            exit 2
            ;;
    esac
done

# Arguments that keep a benchmark to the size CI can afford.
quick_args() {
    case $1 in
        ingest_load | detect_cost | central_load) echo "--quick" ;;
        *) echo "" ;;
    esac
}

failed_benches=()
run_started=$(date +%s)
if ((run)); then
    # The ingest benchmark starts its own Mosquitto and mosquitto_sub.
    scripts/apt-install.sh mosquitto mosquitto-clients
    mapfile -t benches < <(python3 - <<'PYTHON'
import tomllib
with open("Cargo.toml", "rb") as f:
    manifest = tomllib.load(f)
for bench in manifest.get("bench", []):
    print(bench["name"])
PYTHON
    )
    for bench in "${benches[@]}"; do
        read -r -a args <<<"$(quick_args "$bench")"
        echo "==> cargo bench --locked --bench $bench -- ${args[*]}"
        if ! cargo bench --locked --bench "$bench" -- "${args[@]}"; then
            echo "bench floors: the benchmark $bench failed" >&2
            failed_benches+=("$bench")
        fi
    done
fi

python3 - "$bench_dir" BENCHMARKS.md "$run" "$run_started" "${failed_benches[@]}" <<'PYTHON'
import glob
import json
import os
import re
import sys
import time

bench_dir, floors_path, ran, run_started = sys.argv[1:5]
failed_benches = sys.argv[5:]
ran = ran == "1"
run_started = float(run_started)

failures = [f"the benchmark {name} failed; its figures may be missing or stale"
            for name in failed_benches]
figures = {}
source_of = {}
paths = sorted(glob.glob(os.path.join(bench_dir, "*.json")))
if not paths:
    print(f"bench floors: no JSON file in {bench_dir}; run the benchmarks first", file=sys.stderr)
    sys.exit(1)
for path in paths:
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as err:
        failures.append(f"{path}: cannot read it as JSON ({err})")
        continue
    found = report.get("figures") if isinstance(report, dict) else None
    if not isinstance(found, dict):
        print(f"note   {path} has no `figures` object; skipped")
        continue
    written = os.path.getmtime(path)
    stale = " (written before this run)" if ran and written < run_started else ""
    print(f"read   {path}: {len(found)} figures, written "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(written))} UTC{stale}")
    for name, value in found.items():
        if name in figures:
            failures.append(f"{name} is reported by both {source_of[name]} and {path}; "
                            "rename it in one of the benchmarks")
            continue
        figures[name] = value
        source_of[name] = path

with open(floors_path) as f:
    text = f.read()
block = re.search(r"^```floors\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
if block is None:
    print(f"bench floors: no ```floors block in {floors_path}", file=sys.stderr)
    sys.exit(1)

line_re = re.compile(r"^(\S+)\s*(>=|<=)\s*([-+0-9.eE]+)$")
checked = 0
for raw in block.group(1).splitlines():
    line = raw.split("#", 1)[0].strip()
    if not line:
        continue
    match = line_re.match(line)
    if match is None:
        failures.append(f"invalid line {raw.strip()!r} in the floors block of {floors_path}; "
                        "expected FIGURE >= VALUE or FIGURE <= VALUE")
        continue
    name, op, floor = match.group(1), match.group(2), float(match.group(3))
    checked += 1
    if name not in figures:
        failures.append(f"{name}: not measured (in no JSON file of {bench_dir}), floor {op} "
                        f"{floor:g}")
        continue
    value = figures[name]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        failures.append(f"{name} = {value!r} in {source_of[name]} is not a number")
    elif op == ">=" and value < floor:
        failures.append(f"{name} = {value:.6g} is below its floor of {floor:g}")
    elif op == "<=" and value > floor:
        failures.append(f"{name} = {value:.6g} is above its ceiling of {floor:g}")
    else:
        print(f"ok     {name} = {value:.6g} ({op} {floor:g})")

for failure in failures:
    print(f"FAILED {failure}", file=sys.stderr)
if failures:
    print(f"bench floors: {len(failures)} problem(s) with the {checked} floors in {floors_path}",
          file=sys.stderr)
    sys.exit(1)
print(f"bench floors: all {checked} figures meet the floors in {floors_path}")
PYTHON
