//! Central office load benchmark: events per second that one `caretaker central` process
//! accepts from 100 simulated gateways on loopback, on a SQLite file and on PostgreSQL.
//!
//! Usage: `cargo bench --bench central_load [-- OPTIONS]`; `--help` lists the options. Each
//! gateway has its own token and building and sends its batches one after another, as the
//! sync task does; the 100 gateways run at once. Prints the figures and writes them as JSON
//! (`{"figures": {NAME: VALUE}}`) to `target/bench/central_load.json`. Without the `--bench`
//! argument that `cargo bench` passes, as under `cargo test --all-targets`, it runs nothing.

#[path = "common/args.rs"]
mod args;
#[path = "../tests/support/central.rs"]
mod central;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use caretaker::central::auth::{new_token, secret_hash};
use caretaker::protocol::{Envelope, EventKind, TicketEvent, TicketSnapshot, Transition};
use central::Central;
use serde_json::json;

const USAGE: &str = "\
Usage: cargo bench --bench central_load [-- OPTIONS]

Options:
  --quick          CI mode: 4 batches per gateway instead of 20
  --backend NAME   sqlite or postgres only (default both)
  --output PATH    JSON output (default target/bench/central_load.json)
  --help           print this help
";

const GATEWAYS: usize = 100;
/// Events per batch; with ticket events of about 780 bytes a batch stays far below the
/// default 1 MiB body limit.
const BATCH_EVENTS: usize = 50;
/// Tickets per gateway; each event is the next transition of one of them.
const TICKETS_PER_GATEWAY: usize = 25;

#[derive(Debug)]
struct Options {
    batches: usize,
    backends: Vec<&'static str>,
    output: Option<PathBuf>,
}

