//! The sync loop. Each round sends a heartbeat, drains the outbox to the office and pulls
//! the office's changes. A failed round is retried after a backoff on the injectable clock.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backoff::Backoff;
use super::batch::{self, BodyWriter, Pending};
use super::client::{CentralClient, ClientError, EventsReply};
use super::config::SyncConfig;
use super::health::SyncHealth;
use super::outbox;
use super::{ApplyChange, SyncError};
use crate::metrics::{KindLabel, Metrics};
use crate::protocol::{Heartbeat, PROTOCOL_VERSION};
use crate::store::{StoreError, StoreHandle};
use crate::time::Clock;

/// Outbox rows read at a time while planning batches.
const SCAN_ROWS: usize = 2_000;

/// Maximum real-time wait between two reads of the clock while sleeping on it, so that a
/// test's manual clock is noticed soon after it moves.
const CLOCK_POLL: Duration = Duration::from_millis(20);

/// Window in which rejected events make the heartbeat report `degraded`.
const REJECTED_WINDOW_MS: i64 = 24 * 3_600_000;

/// The reason a round stopped before it finished.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot write the sync result to the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the outbox: {0}")]
    Read(#[from] rusqlite::Error),
    #[error(
        "the office acknowledged neither {events} events nor rejected them; their tickets wait"
    )]
    Unacknowledged { events: usize },
    #[error("the gateway is stopping")]
    Stopped,
}

pub(super) struct SyncTask {
    config: SyncConfig,
    gateway: String,
    client: CentralClient,
    store: StoreHandle,
    reader: Connection,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    applier: Option<Arc<dyn ApplyChange>>,
    health: SyncHealth,
    writer: BodyWriter,
    /// Request body limit in force: the configured one, lowered to the office's.
    max_body_bytes: usize,
    backoff: Backoff,
    config_hash: String,
    /// Monotonic time before which the next batch may not go out (drain rate).
    next_send_at: Duration,
    next_heartbeat: Duration,
    next_pull: Duration,
    next_telemetry: Duration,
    warn_level_warned: bool,
    over_cap_warned: bool,
}

