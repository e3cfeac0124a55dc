//! SQL text, statement parameters and row assembly that both backends share.
//!
//! Statements use PostgreSQL's `$N` placeholders. SQLite reads `$N` as a named parameter and
//! numbers it by first appearance, so the SQLite backend rewrites every `$N` to `?N` with
//! [`numbered_placeholders`] before it prepares a statement.

use std::borrow::Cow;

use crate::protocol::{AuditEntry, Change, OfficeChange, TenantRecord, TicketSnapshot, Transition};

use super::{
    AnomalyRow, GatewayIdentity, GatewayStatus, RelayEntry, Session, StoreError, StoreResult,
    TelemetryRow, TicketFilter, TicketRow, TokenInfo, User,
};

/// The tables of both backends. `SERIAL_KEY` stands for the column type of a generated
/// `BIGINT` primary key, which each backend spells its own way.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    ticket TEXT,
    ts_ms BIGINT NOT NULL,
    payload TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_gateway_seq ON events (gateway, seq);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    gateway TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    urgency TEXT NOT NULL,
    needs_human BOOLEAN NOT NULL,
    opened_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_building ON tickets (building, state);
CREATE TABLE IF NOT EXISTS ticket_history (
    ticket TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (ticket, seq)
);
CREATE TABLE IF NOT EXISTS audit (
    ticket TEXT NOT NULL,
    hash TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (ticket, hash)
);
CREATE TABLE IF NOT EXISTS anomalies (
    event_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    building TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    ticket TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS anomalies_building ON anomalies (building, ts_ms);
CREATE TABLE IF NOT EXISTS telemetry (
    event_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    building TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_building ON telemetry (building, ts_ms);
CREATE TABLE IF NOT EXISTS relay (
    id SERIAL_KEY,
    kind TEXT NOT NULL,
    building TEXT NOT NULL,
    ticket TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS office_changes (
    id SERIAL_KEY,
    building TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    change TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS office_changes_building ON office_changes (building, id);
CREATE TABLE IF NOT EXISTS heartbeats (
    gateway TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    heartbeat TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_tokens (
    id SERIAL_KEY,
    gateway TEXT NOT NULL,
    building TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenants (
    building TEXT NOT NULL,
    unit TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (building, unit)
);
";

/// Returns the schema with `serial_key` as the type of every generated primary key, such as
/// `INTEGER PRIMARY KEY AUTOINCREMENT` (SQLite) or `BIGSERIAL PRIMARY KEY` (PostgreSQL).
pub(crate) fn schema(serial_key: &str) -> String {
    SCHEMA.replace("SERIAL_KEY", serial_key)
}

/// Rewrites the `$N` placeholders of `sql` to SQLite's `?N`. The statements of this module
/// contain no `$` other than placeholders.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut rewritten = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            rewritten.push('?');
        } else {
            rewritten.push(c);
        }
    }
    rewritten
}

/// A value bound to a `$N` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

impl From<&str> for Param {
    fn from(text: &str) -> Param {
        Param::Text(text.to_string())
    }
}

impl From<String> for Param {
    fn from(text: String) -> Param {
        Param::Text(text)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Param {
        Param::Int(value)
    }
}

/// Builds a `Vec<Param>` from values that convert into [`Param`].
macro_rules! bind {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::central::store::sql::Param::from($value)),*]
    };
}
pub(crate) use bind;

/// One write statement and its parameters.
pub(crate) type Statement = (Cow<'static, str>, Vec<Param>);

/// A row of a query result, read by column index whichever backend produced it.
pub(crate) trait StoredRow {
    fn text(&self, index: usize) -> StoreResult<String>;
    fn optional_text(&self, index: usize) -> StoreResult<Option<String>>;
    fn int(&self, index: usize) -> StoreResult<i64>;
    fn optional_int(&self, index: usize) -> StoreResult<Option<i64>>;
}

impl StoredRow for rusqlite::Row<'_> {
    fn text(&self, index: usize) -> StoreResult<String> {
        Ok(self.get(index)?)
    }

    fn optional_text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.get(index)?)
    }

    fn int(&self, index: usize) -> StoreResult<i64> {
        Ok(self.get(index)?)
    }

    fn optional_int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(self.get(index)?)
    }
}

