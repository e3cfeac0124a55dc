#!/usr/bin/env bash
# Measures the gateway's footprint: the stripped size of the release binary per architecture,
# and the resident memory (RSS) of `caretaker run` at idle and under the ingest benchmark's
# load, natively on this host and under qemu-user for aarch64.
#
# Usage: scripts/footprint.sh [--rss all|host|aarch64|none] [--messages N]
#   --rss WHICH   which RSS runs to make: both (all, the default), only the native one (host),
#                 only the one under qemu-aarch64 (aarch64), or none, which takes seconds
#   --messages N  readings published in each load run (default 20000)
#
# Binaries: target/release/caretaker, built with `cargo build --release` when the host run
# needs it, and target/TRIPLE/release/caretaker from cross/build.sh (the board profile, built
# for size) for aarch64-unknown-linux-gnu and armv7-unknown-linux-gnueabihf. A missing binary is
# reported and its figures are left out. Each size is that of a copy stripped with the
# architecture's binutils `strip`.
#
# RSS runs: the gateway runs with firmware-config/gateway.toml and everything it configures:
# MQTT subscriptions, tenant intake, Modbus devices, detectors and the asset model. The config
# changes only where this host differs from a board. Mosquitto runs on a free loopback port, the
# local API gets a free port and the database a temporary folder. The Modbus TCP devices point
# at loopback ports where nothing listens, so their pollers run their retry and backoff. When
# the config has no [sync] section, one is added for a `caretaker central` on loopback, run by
# a host build of caretaker (release, else debug) with a SQLite database. The
# idle RSS is VmRSS of /proc/PID/status 5 s after /metrics first responds, and its anonymous
# part (RssAnon) is recorded beside it. The load is the
# ingest benchmark's: {"ts":MS,"v":VALUE} to 200 sensors in turn, published as fast as
# mosquitto_pub takes them at QoS 1, on sensors/bench/sN, which the config's first
# subscription takes. The peak RSS is VmHWM once `caretaker_readings_stored_total` counts every
# reading. Under qemu-user the process measured is qemu-aarch64 itself, so its RSS adds the
# emulator's own memory and translated code to the gateway's: an upper bound for a board.
# qemu runs the guest with LD_LIBRARY_PATH on the cross glibc. Without it, the cross loader
# takes the multiarch libc6:ARCH from the host's /etc/ld.so.cache, another glibc build, and the
# guest hangs at its first pthread_create.
#
# Prints the figures and writes them to target/bench/footprint.json as
# {"figures": {NAME: VALUE}, ...}, which scripts/bench-floors.sh merges with the benchmarks'.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

usage="usage: scripts/footprint.sh [--rss all|host|aarch64|none] [--messages N]"
rss=all
messages=20000
while (($#)); do
    case $1 in
    --rss)
        rss=${2:-}
        shift
        ;;
    --messages)
        messages=${2:-}
        shift
        ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
    esac
    shift
done
case $rss in
all | host | aarch64 | none) ;;
*)
    echo "scripts/footprint.sh: --rss must be all, host, aarch64 or none, not '$rss'" >&2
    exit 2
    ;;
esac
if ! [[ $messages =~ ^[1-9][0-9]*$ ]]; then
    echo "scripts/footprint.sh: --messages must be a positive whole number, not '$messages'" >&2
    exit 2
fi

# The rustup toolchain builds the host binary, as in .ci/run.
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if [[ -d $cargo_bin ]]; then
    PATH=$cargo_bin:$PATH
fi

if [[ $rss == all || $rss == host ]] && [[ ! -x target/release/caretaker ]]; then
    cargo build --release --locked --bin caretaker
fi
if [[ $rss != none ]]; then
    scripts/apt-install.sh mosquitto mosquitto-clients socat
fi
if [[ $rss == all || $rss == aarch64 ]]; then
    scripts/apt-install.sh qemu-user
fi

mkdir -p target/bench
exec python3 - "$repo" "$rss" "$messages" <<'PYTHON'
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

