//! The local SQLite store. API contract; the implementation follows in this module.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::reading::{QuarantineEntry, Reading};

/// An automated decision or an operator action, kept append-only.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub ts_ms: i64,
    /// Who acted: `http:<peer>`, `modbus`, `rule:<name>` and so on.
    pub actor: String,
    /// What was done, such as `modbus.write`.
    pub action: String,
    /// What it was done to, such as `pump-1.setpoint`.
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
}

/// What a committed batch did.
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
}

pub(crate) struct Job {
    pub(crate) batch: Batch,
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
            Ok(Err(_)) | Err(_) => Err(StoreError::Closed),
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
            queued: std::time::Instant::now(),
            done,
        };
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        Ok(Pending { rx })
    }

    /// Queues a batch and waits for its commit.
    pub async fn write(&self, batch: Batch) -> Result<Committed, StoreError> {
        self.submit(batch).await?.await
    }
}
