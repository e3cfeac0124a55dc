//! The SQLite backend of the central office's store, for one office.
//!
//! One write connection behind a mutex serialises writers, so ids of `office_changes` grow
//! in commit order. Reads use their own connections from a small pool (WAL mode lets them run
//! beside the writer). All database work runs on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::protocol::{
    AuditEntry, Change, Envelope, Heartbeat, OfficeChange, TenantRecord, Transition,
};

use super::ingest::{self, Decoded};
use super::{
    AnomalyRow, BatchOutcome, CentralStore, GatewayIdentity, GatewayStatus, RelayEntry, Session,
    StoreError, StoreResult, TelemetryRow, TicketFilter, TicketRow, TokenInfo, User,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ticket TEXT,
    ts_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_gateway_seq ON events (gateway, seq);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    gateway TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    urgency TEXT NOT NULL,
    needs_human INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_building ON tickets (building, state);
CREATE TABLE IF NOT EXISTS ticket_history (
    ticket TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (ticket, seq)
);
CREATE TABLE IF NOT EXISTS audit (
    ticket TEXT NOT NULL,
    hash TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (ticket, hash)
);
CREATE TABLE IF NOT EXISTS anomalies (
    event_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    building TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    ticket TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS anomalies_building ON anomalies (building, ts_ms);
CREATE TABLE IF NOT EXISTS telemetry (
    event_id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    building TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_building ON telemetry (building, ts_ms);
CREATE TABLE IF NOT EXISTS relay (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    building TEXT NOT NULL,
    ticket TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS office_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    building TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    change TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS office_changes_building ON office_changes (building, id);
CREATE TABLE IF NOT EXISTS heartbeats (
    gateway TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    heartbeat TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL,
    building TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tenants (
    building TEXT NOT NULL,
    unit TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (building, unit)
);
";

/// Readers kept open between queries.
const MAX_IDLE_READERS: usize = 4;

/// The SQLite backend; cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteStore {
    pub(crate) path: PathBuf,
    pub(crate) writer: Arc<Mutex<Connection>>,
    pub(crate) readers: Arc<Mutex<Vec<Connection>>>,
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn join_error(err: tokio::task::JoinError) -> StoreError {
    StoreError::Task(err.to_string())
}

impl SqliteStore {
    /// Opens or creates the database file and its tables.
    pub(crate) async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let path = path.to_path_buf();
        let opened = path.clone();
        let writer = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            if let Some(parent) = opened.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|err| StoreError::Url {
                    url: opened.display().to_string(),
                    reason: format!("cannot create folder {}: {err}", parent.display()),
                })?;
            }
            let conn = open_connection(&opened)?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        })
        .await
        .map_err(join_error)??;
        Ok(SqliteStore {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Runs `work` in a write transaction on a blocking thread and commits it.
    pub(crate) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|poison| poison.into_inner());
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .map_err(join_error)?
    }

    /// Runs `work` on a reader connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path)?,
            };
            let value = work(&conn);
            let mut idle = readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            value
        })
        .await
        .map_err(join_error)?
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol types serialise to JSON")
}

fn decode_json<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

fn parse_uuid(text: &str) -> StoreResult<uuid::Uuid> {
    text.parse().map_err(|_| StoreError::Json {
        what: "event id",
        source: serde::de::Error::custom(format!("{text:?} is not a UUID")),
    })
}