impl StoredRow for tokio_postgres::Row {
    fn text(&self, index: usize) -> StoreResult<String> {
        Ok(self.try_get(index)?)
    }

    fn optional_text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.try_get(index)?)
    }

    fn int(&self, index: usize) -> StoreResult<i64> {
        Ok(self.try_get(index)?)
    }

    fn optional_int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(self.try_get(index)?)
    }
}

/// Builds one value from one result row.
pub(crate) type FromRow<T> = fn(&dyn StoredRow) -> StoreResult<T>;

pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol types serialise to JSON")
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

pub(crate) fn parse_uuid(text: &str) -> StoreResult<uuid::Uuid> {
    text.parse().map_err(|_| StoreError::Json {
        what: "event id",
        source: serde::de::Error::custom(format!("{text:?} is not a UUID")),
    })
}

pub(crate) const SELECT_CHANGES: &str = "SELECT id, ts_ms, actor, change FROM office_changes
     WHERE building = $1 AND id > $2 ORDER BY id LIMIT $3";

pub(crate) fn office_change(row: &dyn StoredRow) -> StoreResult<OfficeChange> {
    Ok(OfficeChange {
        id: row.int(0)?,
        ts_ms: row.int(1)?,
        actor: row.text(2)?,
        change: decode_json("office change", &row.text(3)?)?,
    })
}

pub(crate) const INSERT_CHANGE: &str = "INSERT INTO office_changes (building, ts_ms, actor, change)
     VALUES ($1, $2, $3, $4) RETURNING id";

/// Returns the statement that applies a tenant directory change to the office's copy of the
/// directory, or `None` for a change of another kind.
pub(crate) fn tenant_directory_statement(
    building: &str,
    change: &Change,
    now_ms: i64,
) -> Option<Statement> {
    match change {
        Change::TenantUpsert(record) => Some((
            Cow::Borrowed(
                "INSERT INTO tenants (building, unit, record, updated_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (building, unit) DO UPDATE SET
                    record = excluded.record, updated_ms = excluded.updated_ms",
            ),
            bind![building, record.unit.as_str(), json_text(record), now_ms],
        )),
        Change::TenantRemove { unit } => Some((
            Cow::Borrowed("DELETE FROM tenants WHERE building = $1 AND unit = $2"),
            bind![building, unit.as_str()],
        )),
        Change::Ticket { .. } => None,
    }
}

pub(crate) const SELECT_TENANTS: &str =
    "SELECT record FROM tenants WHERE building = $1 ORDER BY unit";

pub(crate) fn tenant_record(row: &dyn StoredRow) -> StoreResult<TenantRecord> {
    decode_json("tenant record", &row.text(0)?)
}

pub(crate) const UPSERT_HEARTBEAT: &str =
    "INSERT INTO heartbeats (gateway, building, received_ms, heartbeat)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (gateway) DO UPDATE SET building = excluded.building,
        received_ms = excluded.received_ms, heartbeat = excluded.heartbeat";

pub(crate) const SELECT_HEARTBEATS: &str =
    "SELECT gateway, building, received_ms, heartbeat FROM heartbeats
     ORDER BY building, gateway";

/// Builds a gateway's status with `stale` unset; the caller sets it for the time of its query.
pub(crate) fn gateway_status(row: &dyn StoredRow) -> StoreResult<GatewayStatus> {
    Ok(GatewayStatus {
        gateway: row.text(0)?,
        building: row.text(1)?,
        received_ms: row.int(2)?,
        heartbeat: decode_json("heartbeat", &row.text(3)?)?,
        stale: false,
    })
}

pub(crate) const INSERT_TOKEN: &str =
    "INSERT INTO gateway_tokens (gateway, building, token_hash, created_ms)
     VALUES ($1, $2, $3, $4) RETURNING id";

pub(crate) const REVOKE_TOKENS: &str = "UPDATE gateway_tokens SET revoked_ms = $2
     WHERE gateway = $1 AND revoked_ms IS NULL";

pub(crate) const SELECT_TOKENS: &str =
    "SELECT id, gateway, building, created_ms, revoked_ms FROM gateway_tokens ORDER BY id";

pub(crate) fn token_info(row: &dyn StoredRow) -> StoreResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.int(0)?,
        gateway: row.text(1)?,
        building: row.text(2)?,
        created_ms: row.int(3)?,
        revoked_ms: row.optional_int(4)?,
    })
}

