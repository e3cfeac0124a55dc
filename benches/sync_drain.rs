//! Time to drain a 7-day backlog of one building after an outage.
//!
//! Fills a gateway store's outbox with what a busy building produces in `--days` days
//! without its central office (per day: `--tickets-per-day` tickets, each with its
//! transitions, audit rows and tenant updates, a few anomaly summaries and hourly telemetry),
//! then starts a central office on a temporary SQLite file and the gateway's sync task with its
//! default settings, and times the drain until the outbox is empty. Checks that the office
//! stored every event once. Prints the figures and writes them as JSON
//! (`{"figures": {NAME: VALUE}}`) to `target/bench/sync_drain.json`. Without the `--bench`
//! argument that `cargo bench` passes, as under `cargo test --all-targets`, it runs nothing.

#[path = "common/args.rs"]
mod args;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use args::Invocation;
use caretaker::central::metrics::CentralMetrics;
use caretaker::central::server::{self, ApiConfig, ApiState, Listen};
use caretaker::central::{auth, store as central_store};
use caretaker::metrics::Metrics;
use caretaker::protocol::{
    AuditEntry, EventKind, TenantUpdate, TicketEvent, TicketSnapshot, TicketSource, Transition,
};
use caretaker::secret::Secret;
use caretaker::store::{outbox, StoreOptions};
use caretaker::sync::config::SyncConfig;
use caretaker::time::{Clock, SystemClock, TimeKeeper, TimePolicy};
use tokio_util::sync::CancellationToken;

const GATEWAY: &str = "bench-gw";
const BUILDING: &str = "bench-building";
const HOUR_MS: i64 = 3_600_000;
const STATES: [&str; 6] = [
    "new",
    "triaged",
    "dispatched",
    "scheduled",
    "in_progress",
    "resolved",
];

const USAGE: &str = "\
Usage: cargo bench --bench sync_drain [-- OPTIONS]

Options:
  --days N              length of the outage in days (default 7)
  --tickets-per-day N   tickets the building opens a day (default 40)
  --quick               accepted for scripts that pass it to every benchmark; the size stays
                        as set by --days and --tickets-per-day
  --output PATH         JSON output (default target/bench/sync_drain.json)
  --help                print this help
";

struct Options {
    days: i64,
    tickets_per_day: i64,
    output: PathBuf,
}