impl SyncTask {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: SyncConfig,
        gateway: String,
        db_path: &std::path::Path,
        store: StoreHandle,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        applier: Option<Arc<dyn ApplyChange>>,
        health: SyncHealth,
    ) -> Result<SyncTask, SyncError> {
        let client = CentralClient::new(&config)?;
        let reader = crate::store::connect(db_path, false)?;
        let config_hash = super::config_hash(&config.config_file);
        let now = clock.monotonic();
        Ok(SyncTask {
            writer: BodyWriter::new(&gateway),
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            next_send_at: now,
            next_heartbeat: now,
            next_pull: now,
            next_telemetry: now,
            warn_level_warned: false,
            over_cap_warned: false,
            config,
            gateway,
            client,
            store,
            reader,
            clock,
            metrics,
            applier,
            health,
            config_hash,
        })
    }

    /// Runs rounds until `cancel` fires.
    pub(super) async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(
            url = %self.config.url,
            gateway = %self.gateway,
            pull = self.applier.is_some(),
            "sync starting"
        );
        let mut retry_due = true;
        loop {
            let pending = self.housekeeping().await;
            let now = self.clock.monotonic();
            let due =
                retry_due || pending > 0 || now >= self.next_pull || now >= self.next_heartbeat;
            if due {
                match self.round(&cancel).await {
                    Ok(()) => {
                        self.backoff.reset();
                        self.health.record_round_ok();
                        retry_due = false;
                        self.next_pull = self.clock.monotonic() + self.config.pull_interval;
                        self.update_gauge();
                    }
                    Err(RoundError::Stopped) => break,
                    Err(err) => {
                        self.update_gauge();
                        let delay = self.backoff.next_delay();
                        self.health
                            .record_failure(&err.to_string(), self.backoff.failures());
                        self.log_failure(&err, delay);
                        retry_due = true;
                        if !sleep_on(self.clock.as_ref(), delay, &cancel).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            if !sleep_on(self.clock.as_ref(), self.config.poll_interval, &cancel).await {
                break;
            }
        }
        tracing::info!("sync stopped");
    }

    fn log_failure(&self, err: &RoundError, delay: Duration) {
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let failures = self.backoff.failures();
        match err {
            RoundError::Client(
                ClientError::Unauthorized
                | ClientError::UnsupportedProtocol { .. }
                | ClientError::Certificate { .. },
            ) => {
                tracing::error!(error = %err, retry_in_ms, failures, "sync round failed");
            }
            _ => tracing::warn!(
                error = %err,
                retry_in_ms,
                failures,
                "sync round failed; events stay queued"
            ),
        }
    }

    async fn round(&mut self, cancel: &CancellationToken) -> Result<(), RoundError> {
        self.send_heartbeat().await?;
        self.push(cancel).await?;
        if let Some(applier) = self.applier.clone() {
            self.pull(applier, cancel).await?;
        }
        Ok(())
    }

    fn update_gauge(&self) {
        if let Ok(events) = outbox::count(&self.reader) {
            self.metrics.outbox_events.set(events);
        }
    }

    /// Enforces the outbox cap, updates the gauge and enqueues telemetry when due. Returns
    /// the number of events in the outbox.
    async fn housekeeping(&mut self) -> i64 {
        let now = self.clock.monotonic();
        if let Some(interval) = self.config.telemetry_interval {
            if now >= self.next_telemetry {
                self.next_telemetry = now + interval;
                let now_ms = self.clock.wall_ms();
                let result = self
                    .store
                    .transact(move |tx| super::telemetry::enqueue_summaries(tx, now_ms))
                    .await;
                match result {
                    Ok(0) => {}
                    Ok(events) => tracing::debug!(events, "telemetry summaries queued"),
                    Err(err) => tracing::warn!(error = %err, "cannot queue telemetry summaries"),
                }
            }
        }
        let mut events = match outbox::count(&self.reader) {
            Ok(events) => events,
            Err(err) => {
                tracing::warn!(error = %err, "cannot count the outbox");
                return 0;
            }
        };
        let cap = self.config.outbox_max_events;
        if u64::try_from(events).unwrap_or(0) > cap {
            events = self.evict(cap).await.unwrap_or(events);
        }
        let warn = i64::try_from(self.config.outbox_warn_events).unwrap_or(i64::MAX);
        if events >= warn {
            if !self.warn_level_warned {
                tracing::warn!(
                    events,
                    warn_level = warn,
                    cap,
                    "the outbox has reached its warning level; is the central office reachable?"
                );
                self.warn_level_warned = true;
            }
        } else if events.saturating_mul(5) < warn.saturating_mul(4) {
            // Below 80 % of the level, so that a level near it does not warn on every round.
            self.warn_level_warned = false;
        }
        self.metrics.outbox_events.set(events);
        events
    }

    async fn evict(&mut self, cap: u64) -> Option<i64> {
        let result = self
            .store
            .transact(move |tx| outbox::enforce_cap(tx, cap))
            .await;
        let eviction = match result {
            Ok(eviction) => eviction,
            Err(err) => {
                tracing::warn!(error = %err, "cannot evict from the full outbox");
                return None;
            }
        };
        for (kind, count) in [
            ("outbox_telemetry", eviction.telemetry),
            ("outbox_anomaly", eviction.anomaly),
        ] {
            if count > 0 {
                self.metrics
                    .store_evictions
                    .get_or_create(&KindLabel { kind })
                    .inc_by(count as u64);
            }
        }
        if eviction.telemetry + eviction.anomaly > 0 {
            tracing::warn!(
                telemetry = eviction.telemetry,
                anomaly = eviction.anomaly,
                remaining = eviction.remaining,
                cap,
                "the outbox is full; evicted the oldest telemetry and anomaly events"
            );
        }
        let over = u64::try_from(eviction.remaining).unwrap_or(0) > cap;
        if over && !self.over_cap_warned {
            tracing::error!(
                events = eviction.remaining,
                cap,
                "the outbox is over its cap with ticket, tenant update and audit events only, \
                 which are never evicted; restore the link to the central office"
            );
        }
        self.over_cap_warned = over;
        Some(eviction.remaining)
    }

    async fn send_heartbeat(&mut self) -> Result<(), RoundError> {
        let outbox_events = outbox::count(&self.reader)?;
        let since = self.clock.wall_ms() - REJECTED_WINDOW_MS;
        let rejected = outbox::count_rejected_since(&self.reader, since)?;
        let mut problems = Vec::new();
        let cap = i64::try_from(self.config.outbox_max_events).unwrap_or(i64::MAX);
        let warn = i64::try_from(self.config.outbox_warn_events).unwrap_or(i64::MAX);
        if outbox_events >= warn {
            problems.push(format!(
                "outbox holds {outbox_events} of at most {cap} events"
            ));
        }
        if rejected > 0 {
            problems.push(format!(
                "{rejected} events rejected by the office in the last 24 h"
            ));
        }

        let heartbeat = Heartbeat {
            gateway: self.gateway.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL_VERSION,
            config_hash: self.config_hash.clone(),
            ts_ms: self.clock.wall_ms(),
            health: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            }
            .to_string(),
            problems,
            outbox_events,
        };

        let reply = self.client.heartbeat(&heartbeat).await?;
        self.health.record_success();
        if let Some(limit) = reply.max_body_bytes {
            self.lower_body_limit(limit);
        }
        if let Some(protocol) = reply.protocol.filter(|p| *p != PROTOCOL_VERSION) {
            tracing::warn!(
                office_protocol = protocol,
                gateway_protocol = PROTOCOL_VERSION,
                server_version = reply.server_version.as_deref().unwrap_or("unknown"),
                "the office answers with another protocol version"
            );
        }
        self.next_heartbeat = self.clock.monotonic() + self.config.heartbeat_interval;
        Ok(())
    }

    fn lower_body_limit(&mut self, office_limit: u64) {
        let configured = usize::try_from(self.config.max_body_bytes).unwrap_or(usize::MAX);
        let limit = usize::try_from(office_limit)
            .unwrap_or(usize::MAX)
            .min(configured);
        if limit != self.max_body_bytes {
            tracing::info!(max_body_bytes = limit, "request body limit set");
            self.max_body_bytes = limit;
        }
    }

    /// Sends every event that can go now, in sequence order, and returns an error when the
    /// office left some unacknowledged.
    async fn push(&mut self, cancel: &CancellationToken) -> Result<(), RoundError> {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut unacked = 0;
        let mut after_seq = 0;
        // Events enqueued during the round wait for the next one, so that a steady stream of
        // new events cannot keep the round from pulling.
        let last_seq = outbox::max_seq(&self.reader)?;
        loop {
            if cancel.is_cancelled() {
                return Err(RoundError::Stopped);
            }
            if after_seq >= last_seq {
                break;
            }
            if self.clock.monotonic() >= self.next_heartbeat {
                self.send_heartbeat().await?;
            }
            let (pending, unreadable) =
                outbox::read_pending(&self.reader, &self.gateway, after_seq, SCAN_ROWS)?;
            for row in unreadable {
                self.reject(row.event_id, None, 422, row.error).await?;
            }
            let plan = batch::plan(
                &pending,
                &self.writer,
                &blocked,
                self.max_body_bytes,
                self.config.batch_max_events,
            );
            let Some(through_seq) = plan.through_seq else {
                break;
            };
            after_seq = through_seq;
            for &index in &plan.too_large {
                let event = &pending[index];
                let size = self.writer.size([event]);
                let error = format!(
                    "event of {size} bytes in its request exceeds the office's limit of {} bytes",
                    self.max_body_bytes
                );
                self.reject(event.event_id, event.ticket.clone(), 413, error)
                    .await?;
            }
            if plan.batch.is_empty() {
                continue;
            }
            let events: Vec<Pending> = plan.batch.iter().map(|&i| pending[i].clone()).collect();
            unacked += self.send(events, &mut blocked, cancel).await?;
        }
        if unacked > 0 {
            return Err(RoundError::Unacknowledged { events: unacked });
        }
        Ok(())
    }

    /// Sends one batch, halving it when the office finds it too large or malformed, and
    /// returns the number of events left unacknowledged.
    async fn send(
        &mut self,
        events: Vec<Pending>,
        blocked: &mut HashSet<String>,
        cancel: &CancellationToken,
    ) -> Result<usize, RoundError> {
        let mut unacked = 0;
        let mut parts = vec![events];
        while let Some(part) = parts.pop() {
            let part: Vec<Pending> = part
                .into_iter()
                .filter(|event| !is_blocked(event, blocked))
                .collect();
            if part.is_empty() {
                continue;
            }
            self.pace(part.len(), cancel).await?;
            let result = self.client.post_events(self.writer.body(&part)).await;
            if result.is_ok() {
                self.health.record_push();
            }
            match result {
                Ok(reply) => unacked += self.settle(&part, reply, blocked).await?,
                Err(ClientError::TooLarge { limit }) if part.len() > 1 => {
                    if let Some(limit) = limit {
                        self.lower_body_limit(limit);
                    }
                    split_into(&mut parts, part);
                }
                Err(ClientError::BadRequest { .. }) if part.len() > 1 => {
                    split_into(&mut parts, part);
                }
                Err(ClientError::TooLarge { limit }) => {
                    if let Some(limit) = limit {
                        self.lower_body_limit(limit);
                    }
                    let event = &part[0];
                    let error = format!(
                        "event of {} bytes in its request exceeds the office's limit ({})",
                        self.writer.size([event]),
                        limit.map_or("not stated".to_string(), |l| format!("{l} bytes"))
                    );
                    self.reject(event.event_id, event.ticket.clone(), 413, error)
                        .await?;
                }
                Err(ClientError::BadRequest { message }) => {
                    let event = &part[0];
                    self.reject(event.event_id, event.ticket.clone(), 400, message)
                        .await?;
                }
                Err(err) => {
                    let failed: Vec<(Uuid, String)> = part
                        .iter()
                        .map(|event| (event.event_id, err.to_string()))
                        .collect();
                    self.store
                        .transact(move |tx| outbox::note_failures(tx, &failed))
                        .await?;
                    return Err(err.into());
                }
            }
        }
        Ok(unacked)
    }

    /// Applies the office's response: deletes acknowledged events, moves events rejected for
    /// good, and counts the rest as failed attempts that block their tickets.
    async fn settle(
        &mut self,
        part: &[Pending],
        reply: EventsReply,
        blocked: &mut HashSet<String>,
    ) -> Result<usize, RoundError> {
        let sent: HashSet<Uuid> = part.iter().map(|event| event.event_id).collect();
        let acked: Vec<Uuid> = reply
            .acked
            .into_iter()
            .filter(|id| sent.contains(id))
            .collect();
        let acked_set: HashSet<Uuid> = acked.iter().copied().collect();
        let mut rejected = Vec::new();
        let mut failed: Vec<(Uuid, String)> = Vec::new();
        for entry in reply.rejected {
            if !sent.contains(&entry.event_id) || acked_set.contains(&entry.event_id) {
                continue;
            }
            if (400..500).contains(&entry.status) {
                rejected.push(entry);
            } else {
                let error = format!("rejected with status {}: {}", entry.status, entry.error);
                failed.push((entry.event_id, error));
            }
        }

        let settled: HashSet<Uuid> = rejected
            .iter()
            .map(|entry| entry.event_id)
            .chain(failed.iter().map(|(id, _)| *id))
            .chain(acked.iter().copied())
            .collect();
        for event in part {
            if !settled.contains(&event.event_id) {
                failed.push((event.event_id, "not acknowledged".to_string()));
            }
        }

        for (id, error) in &failed {
            let event = part.iter().find(|event| event.event_id == *id);
            if let Some(ticket) = event.and_then(|event| event.ticket.clone()) {
                tracing::warn!(event_id = %id, ticket, error, "event not acknowledged");
                blocked.insert(ticket);
            } else {
                tracing::warn!(event_id = %id, error, "event not acknowledged");
            }
        }

        let now_ms = self.clock.wall_ms();
        let unacked = failed.len();
        let write_acked = acked.clone();
        let write_rejected: Vec<(Uuid, u16, String)> = rejected
            .iter()
            .map(|entry| (entry.event_id, entry.status, entry.error.clone()))
            .collect();
        self.store
            .transact(move |tx| {
                outbox::delete_acked(tx, &write_acked)?;
                for (id, status, error) in &write_rejected {
                    outbox::reject(tx, *id, *status, error, now_ms)?;
                }
                outbox::note_failures(tx, &failed)
            })
            .await?;

        self.metrics.sync_events_sent.inc_by(acked.len() as u64);
        for entry in rejected {
            let ticket = part
                .iter()
                .find(|event| event.event_id == entry.event_id)
                .and_then(|event| event.ticket.as_deref());
            self.note_rejection(entry.event_id, ticket, entry.status, &entry.error);
        }
        Ok(unacked)
    }

    /// Moves one event out of the outbox into `sync_rejected`, with a log line and a metric.
    async fn reject(
        &mut self,
        event_id: Uuid,
        ticket: Option<String>,
        status: u16,
        error: String,
    ) -> Result<(), RoundError> {
        let now_ms = self.clock.wall_ms();
        let stored_error = error.clone();
        self.store
            .transact(move |tx| outbox::reject(tx, event_id, status, &stored_error, now_ms))
            .await?;
        self.note_rejection(event_id, ticket.as_deref(), status, &error);
        Ok(())
    }

    fn note_rejection(&self, event_id: Uuid, ticket: Option<&str>, status: u16, error: &str) {
        self.metrics.sync_events_rejected.inc();
        tracing::error!(
            %event_id,
            ticket = ticket.unwrap_or("-"),
            status,
            error,
            "event rejected and kept in table sync_rejected; it will not be sent again"
        );
    }

    /// Waits so that events go out at no more than `drain_events_per_sec`.
    async fn pace(&mut self, events: usize, cancel: &CancellationToken) -> Result<(), RoundError> {
        let now = self.clock.monotonic();
        if self.next_send_at > now
            && !sleep_on(self.clock.as_ref(), self.next_send_at - now, cancel).await
        {
            return Err(RoundError::Stopped);
        }
        let rate = f64::from(self.config.drain_events_per_sec.max(1));
        let spacing = Duration::from_secs_f64(events as f64 / rate);
        self.next_send_at = self.next_send_at.max(now) + spacing;
        Ok(())
    }

    /// Pulls and applies the office's changes until it has none left.
    async fn pull(
        &mut self,
        applier: Arc<dyn ApplyChange>,
        cancel: &CancellationToken,
    ) -> Result<(), RoundError> {
        loop {
            if cancel.is_cancelled() {
                return Err(RoundError::Stopped);
            }
            let cursor = outbox::read_cursor(&self.reader, outbox::PULL_CURSOR_KEY)?.unwrap_or(0);
            let mut changes = self.client.changes(cursor, self.config.pull_limit).await?;
            self.health.record_success();
            let fetched = changes.len();
            changes.retain(|change| change.id > cursor);
            changes.sort_by_key(|change| change.id);
            changes.dedup_by_key(|change| change.id);
            if changes.is_empty() {
                self.health.record_pull();
                return Ok(());
            }
            let now_ms = self.clock.wall_ms();
            let applier = applier.clone();
            let applied = self
                .store
                .transact(move |tx| {
                    // Read inside the transaction, so that a change is never applied twice.
                    let stored = outbox::read_cursor(tx, outbox::PULL_CURSOR_KEY)?.unwrap_or(0);
                    let mut last = stored;
                    let mut applied = 0;
                    for change in changes.iter().filter(|change| change.id > stored) {
                        applier.apply(tx, change, now_ms)?;
                        last = change.id;
                        applied += 1;
                    }
                    if last > stored {
                        outbox::write_cursor(tx, outbox::PULL_CURSOR_KEY, last)?;
                    }
                    Ok((applied, last))
                })
                .await?;
            tracing::debug!(
                applied = applied.0,
                cursor = applied.1,
                "office changes applied"
            );
            if fetched < self.config.pull_limit as usize {
                self.health.record_pull();
                return Ok(());
            }
        }
    }
}