pub(crate) const SELECT_LIVE_TOKEN: &str = "SELECT id, gateway, building FROM gateway_tokens
     WHERE token_hash = $1 AND revoked_ms IS NULL";

pub(crate) fn gateway_identity(row: &dyn StoredRow) -> StoreResult<GatewayIdentity> {
    Ok(GatewayIdentity {
        token_id: row.int(0)?,
        gateway: row.text(1)?,
        building: row.text(2)?,
    })
}

pub(crate) const INSERT_USER: &str = "INSERT INTO users (name, role, password_hash, created_ms)
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";

pub(crate) const UPDATE_USER: &str =
    "UPDATE users SET role = $2, password_hash = $3 WHERE name = $1";

pub(crate) const SELECT_USER: &str =
    "SELECT name, role, password_hash, created_ms FROM users WHERE name = $1";

pub(crate) fn user(row: &dyn StoredRow) -> StoreResult<User> {
    Ok(User {
        name: row.text(0)?,
        role: row.text(1)?,
        password_hash: row.text(2)?,
        created_ms: row.int(3)?,
    })
}

pub(crate) const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE expires_ms <= $1";

pub(crate) const INSERT_SESSION: &str =
    "INSERT INTO sessions (session_hash, user_name, created_ms, expires_ms)
     VALUES ($1, $2, $3, $4)";

pub(crate) const SELECT_SESSION: &str = "SELECT s.user_name, u.role, s.created_ms, s.expires_ms
     FROM sessions s JOIN users u ON u.name = s.user_name
     WHERE s.session_hash = $1 AND s.expires_ms > $2";

pub(crate) fn session(row: &dyn StoredRow) -> StoreResult<Session> {
    Ok(Session {
        user: row.text(0)?,
        role: row.text(1)?,
        created_ms: row.int(2)?,
        expires_ms: row.int(3)?,
    })
}

pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE session_hash = $1";

/// The columns that [`ticket_row`] reads.
macro_rules! ticket_columns {
    () => {
        "snapshot, gateway, seq"
    };
}

pub(crate) const SELECT_TICKET: &str =
    concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE id = $1");

/// Builds a [`TicketRow`] from the columns that `ticket_columns!` names.
pub(crate) fn ticket_row(row: &dyn StoredRow) -> StoreResult<TicketRow> {
    let snapshot: TicketSnapshot = decode_json("ticket snapshot", &row.text(0)?)?;
    Ok(super::row_from_snapshot(
        snapshot,
        row.text(1)?,
        row.int(2)?,
    ))
}

/// Builds the query of [`super::CentralStore::list_tickets`] for `filter`, without its order
/// and limit, which the caller applies after reading the snapshots.
pub(crate) fn ticket_filter_query(filter: &TicketFilter) -> (String, Vec<Param>) {
    let mut sql = concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE 1 = 1").to_string();
    let mut params = Vec::new();
    let equal_to = [
        ("building", &filter.building),
        ("state", &filter.state),
        ("urgency", &filter.urgency),
    ];
    for (column, value) in equal_to {
        if let Some(value) = value {
            params.push(Param::from(value.as_str()));
            sql.push_str(&format!(" AND {column} = ${}", params.len()));
        }
    }
    if filter.open_only {
        let finished = super::FINISHED_STATES
            .iter()
            .map(|state| format!("'{state}'"))
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" AND state NOT IN ({finished})"));
    }
    (sql, params)
}

pub(crate) const SELECT_HISTORY: &str =
    "SELECT seq, ts_ms, from_state, to_state, actor, reason FROM ticket_history
     WHERE ticket = $1 ORDER BY seq";

pub(crate) fn transition(row: &dyn StoredRow) -> StoreResult<Transition> {
    Ok(Transition {
        seq: row.int(0)?,
        ts_ms: row.int(1)?,
        from: row.optional_text(2)?,
        to: row.text(3)?,
        actor: row.text(4)?,
        reason: row.text(5)?,
    })
}

pub(crate) const SELECT_AUDIT: &str = "SELECT ticket, ts_ms, actor, action, detail, hash FROM audit
     WHERE ticket = $1 ORDER BY ts_ms, hash";

