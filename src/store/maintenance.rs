//! Rollups, retention and the size cap, run by the writer between batches.
//!
//! Raw readings are summarised per minute and per hour before they may be evicted. The
//! rollup watermark is the highest reading id already summarised, and only rows at or below
//! it are deleted. The exception is a full disk on which the rollups cannot be written either. When the store is over its size cap, the oldest raw readings go first,
//! then the oldest minute rollups, then hour rollups. Every eviction is counted.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::writer::Writer;

const DAY_MS: i64 = 86_400_000;
/// Rows deleted per transaction, so that eviction never holds the write lock for long.
const EVICT_CHUNK: i64 = 5_000;
/// Reading ids summarised per transaction.
const ROLLUP_CHUNK: i64 = 100_000;
/// Retention by age runs at most this often; it scans every sensor's rollups.
const RETENTION_EVERY: Duration = Duration::from_secs(600);

pub(crate) struct State {
    /// Highest reading id included in the rollups.
    watermark: i64,
    last_retention: Option<Instant>,
    /// Whether the store was over its warning level at the last check, so that the warning
    /// is logged once per crossing.
    over_warning: bool,
}

impl State {
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<State> {
        let watermark = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'rollup_watermark'",
                [],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        Ok(State {
            watermark,
            last_retention: None,
            over_warning: false,
        })
    }
}

pub(crate) fn run(writer: &mut Writer) -> rusqlite::Result<()> {
    roll_up(writer)?;
    let due = writer
        .maintenance
        .last_retention
        .is_none_or(|last| last.elapsed() >= RETENTION_EVERY);
    if due {
        apply_retention(writer)?;
        writer.maintenance.last_retention = Some(Instant::now());
    }
    enforce_size_cap(writer)?;
    trim_quarantine(writer)?;
    writer
        .metrics
        .store_size_bytes
        .set(file_bytes(writer) as i64);
    writer
        .metrics
        .clock_trusted
        .set(i64::from(writer.keeper.is_trusted()));
    Ok(())
}

/// Adds every reading above the watermark to the minute and hour rollups.
fn roll_up(writer: &mut Writer) -> rusqlite::Result<()> {
    let max_id: i64 =
        writer
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM readings", [], |row| {
                row.get(0)
            })?;
    while writer.maintenance.watermark < max_id {
        let from = writer.maintenance.watermark;
        let to = (from + ROLLUP_CHUNK).min(max_id);
        let tx = writer.conn.transaction()?;
        for (table, bucket_ms) in [("rollup_minute", 60_000i64), ("rollup_hour", 3_600_000)] {
            // Only good and uncertain-time numeric readings count, because stale and bad
            // values would distort the summaries. `WHERE true` keeps SQLite from reading
            // ON CONFLICT as a join constraint of the SELECT.
            // NOTE: a row of uncertain time is summarised under its derived time and stays
            // in that bucket when it is re-based later.
            let sql = format!(
                "INSERT INTO {table} (sensor, bucket_ms, min, max, sum, count)
                 SELECT * FROM (
                     SELECT sensor, (source_ts_ms / ?3) * ?3 AS bucket,
                            MIN(value), MAX(value), SUM(value), COUNT(*)
                     FROM readings
                     WHERE id > ?1 AND id <= ?2 AND value IS NOT NULL AND quality IN (0, 3)
                     GROUP BY sensor, bucket
                 ) WHERE true
                 ON CONFLICT(sensor, bucket_ms) DO UPDATE SET
                     min = MIN(min, excluded.min),
                     max = MAX(max, excluded.max),
                     sum = sum + excluded.sum,
                     count = count + excluded.count"
            );
            tx.execute(&sql, params![from, to, bucket_ms])?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [to],
        )?;
        tx.commit()?;
        writer.maintenance.watermark = to;
    }
    Ok(())
}

