//! A gateway store with the sync task running in-process on a manual clock, for the sync
//! tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caretaker::metrics::Metrics;
use caretaker::protocol::{Envelope, EventKind, TicketEvent, TicketSnapshot, Transition};
use caretaker::secret::Secret;
use caretaker::store::{StoreHandle, StoreOptions, StoreWriter};
use caretaker::sync::{ApplyChange, SyncConfig, SyncHealth, SyncSetup};
use caretaker::time::{ManualClock, TimeKeeper, TimePolicy};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TOKEN: &str = "sync-test-token-0123456789";
pub const GATEWAY: &str = "gw-sync";

/// Wall time the manual clock starts at: 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub config_file: PathBuf,
    pub clock: Arc<ManualClock>,
    pub store: StoreHandle,
    pub metrics: Arc<Metrics>,
    pub keeper: Arc<TimeKeeper>,
    /// The sync state of the running sync task, as `/healthz` reports it.
    pub health: Option<SyncHealth>,
    writer: Option<StoreWriter>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    api: Option<tokio::task::JoinHandle<()>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// Settings scaled for tests: short intervals on the manual clock, short real timeouts.
pub fn test_config(url: &str, config_file: PathBuf) -> SyncConfig {
    let url = caretaker::sync::config::parse_base_url(url).unwrap();
    let mut config = SyncConfig::new(url, Secret::new(TOKEN), config_file);
    config.poll_interval = Duration::from_secs(1);
    config.pull_interval = Duration::from_secs(5);
    config.heartbeat_interval = Duration::from_secs(30);
    config.backoff_initial = Duration::from_secs(1);
    config.backoff_max = Duration::from_secs(8);
    config.request_timeout = Duration::from_millis(800);
    config.telemetry_interval = None;
    config
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gateway.db");
        let config_file = dir.path().join("gateway.toml");
        std::fs::write(&config_file, "[gateway]\nid = \"gw-sync\"\n").unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let policy = TimePolicy {
            earliest_valid_ms: 0,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock.clone(), policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            caretaker::store::open(StoreOptions::new(&db), keeper.clone(), metrics.clone())
                .unwrap();
        Harness {
            dir,
            db,
            config_file,
            clock,
            store,
            metrics,
            keeper,
            health: None,
            writer: Some(writer),
            cancel: CancellationToken::new(),
            task: None,
            api: None,
            ticker: None,
        }
    }

    pub fn config(&self, url: &str) -> SyncConfig {
        test_config(url, self.config_file.clone())
    }

    pub fn start_sync(&mut self, config: SyncConfig, applier: Option<Arc<dyn ApplyChange>>) {
        let setup = SyncSetup {
            config,
            gateway: GATEWAY.to_string(),
            db_path: self.db.clone(),
            applier,
        };
        let (task, health) = caretaker::sync::spawn(
            setup,
            self.store.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            self.cancel.clone(),
        )
        .unwrap();
        self.task = Some(task);
        self.health = Some(health);
    }

    /// Stops the sync task and waits for it, so that sync can start again with another
    /// configuration, as after a restart of the gateway.
    pub async fn stop_sync(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the sync task stops within 10 s of its cancel")
                .unwrap();
        }
        self.cancel = CancellationToken::new();
        self.health = None;
    }

    /// Serves the gateway's local API, with the running sync task's state, on a free
    /// loopback port and returns the port.
    pub async fn serve_api(&mut self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = caretaker::http::ApiState {
            metrics: self.metrics.clone(),
            keeper: self.keeper.clone(),
            store: self.store.clone(),
            modbus: None,
            mqtt_configured: false,
            write_token: None,
            intake: None,
            sync: self.health.clone(),
        };
        let cancel = self.cancel.clone();
        self.api = Some(tokio::spawn(async move {
            caretaker::http::serve(listener, state, cancel)
                .await
                .expect("serve the local API");
        }));
        port
    }

    /// Moves the manual clock forward by `step` every few real milliseconds.
    pub fn run_clock(&mut self, step: Duration) {
        let clock = self.clock.clone();
        self.ticker = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
                clock.advance(step);
            }
        }));
    }

    pub fn stop_clock(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }

    /// Adds one event to the outbox in a transaction of its own and returns its id.
    pub async fn enqueue(
        &self,
        kind: EventKind,
        ticket: Option<&str>,
        payload: serde_json::Value,
    ) -> Uuid {
        let ticket = ticket.map(str::to_string);
        let ts_ms = caretaker::time::Clock::wall_ms(self.clock.as_ref());
        self.store
            .transact(move |tx| {
                caretaker::store::outbox::enqueue(tx, kind, ticket.as_deref(), ts_ms, &payload)
            })
            .await
            .unwrap()
            .expect("the outbox is on in the sync harness")
    }

    pub fn connect(&self) -> rusqlite::Connection {
        caretaker::store::connect(&self.db, false).unwrap()
    }

    pub fn outbox_count(&self) -> i64 {
        self.connect()
            .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
            .unwrap()
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = self.metrics.render();
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.parse().unwrap())
            })
            .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
    }

    pub async fn shutdown(mut self) {
        self.stop_clock();
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(api) = self.api.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), api).await;
        }
        let Harness { store, writer, .. } = self;
        drop(store);
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

/// Waits up to `timeout` of real time for `check` to hold.
pub async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Asserts that the first arrival of each event keeps the gateway's sequence order per
/// ticket, and returns the first-arrival sequences per ticket.
pub fn assert_order_per_ticket(deliveries: &[Envelope]) -> HashMap<String, Vec<i64>> {
    let mut seen = std::collections::HashSet::new();
    let mut per_ticket: HashMap<String, Vec<i64>> = HashMap::new();
    for event in deliveries {
        if !seen.insert(event.event_id) {
            continue;
        }
        if let Some(ticket) = &event.ticket {
            per_ticket
                .entry(ticket.clone())
                .or_default()
                .push(event.seq);
        }
    }
    for (ticket, seqs) in &per_ticket {
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "ticket {ticket} arrived out of order: {seqs:?}"
        );
    }
    per_ticket
}

/// Builds a JSON payload whose text is exactly `bytes` long.
pub fn payload_of_size(bytes: usize) -> serde_json::Value {
    let base = r#"{"note":""}"#.len();
    assert!(bytes >= base, "payload of {bytes} bytes is too small");
    let value = serde_json::json!({ "note": "x".repeat(bytes - base) });
    assert_eq!(value.to_string().len(), bytes);
    value
}

/// Builds the payload of a ticket event: ticket `ticket` of `building` after its transition `seq`.
pub fn ticket_payload(ticket: &str, building: &str, seq: i64) -> serde_json::Value {
    let state = if seq == 1 { "new" } else { "triaged" };
    let event = TicketEvent {
        ticket: TicketSnapshot {
            id: ticket.to_string(),
            building: building.to_string(),
            state: state.to_string(),
            category: "plumbing".to_string(),
            urgency: "normal".to_string(),
            needs_human: false,
            escalation_reason: None,
            unit: None,
            asset: None,
            summary: format!("step {seq}"),
            sources: Vec::new(),
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            ack_due_ms: None,
            onsite_due_ms: None,
            resolve_due_ms: None,
            opened_ms: START_MS,
            updated_ms: START_MS + seq,
        },
        transition: Transition {
            seq,
            ts_ms: START_MS + seq,
            from: (seq > 1).then(|| "new".to_string()),
            to: state.to_string(),
            actor: "rule:sync-test".to_string(),
            reason: format!("step {seq}"),
        },
    };
    serde_json::to_value(event).unwrap()
}