/// Stores one event inside the batch transaction and returns how it went.
fn accept_one(
    tx: &Transaction<'_>,
    identity: &GatewayIdentity,
    envelope: &Envelope,
    now_ms: i64,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    let event_id = envelope.event_id.to_string();
    let seen: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM events WHERE event_id = ?1",
            [&event_id],
            |row| row.get(0),
        )
        .optional()?;
    if seen.is_some() {
        outcome.acked.push(envelope.event_id);
        outcome.duplicates += 1;
        return Ok(());
    }
    let decoded = match ingest::decode(identity, envelope) {
        Ok(decoded) => decoded,
        Err(rejection) => {
            outcome.rejected.push(rejection);
            return Ok(());
        }
    };
    if let Some(ticket) = decoded.ticket(envelope) {
        let building: Option<String> = tx
            .query_row(
                "SELECT building FROM tickets WHERE id = ?1",
                [&ticket],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(building) = building.filter(|b| *b != identity.building) {
            outcome.rejected.push(ingest::foreign_ticket(
                identity, envelope, &ticket, &building,
            ));
            return Ok(());
        }
    }
    tx.execute(
        "INSERT INTO events (event_id, gateway, seq, kind, ticket, ts_ms, payload, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            event_id,
            envelope.gateway,
            envelope.seq,
            envelope.kind.as_str(),
            envelope.ticket,
            envelope.ts_ms,
            envelope.payload.to_string(),
            now_ms
        ],
    )?;
    match decoded {
        Decoded::Ticket(event) => {
            let snapshot = &event.ticket;
            let transition = &event.transition;
            tx.execute(
                "INSERT OR IGNORE INTO ticket_history
                 (ticket, seq, ts_ms, from_state, to_state, actor, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    snapshot.id,
                    transition.seq,
                    transition.ts_ms,
                    transition.from,
                    transition.to,
                    transition.actor,
                    transition.reason
                ],
            )?;
            // A snapshot replaces the stored one only when its seq is higher, so a late
            // transition fills the history without rolling the ticket back.
            tx.execute(
                "INSERT INTO tickets
                 (id, building, gateway, seq, state, urgency, needs_human, opened_ms,
                  updated_ms, snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO UPDATE SET
                    seq = excluded.seq, state = excluded.state, urgency = excluded.urgency,
                    needs_human = excluded.needs_human, opened_ms = excluded.opened_ms,
                    updated_ms = excluded.updated_ms, snapshot = excluded.snapshot,
                    gateway = excluded.gateway
                 WHERE excluded.seq > tickets.seq AND excluded.building = tickets.building",
                params![
                    snapshot.id,
                    snapshot.building,
                    envelope.gateway,
                    transition.seq,
                    snapshot.state,
                    snapshot.urgency,
                    snapshot.needs_human,
                    snapshot.opened_ms,
                    snapshot.updated_ms,
                    json_text(snapshot)
                ],
            )?;
            if let Some(vendor) = ingest::vendor_dispatch(&event) {
                let entry = insert_relay(
                    tx,
                    "vendor_dispatch",
                    &identity.building,
                    &snapshot.id,
                    &vendor,
                    &json_text(snapshot),
                    now_ms,
                )?;
                outcome.relayed.push(entry);
            }
        }
        Decoded::TenantUpdate(update) => {
            let entry = insert_relay(
                tx,
                "tenant_update",
                &identity.building,
                &update.ticket,
                &update.template,
                &json_text(&update),
                now_ms,
            )?;
            outcome.relayed.push(entry);
        }
        Decoded::Audit(entry) => {
            tx.execute(
                "INSERT OR IGNORE INTO audit (ticket, hash, ts_ms, actor, action, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    entry.ticket,
                    entry.hash,
                    entry.ts_ms,
                    entry.actor,
                    entry.action,
                    entry.detail.to_string()
                ],
            )?;
        }
        Decoded::Anomaly => {
            tx.execute(
                "INSERT INTO anomalies (event_id, gateway, building, ts_ms, ticket, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    event_id,
                    envelope.gateway,
                    identity.building,
                    envelope.ts_ms,
                    envelope.ticket,
                    envelope.payload.to_string()
                ],
            )?;
        }
        Decoded::Telemetry => {
            tx.execute(
                "INSERT INTO telemetry (event_id, gateway, building, ts_ms, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    event_id,
                    envelope.gateway,
                    identity.building,
                    envelope.ts_ms,
                    envelope.payload.to_string()
                ],
            )?;
        }
    }
    outcome.acked.push(envelope.event_id);
    outcome.stored_kinds.push(envelope.kind);
    Ok(())
}

fn insert_relay(
    tx: &Transaction<'_>,
    kind: &str,
    building: &str,
    ticket: &str,
    subject: &str,
    payload: &str,
    now_ms: i64,
) -> StoreResult<RelayEntry> {
    tx.execute(
        "INSERT INTO relay (kind, building, ticket, subject, payload, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![kind, building, ticket, subject, payload, now_ms],
    )?;
    Ok(RelayEntry {
        id: tx.last_insert_rowid(),
        kind: kind.to_string(),
        building: building.to_string(),
        ticket: ticket.to_string(),
        subject: subject.to_string(),
        payload: payload.to_string(),
        created_ms: now_ms,
    })
}

