//! The local SQLite store: readings, rollups, quarantine and audit in one file.
//!
//! The database runs in WAL mode. With `synchronous = FULL` (the default) a commit is on disk
//! when it returns, so a batch acknowledged after its commit survives power loss. A crash
//! leaves a WAL that SQLite replays on the next open without any manual step. One writer
//! thread owns the write connection ([`writer`]); readers may open their own connections.
//!
//! Tables (see [`schema`]): `sensors`, `readings` (deduplicated on sensor and source
//! timestamp), `rollup_minute`, `rollup_hour`, `quarantine`, `audit` (append-only),
//! `evictions`, `meta`, and the view `readings_view` that joins readings with their sensor.
//! `messages` contains tenant messages and their triage ([`messages`] has its duplicate rule).

pub mod audit;
mod maintenance;
mod messages;
pub mod outbox;
pub mod schema;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::reading::{QuarantineEntry, Reading};
use crate::time::TimeKeeper;

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_days: u32,
    pub minute_days: u32,
    pub hour_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_days: 14,
            minute_days: 90,
            hour_days: 3650,
        }
    }
}

/// Settings of the store: its file, durability, queue and bounds.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    /// `FULL` makes every commit durable before it returns; `NORMAL` may lose the last
    /// commits on power loss (never corrupts), which suits QoS 0 only setups.
    pub synchronous_full: bool,
    /// Batches waiting for the writer before `submit` makes the caller wait.
    pub queue_batches: usize,
    /// Readings gathered into one transaction from the waiting batches.
    pub max_batch_readings: usize,
    /// Maximum wait after a batch arrives for more batches to commit with it. Adds up to this
    /// much latency to each acknowledgement and saves disk writes at low rates.
    pub commit_delay: Duration,
    pub retention: Retention,
    /// Size cap of the live pages of the database file.
    pub max_size_bytes: u64,
    pub quarantine_max_rows: u64,
    /// How often rollups, retention and the size cap run.
    pub maintenance_interval: Duration,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            path: path.into(),
            synchronous_full: true,
            queue_batches: 256,
            max_batch_readings: 5_000,
            commit_delay: Duration::from_millis(50),
            retention: Retention::default(),
            max_size_bytes: 1024 * 1024 * 1024,
            quarantine_max_rows: 10_000,
            maintenance_interval: Duration::from_secs(10),
        }
    }
}

/// The writer thread; [`StoreWriter::join`] waits for it to commit what is queued and stop,
/// which happens once every [`StoreHandle`] is dropped.
pub struct StoreWriter {
    thread: std::thread::JoinHandle<()>,
}

impl StoreWriter {
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the store writer thread panicked");
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Opens (creating or migrating) the database and starts its writer thread.
pub fn open(
    options: StoreOptions,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
) -> Result<(StoreHandle, StoreWriter), StoreError> {
    let lock = lock_instance(&options.path)?;
    let conn = connect_when_unlocked(&options.path, options.synchronous_full)?;
    // Checkpoints run on their own thread (see `checkpoint_loop`), so that copying the WAL
    // into the database never holds up a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|source| StoreError::Open {
            path: options.path.display().to_string(),
            source,
        })?;
    let checkpointer = connect(&options.path, options.synchronous_full)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpoint_stop = stop.clone();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || checkpoint_loop(checkpointer, &checkpoint_stop))
        .map_err(|err| StoreError::Thread(err.to_string()))?;
    let path_text = options.path.display().to_string();
    let queue = options.queue_batches.max(1);
    let writer =
        writer::Writer::new(conn, keeper, metrics, options).map_err(|source| StoreError::Open {
            path: path_text.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel(queue);
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            writer.run(rx);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            // Held until the writer is done, so that a second gateway cannot start on the
            // same database in the meantime.
            drop(lock);
        })
        .map_err(|err| StoreError::Thread(err.to_string()))?;
    Ok((StoreHandle { tx }, StoreWriter { thread }))
}

