//! Detector cost benchmark: time per reading and memory per sensor of the streaming
//! detectors, on a synthetic signal that exercises every statistic (a daily cycle with noise,
//! spikes, steps and flat stretches).
//!
//! Usage: `cargo bench --bench detect_cost [-- OPTIONS]`; `--help` lists the options. Prints
//! the figures and writes them as JSON (`{"figures": {NAME: VALUE}}`) to
//! `target/bench/detect_cost.json`. Each detector family is one section function that returns
//! its figures. Without the `--bench` argument that `cargo bench` passes, as under
//! `cargo test --all-targets`, it runs nothing.

#[path = "common/args.rs"]
mod args;

use std::collections::BTreeMap;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use args::Invocation;
use caretaker::detect::stream::{SensorDetector, StreamConfig};

const USAGE: &str = "\
Usage: cargo bench --bench detect_cost [-- OPTIONS]

Options:
  --quick          CI mode: 200,000 readings per measurement instead of 2,000,000
  --output PATH    JSON output (default target/bench/detect_cost.json)
  --help           print this help
";

/// Sensors fed in turn. A gateway updates many detectors, so the measurement includes the
/// cache misses that a single detector, always in the cache, would not have.
const SENSORS: usize = 64;
/// Interval between a sensor's readings in the synthetic signal.
const INTERVAL_MS: i64 = 60_000;
/// 2024-01-01T00:00:00Z.
const START_MS: i64 = 1_704_067_200_000;

#[derive(Debug)]
struct Options {
    readings: usize,
    output: Option<PathBuf>,
}

fn parse_args(args: Vec<String>) -> anyhow::Result<Invocation<Options>> {
    let defaults = Options {
        readings: 2_000_000,
        output: None,
    };
    args::parse(args, USAGE, defaults, |options, arg, args| {
        match arg {
            "--quick" => options.readings = 200_000,
            "--output" => options.output = Some(args.path("--output")?),
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// Value of the synthetic signal for reading `index` of sensor `sensor`: a daily cycle,
/// deterministic noise, a spike every 997 readings, a step every 5003 readings and a flat
/// stretch of 40 readings every 7919.
fn signal(sensor: usize, index: usize) -> Option<f64> {
    if index % 4001 == 4000 {
        return None;
    }
    let minute = (index % 1440) as f64;
    let cycle = 20.0 + 5.0 * (minute / 1440.0 * std::f64::consts::TAU).sin();
    // A cheap hash of the index as noise in [-0.5, 0.5).
    let hash = ((index as u64) ^ ((sensor as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let noise = (hash >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    let mut value = cycle + noise;
    if index.is_multiple_of(997) {
        value += 15.0;
    }
    if (index / 5003) % 2 == 1 {
        value += 4.0;
    }
    if index % 7919 < 40 {
        value = 21.0;
    }
    Some(value)
}

/// Streaming detectors: nanoseconds per `update` and bytes per sensor.
fn stream_section(options: &Options) -> BTreeMap<String, f64> {
    let mut detectors: Vec<SensorDetector> = (0..SENSORS)
        .map(|_| SensorDetector::new(StreamConfig::default()))
        .collect();
    let per_sensor = options.readings / SENSORS;

    // The first pass warms the detectors up; only the second is timed.
    let mut flagged = 0usize;
    let mut elapsed = std::time::Duration::ZERO;
    for pass in 0..2 {
        let start = Instant::now();
        for index in 0..per_sensor {
            let reading = pass * per_sensor + index;
            let ts = START_MS + reading as i64 * INTERVAL_MS;
            for (sensor, detector) in detectors.iter_mut().enumerate() {
                let verdict = detector.update(ts, signal(sensor, reading));
                flagged += verdict.is_anomaly as usize;
            }
        }
        elapsed = start.elapsed();
    }
    black_box(flagged);

    let timed = (per_sensor * SENSORS) as f64;
    let mut figures = BTreeMap::new();
    figures.insert(
        "stream.ns_per_reading".to_string(),
        elapsed.as_nanos() as f64 / timed,
    );
    figures.insert(
        "stream.bytes_per_sensor".to_string(),
        detectors[0].memory_bytes() as f64,
    );
    figures
}

/// Multivariate asset model: microseconds per row scored by the streaming scorer, with the
/// PCA model that `caretaker train` would fit on six hours of the simulated pump.
fn multivariate_section(options: &Options) -> BTreeMap<String, f64> {
    use caretaker::detect::multivariate::{
        fit_model, FitOptions, StreamingAssetScorer, TrainingData,
    };
    use caretaker::sim::{Pump, PUMP_MODEL_POINTS};

    let mut pump = Pump::new(1);
    let rows: Vec<Vec<Option<f64>>> = (0..4320)
        .map(|index| {
            let readings = pump.step(START_MS + index as i64 * 10_000);
            PUMP_MODEL_POINTS
                .iter()
                .map(|point| readings.iter().find(|(name, _)| name == point).map(|r| r.1))
                .collect()
        })
        .collect();
    let data = TrainingData {
        source: "simulated pump".to_string(),
        features: PUMP_MODEL_POINTS.iter().map(|p| p.to_string()).collect(),
        timestamps: vec![String::new(); 2160],
        rows: rows[..2160].to_vec(),
    };
    let model = fit_model("circulation-pump", &data, &FitOptions::default())
        .expect("the simulated pump is enough to fit a model");
    let mut scorer = StreamingAssetScorer::new(model);

    // A row scores all of an asset's points at once, so a twentieth as many rows as readings.
    let count = (options.readings / 20).max(rows.len());
    let mut flagged = 0usize;
    let start = Instant::now();
    for index in 0..count {
        let verdict = scorer.update(&rows[index % rows.len()]);
        flagged += verdict.is_anomaly as usize;
    }
    let elapsed = start.elapsed();
    black_box(flagged);
    let mut figures = BTreeMap::new();
    figures.insert(
        "mv.us_per_row".to_string(),
        elapsed.as_secs_f64() * 1e6 / count as f64,
    );
    figures
}

/// Cargo's target folder: the parent of the scratch folder cargo gives benchmarks.
fn target_dir() -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    scratch.parent().unwrap_or(scratch).to_path_buf()
}

fn run(options: &Options) -> anyhow::Result<()> {
    let mut figures = BTreeMap::new();
    figures.extend(stream_section(options));
    figures.extend(multivariate_section(options));
    for (name, value) in &figures {
        println!("{name:<28} {value:>12.1}");
    }
    let output = match &options.output {
        Some(path) => path.clone(),
        None => target_dir().join("bench").join("detect_cost.json"),
    };
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "figures": figures }))?;
    fs::write(&output, json + "\n")
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("\nfigures written to {}", output.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match args::options_or_exit("detect_cost", USAGE, parse_args(args)) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("detect_cost: {err:#}");
            ExitCode::FAILURE
        }
    }
}
