//! Triage of stored messages and their retention, on one background task.
//!
//! A message is committed first and classified right after, so that a classifier fault can
//! never lose a message. The task takes the ids of committed messages from a queue, and
//! every [`SWEEP_INTERVAL`] (and at start) it also reads the messages still in state
//! `received` from the database: those left behind by a crash, a full queue or a shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::{MessageOp, Verdict};
use crate::store::{Batch, StoreHandle};
use crate::time::TimeKeeper;
use crate::triage::{Classifier, Triage};

/// Messages classified into one store batch.
const MAX_BATCH: usize = 64;

/// Interval of the sweep for messages that are stored but not triaged.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Interval of the retention pass.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

const DAY_MS: i64 = 86_400_000;

/// A committed message waiting for triage.
#[derive(Debug, Clone)]
pub struct Untriaged {
    pub id: String,
    pub text: String,
}

/// The triage and retention task's inputs.
pub(super) struct Triager {
    pub(super) queue: mpsc::Receiver<Untriaged>,
    pub(super) store: StoreHandle,
    pub(super) keeper: Arc<TimeKeeper>,
    pub(super) database: PathBuf,
    pub(super) retention_days: u32,
}

impl Triager {
    /// Runs until `cancel` fires or the store stops. Messages still queued then stay in state
    /// `received` and are triaged by the sweep of the next run.
    pub(super) async fn run(mut self, cancel: CancellationToken) {
        let classifier = match Classifier::builtin() {
            Ok(classifier) => Some(classifier),
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "the built-in triage model does not load; messages are stored but stay \
                     untriaged"
                );
                None
            }
        };
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        let mut retention = tokio::time::interval(RETENTION_INTERVAL);
        let mut ready = Vec::with_capacity(MAX_BATCH);
        loop {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => break,
                received = self.queue.recv_many(&mut ready, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    let batch = std::mem::take(&mut ready);
                    self.triage(classifier.as_ref(), batch).await
                }
                _ = sweep.tick() => self.sweep(classifier.as_ref()).await,
                _ = retention.tick() => self.purge().await,
            };
            if outcome.is_err() {
                tracing::error!("message triage stops because the store writer has stopped");
                break;
            }
        }
        tracing::debug!("message triage stopped");
    }

    async fn triage(
        &self,
        classifier: Option<&Classifier>,
        messages: Vec<Untriaged>,
    ) -> Result<(), crate::store::StoreError> {
        let Some(classifier) = classifier else {
            return Ok(());
        };
        if messages.is_empty() {
            return Ok(());
        }
        let triaged_ms = self.keeper.receive_time().ts_ms;
        let mut ops = Vec::with_capacity(messages.len());
        for message in &messages {
            let verdict = verdict(classifier.classify(&message.text));
            tracing::debug!(
                id = %message.id,
                intent = verdict.intent.as_deref().unwrap_or("-"),
                urgency = verdict.urgency.as_deref().unwrap_or("-"),
                needs_human = verdict.needs_human,
                confidence = verdict.confidence,
                "message triaged"
            );
            ops.push(MessageOp::Triage {
                id: message.id.clone(),
                verdict,
                triaged_ms,
            });
        }
        let batch = Batch {
            messages: ops,
            ..Batch::default()
        };
        self.store.write(batch).await.map(|_| ())
    }

    /// Triages every message stored but not yet triaged, in chunks.
    async fn sweep(&self, classifier: Option<&Classifier>) -> Result<(), crate::store::StoreError> {
        if classifier.is_none() {
            return Ok(());
        }
        loop {
            let database = self.database.clone();
            let found = tokio::task::spawn_blocking(move || untriaged(&database, MAX_BATCH)).await;
            let messages = match found {
                Ok(Ok(messages)) => messages,
                Ok(Err(err)) => {
                    tracing::warn!(
                        error = %err,
                        database = %self.database.display(),
                        "cannot read untriaged messages; retrying at the next sweep"
                    );
                    return Ok(());
                }
                Err(_) => return Ok(()),
            };
            let full = messages.len() == MAX_BATCH;
            self.triage(classifier, messages).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Deletes messages older than the retention period. Skipped while the clock is not
    /// trusted, because a clock at 1970 or far ahead would delete the wrong rows.
    async fn purge(&self) -> Result<(), crate::store::StoreError> {
        if !self.keeper.is_trusted() {
            return Ok(());
        }
        let now = self.keeper.receive_time().ts_ms;
        let before_ms = now - i64::from(self.retention_days) * DAY_MS;
        let batch = Batch {
            messages: vec![MessageOp::Purge { before_ms }],
            ..Batch::default()
        };
        self.store.write(batch).await.map(|_| ())
    }
}

/// Reads up to `limit` messages in state `received`, oldest first.
fn untriaged(database: &std::path::Path, limit: usize) -> rusqlite::Result<Vec<Untriaged>> {
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut statement = conn
        .prepare("SELECT id, text FROM messages WHERE state = 'received' ORDER BY id LIMIT ?1")?;
    let rows = statement.query_map([limit as i64], |row| {
        Ok(Untriaged {
            id: row.get(0)?,
            text: row.get(1)?,
        })
    })?;
    rows.collect()
}

/// Converts the classifier's output into the stored verdict.
fn verdict(triage: Triage) -> Verdict {
    Verdict {
        language: Some(triage.language),
        intent: Some(triage.intent),
        category: triage.category,
        urgency: Some(triage.urgency),
        needs_human: triage.needs_human,
        stated_unit: triage.unit,
        pii: triage.pii,
        confidence: f64::from(triage.confidence),
        explanation: triage.explanation,
    }
}

/// Replaces personal data in `text` with its kind in brackets, for logs.
pub fn redact(text: &str) -> String {
    crate::triage::redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_contact_data() {
        let text = "Ring +45 12 34 56 78 eller skriv til jens.hansen@example.com";
        let redacted = redact(text);
        for secret in ["12 34 56 78", "jens.hansen@example.com"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
    }

    #[test]
    fn verdict_keeps_every_field() {
        let classifier = Classifier::builtin().unwrap();
        let text = "There is water coming through the ceiling in 2.tv, call +45 12 34 56 78";
        let verdict = verdict(classifier.classify(text));
        assert!(verdict.language.is_some());
        assert!(verdict.intent.is_some());
        assert!(verdict.urgency.is_some());
        assert!(
            (0.0..=1.0).contains(&verdict.confidence),
            "{}",
            verdict.confidence
        );
        assert!(verdict.explanation.is_object(), "{}", verdict.explanation);
        assert!(
            verdict.pii.iter().any(|kind| kind == "phone"),
            "{:?}",
            verdict.pii
        );
    }
}
