//! The PostgreSQL backend of the central office's store, for many buildings and for several
//! central processes on one database.
//!
//! No state that matters lives in the process: ids come from database sequences, duplicates
//! are caught by unique keys, and the office changes of one building are inserted under a
//! transaction-scoped advisory lock on the building, so their ids grow in commit order and a
//! gateway's pull cursor never skips a change that commits late.
//!
//! NOTE: connections use no TLS, so the database should be on loopback or a private network.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::protocol::{AuditEntry, Change, Envelope, OfficeChange};

use super::backend::SqlBackend;
use super::ingest::{
    Batch, EventInsert, HistoryInsert, RelayInsert, SummaryInsert, TicketUpsert, Writes,
};
use super::sql::{self, FromRow, Param, Statement};
use super::{BatchOutcome, GatewayIdentity, RelayEntry, StoreError, StoreResult};

/// Key of the advisory lock that serialises schema creation across processes.
const SCHEMA_LOCK: i64 = 0x6361_7265_7461_6b72;

/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;

/// The PostgreSQL backend; cheap to clone.
#[derive(Clone)]
pub(crate) struct PgStore {
    /// The URL without its password, for logs.
    pub(crate) redacted_url: String,
    pub(crate) pool: Pool,
}

fn pool_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Pool(err.to_string())
}

impl PgStore {
    /// Connects to the database that `url` names and creates the tables. Several processes
    /// may do so at once.
    pub(crate) async fn open(url: &str) -> StoreResult<PgStore> {
        let redacted_url = super::redact_url(url);
        let config = tokio_postgres::Config::from_str(url).map_err(|err| StoreError::Url {
            url: redacted_url.clone(),
            reason: err.to_string(),
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(pool_error)?;
        let store = PgStore { redacted_url, pool };
        let mut client = store.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(&sql::schema("BIGSERIAL PRIMARY KEY"))
            .await?;
        tx.commit().await?;
        Ok(store)
    }

    /// Takes a connection from the pool.
    pub(crate) async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|err| match err {
            deadpool_postgres::PoolError::Backend(err) => StoreError::Postgres(err),
            other => pool_error(other),
        })
    }
}

/// A parameter list as tokio-postgres takes it.
type PgParams<'a> = Vec<&'a (dyn ToSql + Sync)>;

fn pg_params(params: &[Param]) -> PgParams<'_> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Int(value) => value as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Runs one statement in `tx` through the connection's statement cache, so that a
/// connection parses each statement once.
async fn execute_cached(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

/// Looks up the stored building of each ticket in `tickets`.
async fn stored_buildings(
    tx: &Transaction<'_>,
    tickets: &[String],
) -> StoreResult<HashMap<String, String>> {
    if tickets.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = tx
        .prepare_cached("SELECT id, building FROM tickets WHERE id = ANY($1)")
        .await?;
    let rows = tx.query(&statement, &[&tickets]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Collects one column of `rows`, as an array parameter of an `UNNEST` insert.
fn column<'a, R, T>(rows: &'a [R], value: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// Inserts the `events` rows in one statement, skipping stored ids, and returns the ids
/// inserted.
async fn insert_events(
    tx: &Transaction<'_>,
    rows: &[EventInsert],
) -> StoreResult<HashSet<uuid::Uuid>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO events (event_id, gateway, seq, kind, ticket, ts_ms, payload, received_ms)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[],
                $6::int8[], $7::text[], $8::int8[])
             ON CONFLICT (event_id) DO NOTHING
             RETURNING event_id",
        )
        .await?;
    let event_ids = column(rows, |row| row.event_id.to_string());
    let gateways = column(rows, |row| row.gateway.as_str());
    let seqs = column(rows, |row| row.seq);
    let kinds = column(rows, |row| row.kind);
    let tickets = column(rows, |row| row.ticket.as_deref());
    let times = column(rows, |row| row.ts_ms);
    let payloads = column(rows, |row| row.payload.as_str());
    let received = column(rows, |row| row.received_ms);
    let inserted = tx
        .query(
            &statement,
            &[
                &event_ids, &gateways, &seqs, &kinds, &tickets, &times, &payloads, &received,
            ],
        )
        .await?;
    inserted
        .iter()
        .map(|row| sql::parse_uuid(row.get(0)))
        .collect()
}

/// Takes `count` ids from the relay table's sequence, in increasing order. Taking them before
/// the insert fixes which entry gets which id. Ids of entries that are not inserted in the
/// end stay unused, as ids of rolled-back inserts do.
async fn reserve_relay_ids(tx: &Transaction<'_>, count: usize) -> StoreResult<Vec<i64>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let statement = tx
        .prepare_cached(
            "SELECT nextval(pg_get_serial_sequence('relay', 'id'))
             FROM generate_series(1, $1::int8)",
        )
        .await?;
    let rows = tx.query(&statement, &[&(count as i64)]).await?;
    let mut ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    ids.sort_unstable();
    Ok(ids)
}

