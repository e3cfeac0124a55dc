//! The hash-chained audit log.
//!
//! Each row stores `prev_hash`, the hash of the row before it, and `hash`, the SHA-256 of the
//! previous hash and the row's own fields. Editing, deleting or reordering a row changes a
//! hash that a later row depends on, so [`verify`] finds it. Triggers make the table
//! append-only for the gateway; the chain catches what someone does after dropping them.
//!
//! Rows written before the chain existed have no hash and are reported as unchained, as long
//! as they all come before the first chained row.
//!
//! NOTE: the chain cannot show that rows were cut off its end, because nothing outside the
//! table records the newest hash. The outbox sends each ticket's audit rows, with their hash,
//! to the central office, which keeps that copy.

use rusqlite::{params, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use super::AuditRecord;

/// The `prev_hash` of the first chained row.
pub const GENESIS: &str = "";

/// Appends `record` to the chain inside the caller's transaction and returns its hash (hex).
pub fn insert(tx: &Transaction<'_>, record: &AuditRecord) -> rusqlite::Result<String> {
    let last: Option<(i64, Option<String>)> = tx
        .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (id, prev) = match last {
        Some((id, hash)) => (id + 1, hash.unwrap_or_default()),
        None => (1, GENESIS.to_string()),
    };
    let detail = record.detail.to_string();
    let hash = row_hash(
        &prev,
        id,
        record.ts_ms,
        &record.actor,
        &record.action,
        &record.subject,
        &detail,
    );
    tx.prepare_cached(
        "INSERT INTO audit (id, ts_ms, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        record.ts_ms,
        record.actor,
        record.action,
        record.subject,
        detail,
        prev,
        hash
    ])?;
    Ok(hash)
}

/// Computes a row's hash. Every field is length-prefixed, so that moving text from one field
/// to the next changes the hash.
pub fn row_hash(
    prev: &str,
    id: i64,
    ts_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut hasher = Sha256::new();
    let id_text = id.to_string();
    let ts_text = ts_ms.to_string();
    for field in [prev, &id_text, &ts_text, actor, action, subject, detail] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Rows whose hash matched.
    pub chained: u64,
    /// Rows from before the chain existed.
    pub unchained: u64,
    /// One line per row that does not fit the chain, with its id and what is wrong.
    pub problems: Vec<String>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Recomputes every hash in id order and lists the rows that do not match.
pub fn verify(conn: &rusqlite::Connection) -> rusqlite::Result<Verification> {
    let mut result = Verification {
        chained: 0,
        unchained: 0,
        problems: Vec::new(),
    };
    let mut statement = conn.prepare(
        "SELECT id, ts_ms, actor, action, subject, detail, prev_hash, hash
         FROM audit ORDER BY id",
    )?;
    let mut rows = statement.query([])?;
    // The hash of the row before, once the chain has started.
    let mut previous: Option<String> = None;
    let mut expected_id: Option<i64> = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let ts_ms: i64 = row.get(1)?;
        let actor: String = row.get(2)?;
        let action: String = row.get(3)?;
        let subject: String = row.get(4)?;
        let detail: String = row.get(5)?;
        let prev_hash: Option<String> = row.get(6)?;
        let hash: Option<String> = row.get(7)?;
        let (Some(prev_hash), Some(hash)) = (prev_hash, hash) else {
            if previous.is_some() {
                result.problems.push(format!(
                    "row {id}: has no hash but comes after chained rows"
                ));
            } else {
                result.unchained += 1;
            }
            continue;
        };
        if let Some(expected) = expected_id {
            if id != expected {
                result.problems.push(format!(
                    "row {id}: expected row {expected} next; rows {expected} to {} are missing",
                    id - 1
                ));
            }
        }
        let link = previous.clone().unwrap_or_else(|| prev_hash.clone());
        if prev_hash != link {
            result.problems.push(format!(
                "row {id}: prev_hash does not match the hash of the row before it"
            ));
        }
        let computed = row_hash(&prev_hash, id, ts_ms, &actor, &action, &subject, &detail);
        if computed != hash {
            result.problems.push(format!(
                "row {id}: content does not match its hash; the row was edited"
            ));
        } else {
            result.chained += 1;
        }
        previous = Some(hash);
        expected_id = Some(id + 1);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str) -> AuditRecord {
        AuditRecord {
            ts_ms: 1_000,
            actor: "rule:test".into(),
            action: action.into(),
            subject: "gw-000001".into(),
            detail: serde_json::json!({"outcome": action}),
        }
    }

    #[test]
    fn chain_verifies_and_shows_an_edit() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        for action in ["a", "b", "c"] {
            insert(&tx, &record(action)).unwrap();
        }
        tx.commit().unwrap();
        let clean = verify(&conn).unwrap();
        assert!(clean.is_intact(), "{:?}", clean.problems);
        assert_eq!(clean.chained, 3);

        conn.execute_batch(
            "DROP TRIGGER audit_no_update;
             UPDATE audit SET detail = '{\"outcome\":\"x\"}' WHERE id = 2;",
        )
        .unwrap();
        let tampered = verify(&conn).unwrap();
        assert_eq!(tampered.problems.len(), 1, "{:?}", tampered.problems);
        assert!(tampered.problems[0].starts_with("row 2:"));
    }

    #[test]
    fn deleted_row_breaks_chain() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        for action in ["a", "b", "c"] {
            insert(&tx, &record(action)).unwrap();
        }
        tx.commit().unwrap();
        conn.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2;")
            .unwrap();
        let result = verify(&conn).unwrap();
        assert!(!result.is_intact());
    }
}