pub(crate) const TICKET_COLUMNS: &str = "snapshot, gateway, seq";

/// Builds a [`TicketRow`] from the columns of [`TICKET_COLUMNS`].
pub(crate) fn ticket_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

pub(crate) fn ticket_from_parts(
    (snapshot, gateway, seq): (String, String, i64),
) -> StoreResult<TicketRow> {
    let snapshot: crate::protocol::TicketSnapshot = decode_json("ticket snapshot", &snapshot)?;
    Ok(super::row_from_snapshot(snapshot, gateway, seq))
}

fn change_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

#[async_trait::async_trait]
impl CentralStore for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    async fn accept_events(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome> {
        let identity = gateway.clone();
        self.write(move |tx| {
            let mut outcome = BatchOutcome::default();
            for envelope in &events {
                accept_one(tx, &identity, envelope, now_ms, &mut outcome)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn changes_after(
        &self,
        building: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OfficeChange>> {
        let building = building.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ts_ms, actor, change FROM office_changes
                 WHERE building = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![building, after, limit], change_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, ts_ms, actor, change)| {
                    Ok(OfficeChange {
                        id,
                        ts_ms,
                        actor,
                        change: decode_json("office change", &change)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_change(
        &self,
        building: &str,
        actor: &str,
        change: Change,
        now_ms: i64,
    ) -> StoreResult<OfficeChange> {
        let building = building.to_string();
        let actor = actor.to_string();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO office_changes (building, ts_ms, actor, change)
                 VALUES (?1, ?2, ?3, ?4)",
                params![building, now_ms, actor, json_text(&change)],
            )?;
            let id = tx.last_insert_rowid();
            match &change {
                Change::TenantUpsert(record) => {
                    tx.execute(
                        "INSERT INTO tenants (building, unit, record, updated_ms)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (building, unit) DO UPDATE SET
                            record = excluded.record, updated_ms = excluded.updated_ms",
                        params![building, record.unit, json_text(record), now_ms],
                    )?;
                }
                Change::TenantRemove { unit } => {
                    tx.execute(
                        "DELETE FROM tenants WHERE building = ?1 AND unit = ?2",
                        params![building, unit],
                    )?;
                }
                Change::Ticket { .. } => {}
            }
            Ok(OfficeChange {
                id,
                ts_ms: now_ms,
                actor,
                change,
            })
        })
        .await
    }

    async fn record_heartbeat(
        &self,
        gateway: &GatewayIdentity,
        heartbeat: &Heartbeat,
        now_ms: i64,
    ) -> StoreResult<()> {
        let identity = gateway.clone();
        let text = json_text(heartbeat);
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO heartbeats (gateway, building, received_ms, heartbeat)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (gateway) DO UPDATE SET building = excluded.building,
                    received_ms = excluded.received_ms, heartbeat = excluded.heartbeat",
                params![identity.gateway, identity.building, now_ms, text],
            )?;
            Ok(())
        })
        .await
    }

    async fn gateway_statuses(
        &self,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> StoreResult<Vec<GatewayStatus>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT gateway, building, received_ms, heartbeat FROM heartbeats
                 ORDER BY building, gateway",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(gateway, building, received_ms, heartbeat)| {
                    Ok(GatewayStatus {
                        gateway,
                        building,
                        received_ms,
                        heartbeat: decode_json("heartbeat", &heartbeat)?,
                        stale: now_ms - received_ms > stale_after_ms,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_token(
        &self,
        gateway: &str,
        building: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let (gateway, building, hash) = (
            gateway.to_string(),
            building.to_string(),
            token_hash.to_string(),
        );
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO gateway_tokens (gateway, building, token_hash, created_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![gateway, building, hash, now_ms],
            )?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    async fn revoke_tokens(&self, gateway: &str, now_ms: i64) -> StoreResult<u64> {
        let gateway = gateway.to_string();
        self.write(move |tx| {
            let count = tx.execute(
                "UPDATE gateway_tokens SET revoked_ms = ?2
                 WHERE gateway = ?1 AND revoked_ms IS NULL",
                params![gateway, now_ms],
            )?;
            Ok(count as u64)
        })
        .await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, gateway, building, created_ms, revoked_ms FROM gateway_tokens
                 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(TokenInfo {
                        id: row.get(0)?,
                        gateway: row.get(1)?,
                        building: row.get(2)?,
                        created_ms: row.get(3)?,
                        revoked_ms: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<GatewayIdentity>> {
        let hash = token_hash.to_string();
        self.read(move |conn| {
            let found = conn
                .prepare_cached(
                    "SELECT id, gateway, building FROM gateway_tokens
                     WHERE token_hash = ?1 AND revoked_ms IS NULL",
                )?
                .query_row([hash], |row| {
                    Ok(GatewayIdentity {
                        token_id: row.get(0)?,
                        gateway: row.get(1)?,
                        building: row.get(2)?,
                    })
                })
                .optional()?;
            Ok(found)
        })
        .await
    }

    async fn add_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO users (name, role, password_hash, created_ms)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                params![user.name, user.role, user.password_hash, user.created_ms],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("user {:?}", user.name)));
            }
            Ok(())
        })
        .await
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |tx| {
            let updated = tx.execute(
                "UPDATE users SET role = ?2, password_hash = ?3 WHERE name = ?1",
                params![user.name, user.role, user.password_hash],
            )?;
            if updated == 0 {
                return Err(StoreError::NotFound(format!("user {:?}", user.name)));
            }
            Ok(())
        })
        .await
    }

    async fn find_user(&self, name: &str) -> StoreResult<Option<User>> {
        let name = name.to_string();
        self.read(move |conn| {
            let user = conn
                .prepare_cached(
                    "SELECT name, role, password_hash, created_ms FROM users WHERE name = ?1",
                )?
                .query_row([name], |row| {
                    Ok(User {
                        name: row.get(0)?,
                        role: row.get(1)?,
                        password_hash: row.get(2)?,
                        created_ms: row.get(3)?,
                    })
                })
                .optional()?;
            Ok(user)
        })
        .await
    }

    async fn create_session(
        &self,
        session_hash: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        let (hash, user) = (session_hash.to_string(), user.to_string());
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now_ms])?;
            tx.execute(
                "INSERT INTO sessions (session_hash, user_name, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![hash, user, now_ms, expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_session(&self, session_hash: &str, now_ms: i64) -> StoreResult<Option<Session>> {
        let hash = session_hash.to_string();
        self.read(move |conn| {
            let session = conn
                .prepare_cached(
                    "SELECT s.user_name, u.role, s.created_ms, s.expires_ms
                     FROM sessions s JOIN users u ON u.name = s.user_name
                     WHERE s.session_hash = ?1 AND s.expires_ms > ?2",
                )?
                .query_row(params![hash, now_ms], |row| {
                    Ok(Session {
                        user: row.get(0)?,
                        role: row.get(1)?,
                        created_ms: row.get(2)?,
                        expires_ms: row.get(3)?,
                    })
                })
                .optional()?;
            Ok(session)
        })
        .await
    }

    async fn delete_session(&self, session_hash: &str) -> StoreResult<()> {
        let hash = session_hash.to_string();
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE session_hash = ?1", [hash])?;
            Ok(())
        })
        .await
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> StoreResult<Vec<TicketRow>> {
        let limit = filter.limit;
        let filter = filter.clone();
        let parts = self
            .read(move |conn| {
                let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1");
                let mut values: Vec<String> = Vec::new();
                if let Some(building) = &filter.building {
                    values.push(building.clone());
                    sql.push_str(&format!(" AND building = ?{}", values.len()));
                }
                if let Some(state) = &filter.state {
                    values.push(state.clone());
                    sql.push_str(&format!(" AND state = ?{}", values.len()));
                }
                if let Some(urgency) = &filter.urgency {
                    values.push(urgency.clone());
                    sql.push_str(&format!(" AND urgency = ?{}", values.len()));
                }
                if filter.open_only {
                    sql.push_str(" AND state NOT IN ('resolved', 'closed', 'cancelled')");
                }
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(values.iter()), ticket_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let mut tickets = parts
            .into_iter()
            .map(ticket_from_parts)
            .collect::<StoreResult<Vec<_>>>()?;
        super::sort_tickets(&mut tickets);
        if let Some(limit) = limit {
            tickets.truncate(usize::try_from(limit).unwrap_or(0));
        }
        Ok(tickets)
    }

    async fn ticket(&self, id: &str) -> StoreResult<Option<TicketRow>> {
        let id = id.to_string();
        let parts = self
            .read(move |conn| {
                let parts = conn
                    .prepare_cached(&format!(
                        "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"
                    ))?
                    .query_row([id], ticket_row)
                    .optional()?;
                Ok(parts)
            })
            .await?;
        parts.map(ticket_from_parts).transpose()
    }

    async fn ticket_history(&self, id: &str) -> StoreResult<Vec<Transition>> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, ts_ms, from_state, to_state, actor, reason FROM ticket_history
                 WHERE ticket = ?1 ORDER BY seq",
            )?;
            let rows = stmt
                .query_map([id], |row| {
                    Ok(Transition {
                        seq: row.get(0)?,
                        ts_ms: row.get(1)?,
                        from: row.get(2)?,
                        to: row.get(3)?,
                        actor: row.get(4)?,
                        reason: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn ticket_audit(&self, id: &str) -> StoreResult<Vec<AuditEntry>> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT ticket, ts_ms, actor, action, detail, hash FROM audit
                 WHERE ticket = ?1 ORDER BY ts_ms, hash",
            )?;
            let rows = stmt
                .query_map([id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(ticket, ts_ms, actor, action, detail, hash)| {
                    Ok(AuditEntry {
                        ticket,
                        ts_ms,
                        actor,
                        action,
                        detail: decode_json("audit detail", &detail)?,
                        hash,
                    })
                })
                .collect()
        })
        .await
    }

    async fn anomalies(&self, building: &str, since_ms: i64) -> StoreResult<Vec<AnomalyRow>> {
        let building = building.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT event_id, gateway, building, ts_ms, ticket, payload FROM anomalies
                 WHERE building = ?1 AND ts_ms >= ?2 ORDER BY ts_ms DESC",
            )?;
            let rows = stmt
                .query_map(params![building, since_ms], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(event_id, gateway, building, ts_ms, ticket, payload)| {
                    Ok(AnomalyRow {
                        event_id: parse_uuid(&event_id)?,
                        gateway,
                        building,
                        ts_ms,
                        ticket,
                        payload: decode_json("anomaly", &payload)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn telemetry(&self, building: &str, since_ms: i64) -> StoreResult<Vec<TelemetryRow>> {
        let building = building.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT event_id, gateway, building, ts_ms, payload FROM telemetry
                 WHERE building = ?1 AND ts_ms >= ?2 ORDER BY ts_ms",
            )?;
            let rows = stmt
                .query_map(params![building, since_ms], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(event_id, gateway, building, ts_ms, payload)| {
                    Ok(TelemetryRow {
                        event_id: parse_uuid(&event_id)?,
                        gateway,
                        building,
                        ts_ms,
                        payload: decode_json("telemetry", &payload)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn relay_after(&self, after: i64, limit: i64) -> StoreResult<Vec<RelayEntry>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, building, ticket, subject, payload, created_ms FROM relay
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![after, limit], |row| {
                    Ok(RelayEntry {
                        id: row.get(0)?,
                        kind: row.get(1)?,
                        building: row.get(2)?,
                        ticket: row.get(3)?,
                        subject: row.get(4)?,
                        payload: row.get(5)?,
                        created_ms: row.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn buildings(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT building FROM gateway_tokens UNION SELECT building FROM tickets
                 UNION SELECT building FROM heartbeats ORDER BY 1",
            )?;
            let rows = stmt
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn tenants(&self, building: &str) -> StoreResult<Vec<TenantRecord>> {
        let building = building.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record FROM tenants WHERE building = ?1 ORDER BY unit")?;
            let rows = stmt
                .query_map([building], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter()
                .map(|text| decode_json("tenant record", text))
                .collect()
        })
        .await
    }

    async fn event_count(&self) -> StoreResult<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM events", [], |row| row.get(0))?))
            .await
    }
}