async fn insert_history(tx: &Transaction<'_>, rows: &[HistoryInsert]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let tickets = column(rows, |row| row.ticket.as_str());
    let seqs = column(rows, |row| row.transition.seq);
    let times = column(rows, |row| row.transition.ts_ms);
    let from = column(rows, |row| row.transition.from.as_deref());
    let to = column(rows, |row| row.transition.to.as_str());
    let actors = column(rows, |row| row.transition.actor.as_str());
    let reasons = column(rows, |row| row.transition.reason.as_str());
    execute_cached(
        tx,
        "INSERT INTO ticket_history (ticket, seq, ts_ms, from_state, to_state, actor, reason)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[],
            $6::text[], $7::text[])
         ON CONFLICT DO NOTHING",
        &[&tickets, &seqs, &times, &from, &to, &actors, &reasons],
    )
    .await?;
    Ok(())
}

/// Upserts ticket snapshots. `rows` must name each ticket once, because one statement may
/// not update a row twice.
async fn upsert_tickets(tx: &Transaction<'_>, rows: &[TicketUpsert]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO tickets (id, building, gateway, seq, state, urgency, needs_human,
            opened_ms, updated_ms, snapshot)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[],
            $6::text[], $7::bool[], $8::int8[], $9::int8[], $10::text[])
         {}",
        sql::TICKET_UPSERT_CONFLICT
    );
    let ids = column(rows, |row| row.id.as_str());
    let buildings = column(rows, |row| row.building.as_str());
    let gateways = column(rows, |row| row.gateway.as_str());
    let seqs = column(rows, |row| row.seq);
    let states = column(rows, |row| row.state.as_str());
    let urgencies = column(rows, |row| row.urgency.as_str());
    let needs_human = column(rows, |row| row.needs_human);
    let opened = column(rows, |row| row.opened_ms);
    let updated = column(rows, |row| row.updated_ms);
    let snapshots = column(rows, |row| row.snapshot.as_str());
    execute_cached(
        tx,
        &sql,
        &[
            &ids,
            &buildings,
            &gateways,
            &seqs,
            &states,
            &urgencies,
            &needs_human,
            &opened,
            &updated,
            &snapshots,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_audit(tx: &Transaction<'_>, rows: &[AuditEntry]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let tickets = column(rows, |entry| entry.ticket.as_str());
    let hashes = column(rows, |entry| entry.hash.as_str());
    let times = column(rows, |entry| entry.ts_ms);
    let actors = column(rows, |entry| entry.actor.as_str());
    let actions = column(rows, |entry| entry.action.as_str());
    let details = column(rows, |entry| entry.detail.to_string());
    execute_cached(
        tx,
        "INSERT INTO audit (ticket, hash, ts_ms, actor, action, detail)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[],
            $6::text[])
         ON CONFLICT DO NOTHING",
        &[&tickets, &hashes, &times, &actors, &actions, &details],
    )
    .await?;
    Ok(())
}

/// Inserts anomaly summaries into `anomalies`, or with `telemetry` set, telemetry summaries
/// into `telemetry`, which has no ticket column.
async fn insert_summaries(
    tx: &Transaction<'_>,
    rows: &[SummaryInsert],
    telemetry: bool,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let event_ids = column(rows, |row| row.event_id.to_string());
    let gateways = column(rows, |row| row.gateway.as_str());
    let buildings = column(rows, |row| row.building.as_str());
    let times = column(rows, |row| row.ts_ms);
    let tickets = column(rows, |row| row.ticket.as_deref());
    let payloads = column(rows, |row| row.payload.as_str());
    if telemetry {
        execute_cached(
            tx,
            "INSERT INTO telemetry (event_id, gateway, building, ts_ms, payload)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])",
            &[&event_ids, &gateways, &buildings, &times, &payloads],
        )
        .await?;
    } else {
        execute_cached(
            tx,
            "INSERT INTO anomalies (event_id, gateway, building, ts_ms, ticket, payload)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[],
                $6::text[])",
            &[
                &event_ids, &gateways, &buildings, &times, &tickets, &payloads,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Inserts relay entries with the ids reserved for them, the first id for the first entry.
async fn insert_relay(tx: &Transaction<'_>, rows: &[RelayInsert], ids: &[i64]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids = &ids[..rows.len()];
    let kinds = column(rows, |row| row.kind);
    let buildings = column(rows, |row| row.building.as_str());
    let tickets = column(rows, |row| row.ticket.as_str());
    let subjects = column(rows, |row| row.subject.as_str());
    let payloads = column(rows, |row| row.payload.as_str());
    let created = column(rows, |row| row.created_ms);
    execute_cached(
        tx,
        "INSERT INTO relay (id, kind, building, ticket, subject, payload, created_ms)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::int8[])",
        &[
            &ids, &kinds, &buildings, &tickets, &subjects, &payloads, &created,
        ],
    )
    .await?;
    Ok(())
}

/// Writes the rows that a batch's stored events add, with every statement sent before the
/// first result arrives, and returns the relay entries with their ids.
async fn insert_writes(
    tx: &Transaction<'_>,
    writes: Writes,
    relay_ids: &[i64],
) -> StoreResult<Vec<RelayEntry>> {
    // `biased` polls the statements in this order, so they reach the server, and take their
    // row locks, in the same order in every transaction.
    tokio::try_join!(
        biased;
        insert_history(tx, &writes.history),
        upsert_tickets(tx, &writes.tickets),
        insert_audit(tx, &writes.audit),
        insert_summaries(tx, &writes.anomalies, false),
        insert_summaries(tx, &writes.telemetry, true),
        insert_relay(tx, &writes.relay, relay_ids),
    )?;
    Ok(writes
        .relay
        .into_iter()
        .zip(relay_ids)
        .map(|(row, id)| row.with_id(*id))
        .collect())
}

#[async_trait::async_trait]
impl SqlBackend for PgStore {
    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.redacted_url)
    }

    async fn fetch<T: Send + 'static>(
        &self,
        sql: Cow<'static, str>,
        params: Vec<Param>,
        from_row: FromRow<T>,
    ) -> StoreResult<Vec<T>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &pg_params(&params)).await?;
        rows.iter().map(|row| from_row(row)).collect()
    }

    async fn execute(&self, statements: Vec<Statement>) -> StoreResult<Vec<u64>> {
        let mut client = self.client().await?;
        if let [(sql, params)] = statements.as_slice() {
            // One statement commits on its own, which saves the round trips of BEGIN and
            // COMMIT.
            let statement = client.prepare_cached(sql).await?;
            return Ok(vec![client.execute(&statement, &pg_params(params)).await?]);
        }
        let tx = client.transaction().await?;
        let mut changed = Vec::with_capacity(statements.len());
        for (sql, params) in &statements {
            changed.push(execute_cached(&tx, sql, &pg_params(params)).await?);
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn insert_returning_id(&self, sql: &'static str, params: Vec<Param>) -> StoreResult<i64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let row = client.query_one(&statement, &pg_params(&params)).await?;
        Ok(row.try_get(0)?)
    }

    /// Stores a batch in five round trips whatever its size, once the connection has
    /// prepared its statements. They are BEGIN, the lookup of the stored buildings of the
    /// batch's tickets, the insert of its events (sent with the reservation of relay ids), the
    /// inserts of the other rows, and COMMIT.
    async fn store_batch(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome> {
        let mut batch = Batch::check(gateway, events, now_ms);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        batch.reject_foreign(&stored_buildings(&tx, &batch.tickets()).await?);
        let rows = batch.event_rows();
        let max_relay = batch.max_relay_entries();
        let (inserted, relay_ids) = tokio::try_join!(
            biased;
            insert_events(&tx, &rows),
            reserve_relay_ids(&tx, max_relay),
        )?;
        let relayed = insert_writes(&tx, batch.writes(&inserted), &relay_ids).await?;
        tx.commit().await?;
        Ok(batch.finish(relayed))
    }

    async fn insert_change(
        &self,
        building: &str,
        actor: &str,
        change: Change,
        now_ms: i64,
    ) -> StoreResult<OfficeChange> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Held until commit: the next change of this building takes its id only after this
        // one is visible, so ids of one building appear in increasing order.
        execute_cached(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&building],
        )
        .await?;
        let statement = tx.prepare_cached(sql::INSERT_CHANGE).await?;
        let row = tx
            .query_one(
                &statement,
                &[&building, &now_ms, &actor, &sql::json_text(&change)],
            )
            .await?;
        if let Some((sql, params)) = sql::tenant_directory_statement(building, &change, now_ms) {
            execute_cached(&tx, &sql, &pg_params(&params)).await?;
        }
        tx.commit().await?;
        Ok(OfficeChange {
            id: row.try_get(0)?,
            ts_ms: now_ms,
            actor: actor.to_string(),
            change,
        })
    }
}