/// Copies committed WAL frames into the database every second with a passive checkpoint,
/// which neither waits for nor blocks the writer. The next commit after a complete
/// checkpoint starts the WAL from its beginning again, so the WAL stays small.
fn checkpoint_loop(conn: Connection, stop: &std::sync::atomic::AtomicBool) {
    let mut failures = crate::logging::RateLimit::new(Duration::from_secs(60));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Err(err) = result {
            if let Some(held_back) = failures.allow(std::time::Instant::now()) {
                tracing::warn!(error = %err, repeats_not_logged = held_back, "WAL checkpoint failed");
            }
        }
    }
    // A final full checkpoint leaves the database file complete on a clean shutdown.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Takes an exclusive lock on `<database>.lock`, so that two gateways never write one
/// database. The operating system releases it when the process ends, however it ends.
fn lock_instance(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| StoreError::Lock(format!("cannot open {}: {err}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Lock(format!(
            "another caretaker process is using {}; stop it or configure another store.path",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(StoreError::Lock(format!(
            "cannot lock {}: {err}",
            lock_path.display()
        ))),
    }
}

/// Opens the database like [`connect`], waiting up to 30 s while another process (a
/// backup, an operator's `sqlite3` shell) holds a lock on it.
fn connect_when_unlocked(path: &Path, synchronous_full: bool) -> Result<Connection, StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match connect(path, synchronous_full) {
            Err(StoreError::Open { source, .. })
                if matches!(
                    source.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                tracing::warn!(database = %path.display(), "the database is locked; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

/// Opens a connection with the gateway's settings and brings the schema up to date.
pub fn connect(path: &Path, synchronous_full: bool) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|err| StoreError::Open {
            path: path.display().to_string(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create folder {}: {err}", parent.display())),
            ),
        })?;
    }
    let mut conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_error)?;
    let level = if synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", level)
        .map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_error)?;
    // Truncate the WAL file back to 64 MiB after a checkpoint has emptied it.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(open_error)?;
    schema::migrate(&mut conn).map_err(open_error)?;
    Ok(conn)
}

/// An automated decision or an operator action, kept append-only.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub ts_ms: i64,
    /// The actor, such as `http:<peer>`, `modbus` or `rule:<name>`.
    pub actor: String,
    /// The action, such as `modbus.write`.
    pub action: String,
    /// The object of the action, such as `pump-1.setpoint`.
    pub subject: String,
    /// Inputs and outcome as JSON.
    pub detail: serde_json::Value,
}

/// Everything one ingest step wants committed together.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub readings: Vec<Reading>,
    pub quarantine: Vec<QuarantineEntry>,
    pub audit: Vec<AuditRecord>,
    /// Tenant messages to store, triage or purge.
    pub messages: Vec<crate::intake::MessageOp>,
}

/// An anomaly event as the detectors open it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// The condition: at most one open event per key.
    pub alarm_key: String,
    pub asset: String,
    pub sensors: Vec<String>,
    /// `stream`, `multivariate`, `forecast` or `health`.
    pub detector: String,
    pub fault_kind: String,
    pub score: f64,
    pub threshold: f64,
    /// Contributing sensors with their values, as a JSON array.
    pub contributions: serde_json::Value,
    pub opened_ms: i64,
}

/// A change to anomaly events and requests.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectOp {
    /// Opens an event and, when given, the request raised with it. A key that already has an
    /// open event or request is left as it is, so that replaying an op after a crash is
    /// harmless.
    Open {
        event: EventRow,
        request: Option<Box<crate::detect::request::MaintenanceRequest>>,
    },
    /// Closes the open event and request of `alarm_key`, if any.
    Close { alarm_key: String, closed_ms: i64 },
}

/// The rows one detection step commits in one transaction: its events and requests, their
/// audit records and the id of the last reading it has seen, so that a restart resumes after
/// it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectWrite {
    /// Highest `readings.id` processed; stored in `meta` under [`DETECT_CURSOR_KEY`].
    pub cursor: Option<i64>,
    pub ops: Vec<DetectOp>,
    pub audit: Vec<AuditRecord>,
}

