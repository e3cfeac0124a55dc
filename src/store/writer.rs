//! The single writer: one thread owns the write connection, takes batches from a bounded
//! queue, commits whatever is waiting in one transaction (group commit) and only then
//! resolves each batch's `Pending` future.
//!
//! A commit that fails, because another process holds the lock or the disk is full, is retried
//! with capped backoff. The batches stay in memory meanwhile. Because the queue is bounded,
//! the ingest tasks then wait and withhold their acknowledgements, so nothing is acknowledged
//! before its commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use super::maintenance;
use super::{Committed, DetectOp, DetectWrite, Job, StoreOptions, DETECT_CURSOR_KEY};
use crate::logging::RateLimit;
use crate::metrics::Metrics;
use crate::reading::{Quality, Reading, Value};
use crate::time::TimeKeeper;

/// The id and descriptive fields of a sensor row, cached to avoid a lookup per reading.
#[derive(Debug, Clone, PartialEq)]
struct SensorRow {
    id: i64,
    asset: String,
    metric: String,
    unit: String,
}

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) keeper: Arc<TimeKeeper>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: StoreOptions,
    /// Number of this run, counted in the `meta` table; tags rows with an uncertain time.
    pub(crate) run_id: i64,
    sensors: HashMap<String, SensorRow>,
    /// Clock offset taken from the time keeper and not yet committed.
    pending_rebase_ms: Option<i64>,
    pub(crate) maintenance: maintenance::State,
    /// Limits the log lines of failed commits to one per minute.
    error_log: RateLimit,
}

pub(crate) fn quality_code(quality: Quality) -> i64 {
    match quality {
        Quality::Good => 0,
        Quality::Stale => 1,
        Quality::Bad => 2,
        Quality::UncertainTime => 3,
    }
}

