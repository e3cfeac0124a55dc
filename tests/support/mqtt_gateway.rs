//! The gateway's MQTT ingest and store writer, run in-process against a test's broker, and
//! queries of what landed in SQLite.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use caretaker::config::{Diagnostics, TomlFile};
use caretaker::metrics::Metrics;
use caretaker::mqtt::MqttConfig;
use caretaker::store::{self, StoreOptions, StoreWriter};
use caretaker::time::{SystemClock, TimeKeeper, TimePolicy};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// 2020-01-01T00:00:00Z: the earliest valid timestamp in these tests, so that the fixed
/// timestamps of the field cases (2022, 2023) are inside the window.
pub const EARLIEST_VALID_MS: i64 = 1_577_836_800_000;

/// Parses `[mqtt]` config text, with relative paths resolved from `base_dir`.
pub fn mqtt_config(text: &str, base_dir: &Path) -> MqttConfig {
    let mut diags = Diagnostics::default();
    let file = TomlFile::parse(&base_dir.join("gateway.toml"), text.to_string(), &mut diags)
        .expect("config parses");
    let config = caretaker::mqtt::load(&file, base_dir, &mut diags);
    assert!(diags.is_empty(), "config problems:\n{diags}");
    config.expect("an [mqtt] section")
}

/// MQTT ingest plus the store writer, stopped by [`Gateway::stop`].
pub struct Gateway {
    pub db: PathBuf,
    pub metrics: Arc<Metrics>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    writer: Option<StoreWriter>,
}

impl Gateway {
    pub fn start(config: MqttConfig, db: &Path) -> Gateway {
        let metrics = Arc::new(Metrics::new());
        let policy = TimePolicy {
            earliest_valid_ms: EARLIEST_VALID_MS,
            ..TimePolicy::default()
        };
        let keeper = Arc::new(TimeKeeper::new(Arc::new(SystemClock::new()), policy));
        let (handle, writer) = store::open(StoreOptions::new(db), keeper.clone(), metrics.clone())
            .expect("open the store");
        let cancel = CancellationToken::new();
        let task = caretaker::mqtt::spawn(config, handle, keeper, metrics.clone(), cancel.clone());
        Gateway {
            db: db.to_path_buf(),
            metrics,
            cancel,
            task: Some(task),
            writer: Some(writer),
        }
    }

    /// Cancels ingest, waits for it to commit and acknowledge what it took, and stops the
    /// store writer.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("mqtt ingest stops within 30 s")
                .expect("mqtt ingest task does not panic");
        }
        if let Some(writer) = self.writer.take() {
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .unwrap();
        }
    }

    /// Returns the value of a metric line, such as `caretaker_mqtt_connection_errors_total`.
    pub fn metric(&self, line_start: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// One row of `readings_view`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub sensor_id: String,
    pub asset: String,
    pub metric: String,
    pub unit: String,
    pub value: Option<f64>,
    pub text_value: Option<String>,
    pub quality: String,
    pub source_ts_ms: i64,
    pub detail: Option<String>,
}

/// One row of the quarantine table.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub origin: String,
    pub reason: String,
    pub raw: Vec<u8>,
}

fn connect(db: &Path) -> Option<rusqlite::Connection> {
    if !db.exists() {
        return None;
    }
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    Some(conn)
}

/// Returns every reading stored so far, in insertion order.
pub fn readings(db: &Path) -> Vec<Row> {
    let Some(conn) = connect(db) else {
        return Vec::new();
    };
    let mut statement = conn
        .prepare(
            "SELECT sensor_id, asset, metric, unit, value, text_value, quality, source_ts_ms, detail
             FROM readings_view ORDER BY id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(Row {
                sensor_id: row.get(0)?,
                asset: row.get(1)?,
                metric: row.get(2)?,
                unit: row.get(3)?,
                value: row.get(4)?,
                text_value: row.get(5)?,
                quality: row.get(6)?,
                source_ts_ms: row.get(7)?,
                detail: row.get(8)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Returns every quarantined payload so far, in insertion order.
pub fn quarantine(db: &Path) -> Vec<Quarantined> {
    let Some(conn) = connect(db) else {
        return Vec::new();
    };
    let mut statement = conn
        .prepare("SELECT origin, reason, raw FROM quarantine WHERE source = 'mqtt' ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(Quarantined {
                origin: row.get(0)?,
                reason: row.get(1)?,
                raw: row.get(2)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes; returns the last
/// result.
pub async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// Runs blocking work, such as `mosquitto_pub`, off the test's runtime threads.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// Now in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