/// The `meta` key of the detection cursor.
pub const DETECT_CURSOR_KEY: &str = "detect_cursor";

/// Counts of a committed batch: readings, and tenant messages, stored or skipped as
/// duplicates.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub stored: usize,
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store writer has stopped")]
    Closed,
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot start the store writer thread: {0}")]
    Thread(String),
    #[error("{0}")]
    Lock(String),
    /// The work given to [`StoreHandle::transact`] failed; nothing of it was committed.
    #[error("transaction rolled back: {0}")]
    Rejected(String),
}

/// Work that runs inside a write transaction of its own. It may run more than once: when the
/// commit fails for a passing reason (a lock, a full disk), the transaction is rolled back and
/// the work runs again.
pub(crate) type Exec = Box<dyn FnMut(&rusqlite::Transaction<'_>) -> rusqlite::Result<()> + Send>;

pub(crate) struct Job {
    pub(crate) batch: Batch,
    pub(crate) detect: Option<DetectWrite>,
    pub(crate) exec: Option<Exec>,
    pub(crate) queued: std::time::Instant,
    pub(crate) done: oneshot::Sender<Result<Committed, String>>,
}

/// A cheap, cloneable handle to the single writer task.
#[derive(Clone)]
pub struct StoreHandle {
    pub(crate) tx: mpsc::Sender<Job>,
}

/// Resolves once the batch is committed (or has failed for good).
pub struct Pending {
    rx: oneshot::Receiver<Result<Committed, String>>,
}

impl Future for Pending {
    type Output = Result<Committed, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|result| match result {
            Ok(Ok(committed)) => Ok(committed),
            Ok(Err(message)) => Err(StoreError::Rejected(message)),
            Err(_) => Err(StoreError::Closed),
        })
    }
}

impl StoreHandle {
    /// Queues a batch, waiting while the writer's queue is full, and returns a future that
    /// resolves when the batch is committed. Acknowledge input to its sender only after that.
    pub async fn submit(&self, batch: Batch) -> Result<Pending, StoreError> {
        let (done, rx) = oneshot::channel();
        let job = Job {
            batch,
            detect: None,
            exec: None,
            queued: std::time::Instant::now(),
            done,
        };
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        Ok(Pending { rx })
    }

    /// Returns whether the writer has stopped, after which nothing more can be committed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queues a batch and waits for its commit.
    pub async fn write(&self, batch: Batch) -> Result<Committed, StoreError> {
        self.submit(batch).await?.await
    }

    /// Commits a detection step (events, requests, audit and cursor) in one transaction and
    /// waits for it.
    pub async fn write_detect(&self, write: DetectWrite) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        let job = Job {
            batch: Batch::default(),
            detect: Some(write),
            exec: None,
            queued: std::time::Instant::now(),
            done,
        };
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        Pending { rx }.await.map(|_| ())
    }

    /// Runs `work` in a write transaction of its own on the writer thread, commits it and
    /// returns what `work` returned. An error from `work` rolls the transaction back and comes
    /// back as [`StoreError::Rejected`]; a commit that fails for a passing reason (a lock held
    /// by another process, a full disk) is retried, running `work` again, so `work` must read
    /// what it needs inside the transaction.
    pub async fn transact<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let out = Arc::clone(&slot);
        let exec: Exec = Box::new(move |tx| {
            let value = work(tx)?;
            *out.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
            Ok(())
        });
        let (done, rx) = oneshot::channel();
        let job = Job {
            batch: Batch::default(),
            detect: None,
            exec: Some(exec),
            queued: std::time::Instant::now(),
            done,
        };
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        Pending { rx }.await?;
        let value = slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        value.ok_or(StoreError::Closed)
    }
}

#[cfg(test)]
mod tests;