impl Writer {
    pub(crate) fn new(
        mut conn: Connection,
        keeper: Arc<TimeKeeper>,
        metrics: Arc<Metrics>,
        options: StoreOptions,
    ) -> rusqlite::Result<Writer> {
        let tx = conn.transaction()?;
        let previous: Option<i64> = tx
            .query_row("SELECT value FROM meta WHERE key = 'run'", [], |row| {
                row.get(0)
            })
            .optional()?;
        let run_id = previous.unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('run', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [run_id],
        )?;
        // The newest trusted receive time bounds the clock from below: a board whose clock
        // restarted from an older saved time must not stamp rows before it.
        let newest: Option<i64> = tx
            .query_row(
                "SELECT receive_ts_ms FROM readings WHERE uncertain_run IS NULL
                 ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        tx.commit()?;
        if let Some(newest) = newest {
            keeper.raise_floor(newest);
        }
        let maintenance = maintenance::State::load(&conn)?;
        let writer = Writer {
            conn,
            keeper,
            metrics,
            options,
            run_id,
            sensors: HashMap::new(),
            pending_rebase_ms: None,
            maintenance,
            error_log: RateLimit::new(Duration::from_secs(60)),
        };
        maintenance::ensure_reserve(&writer);
        Ok(writer)
    }

    /// Runs until every `StoreHandle` is dropped, then runs maintenance once more.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "cannot start the store writer's timer");
                return;
            }
        };
        let interval = self.options.maintenance_interval;
        let mut next_maintenance = Instant::now() + interval;
        loop {
            let wait = next_maintenance.saturating_duration_since(Instant::now());
            let received = runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            match received {
                Ok(Some(first)) if first.exec.is_some() => self.run_exec(first, &runtime),
                Ok(Some(first)) => {
                    let mut own = Vec::new();
                    let jobs = self.gather(first, &mut rx, &runtime, &mut own);
                    self.commit_jobs(jobs, &runtime);
                    for job in own {
                        self.run_exec(job, &runtime);
                    }
                }
                Ok(None) => break,
                Err(_elapsed) => {}
            }
            if Instant::now() >= next_maintenance {
                self.run_maintenance();
                next_maintenance = Instant::now() + interval;
            }
        }
        self.run_maintenance();
        tracing::debug!("store writer stopped");
    }

    /// Collects the batches that arrive within the commit delay after `first`, up to
    /// `max_batch_readings`. Every commit rewrites whole pages and syncs the log, so at a
    /// steady trickle, gathering for a few milliseconds saves most of the disk writes. Jobs
    /// that run in a transaction of their own go to `own`, in their order.
    fn gather(
        &self,
        first: Job,
        rx: &mut mpsc::Receiver<Job>,
        runtime: &tokio::runtime::Runtime,
        own: &mut Vec<Job>,
    ) -> Vec<Job> {
        let deadline = tokio::time::Instant::from_std(first.queued + self.options.commit_delay);
        let mut readings = first.batch.readings.len();
        let mut jobs = vec![first];
        while readings < self.options.max_batch_readings {
            let next = match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => runtime.block_on(async {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }),
            };
            let Some(job) = next else {
                break;
            };
            if job.exec.is_some() {
                own.push(job);
                continue;
            }
            readings += job.batch.readings.len();
            jobs.push(job);
        }
        jobs
    }

    /// Re-bases this run's uncertain rows now if the clock has become trusted since the
    /// last commit.
    pub(crate) fn apply_pending_rebase(&mut self) -> rusqlite::Result<()> {
        if let Some(offset) = self.keeper.take_rebase() {
            self.pending_rebase_ms = Some(offset);
        }
        let Some(offset) = self.pending_rebase_ms else {
            return Ok(());
        };
        let tx = self.conn.transaction()?;
        rebase(&tx, self.run_id, self.keeper.uncertain_base_ms(), offset)?;
        tx.commit()?;
        self.pending_rebase_ms = None;
        Ok(())
    }

    fn run_maintenance(&mut self) {
        if let Err(err) = maintenance::run(self) {
            tracing::warn!(error = %err, "store maintenance failed; retrying at the next interval");
        }
    }

    /// Commits the jobs in one transaction, retrying until it succeeds, then reports each.
    fn commit_jobs(&mut self, jobs: Vec<Job>, runtime: &tokio::runtime::Runtime) {
        let mut attempt: u32 = 0;
        let outcomes = loop {
            match self.try_commit(&jobs) {
                Ok(outcomes) => break outcomes,
                Err(err) => {
                    self.metrics.store_commit_errors.inc();
                    let full = matches!(err.sqlite_error_code(), Some(ErrorCode::DiskFull));
                    // A lock held for minutes must not flood the log.
                    if let Some(held_back) = self.error_log.allow(Instant::now()) {
                        tracing::error!(
                            error = %err,
                            attempt = attempt + 1,
                            batches = jobs.len(),
                            repeats_not_logged = held_back,
                            "cannot commit readings; keeping them queued and retrying"
                        );
                    }
                    if full {
                        maintenance::free_space_after_disk_full(self);
                    }
                    let backoff_ms = (50u64 << attempt.min(7)).min(5_000);
                    runtime.block_on(async {
                        tokio::time::sleep(Duration::from_millis(backoff_ms)).await
                    });
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        if attempt > 0 {
            tracing::info!(attempts = attempt + 1, "readings committed after retrying");
            maintenance::ensure_reserve(self);
        }
        self.metrics.store_commits.inc();
        for (job, committed) in jobs.into_iter().zip(outcomes) {
            self.metrics
                .store_commit_latency
                .observe(job.queued.elapsed().as_secs_f64());
            let _ = job.done.send(Ok(committed));
        }
    }

    /// Runs a job's own work in a transaction of its own. An error from the work is the
    /// caller's to handle and is returned; a commit that fails because of a lock or a full
    /// disk is retried as batches are.
    fn run_exec(&mut self, mut job: Job, runtime: &tokio::runtime::Runtime) {
        let Some(mut work) = job.exec.take() else {
            return;
        };
        let mut attempt: u32 = 0;
        let outcome = loop {
            let result = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .and_then(|tx| {
                    work(&tx)?;
                    tx.commit()
                });
            let err = match result {
                Ok(()) => break Ok(Committed::default()),
                Err(err) => err,
            };
            let passing = matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull)
            );
            if !passing {
                break Err(err.to_string());
            }
            self.metrics.store_commit_errors.inc();
            if let Some(held_back) = self.error_log.allow(Instant::now()) {
                tracing::error!(
                    error = %err,
                    attempt = attempt + 1,
                    repeats_not_logged = held_back,
                    "cannot commit a transaction; retrying"
                );
            }
            if matches!(err.sqlite_error_code(), Some(ErrorCode::DiskFull)) {
                maintenance::free_space_after_disk_full(self);
            }
            let backoff_ms = (50u64 << attempt.min(7)).min(5_000);
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(backoff_ms)).await });
            attempt = attempt.saturating_add(1);
        };
        if outcome.is_ok() {
            self.metrics.store_commits.inc();
        }
        let _ = job.done.send(outcome);
    }

    fn try_commit(&mut self, jobs: &[Job]) -> rusqlite::Result<Vec<Committed>> {
        if let Some(offset) = self.keeper.take_rebase() {
            self.pending_rebase_ms = Some(offset);
        }
        let base_ms = self.keeper.uncertain_base_ms();
        let mut new_sensors: HashMap<String, SensorRow> = HashMap::new();
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut counts: HashMap<(&'static str, u8), u64> = HashMap::new();
        let mut message_counts = super::messages::MessageCounts::default();

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(offset) = self.pending_rebase_ms {
            rebase(&tx, self.run_id, base_ms, offset)?;
        }
        {
            let mut insert_reading = tx.prepare_cached(
                "INSERT OR IGNORE INTO readings
                 (sensor, source_ts_ms, receive_ts_ms, value, text_value, quality, detail,
                  uncertain_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut insert_quarantine = tx.prepare_cached(
                "INSERT INTO quarantine (source, origin, reason, raw, receive_ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for job in jobs {
                let mut committed = Committed::default();
                for reading in &job.batch.readings {
                    let sensor = sensor_id(&tx, &self.sensors, &mut new_sensors, reading)?;
                    let row = RowValues::of(reading);
                    let uncertain_run =
                        (reading.quality == Quality::UncertainTime).then_some(self.run_id);
                    let inserted = insert_reading.execute(params![
                        sensor,
                        reading.source_ts_ms,
                        reading.receive_ts_ms,
                        row.value,
                        row.text,
                        quality_code(row.quality),
                        row.detail,
                        uncertain_run,
                    ])?;
                    let source = reading.source.as_str();
                    if inserted == 1 {
                        committed.stored += 1;
                        *counts.entry((source, 0)).or_default() += 1;
                    } else {
                        committed.duplicates += 1;
                        *counts.entry((source, 1)).or_default() += 1;
                    }
                }
                for entry in &job.batch.quarantine {
                    insert_quarantine.execute(params![
                        entry.source.as_str(),
                        entry.origin,
                        entry.reason,
                        entry.raw,
                        entry.receive_ts_ms,
                    ])?;
                    *counts.entry((entry.source.as_str(), 2)).or_default() += 1;
                }
                for record in &job.batch.audit {
                    super::audit::insert(&tx, record)?;
                }
                if let Some(write) = &job.detect {
                    write_detect(&tx, write)?;
                }
                super::messages::apply(
                    &tx,
                    &job.batch.messages,
                    self.run_id,
                    &mut committed,
                    &mut message_counts,
                )?;
                outcomes.push(committed);
            }
        }
        tx.commit()?;

        self.pending_rebase_ms = None;
        self.sensors.extend(new_sensors);
        message_counts.publish(&self.metrics);
        for ((source, kind), count) in counts {
            let label = crate::metrics::SourceLabel { source };
            let family = match kind {
                0 => &self.metrics.readings_stored,
                1 => &self.metrics.readings_duplicate,
                _ => &self.metrics.readings_quarantined,
            };
            family.get_or_create(&label).inc_by(count);
        }
        Ok(outcomes)
    }
}

/// The stored form of a reading's value; a non-finite number becomes a bad reading.
struct RowValues<'a> {
    value: Option<f64>,
    text: Option<&'a str>,
    quality: Quality,
    detail: Option<&'a str>,
}

impl<'a> RowValues<'a> {
    fn of(reading: &'a Reading) -> RowValues<'a> {
        match &reading.value {
            Some(Value::Number(number)) if !number.is_finite() => RowValues {
                value: None,
                text: None,
                quality: Quality::Bad,
                detail: Some("non-finite value"),
            },
            Some(Value::Number(number)) => RowValues {
                value: Some(*number),
                text: None,
                quality: reading.quality,
                detail: reading.detail.as_deref(),
            },
            Some(Value::Text(text)) => RowValues {
                value: None,
                text: Some(text),
                quality: reading.quality,
                detail: reading.detail.as_deref(),
            },
            None => RowValues {
                value: None,
                text: None,
                quality: reading.quality,
                detail: reading.detail.as_deref(),
            },
        }
    }
}

/// Finds or creates the sensor row, updating its names when the configuration changed them.
fn sensor_id(
    tx: &rusqlite::Transaction<'_>,
    cache: &HashMap<String, SensorRow>,
    new_sensors: &mut HashMap<String, SensorRow>,
    reading: &Reading,
) -> rusqlite::Result<i64> {
    let known = cache
        .get(&reading.sensor_id)
        .or_else(|| new_sensors.get(&reading.sensor_id));
    if let Some(row) = known {
        if row.asset == reading.asset && row.metric == reading.metric && row.unit == reading.unit {
            return Ok(row.id);
        }
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO sensors (sensor_id, asset, metric, unit, source)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(sensor_id) DO UPDATE SET
                 asset = excluded.asset, metric = excluded.metric, unit = excluded.unit
             RETURNING id",
        )?
        .query_row(
            params![
                reading.sensor_id,
                reading.asset,
                reading.metric,
                reading.unit,
                reading.source.as_str()
            ],
            |row| row.get(0),
        )?;
    new_sensors.insert(
        reading.sensor_id.clone(),
        SensorRow {
            id,
            asset: reading.asset.clone(),
            metric: reading.metric.clone(),
            unit: reading.unit.clone(),
        },
    );
    Ok(id)
}

/// Re-bases this run's rows stamped while the clock was untrusted: their receive time (and
/// their source time where it was the receive time) becomes monotonic time plus `offset_ms`.
/// They keep the uncertain-time quality, which records that their time was derived.
fn rebase(
    tx: &rusqlite::Transaction<'_>,
    run_id: i64,
    base_ms: i64,
    offset_ms: i64,
) -> rusqlite::Result<()> {
    let shift = offset_ms - base_ms;
    let moved = tx.execute(
        "UPDATE OR IGNORE readings SET
             source_ts_ms = CASE WHEN source_ts_ms = receive_ts_ms
                                 THEN source_ts_ms + ?1 ELSE source_ts_ms END,
             receive_ts_ms = receive_ts_ms + ?1,
             uncertain_run = NULL
         WHERE uncertain_run = ?2",
        params![shift, run_id],
    )?;
    if moved > 0 {
        tracing::info!(
            rows = moved,
            shift_ms = shift,
            "re-based readings stamped before the clock was set"
        );
    }
    super::messages::rebase(tx, run_id, shift)?;
    Ok(())
}

/// Applies a detection step inside the batch's transaction. Opening a key that is already
/// open inserts nothing, because the partial unique indexes reject the row and `OR IGNORE`
/// skips it. A step replayed after a crash therefore leaves one open event and request.
fn write_detect(tx: &rusqlite::Transaction<'_>, write: &DetectWrite) -> rusqlite::Result<()> {
    for op in &write.ops {
        match op {
            DetectOp::Open { event, request } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO anomaly_events
                     (alarm_key, asset, sensors, detector, fault_kind, score, threshold,
                      contributions, opened_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    event.alarm_key,
                    event.asset,
                    serde_json::Value::from(event.sensors.clone()).to_string(),
                    event.detector,
                    event.fault_kind,
                    event.score,
                    event.threshold,
                    event.contributions.to_string(),
                    event.opened_ms,
                ])?;
                let Some(request) = request else { continue };
                let event_id: Option<i64> = tx
                    .prepare_cached(
                        "SELECT id FROM anomaly_events WHERE alarm_key = ?1 AND closed_ms IS NULL",
                    )?
                    .query_row([&event.alarm_key], |row| row.get(0))
                    .optional()?;
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO requests
                     (request_id, alarm_key, event, source, asset, fault_kind, severity,
                      category, urgency, audience, summary, forecast_ms,
                      forecast_uncertainty_ms, explanation, state, opened_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                             'open', ?15)",
                )?
                .execute(params![
                    request.request_id,
                    request.alarm_key,
                    event_id,
                    request.source.as_str(),
                    request.asset,
                    request.fault_kind,
                    request.severity.as_str(),
                    request.category,
                    request.urgency.as_str(),
                    request.audience.as_str(),
                    request.summary,
                    request.forecast.map(|f| f.crossing_ms),
                    request.forecast.map(|f| f.uncertainty_ms),
                    request.explanation.to_string(),
                    request.opened_ms,
                ])?;
            }
            DetectOp::Close {
                alarm_key,
                closed_ms,
            } => {
                tx.prepare_cached(
                    "UPDATE anomaly_events SET closed_ms = ?2
                     WHERE alarm_key = ?1 AND closed_ms IS NULL",
                )?
                .execute(params![alarm_key, closed_ms])?;
                tx.prepare_cached(
                    "UPDATE requests SET state = 'closed', closed_ms = ?2
                     WHERE alarm_key = ?1 AND state = 'open'",
                )?
                .execute(params![alarm_key, closed_ms])?;
            }
        }
    }
    for record in &write.audit {
        super::audit::insert(tx, record)?;
    }
    if let Some(cursor) = write.cursor {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute(params![DETECT_CURSOR_KEY, cursor])?;
    }
    Ok(())
}
