//! Writes tenant messages, their triage and their retention inside the writer's transaction.
//!
//! A message counts as already stored, and is skipped, when a row has the same channel,
//! sender, unit and text and either the same `received_at` from the payload, or, for a
//! broker redelivery without `received_at`, arrived within [`REDELIVERY_WINDOW_MS`]. Without
//! either, two equal texts are two messages, because a tenant may well send "yes" twice.

use std::collections::HashMap;

use rusqlite::{params, Transaction};

use super::Committed;
use crate::intake::{MessageOp, NewMessage, Verdict};
use crate::metrics::{ChannelLabel, KindLabel, Metrics};

/// How far back a redelivered MQTT message without `received_at` is compared with stored
/// ones: a day covers a gateway or broker that was down overnight.
pub(crate) const REDELIVERY_WINDOW_MS: i64 = 86_400_000;

/// Counts of one transaction's message operations, added to the metrics after its commit.
#[derive(Debug, Default)]
pub(crate) struct MessageCounts {
    stored: HashMap<String, u64>,
    duplicates: HashMap<String, u64>,
    purged: u64,
}

impl MessageCounts {
    /// Adds the counts to the metrics; call only once the transaction is committed.
    pub(crate) fn publish(self, metrics: &Metrics) {
        for (channel, count) in self.stored {
            metrics
                .messages_received
                .get_or_create(&ChannelLabel { channel })
                .inc_by(count);
        }
        for (channel, count) in self.duplicates {
            metrics
                .messages_duplicate
                .get_or_create(&ChannelLabel { channel })
                .inc_by(count);
        }
        if self.purged > 0 {
            metrics
                .store_evictions
                .get_or_create(&KindLabel { kind: "messages" })
                .inc_by(self.purged);
        }
    }
}

/// Applies the message operations of one batch. A stored message adds one to
/// `committed.stored`, a skipped duplicate one to `committed.duplicates`.
pub(crate) fn apply(
    tx: &Transaction<'_>,
    ops: &[MessageOp],
    run_id: i64,
    committed: &mut Committed,
    counts: &mut MessageCounts,
) -> rusqlite::Result<()> {
    for op in ops {
        match op {
            MessageOp::Insert(message) => {
                if insert(tx, message, run_id)? {
                    committed.stored += 1;
                    *counts.stored.entry(message.channel.clone()).or_default() += 1;
                } else {
                    committed.duplicates += 1;
                    *counts
                        .duplicates
                        .entry(message.channel.clone())
                        .or_default() += 1;
                }
            }
            MessageOp::Triage {
                id,
                verdict,
                triaged_ms,
            } => triage(tx, id, verdict, *triaged_ms)?,
            MessageOp::Purge { before_ms } => {
                let deleted = tx
                    .prepare_cached("DELETE FROM messages WHERE received_ts_ms < ?1")?
                    .execute([before_ms])? as u64;
                if deleted > 0 {
                    tx.prepare_cached(
                        "INSERT INTO evictions (kind, rows) VALUES ('messages', ?1)
                         ON CONFLICT(kind) DO UPDATE SET rows = rows + excluded.rows",
                    )?
                    .execute([deleted as i64])?;
                }
                counts.purged += deleted;
            }
        }
    }
    Ok(())
}

/// Inserts a message unless it is already stored. Returns whether a row was added.
fn insert(tx: &Transaction<'_>, message: &NewMessage, run_id: i64) -> rusqlite::Result<bool> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO messages
             (id, received_ts_ms, uncertain_run, sent_ts_ms, transport, bridge, channel,
              sender, unit, text, state)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'received'
             WHERE NOT EXISTS (
                 SELECT 1 FROM messages
                 WHERE sender = ?8 AND channel = ?7 AND unit IS ?9 AND text = ?10
                   AND ((?4 IS NOT NULL AND sent_ts_ms = ?4)
                        OR (?11 AND sent_ts_ms IS NULL AND received_ts_ms >= ?12))
             )",
        )?
        .execute(params![
            message.id,
            message.received_ms,
            message.time_uncertain.then_some(run_id),
            message.sent_ms,
            message.transport.as_str(),
            message.bridge,
            message.channel,
            message.sender,
            message.unit,
            message.text,
            message.redelivery,
            message.received_ms - REDELIVERY_WINDOW_MS,
        ])?;
    Ok(inserted == 1)
}