pub(crate) fn audit_entry(row: &dyn StoredRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        ticket: row.text(0)?,
        ts_ms: row.int(1)?,
        actor: row.text(2)?,
        action: row.text(3)?,
        detail: decode_json("audit detail", &row.text(4)?)?,
        hash: row.text(5)?,
    })
}

pub(crate) const SELECT_ANOMALIES: &str =
    "SELECT event_id, gateway, building, ts_ms, ticket, payload FROM anomalies
     WHERE building = $1 AND ts_ms >= $2 ORDER BY ts_ms DESC";

pub(crate) fn anomaly_row(row: &dyn StoredRow) -> StoreResult<AnomalyRow> {
    Ok(AnomalyRow {
        event_id: parse_uuid(&row.text(0)?)?,
        gateway: row.text(1)?,
        building: row.text(2)?,
        ts_ms: row.int(3)?,
        ticket: row.optional_text(4)?,
        payload: decode_json("anomaly", &row.text(5)?)?,
    })
}

pub(crate) const SELECT_TELEMETRY: &str =
    "SELECT event_id, gateway, building, ts_ms, payload FROM telemetry
     WHERE building = $1 AND ts_ms >= $2 ORDER BY ts_ms";

pub(crate) fn telemetry_row(row: &dyn StoredRow) -> StoreResult<TelemetryRow> {
    Ok(TelemetryRow {
        event_id: parse_uuid(&row.text(0)?)?,
        gateway: row.text(1)?,
        building: row.text(2)?,
        ts_ms: row.int(3)?,
        payload: decode_json("telemetry", &row.text(4)?)?,
    })
}

pub(crate) const SELECT_RELAY: &str =
    "SELECT id, kind, building, ticket, subject, payload, created_ms FROM relay
     WHERE id > $1 ORDER BY id LIMIT $2";

pub(crate) fn relay_entry(row: &dyn StoredRow) -> StoreResult<RelayEntry> {
    Ok(RelayEntry {
        id: row.int(0)?,
        kind: row.text(1)?,
        building: row.text(2)?,
        ticket: row.text(3)?,
        subject: row.text(4)?,
        payload: row.text(5)?,
        created_ms: row.int(6)?,
    })
}

pub(crate) const SELECT_BUILDINGS: &str =
    "SELECT building FROM gateway_tokens UNION SELECT building FROM tickets
     UNION SELECT building FROM heartbeats ORDER BY 1";

pub(crate) const COUNT_EVENTS: &str = "SELECT count(*) FROM events";

pub(crate) fn first_text(row: &dyn StoredRow) -> StoreResult<String> {
    row.text(0)
}

pub(crate) fn first_int(row: &dyn StoredRow) -> StoreResult<i64> {
    row.int(0)
}

/// The conflict clause of a ticket snapshot's upsert. A snapshot replaces the stored one only
/// when its transition seq is higher, so a late transition fills the history without rolling
/// the ticket back, and never when the stored ticket belongs to another building.
pub(crate) const TICKET_UPSERT_CONFLICT: &str = "ON CONFLICT (id) DO UPDATE SET
        seq = excluded.seq, state = excluded.state, urgency = excluded.urgency,
        needs_human = excluded.needs_human, opened_ms = excluded.opened_ms,
        updated_ms = excluded.updated_ms, snapshot = excluded.snapshot,
        gateway = excluded.gateway
     WHERE excluded.seq > tickets.seq AND excluded.building = tickets.building";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_rewritten_for_sqlite() {
        let sql = "UPDATE t SET a = $2 WHERE b = $1 AND c = $10";
        assert_eq!(
            numbered_placeholders(sql),
            "UPDATE t SET a = ?2 WHERE b = ?1 AND c = ?10"
        );
    }

    #[test]
    fn ticket_filter_numbers_placeholders() {
        let filter = TicketFilter {
            building: Some("b1".into()),
            state: None,
            urgency: Some("urgent".into()),
            open_only: true,
            limit: Some(5),
        };
        let (sql, params) = ticket_filter_query(&filter);
        assert!(sql.contains("building = $1"), "{sql}");
        assert!(sql.contains("urgency = $2"), "{sql}");
        assert!(!sql.contains("state = $"), "{sql}");
        assert!(
            sql.contains("state NOT IN ('resolved', 'closed', 'cancelled')"),
            "{sql}"
        );
        assert_eq!(params, vec![Param::from("b1"), Param::from("urgent")]);
    }
}
