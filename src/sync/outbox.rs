//! Outbox reads and the writes that follow an office's response: delete acknowledged events,
//! move rejected ones to `sync_rejected`, note failed attempts, and evict by the cap.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use uuid::Uuid;

use super::batch::Pending;
use crate::protocol::EventKind;

/// Kinds evicted when the outbox is over its cap, in order. Ticket, tenant update and audit
/// events are never evicted.
pub const EVICTION_ORDER: [EventKind; 2] = [EventKind::Telemetry, EventKind::Anomaly];

/// The `meta` key of the last office change applied.
pub const PULL_CURSOR_KEY: &str = "sync_pull_cursor";

/// A row that could not be turned into an envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub event_id: Uuid,
    pub error: String,
}

/// Reads up to `limit` events with `seq` above `after_seq`, in sequence order.
pub fn read_pending(
    conn: &Connection,
    gateway: &str,
    after_seq: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<Pending>, Vec<Unreadable>)> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, event_id, kind, ticket, ts_ms, payload FROM outbox
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = statement.query_map(
        params![after_seq, i64::try_from(limit).unwrap_or(i64::MAX)],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
            ))
        },
    )?;
    let mut pending = Vec::new();
    let mut unreadable = Vec::new();
    for row in rows {
        let (seq, event_id, kind, ticket, ts_ms, payload) = row?;
        let Ok(id) = Uuid::parse_str(&event_id) else {
            tracing::error!(
                seq,
                event_id,
                "outbox row has an invalid event id; skipping it"
            );
            continue;
        };
        let Some(kind) = EventKind::parse(&kind) else {
            unreadable.push(Unreadable {
                event_id: id,
                error: format!("unknown event kind {kind:?}"),
            });
            continue;
        };
        match Pending::new(gateway, seq, id, kind, ticket, ts_ms, &payload) {
            Ok(event) => pending.push(event),
            Err(err) => unreadable.push(Unreadable {
                event_id: id,
                error: format!("payload is not valid JSON: {err}"),
            }),
        }
    }
    Ok((pending, unreadable))
}

/// Returns the highest sequence number in the outbox, or 0 when it is empty.
pub fn max_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM outbox", [], |row| {
        row.get(0)
    })
}

pub fn count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
}

/// Counts events moved to `sync_rejected` at or after `since_ms`.
pub fn count_rejected_since(conn: &Connection, since_ms: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM sync_rejected WHERE rejected_ms >= ?1",
        [since_ms],
        |row| row.get(0),
    )
}

/// Deletes acknowledged events; returns how many were still in the outbox.
pub fn delete_acked(tx: &Transaction<'_>, acked: &[Uuid]) -> rusqlite::Result<usize> {
    let mut statement = tx.prepare_cached("DELETE FROM outbox WHERE event_id = ?1")?;
    let mut deleted = 0;
    for id in acked {
        deleted += statement.execute([id.to_string()])?;
    }
    Ok(deleted)
}

/// Moves an event to `sync_rejected` with the status and error that rejected it. Returns
/// whether it was still in the outbox.
pub fn reject(
    tx: &Transaction<'_>,
    event_id: Uuid,
    status: u16,
    error: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let id = event_id.to_string();
    tx.execute(
        "INSERT OR IGNORE INTO sync_rejected
             (seq, event_id, kind, ticket, ts_ms, payload, bytes, status, error, rejected_ms)
         SELECT seq, event_id, kind, ticket, ts_ms, payload, bytes, ?2, ?3, ?4
         FROM outbox WHERE event_id = ?1",
        params![id, status, error, now_ms],
    )?;
    let deleted = tx.execute("DELETE FROM outbox WHERE event_id = ?1", [id])?;
    Ok(deleted > 0)
}

/// Counts one more failed attempt on each event and keeps the error.
pub fn note_failures(tx: &Transaction<'_>, failed: &[(Uuid, String)]) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE event_id = ?1",
    )?;
    for (id, error) in failed {
        statement.execute(params![id.to_string(), error])?;
    }
    Ok(())
}

/// Events evicted by one pass of the cap, per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub telemetry: usize,
    pub anomaly: usize,
    /// Events left in the outbox afterwards.
    pub remaining: i64,
}

/// Evicts the oldest telemetry events, then the oldest anomaly summaries, until at most
/// `max_events` remain or nothing evictable is left. Counts each kind in `evictions`.
pub fn enforce_cap(tx: &Transaction<'_>, max_events: u64) -> rusqlite::Result<Eviction> {
    let max = i64::try_from(max_events).unwrap_or(i64::MAX);
    let mut eviction = Eviction {
        remaining: tx.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?,
        ..Eviction::default()
    };
    for kind in EVICTION_ORDER {
        let excess = eviction.remaining - max;
        if excess <= 0 {
            break;
        }
        let deleted = tx.execute(
            "DELETE FROM outbox WHERE seq IN
                 (SELECT seq FROM outbox WHERE kind = ?1 ORDER BY seq LIMIT ?2)",
            params![kind.as_str(), excess],
        )?;
        if deleted == 0 {
            continue;
        }
        let label = format!("outbox_{}", kind.as_str());
        tx.execute(
            "INSERT INTO evictions (kind, rows) VALUES (?1, ?2)
             ON CONFLICT(kind) DO UPDATE SET rows = rows + excluded.rows",
            params![label, deleted as i64],
        )?;
        eviction.remaining -= deleted as i64;
        match kind {
            EventKind::Telemetry => eviction.telemetry += deleted,
            _ => eviction.anomaly += deleted,
        }
    }
    Ok(eviction)
}

