//! The SQLite backend of the central office's store, for one office.
//!
//! One write connection behind a mutex serialises writers, so ids of `office_changes` grow
//! in commit order. Reads use their own connections from a small pool (WAL mode lets them run
//! beside the writer). All database work runs on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use rusqlite::types::ToSqlOutput;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use crate::protocol::{Change, Envelope, OfficeChange};

use super::backend::SqlBackend;
use super::ingest::{Batch, Writes};
use super::sql::{self, numbered_placeholders, FromRow, Param, Statement};
use super::{BatchOutcome, GatewayIdentity, RelayEntry, StoreError, StoreResult};

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
            conn.execute_batch(&sql::schema("INTEGER PRIMARY KEY AUTOINCREMENT"))?;
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

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Param::Text(text) => text.to_sql(),
            Param::Int(value) => value.to_sql(),
        }
    }
}

/// Looks up the stored building of each ticket in `tickets`.
fn stored_buildings(
    tx: &Transaction<'_>,
    tickets: &[String],
) -> StoreResult<HashMap<String, String>> {
    let mut select = tx.prepare_cached("SELECT building FROM tickets WHERE id = ?1")?;
    let mut buildings = HashMap::new();
    for ticket in tickets {
        let building: Option<String> = select.query_row([ticket], |row| row.get(0)).optional()?;
        if let Some(building) = building {
            buildings.insert(ticket.clone(), building);
        }
    }
    Ok(buildings)
}

/// Inserts the `events` rows of a batch, skipping stored ids, and returns the ids inserted.
fn insert_events(tx: &Transaction<'_>, batch: &mut Batch) -> StoreResult<HashSet<uuid::Uuid>> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (event_id, gateway, seq, kind, ticket, ts_ms, payload, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (event_id) DO NOTHING",
    )?;
    let mut inserted = HashSet::new();
    for row in batch.event_rows() {
        let changed = insert.execute(params![
            row.event_id.to_string(),
            row.gateway,
            row.seq,
            row.kind,
            row.ticket,
            row.ts_ms,
            row.payload,
            row.received_ms
        ])?;
        if changed == 1 {
            inserted.insert(row.event_id);
        }
    }
    Ok(inserted)
}

/// Writes the rows that a batch's stored events add, and returns the relay entries with
/// their ids.
fn insert_writes(tx: &Transaction<'_>, writes: Writes) -> StoreResult<Vec<RelayEntry>> {
    let mut history = tx.prepare_cached(
        "INSERT INTO ticket_history (ticket, seq, ts_ms, from_state, to_state, actor, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
    )?;
    for row in &writes.history {
        let transition = &row.transition;
        history.execute(params![
            row.ticket,
            transition.seq,
            transition.ts_ms,
            transition.from,
            transition.to,
            transition.actor,
            transition.reason
        ])?;
    }
    let mut tickets = tx.prepare_cached(&format!(
        "INSERT INTO tickets (id, building, gateway, seq, state, urgency, needs_human,
            opened_ms, updated_ms, snapshot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) {}",
        sql::TICKET_UPSERT_CONFLICT
    ))?;
    for row in &writes.tickets {
        tickets.execute(params![
            row.id,
            row.building,
            row.gateway,
            row.seq,
            row.state,
            row.urgency,
            row.needs_human,
            row.opened_ms,
            row.updated_ms,
            row.snapshot
        ])?;
    }
    let mut audit = tx.prepare_cached(
        "INSERT INTO audit (ticket, hash, ts_ms, actor, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )?;
    for entry in &writes.audit {
        audit.execute(params![
            entry.ticket,
            entry.hash,
            entry.ts_ms,
            entry.actor,
            entry.action,
            entry.detail.to_string()
        ])?;
    }
    let mut anomalies = tx.prepare_cached(
        "INSERT INTO anomalies (event_id, gateway, building, ts_ms, ticket, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for row in &writes.anomalies {
        anomalies.execute(params![
            row.event_id.to_string(),
            row.gateway,
            row.building,
            row.ts_ms,
            row.ticket,
            row.payload
        ])?;
    }
    let mut telemetry = tx.prepare_cached(
        "INSERT INTO telemetry (event_id, gateway, building, ts_ms, payload)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for row in &writes.telemetry {
        telemetry.execute(params![
            row.event_id.to_string(),
            row.gateway,
            row.building,
            row.ts_ms,
            row.payload
        ])?;
    }
    let mut relay = tx.prepare_cached(
        "INSERT INTO relay (kind, building, ticket, subject, payload, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
    )?;
    let mut relayed = Vec::with_capacity(writes.relay.len());
    for entry in writes.relay {
        let id = relay.query_row(
            params![
                entry.kind,
                entry.building,
                entry.ticket,
                entry.subject,
                entry.payload,
                entry.created_ms
            ],
            |row| row.get(0),
        )?;
        relayed.push(entry.with_id(id));
    }
    Ok(relayed)
}

#[async_trait::async_trait]
impl SqlBackend for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    async fn fetch<T: Send + 'static>(
        &self,
        sql: Cow<'static, str>,
        params: Vec<Param>,
        from_row: FromRow<T>,
    ) -> StoreResult<Vec<T>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&numbered_placeholders(&sql))?;
            let mut rows = statement.query(params_from_iter(params.iter()))?;
            let mut values = Vec::new();
            while let Some(row) = rows.next()? {
                values.push(from_row(row)?);
            }
            Ok(values)
        })
        .await
    }

    async fn execute(&self, statements: Vec<Statement>) -> StoreResult<Vec<u64>> {
        self.write(move |tx| {
            let mut changed = Vec::with_capacity(statements.len());
            for (sql, params) in &statements {
                let mut statement = tx.prepare_cached(&numbered_placeholders(sql))?;
                changed.push(statement.execute(params_from_iter(params.iter()))? as u64);
            }
            Ok(changed)
        })
        .await
    }

    async fn insert_returning_id(&self, sql: &'static str, params: Vec<Param>) -> StoreResult<i64> {
        self.write(move |tx| {
            let mut statement = tx.prepare_cached(&numbered_placeholders(sql))?;
            Ok(statement.query_row(params_from_iter(params.iter()), |row| row.get(0))?)
        })
        .await
    }

    async fn store_batch(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome> {
        let identity = gateway.clone();
        self.write(move |tx| {
            let mut batch = Batch::check(&identity, events, now_ms);
            batch.reject_foreign(&stored_buildings(tx, &batch.tickets())?);
            let inserted = insert_events(tx, &mut batch)?;
            let relayed = insert_writes(tx, batch.writes(&inserted))?;
            Ok(batch.finish(relayed))
        })
        .await
    }

    async fn insert_change(
        &self,
        building: &str,
        actor: &str,
        change: Change,
        now_ms: i64,
    ) -> StoreResult<OfficeChange> {
        let building = building.to_string();
        let actor = actor.to_string();
        // The single writer connection serialises changes, so their ids grow in commit order.
        self.write(move |tx| {
            let id = tx
                .prepare_cached(&numbered_placeholders(sql::INSERT_CHANGE))?
                .query_row(
                    params![building, now_ms, actor, sql::json_text(&change)],
                    |row| row.get(0),
                )?;
            if let Some((sql, params)) = sql::tenant_directory_statement(&building, &change, now_ms)
            {
                tx.prepare_cached(&numbered_placeholders(&sql))?
                    .execute(params_from_iter(params.iter()))?;
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
}