/// Deletes rows older than their retention period. Skipped while the clock is untrusted, so
/// that a board booting at 1970, or far in the future, deletes nothing by mistake.
fn apply_retention(writer: &mut Writer) -> rusqlite::Result<()> {
    let now = writer.keeper.receive_time();
    if now.uncertain {
        return Ok(());
    }
    // Rows stamped before the clock was set carry a receive time near the floor until they
    // are re-based, and would be taken for old rows. The clock may have become trusted in
    // the call above, so re-base them here, after it.
    writer.apply_pending_rebase()?;
    let now = now.ts_ms;
    let retention = writer.options.retention;
    let raw_cutoff = now - i64::from(retention.raw_days) * DAY_MS;
    loop {
        let deleted = writer.conn.execute(
            "DELETE FROM readings WHERE id IN (
                 SELECT id FROM readings WHERE id <= ?1 ORDER BY id LIMIT ?2
             ) AND receive_ts_ms < ?3",
            params![writer.maintenance.watermark, EVICT_CHUNK, raw_cutoff],
        )?;
        count_evictions(writer, "raw", deleted as u64)?;
        // Rows are in roughly time order, so a chunk that was not wholly old ends the pass.
        if (deleted as i64) < EVICT_CHUNK {
            break;
        }
    }
    for (table, kind, days) in [
        ("rollup_minute", "minute", retention.minute_days),
        ("rollup_hour", "hour", retention.hour_days),
    ] {
        let cutoff = now - i64::from(days) * DAY_MS;
        let deleted = writer.conn.execute(
            &format!(
                "DELETE FROM {table} WHERE sensor IN (SELECT id FROM sensors)
                 AND bucket_ms < ?1"
            ),
            [cutoff],
        )?;
        count_evictions(writer, kind, deleted as u64)?;
    }
    Ok(())
}

/// Bytes in use by live pages of the database (free pages are reused, not returned).
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
    Ok(((pages - free).max(0) * page_size) as u64)
}

fn file_bytes(writer: &Writer) -> u64 {
    let path = &writer.options.path;
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let main = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let wal = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    main + wal
}

/// Evicts the least valuable rows until the store is below 90% of its cap.
fn enforce_size_cap(writer: &mut Writer) -> rusqlite::Result<()> {
    let cap = writer.options.max_size_bytes;
    let used = used_bytes(&writer.conn)?;
    let warning = cap / 10 * 8;
    if used >= warning && !writer.maintenance.over_warning {
        tracing::warn!(
            used_bytes = used,
            cap_bytes = cap,
            "the store is above 80% of its size cap"
        );
    }
    writer.maintenance.over_warning = used >= warning;
    if used <= cap {
        return Ok(());
    }
    let target = cap / 10 * 9;
    tracing::warn!(
        used_bytes = used,
        cap_bytes = cap,
        "the store is over its size cap; evicting the oldest raw readings, then rollups"
    );
    roll_up(writer)?;
    // Deleting rows leaves index pages partly empty until all their rows are gone, so the
    // used size falls more slowly than rows are deleted. Bound one pass by the share of rows
    // the excess represents, and let the next pass look again, rather than deleting until
    // the measured size drops and taking every raw row with it.
    let (first_id, last_id): (i64, i64) = writer.conn.query_row(
        "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM readings",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let raw_rows = (last_id - first_id + 1).max(0) as u64;
    let budget = (raw_rows as u128 * (used - target) as u128 / used as u128) as u64;
    let mut evicted = 0;
    while used_bytes(&writer.conn)? > target && (evicted < budget.max(1) || raw_rows == 0) {
        let rows = evict_oldest(writer)?;
        evicted += rows;
        if rows == 0 {
            tracing::error!(
                cap_bytes = cap,
                "the store is over its size cap with nothing left to evict; raise store.max_size_mb"
            );
            break;
        }
    }
    Ok(())
}

/// Deletes one chunk of the least valuable rows. Returns how many rows went.
fn evict_oldest(writer: &mut Writer) -> rusqlite::Result<u64> {
    let deleted = writer.conn.execute(
        "DELETE FROM readings WHERE id IN (
             SELECT id FROM readings WHERE id <= ?1 ORDER BY id LIMIT ?2
         )",
        params![writer.maintenance.watermark, EVICT_CHUNK],
    )? as u64;
    if deleted > 0 {
        count_evictions(writer, "raw", deleted)?;
        return Ok(deleted);
    }
    for (table, kind) in [("rollup_minute", "minute"), ("rollup_hour", "hour")] {
        let oldest: Option<i64> =
            writer
                .conn
                .query_row(&format!("SELECT MIN(bucket_ms) FROM {table}"), [], |row| {
                    row.get(0)
                })?;
        if let Some(oldest) = oldest {
            let deleted = writer.conn.execute(
                &format!("DELETE FROM {table} WHERE sensor IN (SELECT id FROM sensors) AND bucket_ms <= ?1"),
                [oldest],
            )? as u64;
            count_evictions(writer, kind, deleted)?;
            return Ok(deleted);
        }
    }
    Ok(0)
}