/// Re-bases the receive time of this run's messages stamped while the clock was untrusted,
/// by `shift_ms`, as the writer does for readings.
pub(crate) fn rebase(tx: &Transaction<'_>, run_id: i64, shift_ms: i64) -> rusqlite::Result<()> {
    let moved = tx
        .prepare_cached(
            "UPDATE messages SET received_ts_ms = received_ts_ms + ?1, uncertain_run = NULL
             WHERE uncertain_run = ?2",
        )?
        .execute(params![shift_ms, run_id])?;
    if moved > 0 {
        tracing::info!(
            rows = moved,
            shift_ms,
            "re-based tenant messages received before the clock was set"
        );
    }
    Ok(())
}

/// Writes a verdict to a message that is not triaged yet; a message triaged already, or
/// deleted by retention meanwhile, is left alone.
fn triage(
    tx: &Transaction<'_>,
    id: &str,
    verdict: &Verdict,
    triaged_ms: i64,
) -> rusqlite::Result<()> {
    let pii = serde_json::Value::from(verdict.pii.clone()).to_string();
    tx.prepare_cached(
        "UPDATE messages SET language = ?2, intent = ?3, category = ?4, urgency = ?5,
             needs_human = ?6, stated_unit = ?7, pii = ?8, confidence = ?9, explanation = ?10,
             state = 'triaged', triaged_ts_ms = ?11
         WHERE id = ?1 AND state = 'received'",
    )?
    .execute(params![
        id,
        verdict.language,
        verdict.intent,
        verdict.category,
        verdict.urgency,
        verdict.needs_human,
        verdict.stated_unit,
        pii,
        verdict.confidence,
        verdict.explanation.to_string(),
        triaged_ms,
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::intake::Transport;

    const NOW_MS: i64 = 1_780_000_000_000;
    const RUN_ID: i64 = 7;

    fn message(id: &str, text: &str, sent_ms: Option<i64>, redelivery: bool) -> NewMessage {
        NewMessage {
            id: id.to_string(),
            transport: Transport::Mqtt,
            bridge: None,
            channel: "app".to_string(),
            sender: "tenant-1".to_string(),
            unit: Some("2.tv".to_string()),
            text: text.to_string(),
            received_ms: NOW_MS,
            time_uncertain: false,
            sent_ms,
            redelivery,
        }
    }

    fn apply_ops(conn: &mut Connection, ops: Vec<MessageOp>) -> (Committed, MessageCounts) {
        let tx = conn.transaction().unwrap();
        let mut committed = Committed::default();
        let mut counts = MessageCounts::default();
        apply(&tx, &ops, RUN_ID, &mut committed, &mut counts).unwrap();
        tx.commit().unwrap();
        (committed, counts)
    }

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    #[test]
    fn same_received_at_is_stored_once() {
        let mut conn = database();
        let ops = vec![
            MessageOp::Insert(message("A", "tap drips", Some(NOW_MS - 5), false)),
            MessageOp::Insert(message("B", "tap drips", Some(NOW_MS - 5), false)),
            MessageOp::Insert(message("C", "tap drips", Some(NOW_MS - 4), false)),
        ];
        let (committed, counts) = apply_ops(&mut conn, ops);
        assert_eq!(committed.stored, 2);
        assert_eq!(committed.duplicates, 1);
        assert_eq!(counts.stored["app"], 2);
        assert_eq!(counts.duplicates["app"], 1);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages"), 2);
    }

    #[test]
    fn redelivery_without_received_at_is_stored_once() {
        let mut conn = database();
        apply_ops(
            &mut conn,
            vec![MessageOp::Insert(message("A", "yes", None, false))],
        );
        // A second "yes" that is not a redelivery is a message of its own.
        let (again, _) = apply_ops(
            &mut conn,
            vec![MessageOp::Insert(message("B", "yes", None, false))],
        );
        assert_eq!(again.stored, 1);
        let (redelivered, _) = apply_ops(
            &mut conn,
            vec![MessageOp::Insert(message("C", "yes", None, true))],
        );
        assert_eq!(redelivered.duplicates, 1);
        let mut late = message("D", "yes", None, true);
        late.received_ms += REDELIVERY_WINDOW_MS + 1;
        let (outside, _) = apply_ops(&mut conn, vec![MessageOp::Insert(late)]);
        assert_eq!(outside.stored, 1);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages"), 3);
    }

    #[test]
    fn triage_updates_untriaged_row_once() {
        let mut conn = database();
        apply_ops(
            &mut conn,
            vec![MessageOp::Insert(message("A", "smoke", None, false))],
        );
        let verdict = |intent: &str| Verdict {
            language: Some("en".to_string()),
            intent: Some(intent.to_string()),
            category: Some("fire_safety".to_string()),
            urgency: Some("emergency".to_string()),
            needs_human: true,
            stated_unit: None,
            pii: vec!["phone".to_string()],
            confidence: 0.9,
            explanation: serde_json::json!({ "rules": ["smoke"] }),
        };
        let first = MessageOp::Triage {
            id: "A".to_string(),
            verdict: verdict("emergency"),
            triaged_ms: NOW_MS + 1,
        };
        let second = MessageOp::Triage {
            id: "A".to_string(),
            verdict: verdict("complaint"),
            triaged_ms: NOW_MS + 2,
        };
        apply_ops(&mut conn, vec![first, second]);
        let (state, intent, pii, triaged): (String, String, String, i64) = conn
            .query_row(
                "SELECT state, intent, pii, triaged_ts_ms FROM messages WHERE id = 'A'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(state, "triaged");
        assert_eq!(intent, "emergency");
        assert_eq!(pii, r#"["phone"]"#);
        assert_eq!(triaged, NOW_MS + 1);
    }

    #[test]
    fn purge_deletes_old_messages_and_counts_them() {
        let mut conn = database();
        let mut old = message("A", "old", None, false);
        old.received_ms = NOW_MS - 10;
        let ops = vec![
            MessageOp::Insert(old),
            MessageOp::Insert(message("B", "new", None, false)),
        ];
        apply_ops(&mut conn, ops);
        let (_, counts) = apply_ops(&mut conn, vec![MessageOp::Purge { before_ms: NOW_MS }]);
        assert_eq!(counts.purged, 1);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages"), 1);
        assert_eq!(
            count(&conn, "SELECT rows FROM evictions WHERE kind = 'messages'"),
            1
        );
    }

    #[test]
    fn rebase_moves_uncertain_messages_of_run() {
        let mut conn = database();
        let mut uncertain = message("A", "cold", None, false);
        uncertain.time_uncertain = true;
        apply_ops(
            &mut conn,
            vec![
                MessageOp::Insert(uncertain),
                MessageOp::Insert(message("B", "warm", None, false)),
            ],
        );
        assert_eq!(
            count(&conn, "SELECT uncertain_run FROM messages WHERE id = 'A'"),
            RUN_ID
        );
        let tx = conn.transaction().unwrap();
        rebase(&tx, RUN_ID, 1_000).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            count(&conn, "SELECT received_ts_ms FROM messages WHERE id = 'A'"),
            NOW_MS + 1_000
        );
        assert_eq!(
            count(&conn, "SELECT received_ts_ms FROM messages WHERE id = 'B'"),
            NOW_MS
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM messages WHERE uncertain_run IS NOT NULL"
            ),
            0
        );
    }
}
