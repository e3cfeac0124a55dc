#!/usr/bin/env bash
# Runs the quick ingest load benchmark and fails when a figure is worse than its floor in
# BENCHMARKS.md.
#
# Usage: scripts/bench-floors.sh [--no-run]
#   --no-run  check target/bench/ingest_load.json from an earlier run instead of running the
#             benchmark
#
# The floors are the fenced `floors` block of BENCHMARKS.md, one per line:
#   FIGURE >= VALUE   the figure must be at least VALUE (throughput)
#   FIGURE <= VALUE   the figure must be at most VALUE (CPU, memory, disk, latency, losses)
# FIGURE is a key of `figures` in the benchmark's JSON output; `#` starts a comment.
# Exits 1 when a figure misses its floor or is missing, naming the figure, the measured value
# and the floor.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

json=target/bench/ingest_load.json
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

if ((run)); then
    # The benchmark starts its own Mosquitto and mosquitto_sub.
    scripts/apt-install.sh mosquitto mosquitto-clients
    cargo bench --locked --bench ingest_load -- --quick --output "$json"
fi

if [[ ! -f $json ]]; then
    echo "bench floors: $json not found; run the benchmark first" >&2
    exit 1
fi

python3 - "$json" BENCHMARKS.md <<'PYTHON'
import json
import re
import sys

json_path, floors_path = sys.argv[1], sys.argv[2]
with open(json_path) as f:
    report = json.load(f)
figures = report["figures"]

with open(floors_path) as f:
    text = f.read()
block = re.search(r"^```floors\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
if block is None:
    print(f"bench floors: no ```floors block in {floors_path}", file=sys.stderr)
    sys.exit(1)

line_re = re.compile(r"^(\S+)\s*(>=|<=)\s*([-+0-9.eE]+)$")
failures = []
checked = 0
for number, raw in enumerate(block.group(1).splitlines(), start=1):
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
        failures.append(f"{name}: not measured (missing from {json_path}), floor {op} {floor:g}")
        continue
    value = figures[name]
    if op == ">=" and value < floor:
        failures.append(f"{name} = {value:.6g} is below its floor of {floor:g}")
    elif op == "<=" and value > floor:
        failures.append(f"{name} = {value:.6g} is above its ceiling of {floor:g}")
    else:
        print(f"ok     {name} = {value:.6g} ({op} {floor:g})")

for failure in failures:
    print(f"FAILED {failure}", file=sys.stderr)
if failures:
    print(f"bench floors: {len(failures)} of {checked} figures missed the floors in {floors_path}",
          file=sys.stderr)
    sys.exit(1)
print(f"bench floors: all {checked} figures meet the floors in {floors_path}")
PYTHON
