//! The outbox: events for the central office, written in the same transaction as the change
//! they describe, and deleted only once the office has acknowledged them.

use rusqlite::{params, OptionalExtension, Transaction};
use uuid::Uuid;

use crate::protocol::EventKind;

/// The `meta` key that turns the outbox off: set while the gateway runs without a central
/// office, since nothing would ever drain what it queued.
pub const DISABLED_KEY: &str = "outbox_disabled";

/// Records whether events are queued from now on. The gateway calls it at start, with
/// `enabled` true when a central office is configured.
pub fn set_enabled(tx: &Transaction<'_>, enabled: bool) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![DISABLED_KEY, i64::from(!enabled)],
    )?;
    Ok(())
}

/// Adds an event to the outbox inside the caller's transaction and returns its event id, or
/// `None` when the outbox is off (see [`set_enabled`]). `ts_ms` is the gateway's time of the
/// change; the UUIDv7 takes its time from it.
pub fn enqueue(
    tx: &Transaction<'_>,
    kind: EventKind,
    ticket: Option<&str>,
    ts_ms: i64,
    payload: &serde_json::Value,
) -> rusqlite::Result<Option<Uuid>> {
    let disabled: Option<i64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [DISABLED_KEY],
            |row| row.get(0),
        )
        .optional()?;
    if disabled == Some(1) {
        return Ok(None);
    }
    let millis = u64::try_from(ts_ms).unwrap_or(0);
    let timestamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
    );
    let event_id = Uuid::new_v7(timestamp);
    let text = payload.to_string();
    tx.execute(
        "INSERT INTO outbox (event_id, kind, ticket, ts_ms, payload, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            event_id.to_string(),
            kind.as_str(),
            ticket,
            ts_ms,
            text,
            i64::try_from(text.len()).unwrap_or(i64::MAX)
        ],
    )?;
    Ok(Some(event_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_order_and_ids_are_unique() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let payload = serde_json::json!({"state": "new"});
        let first = enqueue(&tx, EventKind::Ticket, Some("gw-1"), 1_000, &payload)
            .unwrap()
            .unwrap();
        let second = enqueue(&tx, EventKind::Ticket, Some("gw-1"), 1_000, &payload)
            .unwrap()
            .unwrap();
        tx.commit().unwrap();
        assert_ne!(first, second);
        assert_eq!(first.get_version_num(), 7);
        let ids: Vec<String> = conn
            .prepare("SELECT event_id FROM outbox ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, vec![first.to_string(), second.to_string()]);
    }

    #[test]
    fn nothing_is_queued_while_the_outbox_is_off() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let payload = serde_json::json!({"state": "new"});
        let tx = conn.transaction().unwrap();
        set_enabled(&tx, false).unwrap();
        let skipped = enqueue(&tx, EventKind::Ticket, Some("gw-1"), 1_000, &payload).unwrap();
        set_enabled(&tx, true).unwrap();
        let queued = enqueue(&tx, EventKind::Ticket, Some("gw-1"), 2_000, &payload).unwrap();
        tx.commit().unwrap();
        assert_eq!(skipped, None);
        assert!(queued.is_some());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }
}