repo, rss, messages = sys.argv[1:4]
messages = int(messages)
os.chdir(repo)

MIB = 1024 * 1024
SENSORS = 200
STARTUP_TIMEOUT = 120  # s, generous for a start under emulation
IDLE_SETTLE = 5  # s between /metrics first responding and the idle RSS
STORE_TIMEOUT = 600  # s for every reading of the load to be stored
OUTPUT = "target/bench/footprint.json"

# (figure name, binary, strip command, command prefix that runs it here)
ARCHES = [
    (os.uname().machine, "target/release/caretaker", "strip", []),
    ("aarch64", "target/aarch64-unknown-linux-gnu/release/caretaker",
     "aarch64-linux-gnu-strip",
     ["qemu-aarch64", "-E", "LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib",
      "-L", "/usr/aarch64-linux-gnu"]),
    ("armv7", "target/armv7-unknown-linux-gnueabihf/release/caretaker",
     "arm-linux-gnueabihf-strip",
     ["qemu-arm", "-E", "LD_LIBRARY_PATH=/usr/arm-linux-gnueabihf/lib",
      "-L", "/usr/arm-linux-gnueabihf"]),
]

figures = {}
details = {"messages": messages, "sensors": SENSORS, "runs": {}}


def stripped_size(binary, strip):
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "caretaker")
        shutil.copyfile(binary, copy)
        subprocess.run([strip, copy], check=True)
        return os.path.getsize(copy)


for arch, binary, strip, _ in ARCHES:
    if not os.path.exists(binary):
        print(f"size   {arch}: {binary} is missing; build it with cross/build.sh first",
              file=sys.stderr)
        continue
    if shutil.which(strip) is None:
        print(f"size   {arch}: {strip} is not installed (binutils for {arch}); skipped",
              file=sys.stderr)
        continue
    size = stripped_size(binary, strip)
    figures[f"footprint.{arch}.stripped_binary_mib"] = round(size / MIB, 3)
    print(f"size   {arch}: {size} bytes stripped ({size / MIB:.2f} MiB), {binary}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/{pid}/status")


