//! Ingest load benchmark: JSON readings over 200 MQTT topics into the gateway, next to
//! `mosquitto_sub` writing the same load to a file, measured the same way in the same run.
//!
//! Each case starts a Mosquitto of its own on a free loopback port, then one consumer: the
//! `caretaker` binary run as `caretaker run --config FILE` with a config written into a temporary
//! folder, or `mosquitto_sub -v` redirected to a file. A rumqttc client publishes
//! `{"ts":MS,"v":VALUE}` to `bench/s0` … `bench/s199`, as a flood or paced at a fixed rate.
//! What was stored is counted by the consumer's side only: the gateway's
//! `caretaker_readings_stored_total{source="mqtt"}` on `/metrics`, or the lines of the file.
//!
//! Usage: `cargo bench --bench ingest_load [-- OPTIONS]`; `--help` lists the options. Prints
//! the figures and writes them as JSON to `target/bench/ingest_load.json`. Without the
//! `--bench` argument that `cargo bench` passes, as under `cargo test --all-targets`, it runs
//! nothing.

#[path = "common/args.rs"]
mod args;
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use args::Invocation;
use rumqttc::QoS;
use serde::Serialize;

use support::broker::{free_port, Broker};
use support::counter::{
    series_value, FileLines, GatewayStored, MetricsClient, SampleLog, Sampler, StoredCount,
};
use support::process::Running;
use support::procfs::{self, Machine, ProcSample};
use support::publisher::Publisher;

const CARETAKER: &str = env!("CARGO_BIN_EXE_caretaker");
const MOSQUITTO_SUB: &str = "mosquitto_sub";
const SENSORS: u64 = 200;

/// How long the gateway may take from its start until `/metrics` responds.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a consumer may take to store the first probe message after connecting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the consumer's idle CPU use is measured, before the load.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// Once everything is published, the benchmark stops waiting when the stored count has not
/// changed for this long. Messages not stored by then count as lost.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
Usage: cargo bench --bench ingest_load [-- OPTIONS]

Options:
  --quick             CI mode: a flood of 20000 and 10 s paced, unless set below
  --flood N           messages in each flood case (default 100000)
  --rate N            messages per second in the paced cases (default 1000)
  --paced-secs N      duration of each paced case, in seconds (default 60)
  --poll-ms N         interval between polls of the stored count, in ms (default 5)
  --only WHO          run only `gateway` or `floor` (mosquitto_sub) cases
  --qos N             run only QoS 0 or QoS 1 cases
  --load KIND         run only `flood` or `paced` cases
  --output PATH       JSON output (default target/bench/ingest_load.json)
  --keep              keep each case's temporary folder (configs, logs, database) and
                      print its path
  --help              print this help
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    Gateway,
    MosquittoSub,
}