fn is_blocked(event: &Pending, blocked: &HashSet<String>) -> bool {
    event
        .ticket
        .as_ref()
        .is_some_and(|ticket| blocked.contains(ticket))
}

/// Pushes the two halves of `part` so that the first half is sent first.
fn split_into(parts: &mut Vec<Vec<Pending>>, mut part: Vec<Pending>) {
    let second = part.split_off(part.len() / 2);
    parts.push(second);
    parts.push(part);
}

/// Sleeps until `clock`'s monotonic time has moved by `duration`; returns false when
/// `cancel` fired first.
pub(super) async fn sleep_on(
    clock: &dyn Clock,
    duration: Duration,
    cancel: &CancellationToken,
) -> bool {
    let deadline = clock.monotonic() + duration;
    loop {
        let now = clock.monotonic();
        if now >= deadline {
            return true;
        }
        let step = (deadline - now).min(CLOCK_POLL);
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(step) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    #[tokio::test]
    async fn sleep_on_waits_for_manual_clock() {
        let clock = Arc::new(ManualClock::new(0));
        let cancel = CancellationToken::new();
        let sleeper = {
            let clock = clock.clone();
            let cancel = cancel.clone();
            tokio::spawn(
                async move { sleep_on(clock.as_ref(), Duration::from_secs(60), &cancel).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!sleeper.is_finished(), "woke before the clock moved");
        clock.advance(Duration::from_secs(61));
        assert!(sleeper.await.unwrap());
    }

    #[tokio::test]
    async fn sleep_on_stops_on_cancel() {
        let clock = ManualClock::new(0);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(!sleep_on(&clock, Duration::from_secs(60), &cancel).await);
    }

    #[test]
    fn split_keeps_first_half_first() {
        let events: Vec<Pending> = (1..=5)
            .map(|seq| {
                Pending::new(
                    "gw",
                    seq,
                    Uuid::now_v7(),
                    crate::protocol::EventKind::Ticket,
                    None,
                    0,
                    "{}",
                )
                .unwrap()
            })
            .collect();
        let mut parts = Vec::new();
        split_into(&mut parts, events);
        let first = parts.pop().unwrap();
        let second = parts.pop().unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            second.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }
}