def metric_sum(http_port, name, label=""):
    """Returns the sum of the samples of metric `name` on /metrics whose labels contain
    `label`."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        sample = line.split(" ", 1)[0]
        if sample.split("{", 1)[0] == name and label in sample:
            total += float(line.rsplit(" ", 1)[1])
    return total


def stored_readings(http_port):
    return metric_sum(http_port, "caretaker_readings_stored_total", 'source="mqtt"')


def gateway_config(folder, mqtt_port, http_port, sync):
    """Writes firmware-config/gateway.toml changed for this host, as the header says, with a
    [sync] section for `sync` = (url, token) when it has none, and returns its path."""
    with open("firmware-config/gateway.toml") as f:
        text = f.read()
    # The config finds its device maps, vendors, SLA, templates and building file beside it.
    shutil.copytree("firmware-config", folder, dirs_exist_ok=True)
    models = os.path.join(repo, "models") + "/"

    def replace(pattern, new, text, expect_at_least=1):
        text, count = re.subn(pattern, new, text, flags=re.MULTILINE)
        if count < expect_at_least:
            sys.exit(f"scripts/footprint.sh: {pattern!r} not found in "
                     "firmware-config/gateway.toml; update gateway_config()")
        return text

    text = replace(r'^listen = "127\.0\.0\.1:\d+"$', f'listen = "127.0.0.1:{http_port}"', text)
    text = replace(r"^port = 1883$", f"port = {mqtt_port}", text)
    text = replace(r'^path = "\.\./models/', f'path = "{models}', text)
    text = replace(r'^address = "[^"]+"$',
                   lambda _: f'address = "127.0.0.1:{free_port()}"', text)
    # This host has no serial adapter, so a pty pair replaces the RS-485 line. No device replies
    # on its other end.
    text = replace(r'^port = "/dev/tty\w+"$', f'port = "{os.path.join(folder, "rtu")}"', text)
    if sync is not None and not re.search(r"^\[sync\]$", text, flags=re.MULTILINE):
        url, token = sync
        text += f'\n[sync]\nurl = "{url}"\ntoken = "{token}"\n'
    path = os.path.join(folder, "gateway.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def central_binary():
    """Returns a host build of caretaker to run the central office with, or None."""
    for candidate in ("target/release/caretaker", "target/debug/caretaker"):
        if os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def start_central(folder, binary, gateway_id):
    """Starts `caretaker central` on a free loopback port with a SQLite database and a token
    for `gateway_id`, and returns (process, url, token)."""
    db = f"sqlite://{folder}/central.db"
    token = subprocess.run(
        [binary, "central", "token", "add", "--db", db, "--gateway", gateway_id,
         "--building", "footprint"],
        check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    with open(os.path.join(folder, "central.log"), "w") as log:
        central = subprocess.Popen([binary, "central", "--listen", f"127.0.0.1:{port}",
                                    "--db", db], stdout=subprocess.DEVNULL, stderr=log)
    wait_for_port(port, "caretaker central", os.path.join(folder, "central.log"))
    return central, f"http://127.0.0.1:{port}", token


def wait_for_port(port, what, log):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"scripts/footprint.sh: {what} did not listen on port {port}; see {log}")


def start_mosquitto(folder, port):
    config = os.path.join(folder, "mosquitto.conf")
    with open(config, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                "max_inflight_messages 1000\nmax_queued_messages 1000000\n"
                f"log_dest file {folder}/mosquitto.log\n")
    broker = subprocess.Popen(["mosquitto", "-c", config], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for_port(port, "Mosquitto", f"{folder}/mosquitto.log")
    return broker


def publish_load(mqtt_port, count):
    """Publishes `count` readings to SENSORS topics in turn, through one `mosquitto_pub -l`
    per topic, and waits until every publisher has sent its share."""
    publishers = [
        subprocess.Popen(["mosquitto_pub", "-p", str(mqtt_port), "-q", "1", "-l",
                          "-t", f"sensors/bench/s{sensor}"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
        for sensor in range(SENSORS)
    ]
    first_ts = int(time.time() * 1000) - count
    for k in range(count):
        value = 20.0 + (k % 97) * 0.05
        pipe = publishers[k % SENSORS].stdin
        pipe.write(f'{{"ts":{first_ts + k},"v":{value:.2f}}}\n'.encode())
    for publisher in publishers:
        publisher.stdin.close()
    for publisher in publishers:
        if publisher.wait(timeout=STORE_TIMEOUT) != 0:
            sys.exit("scripts/footprint.sh: mosquitto_pub failed")


def measure_rss(arch, binary, prefix):
    with tempfile.TemporaryDirectory(prefix="footprint-") as folder:
        mqtt_port, http_port = free_port(), free_port()
        broker = start_mosquitto(folder, mqtt_port)
        socat = None
        gateway = None
        central = None
        try:
            sync = None
            host_build = central_binary()
            if host_build is None:
                print("rss    no host build of caretaker for the central office; measuring "
                      "without [sync]", file=sys.stderr)
            else:
                gateway_id = re.search(r'^id = "([^"]+)"$',
                                       open("firmware-config/gateway.toml").read(),
                                       flags=re.MULTILINE).group(1)
                central, url, token = start_central(folder, host_build, gateway_id)
                sync = (url, token)
            if shutil.which("socat"):
                socat = subprocess.Popen(
                    ["socat", f"pty,raw,echo=0,link={folder}/rtu",
                     f"pty,raw,echo=0,link={folder}/rtu-peer"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 10
                while not os.path.exists(f"{folder}/rtu") and time.monotonic() < deadline:
                    time.sleep(0.05)
            config = gateway_config(folder, mqtt_port, http_port, sync)
            log_path = os.path.join(folder, "gateway.log")
            with open(log_path, "w") as log:
                gateway = subprocess.Popen(
                    prefix + [os.path.abspath(binary), "run", "--config", config],
                    cwd=folder, stdout=subprocess.DEVNULL, stderr=log)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if gateway.poll() is not None:
                    with open(log_path) as f:
                        tail = f.read()[-3000:]
                    sys.exit(f"scripts/footprint.sh: {arch} gateway exited with "
                             f"{gateway.returncode}:\n{tail}")
                try:
                    stored_readings(http_port)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        with open(log_path) as f:
                            tail = f.read()[-3000:]
                        sys.exit(f"scripts/footprint.sh: {arch} gateway did not serve /metrics "
                                 f"within {STARTUP_TIMEOUT} s. The end of its log:\n{tail}")
                    time.sleep(0.2)
            time.sleep(IDLE_SETTLE)
            idle_kib = status_kib(gateway.pid, "VmRSS")
            idle_anon_kib = status_kib(gateway.pid, "RssAnon")

            load_start = time.monotonic()
            publish_load(mqtt_port, messages)
            deadline = time.monotonic() + STORE_TIMEOUT
            stored = stored_readings(http_port)
            while stored < messages and time.monotonic() < deadline:
                time.sleep(0.2)
                stored = stored_readings(http_port)
            stored_secs = time.monotonic() - load_start
            peak_kib = status_kib(gateway.pid, "VmHWM")
            after_kib = status_kib(gateway.pid, "VmRSS")
            sync_sent = metric_sum(http_port, "caretaker_sync_events_sent_total")
            if stored < messages:
                sys.exit(f"scripts/footprint.sh: {arch} gateway stored {stored:.0f} of "
                         f"{messages} readings within {STORE_TIMEOUT} s")
        finally:
            for process in (gateway, central, socat, broker):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
    return {"idle_rss_kib": idle_kib, "idle_rss_anon_kib": idle_anon_kib,
            "peak_rss_kib": peak_kib, "rss_after_load_kib": after_kib, "stored": stored,
            "sync_events_sent": sync_sent,
            "sync": sync is not None,
            "seconds_to_store": round(stored_secs, 1)}


if rss != "none":
    host = os.uname().machine
    selected = {"all": (host, "aarch64"), "host": (host,), "aarch64": ("aarch64",)}[rss]
    runs = [(arch, binary, prefix) for arch, binary, _, prefix in ARCHES if arch in selected]
    for arch, binary, prefix in runs:
        if not os.path.exists(binary):
            print(f"rss    {arch}: {binary} is missing; skipped", file=sys.stderr)
            continue
        name = arch if not prefix else f"{arch}_qemu"
        print(f"rss    {name}: starting the gateway and publishing {messages} readings")
        run = measure_rss(arch, binary, prefix)
        details["runs"][name] = run
        figures[f"footprint.{name}.idle_rss_mib"] = round(run["idle_rss_kib"] / 1024, 2)
        figures[f"footprint.{name}.idle_rss_anon_mib"] = round(
            run["idle_rss_anon_kib"] / 1024, 2)
        figures[f"footprint.{name}.peak_rss_mib"] = round(run["peak_rss_kib"] / 1024, 2)
        print(f"rss    {name}: idle {run['idle_rss_kib'] / 1024:.1f} MiB "
              f"({run['idle_rss_anon_kib'] / 1024:.1f} MiB anonymous), peak "
              f"{run['peak_rss_kib'] / 1024:.1f} MiB, {run['rss_after_load_kib'] / 1024:.1f} "
              f"MiB after {run['stored']:.0f} readings stored in {run['seconds_to_store']} s")

details["written_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
details["nproc"] = os.cpu_count()
with open(OUTPUT, "w") as f:
    json.dump({"figures": figures, "details": details}, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"figures written to {OUTPUT}")
for name, value in sorted(figures.items()):
    print(f"{name} = {value}")
PYTHON