fn parse_args(args: Vec<String>) -> anyhow::Result<Invocation<Options>> {
    let defaults = Options {
        days: 7,
        tickets_per_day: 40,
        output: PathBuf::from("target/bench/sync_drain.json"),
    };
    args::parse(args, USAGE, defaults, |options, arg, args| {
        match arg {
            "--quick" => {}
            "--days" => options.days = args.positive("--days")?,
            "--tickets-per-day" => options.tickets_per_day = args.positive("--tickets-per-day")?,
            "--output" => options.output = args.path("--output")?,
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// Builds the events of one ticket's life: a transition, its audit row and, for some, a tenant
/// update.
fn ticket_events(number: i64, opened_ms: i64) -> Vec<(EventKind, Option<String>, i64, String)> {
    let id = format!("{GATEWAY}-{number:06}");
    let mut events = Vec::new();
    let mut from: Option<String> = None;
    for (index, state) in STATES.iter().enumerate() {
        let ts_ms = opened_ms + index as i64 * 20 * 60_000;
        let seq = index as i64 + 1;
        let snapshot = TicketSnapshot {
            id: id.clone(),
            building: BUILDING.to_string(),
            state: state.to_string(),
            category: "plumbing".to_string(),
            urgency: "normal".to_string(),
            needs_human: false,
            escalation_reason: None,
            unit: Some("2.tv".to_string()),
            asset: None,
            summary: "The kitchen tap drips and the cabinet under the sink is damp".to_string(),
            sources: vec![TicketSource {
                kind: "message".to_string(),
                id: format!("01JBENCH{number:018}"),
            }],
            vendor: (index >= 2).then(|| "aqua-vvs".to_string()),
            slot_start_ms: (index >= 3).then_some(opened_ms + 26 * HOUR_MS),
            slot_end_ms: (index >= 3).then_some(opened_ms + 28 * HOUR_MS),
            ack_due_ms: Some(opened_ms + 4 * HOUR_MS),
            onsite_due_ms: Some(opened_ms + 72 * HOUR_MS),
            resolve_due_ms: Some(opened_ms + 168 * HOUR_MS),
            opened_ms,
            updated_ms: ts_ms,
        };
        let transition = Transition {
            seq,
            ts_ms,
            from: from.clone(),
            to: state.to_string(),
            actor: "rule:dispatch".to_string(),
            reason: format!("step {seq} of the ticket's life"),
        };
        from = Some(state.to_string());
        let event = TicketEvent {
            ticket: snapshot,
            transition,
        };
        events.push((
            EventKind::Ticket,
            Some(id.clone()),
            ts_ms,
            serde_json::to_string(&event).expect("a ticket event serialises"),
        ));
        let audit = AuditEntry {
            ticket: id.clone(),
            ts_ms,
            actor: "rule:dispatch".to_string(),
            action: format!("ticket.{state}"),
            detail: serde_json::json!({"rule": "dispatch", "version": 1, "outcome": state}),
            hash: format!("{:064x}", number * 16 + seq),
        };
        events.push((
            EventKind::Audit,
            Some(id.clone()),
            ts_ms,
            serde_json::to_string(&audit).expect("an audit entry serialises"),
        ));
        if matches!(*state, "new" | "scheduled" | "resolved") {
            let update = TenantUpdate {
                ticket: id.clone(),
                unit: "2.tv".to_string(),
                language: "da".to_string(),
                template: state.to_string(),
                text: format!("Sag {id}: status er nu {state}."),
                ts_ms,
            };
            events.push((
                EventKind::TenantUpdate,
                Some(id.clone()),
                ts_ms,
                serde_json::to_string(&update).expect("an update serialises"),
            ));
        }
    }
    events
}

/// Builds every event of the outage, in the order the gateway would have produced them.
fn backlog(options: &Options, start_ms: i64) -> Vec<(EventKind, Option<String>, i64, String)> {
    let mut events = Vec::new();
    let mut number = 0;
    for day in 0..options.days {
        let day_ms = start_ms + day * 24 * HOUR_MS;
        for ticket in 0..options.tickets_per_day {
            number += 1;
            let opened_ms = day_ms + ticket * (24 * HOUR_MS / options.tickets_per_day);
            events.extend(ticket_events(number, opened_ms));
        }
        for anomaly in 0..4 {
            let ts_ms = day_ms + anomaly * 6 * HOUR_MS;
            let payload = serde_json::json!({
                "asset": "heating-pump-1",
                "fault_kind": "level_shift",
                "detector": "stream",
                "score": 0.93,
                "threshold": 0.5,
                "opened_ms": ts_ms,
                "sensors": [{
                    "sensor": "heating-pump-1.bearing_temperature_drive_end",
                    "unit": "degC",
                    "points": (0..120).map(|minute| {
                        serde_json::json!([ts_ms - HOUR_MS + minute * 60_000, 60.0 + minute as f64 / 10.0])
                    }).collect::<Vec<_>>(),
                }],
            });
            events.push((EventKind::Anomaly, None, ts_ms, payload.to_string()));
        }
        for hour in 0..24 {
            let ts_ms = day_ms + hour * HOUR_MS;
            let sensors: Vec<_> = (0..40)
                .map(|sensor| {
                    serde_json::json!({
                        "sensor": format!("plant.sensor_{sensor:02}"),
                        "hour_ms": ts_ms,
                        "count": 360, "min": 20.1, "max": 24.9, "mean": 22.4,
                    })
                })
                .collect();
            let payload = serde_json::json!({ "hour_ms": ts_ms, "sensors": sensors });
            events.push((EventKind::Telemetry, None, ts_ms, payload.to_string()));
        }
    }
    events.sort_by_key(|(_, _, ts_ms, _)| *ts_ms);
    events
}

async fn run(options: Options) -> anyhow::Result<BTreeMap<String, f64>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let now_ms = clock.wall_ms();
    let cancel = CancellationToken::new();

    let central_url = format!("sqlite://{}", dir.path().join("central.db").display());
    let office = central_store::open(&central_url).await?;
    let token = auth::new_token()?;
    office
        .add_token(GATEWAY, BUILDING, &auth::secret_hash(&token), now_ms)
        .await?;
    let app = server::router(ApiState {
        store: Arc::clone(&office),
        clock: Arc::clone(&clock),
        metrics: Arc::new(CentralMetrics::new()),
        config: Arc::new(ApiConfig {
            max_body_bytes: caretaker::central::DEFAULT_MAX_BODY_BYTES,
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shutdown = cancel.clone().cancelled_owned();
    let server = tokio::spawn(server::serve(Listen::Plain(listener), app, shutdown));

    let db = dir.path().join("gateway.db");
    let metrics = Arc::new(Metrics::new());
    let keeper = Arc::new(TimeKeeper::new(Arc::clone(&clock), TimePolicy::default()));
    let (store, writer) = caretaker::store::open(StoreOptions::new(&db), keeper, metrics.clone())?;

    let start_ms = now_ms - options.days * 24 * HOUR_MS;
    let events = Arc::new(backlog(&options, start_ms));
    let total = events.len() as i64;
    let bytes: usize = events.iter().map(|(_, _, _, payload)| payload.len()).sum();
    let queued = Arc::clone(&events);
    store
        .transact(move |tx| {
            for (kind, ticket, ts_ms, payload) in queued.iter() {
                let payload: serde_json::Value =
                    serde_json::from_str(payload).expect("the bench's payloads are JSON");
                outbox::enqueue(tx, *kind, ticket.as_deref(), *ts_ms, &payload)?;
            }
            Ok(())
        })
        .await?;
    println!(
        "backlog: {total} events, {:.1} MiB of payload, {} days, {} tickets a day",
        bytes as f64 / (1024.0 * 1024.0),
        options.days,
        options.tickets_per_day
    );

    let url = reqwest::Url::parse(&format!("http://{address}"))?;
    let mut config = SyncConfig::new(url, Secret::new(token), dir.path().join("gateway.toml"));
    config.telemetry_interval = None;
    let drain_rate = config.drain_events_per_sec;
    let setup = caretaker::sync::SyncSetup {
        config,
        gateway: GATEWAY.to_string(),
        db_path: db.clone(),
        applier: None,
    };
    let started = Instant::now();
    let (task, _health) =
        caretaker::sync::spawn(setup, store.clone(), clock, metrics, cancel.clone())?;

    let reader = caretaker::store::connect(&db, false)?;
    let deadline = started + Duration::from_secs(1800);
    loop {
        let left: i64 = reader.query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))?;
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("timed out: the outbox still contains {left} of {total} events after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let stored = office.event_count().await?;
    cancel.cancel();
    let _ = task.await;
    let _ = server.await;
    drop(store);
    tokio::task::spawn_blocking(move || writer.join()).await?;
    if stored != total {
        bail!("the office stored {stored} events of the {total} sent; each must be stored once");
    }

    let mut figures = BTreeMap::new();
    figures.insert("sync_drain.backlog_events".to_string(), total as f64);
    figures.insert("sync_drain.seconds".to_string(), seconds);
    figures.insert(
        "sync_drain.events_per_sec".to_string(),
        total as f64 / seconds,
    );
    figures.insert("sync_drain.rate_cap_per_sec".to_string(), drain_rate as f64);
    Ok(figures)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match args::options_or_exit("sync_drain", USAGE, parse_args(args)) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match run_and_write(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sync_drain: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the drain, prints the figures and writes them to the output file.
fn run_and_write(options: Options) -> anyhow::Result<()> {
    let output = options.output.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let figures = runtime.block_on(run(options))?;
    for (name, value) in &figures {
        println!("{name:<34} {value:>12.2}");
    }
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "figures": figures }))?;
    std::fs::write(&output, json + "\n")
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("\nfigures written to {}", output.display());
    Ok(())
}