fn parse_args(args: Vec<String>) -> anyhow::Result<args::Invocation<Options>> {
    let defaults = Options {
        batches: 20,
        backends: vec!["sqlite", "postgres"],
        output: None,
    };
    args::parse(args, USAGE, defaults, |options, arg, rest| {
        match arg {
            "--quick" => options.batches = 4,
            "--backend" => {
                options.backends = rest.choice(
                    "--backend",
                    &[("sqlite", vec!["sqlite"]), ("postgres", vec!["postgres"])],
                )?
            }
            "--output" => options.output = Some(rest.path("--output")?),
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// Builds one ticket event of `gateway`: transition `transition` of ticket `ticket`.
fn ticket_event(
    gateway: &str,
    building: &str,
    ticket: usize,
    transition: i64,
    seq: i64,
) -> Envelope {
    let id = format!("{gateway}-{ticket:06}");
    let state = [
        "new",
        "triaged",
        "dispatched",
        "scheduled",
        "in_progress",
        "resolved",
    ][(transition as usize - 1) % 6];
    let event = TicketEvent {
        ticket: TicketSnapshot {
            id: id.clone(),
            building: building.into(),
            state: state.into(),
            category: "plumbing".into(),
            urgency: "urgent".into(),
            needs_human: false,
            escalation_reason: None,
            unit: Some("4A".into()),
            asset: Some("pump-2".into()),
            summary: "Water pressure falls on the upper floors in the evening".into(),
            sources: vec![caretaker::protocol::TicketSource {
                kind: "message".into(),
                id: format!("msg-{seq}"),
            }],
            vendor: Some("nordic-pipes".into()),
            slot_start_ms: Some(1_780_000_000_000),
            slot_end_ms: Some(1_780_007_200_000),
            ack_due_ms: Some(1_780_000_900_000),
            onsite_due_ms: Some(1_780_014_400_000),
            resolve_due_ms: Some(1_780_086_400_000),
            opened_ms: 1_779_990_000_000,
            updated_ms: 1_779_990_000_000 + seq,
        },
        transition: Transition {
            seq: transition,
            ts_ms: 1_779_990_000_000 + seq,
            from: None,
            to: state.into(),
            actor: "rule:sla".into(),
            reason: "urgent plumbing during opening hours".into(),
        },
    };
    Envelope {
        event_id: uuid::Uuid::now_v7(),
        gateway: gateway.into(),
        seq,
        kind: EventKind::Ticket,
        ticket: Some(id),
        ts_ms: 1_779_990_000_000 + seq,
        payload: serde_json::to_value(event).expect("ticket event serialises"),
    }
}

/// Figures of one run against one backend.
struct Measurement {
    events: usize,
    seconds: f64,
    batch_ms: Vec<f64>,
}

/// Sends every gateway's batches and returns the measurement.
async fn load(url: &str, tokens: &[String], batches: usize) -> anyhow::Result<Measurement> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(GATEWAYS)
        .timeout(Duration::from_secs(120))
        .build()?;
    // Batches are built before the clock starts, so serialising them is not measured.
    let mut work = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let gateway = format!("gw{index:03}");
        let building = format!("b{index:03}");
        let mut seq = 0i64;
        let bodies: Vec<Vec<u8>> = (0..batches)
            .map(|batch| {
                let events: Vec<Envelope> = (0..BATCH_EVENTS)
                    .map(|n| {
                        seq += 1;
                        let position = batch * BATCH_EVENTS + n;
                        let ticket = position % TICKETS_PER_GATEWAY;
                        let transition = (position / TICKETS_PER_GATEWAY) as i64 + 1;
                        ticket_event(&gateway, &building, ticket, transition, seq)
                    })
                    .collect();
                serde_json::to_vec(&json!({ "gateway": gateway, "events": events })).unwrap()
            })
            .collect();
        work.push((token.clone(), bodies));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (token, bodies) in work {
        let client = client.clone();
        let endpoint = format!("{url}/v1/events");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acked = 0usize;
            for body in bodies {
                let sent = Instant::now();
                let response = client
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .header("Caretaker-Protocol", "1")
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let reply: serde_json::Value = response.json().await?;
                anyhow::ensure!(status.is_success(), "batch got {status}: {reply}");
                acked += reply["acked"].as_array().map_or(0, Vec::len);
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>((acked, latencies))
        }));
    }
    let mut events = 0;
    let mut batch_ms = Vec::new();
    for task in tasks {
        let (acked, latencies) = task.await??;
        events += acked;
        batch_ms.extend(latencies);
    }
    Ok(Measurement {
        events,
        seconds: started.elapsed().as_secs_f64(),
        batch_ms,
    })
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    // Nearest-rank method.
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn run_backend(backend: &str, options: &Options) -> anyhow::Result<BTreeMap<String, f64>> {
    let database = match backend {
        "postgres" => Some(tokio::task::spawn_blocking(postgres::PgDatabase::fresh).await?),
        _ => None,
    };
    let central = match &database {
        Some(database) => Central::start(&database.url, &[]),
        None => Central::start_sqlite(&[]),
    };
    let store = caretaker::central::store::open(&central.db_url).await?;
    let mut tokens = Vec::new();
    for index in 0..GATEWAYS {
        let token = new_token()?;
        let gateway = format!("gw{index:03}");
        let building = format!("b{index:03}");
        store
            .add_token(&gateway, &building, &secret_hash(&token), 0)
            .await?;
        tokens.push(token);
    }
    let measurement = load(&central.url, &tokens, options.batches).await?;
    let expected = GATEWAYS * options.batches * BATCH_EVENTS;
    ensure!(
        measurement.events == expected,
        "{backend}: {} events acknowledged of {expected}",
        measurement.events
    );
    let stored = store.event_count().await?;
    ensure!(
        stored as usize == expected,
        "{backend}: {stored} events stored of {expected}"
    );
    let mut batch_ms = measurement.batch_ms;
    batch_ms.sort_by(f64::total_cmp);
    let mut figures = BTreeMap::new();
    let prefix = format!("central.{backend}");
    figures.insert(
        format!("{prefix}.events_per_s"),
        measurement.events as f64 / measurement.seconds,
    );
    figures.insert(
        format!("{prefix}.batch_p50_ms"),
        percentile(&batch_ms, 0.50),
    );
    figures.insert(
        format!("{prefix}.batch_p99_ms"),
        percentile(&batch_ms, 0.99),
    );
    let (status, _) = central.stop();
    ensure!(status.success(), "{backend}: central exited with {status}");
    drop(database);
    Ok(figures)
}

/// Cargo's target folder: the parent of the scratch folder cargo gives benchmarks.
fn target_dir() -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    scratch.parent().unwrap_or(scratch).to_path_buf()
}

fn run(options: &Options) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut figures = BTreeMap::new();
    for backend in &options.backends {
        println!(
            "{backend}: {GATEWAYS} gateways x {} batches x {BATCH_EVENTS} events",
            options.batches
        );
        figures.extend(runtime.block_on(run_backend(backend, options))?);
    }
    for (name, value) in &figures {
        println!("{name:<32} {value:>12.1}");
    }
    let output = match &options.output {
        Some(path) => path.clone(),
        None => target_dir().join("bench").join("central_load.json"),
    };
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let json = serde_json::to_string_pretty(&json!({ "figures": figures }))?;
    fs::write(&output, json + "\n")
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("\nfigures written to {}", output.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match args::options_or_exit("central_load", USAGE, parse_args(args)) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("central_load: {err:#}");
            ExitCode::FAILURE
        }
    }
}