pub fn read_cursor(tx: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()
}

pub fn write_cursor(tx: &Transaction<'_>, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::enqueue;

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn add(conn: &mut Connection, kind: EventKind, ticket: Option<&str>, n: usize) {
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            enqueue(
                &tx,
                kind,
                ticket,
                1_000 + i as i64,
                &serde_json::json!({"i": i}),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn kinds(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT kind FROM outbox ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn cap_evicts_telemetry_before_anomalies() {
        let mut conn = store();
        add(&mut conn, EventKind::Anomaly, None, 3);
        add(&mut conn, EventKind::Ticket, Some("gw-000001"), 4);
        add(&mut conn, EventKind::Telemetry, None, 3);
        let tx = conn.transaction().unwrap();
        let eviction = enforce_cap(&tx, 8).unwrap();
        tx.commit().unwrap();
        assert_eq!(eviction.telemetry, 2);
        assert_eq!(eviction.anomaly, 0);
        assert_eq!(eviction.remaining, 8);
        let left = kinds(&conn);
        assert_eq!(left.iter().filter(|k| *k == "telemetry").count(), 1);
        assert_eq!(left.iter().filter(|k| *k == "anomaly").count(), 3);
    }

    #[test]
    fn cap_never_evicts_tickets() {
        let mut conn = store();
        add(&mut conn, EventKind::Anomaly, None, 2);
        add(&mut conn, EventKind::Ticket, Some("gw-000001"), 5);
        add(&mut conn, EventKind::Audit, Some("gw-000001"), 1);
        add(&mut conn, EventKind::Telemetry, None, 2);
        let tx = conn.transaction().unwrap();
        let eviction = enforce_cap(&tx, 3).unwrap();
        tx.commit().unwrap();
        assert_eq!(eviction.telemetry, 2);
        assert_eq!(eviction.anomaly, 2);
        assert_eq!(eviction.remaining, 6);
        assert_eq!(
            kinds(&conn),
            vec!["ticket"; 5]
                .into_iter()
                .chain(["audit"])
                .collect::<Vec<_>>()
        );
        let counted: i64 = conn
            .query_row(
                "SELECT rows FROM evictions WHERE kind = 'outbox_anomaly'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(counted, 2);
    }

    #[test]
    fn reject_moves_event_and_keeps_payload() {
        let mut conn = store();
        add(&mut conn, EventKind::Ticket, Some("gw-000001"), 2);
        let (pending, unreadable) = read_pending(&conn, "gw", 0, 10).unwrap();
        assert!(unreadable.is_empty());
        let tx = conn.transaction().unwrap();
        assert!(reject(&tx, pending[0].event_id, 413, "too large", 5_000).unwrap());
        assert!(!reject(&tx, pending[0].event_id, 413, "too large", 5_000).unwrap());
        assert_eq!(delete_acked(&tx, &[pending[1].event_id]).unwrap(), 1);
        tx.commit().unwrap();
        assert_eq!(count(&conn).unwrap(), 0);
        let (status, payload): (u16, String) = conn
            .query_row("SELECT status, payload FROM sync_rejected", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(status, 413);
        assert_eq!(payload, r#"{"i":0}"#);
        assert_eq!(count_rejected_since(&conn, 5_000).unwrap(), 1);
    }

    #[test]
    fn failures_count_attempts() {
        let mut conn = store();
        add(&mut conn, EventKind::Ticket, Some("gw-000001"), 1);
        let (pending, _) = read_pending(&conn, "gw", 0, 10).unwrap();
        let tx = conn.transaction().unwrap();
        let failed = vec![(pending[0].event_id, "HTTP 500".to_string())];
        note_failures(&tx, &failed).unwrap();
        note_failures(&tx, &failed).unwrap();
        tx.commit().unwrap();
        let (attempts, error): (i64, String) = conn
            .query_row("SELECT attempts, last_error FROM outbox", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(error, "HTTP 500");
    }

    #[test]
    fn cursor_round_trips() {
        let mut conn = store();
        assert_eq!(read_cursor(&conn, PULL_CURSOR_KEY).unwrap(), None);
        let tx = conn.transaction().unwrap();
        write_cursor(&tx, PULL_CURSOR_KEY, 7).unwrap();
        write_cursor(&tx, PULL_CURSOR_KEY, 9).unwrap();
        tx.commit().unwrap();
        assert_eq!(read_cursor(&conn, PULL_CURSOR_KEY).unwrap(), Some(9));
    }
}