impl Consumer {
    fn name(self) -> &'static str {
        match self {
            Consumer::Gateway => "gateway",
            Consumer::MosquittoSub => "mosquitto_sub",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Every message published as fast as the publisher can.
    Flood,
    /// Messages published at `Options::rate` per second.
    Paced,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Flood => "flood",
            Load::Paced => "paced",
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    flood: u64,
    rate: u64,
    paced_secs: u64,
    poll_interval: Duration,
    consumers: Vec<Consumer>,
    qos: Vec<u8>,
    loads: Vec<Load>,
    output: Option<PathBuf>,
    keep: bool,
}

/// Options as written on the command line, before the defaults of `--quick` apply.
#[derive(Debug)]
struct RawOptions {
    quick: bool,
    flood: Option<u64>,
    rate: u64,
    paced_secs: Option<u64>,
    poll_ms: u64,
    consumers: Vec<Consumer>,
    qos: Vec<u8>,
    loads: Vec<Load>,
    output: Option<PathBuf>,
    keep: bool,
}

fn parse_args(args: Vec<String>) -> anyhow::Result<Invocation<Options>> {
    let raw = RawOptions {
        quick: false,
        flood: None,
        rate: 1000,
        paced_secs: None,
        poll_ms: 5,
        consumers: vec![Consumer::MosquittoSub, Consumer::Gateway],
        qos: vec![0, 1],
        loads: vec![Load::Flood, Load::Paced],
        output: None,
        keep: false,
    };
    let parsed = args::parse(args, USAGE, raw, |raw, arg, args| {
        match arg {
            "--quick" => raw.quick = true,
            "--flood" => raw.flood = Some(args.positive("--flood")?),
            "--rate" => raw.rate = args.positive("--rate")?,
            "--paced-secs" => raw.paced_secs = Some(args.positive("--paced-secs")?),
            "--poll-ms" => raw.poll_ms = args.positive("--poll-ms")?,
            "--only" => {
                raw.consumers = args.choice(
                    "--only",
                    &[
                        ("gateway", vec![Consumer::Gateway]),
                        ("floor", vec![Consumer::MosquittoSub]),
                        ("mosquitto_sub", vec![Consumer::MosquittoSub]),
                    ],
                )?
            }
            "--qos" => raw.qos = args.choice("--qos", &[("0", vec![0]), ("1", vec![1])])?,
            "--load" => {
                raw.loads = args.choice(
                    "--load",
                    &[("flood", vec![Load::Flood]), ("paced", vec![Load::Paced])],
                )?
            }
            "--output" => raw.output = Some(args.path("--output")?),
            "--keep" => raw.keep = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    parsed.try_map(|raw| {
        if raw.rate > 1000 {
            // Source timestamps step by 1 ms per message, and each must be unique per sensor.
            bail!(
                "--rate {} is above 1000; the paced load publishes at most one message per ms",
                raw.rate
            );
        }
        Ok(Options {
            quick: raw.quick,
            flood: raw
                .flood
                .unwrap_or(if raw.quick { 20_000 } else { 100_000 }),
            rate: raw.rate,
            paced_secs: raw.paced_secs.unwrap_or(if raw.quick { 10 } else { 60 }),
            poll_interval: Duration::from_millis(raw.poll_ms),
            consumers: raw.consumers,
            qos: raw.qos,
            loads: raw.loads,
            output: raw.output,
            keep: raw.keep,
        })
    })
}

/// One consumer under one load at one QoS.
#[derive(Debug, Clone, Copy)]
struct Case {
    consumer: Consumer,
    qos: u8,
    load: Load,
}

impl Case {
    /// Name such as `gateway.qos1.flood`, the prefix of the case's figure names.
    fn name(&self) -> String {
        format!(
            "{}.qos{}.{}",
            self.consumer.name(),
            self.qos,
            self.load.name()
        )
    }

    fn messages(&self, options: &Options) -> u64 {
        match self.load {
            Load::Flood => options.flood,
            Load::Paced => options.rate * options.paced_secs,
        }
    }

    fn mqtt_qos(&self) -> QoS {
        if self.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    command: String,
    started_at: String,
    mode: &'static str,
    settings: Settings,
    machine: Machine,
    load_average_before: String,
    load_average_after: String,
    cases: Vec<CaseReport>,
    /// Every figure by name, such as `gateway.qos0.flood.readings_per_sec`. The benchmark
    /// floors are checked against these.
    figures: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
struct Settings {
    sensors: u64,
    flood_messages: u64,
    paced_rate_per_sec: u64,
    paced_secs: u64,
    poll_interval_ms: u64,
}

#[derive(Debug, Serialize)]
struct CaseReport {
    name: String,
    consumer: &'static str,
    qos: u8,
    load: &'static str,
    published: u64,
    stored: u64,
    /// Published but not stored when the stored count stopped changing.
    lost: u64,
    /// Changes of the gateway's counters during the load.
    gateway: Option<GatewayCounters>,
    /// Rate at which the publisher sent, first to last message.
    published_per_sec: f64,
    /// Stored readings over the time from the first publish to the last count change.
    readings_per_sec: f64,
    elapsed_secs: f64,
    cpu_secs: f64,
    cpu_secs_per_100k: f64,
    /// CPU use before the load, in percent of one CPU, while the stored count was polled as
    /// during the load. For the gateway it includes serving `/metrics` at every poll.
    idle_cpu_percent: f64,
    /// CPU use of each process during the load, from its start until the last reading was
    /// stored.
    cpu_percent: CpuShares,
    idle_rss_kib: u64,
    /// The anonymous part of `idle_rss_kib` (`RssAnon`). It leaves out the mapped pages of the
    /// executable and its libraries, so it follows what the consumer allocates.
    idle_rss_anon_kib: u64,
    peak_rss_kib: u64,
    disk_bytes: u64,
    disk_bytes_per_reading: f64,
    /// `write_bytes` of `/proc/PID/io`, or `file growth` of the consumer's files.
    disk_measure: &'static str,
    /// Publish to stored, paced cases only.
    latency: Option<Latency>,
    poll: PollStats,
}

/// CPU use in percent of one CPU, so two busy cores make 200.
#[derive(Debug, Clone, Copy, Serialize)]
struct CpuShares {
    consumer: f64,
    broker: f64,
    /// The benchmark process: the publisher and the thread that polls the stored count.
    publisher: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Messages whose latency is known (those stored).
    messages: usize,
}

#[derive(Debug, Serialize)]
struct PollStats {
    interval_ms: u64,
    polls: u64,
    mean_poll_ms: f64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args::command_line("ingest_load", &args);
    let options = match args::options_or_exit("ingest_load", USAGE, parse_args(args)) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ingest_load: cannot start the Tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ingest_load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options, command: String) -> anyhow::Result<()> {
    let machine = Machine::describe();
    let load_average_before = procfs::load_average();
    let ticks_per_sec = procfs::clock_ticks_per_sec();
    println!(
        "ingest_load: {} mode, flood {} messages, paced {}/s for {} s, {} sensors, stored count polled every {} ms",
        if options.quick { "quick" } else { "full" },
        options.flood,
        options.rate,
        options.paced_secs,
        SENSORS,
        options.poll_interval.as_millis()
    );
    println!(
        "machine: {} CPUs ({}), {} MiB RAM, kernel {}, load average {}",
        machine.nproc, machine.cpu_model, machine.ram_mib, machine.kernel, load_average_before
    );

    // Each gateway case follows its floor case, so both see the machine in a similar state.
    let mut cases = Vec::new();
    for &load in &options.loads {
        for &qos in &options.qos {
            for &consumer in &options.consumers {
                cases.push(Case {
                    consumer,
                    qos,
                    load,
                });
            }
        }
    }

    let started_at = caretaker::time::format_ms(now_ms());
    let mut reports = Vec::new();
    for case in &cases {
        println!(
            "\n== {} ({} messages)",
            case.name(),
            case.messages(&options)
        );
        let report = run_case(case, &options, ticks_per_sec)
            .await
            .with_context(|| format!("case {} failed", case.name()))?;
        print_case(&report);
        reports.push(report);
    }

    let figures = figures(&reports);
    let report = Report {
        benchmark: "ingest_load",
        command,
        started_at,
        mode: if options.quick { "quick" } else { "full" },
        settings: Settings {
            sensors: SENSORS,
            flood_messages: options.flood,
            paced_rate_per_sec: options.rate,
            paced_secs: options.paced_secs,
            poll_interval_ms: options.poll_interval.as_millis() as u64,
        },
        machine,
        load_average_before,
        load_average_after: procfs::load_average(),
        cases: reports,
        figures,
    };
    print_summary(&report);

    let output = match &options.output {
        Some(path) => path.clone(),
        None => target_dir().join("bench").join("ingest_load.json"),
    };
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    fs::write(&output, json + "\n")
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("\nfigures written to {}", output.display());
    Ok(())
}

/// Returns cargo's target folder, two levels above the `caretaker` binary that cargo built for
/// this benchmark (`target/release/caretaker`).
fn target_dir() -> PathBuf {
    let binary = Path::new(CARETAKER);
    binary
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Runs one case in a temporary folder. On an error, the message ends with the last lines of
/// the logs in that folder.
async fn run_case(
    case: &Case,
    options: &Options,
    ticks_per_sec: u64,
) -> anyhow::Result<CaseReport> {
    let dir = tempfile::Builder::new()
        .prefix("caretaker-bench-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let result = measure(case, options, ticks_per_sec, dir.path())
        .await
        .map_err(|err| anyhow!("{err:#}{}", log_tails(dir.path())));
    if options.keep {
        println!("kept the case's folder {}", dir.keep().display());
    }
    result
}

/// Returns the last lines of each log in a case's folder.
fn log_tails(dir: &Path) -> String {
    let mut logs = String::new();
    for name in ["caretaker.log", "mosquitto_sub.log", "mosquitto.log"] {
        if let Ok(text) = fs::read_to_string(dir.join(name)) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            let _ = write!(logs, "\n--- last lines of {name}:\n{}", tail.join("\n"));
        }
    }
    logs
}

/// A consumer process and what is needed to measure it.
struct Started {
    process: Running,
    counter: Box<dyn StoredCount>,
    /// The gateway's `/metrics` address.
    metrics_addr: Option<SocketAddr>,
    /// Files the consumer writes its data to, for disk use when `/proc/PID/io` is missing.
    data_files: Vec<PathBuf>,
}

async fn measure(
    case: &Case,
    options: &Options,
    ticks_per_sec: u64,
    dir: &Path,
) -> anyhow::Result<CaseReport> {
    let broker = Broker::start(dir)?;
    let Started {
        mut process,
        counter,
        metrics_addr,
        data_files,
    } = match case.consumer {
        Consumer::Gateway => start_gateway(case, dir, broker.port)?,
        Consumer::MosquittoSub => start_mosquitto_sub(case, dir, broker.port)?,
    };
    let pid = process.pid();
    let sampler = Sampler::start(counter, options.poll_interval);
    wait_first_count(&sampler, &mut process).await?;

    let mut publisher =
        Publisher::connect(broker.port, &format!("bench-load-{}", case.name())).await?;
    let qos = case.mqtt_qos();
    probe(&publisher, &sampler, &mut process, qos).await?;
    // Start-up work and the probe's batch settle for 1 s. Then the idle consumer is measured
    // while its count is polled as during the load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_start = procfs::sample(pid)?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = procfs::sample(pid)?;
    let others_before = (procfs::sample(broker.pid())?, procfs::sample_self()?);
    let load_window_start = Instant::now();
    let idle_cpu_secs =
        idle.cpu_ticks.saturating_sub(idle_start.cpu_ticks) as f64 / ticks_per_sec as f64;
    let baseline = sampler.latest().unwrap_or(0);
    let gateway_before = metrics_addr.map(read_gateway_counters).transpose()?;
    let files_before = total_size(&data_files);

    let messages = case.messages(options);
    publisher.start_recording();
    publish_load(&publisher, case, options, &mut process).await?;
    let sent = publisher
        .wait_sent(messages as usize, Duration::from_secs(300))
        .await?;
    wait_until_stored(&sampler, &mut process, baseline, messages).await?;

    let end = procfs::sample(pid)?;
    let others_after = (procfs::sample(broker.pid())?, procfs::sample_self()?);
    let load_window = load_window_start.elapsed().as_secs_f64();
    let percent_of_window = |before: &ProcSample, after: &ProcSample| {
        let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
        ticks as f64 / ticks_per_sec as f64 / load_window * 100.0
    };
    let files_after = total_size(&data_files);
    let log = sampler.stop();

    let gateway_after = metrics_addr.map(read_gateway_counters).transpose()?;
    publisher.disconnect().await;
    let status = process.terminate(Duration::from_secs(20)).await?;
    if !status.success() {
        eprintln!(
            "{} exited with {status} after SIGTERM",
            case.consumer.name()
        );
    }
    broker.stop().await?;

    let measured = Measured {
        sent,
        log,
        baseline,
        idle,
        end,
        idle_cpu_percent: idle_cpu_secs / IDLE_WINDOW.as_secs_f64() * 100.0,
        files_grown: files_after.saturating_sub(files_before),
        cpu_percent: CpuShares {
            consumer: percent_of_window(&idle, &end),
            broker: percent_of_window(&others_before.0, &others_after.0),
            publisher: percent_of_window(&others_before.1, &others_after.1),
        },
        gateway: gateway_before.zip(gateway_after),
    };
    Ok(measured.report(case, options, ticks_per_sec))
}

/// Publishes the case's load: `{"ts":MS,"v":VALUE}` to `bench/s0` … `bench/s199` in turn.
async fn publish_load(
    publisher: &Publisher,
    case: &Case,
    options: &Options,
    consumer: &mut Running,
) -> anyhow::Result<()> {
    let messages = case.messages(options);
    let qos = case.mqtt_qos();
    // Source timestamps step by 1 ms per message and end about now, so each (sensor, ts)
    // pair is unique and none is ahead of the gateway's clock.
    let first_ts_ms = now_ms() - messages as i64;
    let load_start = Instant::now();
    for k in 0..messages {
        if case.load == Load::Paced {
            let due = load_start + Duration::from_nanos(k * 1_000_000_000 / options.rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let topic = format!("bench/s{}", k % SENSORS);
        let tenths = (k * 37) % 1000;
        let payload = format!(
            "{{\"ts\":{},\"v\":{}.{}}}",
            first_ts_ms + k as i64,
            tenths / 10,
            tenths % 10
        );
        publisher.publish(topic, qos, payload.into_bytes()).await?;
        if k % 1000 == 999 {
            consumer.ensure_running()?;
            publisher.ensure_connected()?;
        }
    }
    Ok(())
}

/// Waits until the consumer has stored `messages` readings past `baseline`, or until its
/// count has not changed for [`SETTLE_TIMEOUT`].
async fn wait_until_stored(
    sampler: &Sampler,
    consumer: &mut Running,
    baseline: u64,
    messages: u64,
) -> anyhow::Result<()> {
    loop {
        let latest = sampler.latest().unwrap_or(baseline);
        if latest >= baseline + messages {
            return Ok(());
        }
        consumer.ensure_running()?;
        if sampler.last_change().elapsed() >= SETTLE_TIMEOUT {
            eprintln!(
                "the stored count stayed at {} of {} for {} s; counting the rest as lost",
                latest.saturating_sub(baseline),
                messages,
                SETTLE_TIMEOUT.as_secs()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Counters of the gateway that explain its figures.
#[derive(Debug, Clone, Copy, Serialize)]
struct GatewayCounters {
    /// `caretaker_readings_duplicate_total{source="mqtt"}`
    duplicates: u64,
    /// `caretaker_readings_quarantined_total{source="mqtt"}`
    quarantined: u64,
    /// `caretaker_store_commits_total`: write transactions, maintenance passes included.
    commits: u64,
}

fn read_gateway_counters(addr: SocketAddr) -> anyhow::Result<GatewayCounters> {
    let text = MetricsClient::new(addr).fetch()?;
    let value = |series: &str| {
        series_value(&text, series).ok_or_else(|| anyhow!("/metrics has no {series} line"))
    };
    Ok(GatewayCounters {
        duplicates: value("caretaker_readings_duplicate_total{source=\"mqtt\"}")?,
        quarantined: value("caretaker_readings_quarantined_total{source=\"mqtt\"}")?,
        commits: value("caretaker_store_commits_total")?,
    })
}

/// Writes the gateway config, checks it with `caretaker check-config` and starts
/// `caretaker run --config FILE`, logging to `dir/caretaker.log`.
fn start_gateway(case: &Case, dir: &Path, broker_port: u16) -> anyhow::Result<Started> {
    let http_port = free_port()?;
    let config_path = dir.join("caretaker.toml");
    let config = format!(
        "# Written by the ingest load benchmark (benches/ingest_load.rs).\n\
         [gateway]\n\
         id = \"bench\"\n\
         \n\
         [store]\n\
         path = \"bench.db\"\n\
         \n\
         [http]\n\
         listen = \"127.0.0.1:{http_port}\"\n\
         \n\
         [mqtt]\n\
         host = \"127.0.0.1\"\n\
         port = {broker_port}\n\
         client_id = \"caretaker-bench-{name}\"\n\
         \n\
         [[mqtt.subscription]]\n\
         filter = \"bench/#\"\n\
         qos = {qos}\n\
         format = \"json\"\n\
         value_path = \"v\"\n\
         timestamp_path = \"ts\"\n\
         metric = \"load\"\n",
        name = case.name(),
        qos = case.qos,
    );
    fs::write(&config_path, config)
        .with_context(|| format!("cannot write {}", config_path.display()))?;

    let check = Command::new(CARETAKER)
        .arg("check-config")
        .arg(&config_path)
        .output()
        .with_context(|| format!("cannot run {CARETAKER} check-config"))?;
    if !check.status.success() {
        bail!(
            "caretaker check-config rejected the benchmark's config ({}):\n{}{}",
            check.status,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }

    let log_path = dir.join("caretaker.log");
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut command = Command::new(CARETAKER);
    command
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let process = Running::spawn("caretaker", command)?;
    let metrics_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
    Ok(Started {
        process,
        counter: Box::new(GatewayStored(MetricsClient::new(metrics_addr))),
        metrics_addr: Some(metrics_addr),
        data_files: vec![dir.join("bench.db"), dir.join("bench.db-wal")],
    })
}

/// Starts `mosquitto_sub -v` on `bench/#` with its output redirected to `dir/mosquitto_sub.out`.
fn start_mosquitto_sub(case: &Case, dir: &Path, broker_port: u16) -> anyhow::Result<Started> {
    let out_path = dir.join("mosquitto_sub.out");
    let out =
        File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
    let log_path = dir.join("mosquitto_sub.log");
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut command = Command::new(MOSQUITTO_SUB);
    command
        .args(["-h", "127.0.0.1", "-p", &broker_port.to_string()])
        .args(["-t", "bench/#", "-q", &case.qos.to_string(), "-v"])
        .args(["-i", &format!("bench-floor-{}", case.name())])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(log);
    let process = Running::spawn("mosquitto_sub", command)?;
    Ok(Started {
        process,
        counter: Box::new(FileLines::open(&out_path)?),
        metrics_addr: None,
        data_files: vec![out_path],
    })
}

/// Waits for the first successful poll of the stored count.
async fn wait_first_count(sampler: &Sampler, process: &mut Running) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while sampler.latest().is_none() {
        process.ensure_running()?;
        if Instant::now() >= deadline {
            bail!(
                "the stored count could not be read within {} s: {}",
                STARTUP_TIMEOUT.as_secs(),
                sampler.last_error().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Publishes a probe to `bench/probe` every 200 ms until the consumer stores one, so the load
/// starts only once the consumer's subscription is in place.
async fn probe(
    publisher: &Publisher,
    sampler: &Sampler,
    process: &mut Running,
    qos: QoS,
) -> anyhow::Result<()> {
    let before = sampler.latest().unwrap_or(0);
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut next_probe = Instant::now();
    while sampler.latest().unwrap_or(0) <= before {
        process.ensure_running()?;
        publisher.ensure_connected()?;
        if Instant::now() >= deadline {
            bail!(
                "the consumer stored none of the probe messages to bench/probe within {} s",
                PROBE_TIMEOUT.as_secs()
            );
        }
        if Instant::now() >= next_probe {
            let payload = format!("{{\"ts\":{},\"v\":0.0}}", now_ms());
            publisher
                .publish("bench/probe".to_string(), qos, payload.into_bytes())
                .await?;
            next_probe += Duration::from_millis(200);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|path| fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// The raw observations of one case.
struct Measured {
    /// Send time of each load message, in publish order.
    sent: Vec<Instant>,
    log: SampleLog,
    /// Stored count before the load.
    baseline: u64,
    /// The consumer after start-up, before the load.
    idle: ProcSample,
    /// CPU use of the idle consumer while its stored count was polled, in percent of one CPU.
    idle_cpu_percent: f64,
    /// The consumer once the last reading was stored.
    end: ProcSample,
    files_grown: u64,
    cpu_percent: CpuShares,
    /// The gateway's counters before and after the load.
    gateway: Option<(GatewayCounters, GatewayCounters)>,
}

impl Measured {
    fn report(&self, case: &Case, options: &Options, ticks_per_sec: u64) -> CaseReport {
        let published = self.sent.len() as u64;
        let final_count = self
            .log
            .changes
            .last()
            .map_or(self.baseline, |&(_, count)| count);
        let stored = final_count.saturating_sub(self.baseline);
        let first_sent = self.sent.first().copied();
        let last_seen = self.log.first_at_least(final_count);
        let elapsed_secs = match (first_sent, last_seen) {
            (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        let published_per_sec = match (self.sent.first(), self.sent.last()) {
            (Some(first), Some(last)) if last > first => {
                (published - 1) as f64 / (*last - *first).as_secs_f64()
            }
            _ => 0.0,
        };
        let per_reading = |total: f64| {
            if stored > 0 {
                total / stored as f64
            } else {
                0.0
            }
        };

        let cpu_secs =
            self.end.cpu_ticks.saturating_sub(self.idle.cpu_ticks) as f64 / ticks_per_sec as f64;
        let (disk_bytes, disk_measure) = match (self.idle.write_bytes, self.end.write_bytes) {
            (Some(before), Some(after)) => (after.saturating_sub(before), "write_bytes"),
            _ => (self.files_grown, "file growth"),
        };
        let latency = (case.load == Load::Paced).then(|| self.latency()).flatten();
        CaseReport {
            name: case.name(),
            consumer: case.consumer.name(),
            qos: case.qos,
            load: case.load.name(),
            published,
            stored,
            lost: published.saturating_sub(stored),
            gateway: self.gateway.map(|(before, after)| GatewayCounters {
                duplicates: after.duplicates.saturating_sub(before.duplicates),
                quarantined: after.quarantined.saturating_sub(before.quarantined),
                commits: after.commits.saturating_sub(before.commits),
            }),
            published_per_sec,
            readings_per_sec: if elapsed_secs > 0.0 {
                stored as f64 / elapsed_secs
            } else {
                0.0
            },
            elapsed_secs,
            cpu_secs,
            cpu_secs_per_100k: per_reading(cpu_secs) * 100_000.0,
            idle_cpu_percent: self.idle_cpu_percent,
            cpu_percent: self.cpu_percent,
            idle_rss_kib: self.idle.rss_kib,
            idle_rss_anon_kib: self.idle.rss_anon_kib,
            peak_rss_kib: self.end.peak_rss_kib,
            disk_bytes,
            disk_bytes_per_reading: per_reading(disk_bytes as f64),
            disk_measure,
            latency,
            poll: PollStats {
                interval_ms: options.poll_interval.as_millis() as u64,
                polls: self.log.polls,
                mean_poll_ms: if self.log.polls > 0 {
                    self.log.poll_time.as_secs_f64() * 1000.0 / self.log.polls as f64
                } else {
                    0.0
                },
            },
        }
    }

    /// Latency of each stored message: the time the count was first seen at or above k
    /// (after the baseline) minus the send time of the k-th message.
    fn latency(&self) -> Option<Latency> {
        let mut millis: Vec<f64> = self
            .sent
            .iter()
            .enumerate()
            .filter_map(|(index, &sent)| {
                let seen = self.log.first_at_least(self.baseline + index as u64 + 1)?;
                Some(seen.saturating_duration_since(sent).as_secs_f64() * 1000.0)
            })
            .collect();
        if millis.is_empty() {
            return None;
        }
        millis.sort_by(f64::total_cmp);
        Some(Latency {
            p50_ms: nearest_rank(&millis, 0.50),
            p99_ms: nearest_rank(&millis, 0.99),
            max_ms: millis[millis.len() - 1],
            messages: millis.len(),
        })
    }
}

/// Returns the `fraction` percentile of sorted, non-empty `values` by the nearest-rank method.
fn nearest_rank(values: &[f64], fraction: f64) -> f64 {
    let rank = (fraction * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Flattens the case reports into named figures, and adds the gateway's throughput and CPU
/// per reading relative to `mosquitto_sub` in the same run.
fn figures(reports: &[CaseReport]) -> BTreeMap<String, f64> {
    let mut figures = BTreeMap::new();
    for report in reports {
        let mut put = |figure: &str, value: f64| {
            figures.insert(format!("{}.{figure}", report.name), value);
        };
        put("readings_per_sec", report.readings_per_sec);
        put("cpu_secs_per_100k", report.cpu_secs_per_100k);
        put("idle_rss_mib", report.idle_rss_kib as f64 / 1024.0);
        put(
            "idle_rss_anon_mib",
            report.idle_rss_anon_kib as f64 / 1024.0,
        );
        put("peak_rss_mib", report.peak_rss_kib as f64 / 1024.0);
        put("disk_bytes_per_reading", report.disk_bytes_per_reading);
        put("lost", report.lost as f64);
        if let Some(latency) = &report.latency {
            put("latency_p50_ms", latency.p50_ms);
            put("latency_p99_ms", latency.p99_ms);
        }
    }
    for gateway in reports
        .iter()
        .filter(|r| r.consumer == Consumer::Gateway.name())
    {
        let floor = reports.iter().find(|r| {
            r.consumer == Consumer::MosquittoSub.name()
                && r.qos == gateway.qos
                && r.load == gateway.load
        });
        let Some(floor) = floor else { continue };
        if floor.readings_per_sec > 0.0 {
            figures.insert(
                format!("{}.readings_per_sec_vs_floor", gateway.name),
                gateway.readings_per_sec / floor.readings_per_sec,
            );
        }
        if floor.cpu_secs_per_100k > 0.0 {
            figures.insert(
                format!("{}.cpu_vs_floor", gateway.name),
                gateway.cpu_secs_per_100k / floor.cpu_secs_per_100k,
            );
        }
    }
    figures
}

fn print_case(report: &CaseReport) {
    println!(
        "published {} at {:.0}/s, stored {} ({} lost), {:.0} readings/s over {:.2} s",
        report.published,
        report.published_per_sec,
        report.stored,
        report.lost,
        report.readings_per_sec,
        report.elapsed_secs
    );
    println!(
        "cpu {:.2} s ({:.2} s per 100k; {:.1}% idle while polled), rss idle {:.1} MiB ({:.1} MiB anonymous), peak {:.1} MiB, disk {} bytes ({:.0} per reading, {})",
        report.cpu_secs,
        report.cpu_secs_per_100k,
        report.idle_cpu_percent,
        report.idle_rss_kib as f64 / 1024.0,
        report.idle_rss_anon_kib as f64 / 1024.0,
        report.peak_rss_kib as f64 / 1024.0,
        report.disk_bytes,
        report.disk_bytes_per_reading,
        report.disk_measure
    );
    println!(
        "cpu use during the load: {} {:.0}%, mosquitto {:.0}%, publisher {:.0}%",
        report.consumer,
        report.cpu_percent.consumer,
        report.cpu_percent.broker,
        report.cpu_percent.publisher
    );
    if let Some(latency) = &report.latency {
        println!(
            "publish to stored: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latency.p50_ms, latency.p99_ms, latency.max_ms
        );
    }
    if let Some(counters) = &report.gateway {
        let per_commit = if counters.commits > 0 {
            report.stored as f64 / counters.commits as f64
        } else {
            0.0
        };
        println!(
            "gateway: {} duplicates, {} quarantined, {} store commits ({:.1} readings per commit)",
            counters.duplicates, counters.quarantined, counters.commits, per_commit
        );
    }
    println!(
        "{} polls of the stored count, every {} ms, {:.2} ms each on average",
        report.poll.polls, report.poll.interval_ms, report.poll.mean_poll_ms
    );
}

fn print_summary(report: &Report) {
    println!("\n== summary");
    println!(
        "{:<26} {:>10} {:>8} {:>11} {:>9} {:>9} {:>10} {:>8} {:>8}",
        "case",
        "stored/s",
        "lost",
        "cpu s/100k",
        "idle MiB",
        "peak MiB",
        "disk B/rd",
        "p50 ms",
        "p99 ms"
    );
    for case in &report.cases {
        let (p50, p99) = match &case.latency {
            Some(latency) => (
                format!("{:.1}", latency.p50_ms),
                format!("{:.1}", latency.p99_ms),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{:<26} {:>10.0} {:>8} {:>11.2} {:>9.1} {:>9.1} {:>10.0} {:>8} {:>8}",
            case.name,
            case.readings_per_sec,
            case.lost,
            case.cpu_secs_per_100k,
            case.idle_rss_kib as f64 / 1024.0,
            case.peak_rss_kib as f64 / 1024.0,
            case.disk_bytes_per_reading,
            p50,
            p99
        );
    }
    println!(
        "load average before {}, after {}",
        report.load_average_before, report.load_average_after
    );
}
