//! Sync with the central office: the outbox sender, the pull of office changes, the
//! heartbeat and telemetry summaries.
//!
//! Delivery is at least once and the office stores each event id once, so an event is
//! delivered exactly once in effect. An event leaves the outbox only when the office has
//! acknowledged it, or rejected it for good, in which case it moves to the table
//! `sync_rejected` with the status and error. Events of one ticket reach the office in
//! sequence order: an event left unacknowledged holds back the later events of its ticket
//! until a later round delivers it. Office changes are applied in id order, each pull in one
//! transaction with the new cursor (`meta` key `sync_pull_cursor`), so that a crash neither
//! applies a change twice nor skips one.

mod backoff;
mod batch;
mod client;
pub mod config;
mod health;
mod outbox;
mod task;
mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use client::{ClientError, PROTOCOL_HEADER};
pub use config::SyncConfig;
pub use health::{SyncHealth, SyncReport};
pub use outbox::{EVICTION_ORDER, PULL_CURSOR_KEY};
pub use telemetry::TELEMETRY_CURSOR_KEY;

use crate::metrics::Metrics;
use crate::store::StoreHandle;
use crate::time::Clock;

/// Applies one change pulled from the office to the gateway's store, inside the sync
/// transaction that also moves the pull cursor. An error rolls back the whole pull, which
/// is retried after a backoff.
pub trait ApplyChange: Send + Sync {
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        change: &crate::protocol::OfficeChange,
        now_ms: i64,
    ) -> rusqlite::Result<()>;
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot open the store for sync: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Settings and collaborators of the sync task.
pub struct SyncSetup {
    pub config: SyncConfig,
    /// This gateway's id, `[gateway] id`.
    pub gateway: String,
    /// The database file, which sync reads through a connection of its own.
    pub db_path: PathBuf,
    /// Applies pulled office changes. Without it, nothing is pulled.
    pub applier: Option<Arc<dyn ApplyChange>>,
}

/// Starts the sync task, which runs until `cancel` fires. Returns the task and the state
/// that `/healthz` reports.
pub fn spawn(
    setup: SyncSetup,
    store: StoreHandle,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, SyncHealth), SyncError> {
    let health = SyncHealth::new(&setup.config, setup.db_path.clone(), clock.clone());
    let task = task::SyncTask::new(
        setup.config,
        setup.gateway,
        &setup.db_path,
        store,
        clock,
        metrics,
        setup.applier,
        health.clone(),
    )?;
    Ok((tokio::spawn(task.run(cancel)), health))
}

/// Returns the SHA-256 of the file at `path` in hex, or `unreadable` when it cannot be read.
pub fn config_hash(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => sha2::Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
        Err(err) => {
            tracing::warn!(
                path = %path.display(),
                error = %err,
                "cannot read the config file to hash it for the heartbeat"
            );
            "unreadable".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_hash_is_sha256_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            super::config_hash(&path),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