/// Keeps the quarantine to its configured number of rows, dropping the oldest.
fn trim_quarantine(writer: &mut Writer) -> rusqlite::Result<()> {
    let max_rows = writer.options.quarantine_max_rows as i64;
    let deleted = writer.conn.execute(
        "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?1",
        [max_rows],
    )?;
    count_evictions(writer, "quarantine", deleted as u64)
}

fn count_evictions(writer: &Writer, kind: &'static str, rows: u64) -> rusqlite::Result<()> {
    if rows == 0 {
        return Ok(());
    }
    writer.conn.execute(
        "INSERT INTO evictions (kind, rows) VALUES (?1, ?2)
         ON CONFLICT(kind) DO UPDATE SET rows = rows + excluded.rows",
        params![kind, rows as i64],
    )?;
    writer
        .metrics
        .store_evictions
        .get_or_create(&crate::metrics::KindLabel { kind })
        .inc_by(rows);
    Ok(())
}

/// Space kept in a reserve file beside the database. SQLite needs room in its write-ahead
/// log even to delete rows, so on a full disk the reserve is released to make eviction
/// possible, and recreated once commits succeed again.
pub(crate) const RESERVE_BYTES: u64 = 2 * 1024 * 1024;

pub(crate) fn reserve_path(writer: &Writer) -> std::path::PathBuf {
    let mut path = writer.options.path.clone().into_os_string();
    path.push(".reserve");
    path.into()
}

/// Creates the reserve file if it is missing. Fails quietly while the disk is still full.
pub(crate) fn ensure_reserve(writer: &Writer) {
    let path = reserve_path(writer);
    let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES);
    if present {
        return;
    }
    let result = std::fs::File::create(&path).and_then(|file| {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(file);
        let block = vec![0u8; 64 * 1024];
        for _ in 0..RESERVE_BYTES / block.len() as u64 {
            file.write_all(&block)?;
        }
        file.into_inner()?.sync_all()
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Called when a commit failed because the disk is full: releases the reserve, summarises
/// what it can, and evicts a chunk of the oldest raw readings so that the retried commit has
/// room. If the rollups cannot be written either, the oldest raw rows are evicted without
/// being summarised, which is logged, because new readings are worth more than old ones.
pub(crate) fn free_space_after_disk_full(writer: &mut Writer) {
    let released = std::fs::remove_file(reserve_path(writer)).is_ok();
    let _ = writer
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    if let Err(err) = roll_up(writer) {
        tracing::warn!(error = %err, "disk full; evicting raw readings that are not yet summarised");
        writer.maintenance.watermark = i64::MAX;
    }
    let result = evict_oldest(writer);
    writer.maintenance.watermark = writer
        .conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'rollup_watermark'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0);
    let _ = writer
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    match result {
        Ok(rows) => tracing::warn!(
            rows,
            released_reserve = released,
            "disk full; evicted the oldest rows to make room"
        ),
        Err(err) => tracing::error!(error = %err, "disk full and eviction failed; free disk space"),
    }
}
