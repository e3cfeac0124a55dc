//! The PostgreSQL backend of the central office's store, for many buildings and for several
//! central processes on one database.
//!
//! No state that matters lives in the process: ids come from database sequences, duplicates
//! are caught by unique keys, and the office changes of one building are inserted under a
//! transaction-scoped advisory lock on the building, so their ids grow in commit order and a
//! gateway's pull cursor never skips a change that commits late.
//!
//! NOTE: connections use no TLS, so the database should be on loopback or a private network.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row, Transaction};

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
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    building TEXT NOT NULL,
    ticket TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS office_changes (
    id BIGSERIAL PRIMARY KEY,
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
    id BIGSERIAL PRIMARY KEY,
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
        tx.batch_execute(SCHEMA).await?;
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

fn decode_json<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol types serialise to JSON")
}

fn parse_uuid(text: &str) -> StoreResult<uuid::Uuid> {
    text.parse().map_err(|_| StoreError::Json {
        what: "event id",
        source: serde::de::Error::custom(format!("{text:?} is not a UUID")),
    })
}

async fn insert_relay(
    tx: &Transaction<'_>,
    kind: &str,
    building: &str,
    ticket: &str,
    subject: &str,
    payload: &str,
    now_ms: i64,
) -> StoreResult<RelayEntry> {
    let row = tx
        .query_one(
            "INSERT INTO relay (kind, building, ticket, subject, payload, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&kind, &building, &ticket, &subject, &payload, &now_ms],
        )
        .await?;
    Ok(RelayEntry {
        id: row.get(0),
        kind: kind.to_string(),
        building: building.to_string(),
        ticket: ticket.to_string(),
        subject: subject.to_string(),
        payload: payload.to_string(),
        created_ms: now_ms,
    })
}

/// Stores one event inside the batch transaction and records how it went in `outcome`.
async fn accept_one(
    tx: &Transaction<'_>,
    identity: &GatewayIdentity,
    envelope: &Envelope,
    now_ms: i64,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    let decoded = match ingest::decode(identity, envelope) {
        Ok(decoded) => decoded,
        Err(rejection) => {
            outcome.rejected.push(rejection);
            return Ok(());
        }
    };
    if let Some(ticket) = decoded.ticket(envelope) {
        let row = tx
            .query_opt("SELECT building FROM tickets WHERE id = $1", &[&ticket])
            .await?;
        if let Some(building) = row.map(|row| row.get::<_, String>(0)) {
            if building != identity.building {
                outcome.rejected.push(ingest::foreign_ticket(
                    identity, envelope, &ticket, &building,
                ));
                return Ok(());
            }
        }
    }
    let event_id = envelope.event_id.to_string();
    let payload = envelope.payload.to_string();
    let inserted = tx
        .execute(
            "INSERT INTO events (event_id, gateway, seq, kind, ticket, ts_ms, payload, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
            &[
                &event_id,
                &envelope.gateway,
                &envelope.seq,
                &envelope.kind.as_str(),
                &envelope.ticket,
                &envelope.ts_ms,
                &payload,
                &now_ms,
            ],
        )
        .await?;
    if inserted == 0 {
        outcome.acked.push(envelope.event_id);
        outcome.duplicates += 1;
        return Ok(());
    }
    match decoded {
        Decoded::Ticket(event) => {
            let snapshot = &event.ticket;
            let transition = &event.transition;
            tx.execute(
                "INSERT INTO ticket_history (ticket, seq, ts_ms, from_state, to_state, actor,
                 reason) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &snapshot.id,
                    &transition.seq,
                    &transition.ts_ms,
                    &transition.from,
                    &transition.to,
                    &transition.actor,
                    &transition.reason,
                ],
            )
            .await?;
            // A snapshot replaces the stored one only when its seq is higher, so a late
            // transition fills the history without rolling the ticket back.
            tx.execute(
                "INSERT INTO tickets (id, building, gateway, seq, state, urgency, needs_human,
                    opened_ms, updated_ms, snapshot)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET
                    seq = excluded.seq, state = excluded.state, urgency = excluded.urgency,
                    needs_human = excluded.needs_human, opened_ms = excluded.opened_ms,
                    updated_ms = excluded.updated_ms, snapshot = excluded.snapshot,
                    gateway = excluded.gateway
                 WHERE excluded.seq > tickets.seq AND excluded.building = tickets.building",
                &[
                    &snapshot.id,
                    &snapshot.building,
                    &envelope.gateway,
                    &transition.seq,
                    &snapshot.state,
                    &snapshot.urgency,
                    &snapshot.needs_human,
                    &snapshot.opened_ms,
                    &snapshot.updated_ms,
                    &json_text(snapshot),
                ],
            )
            .await?;
            if let Some(vendor) = ingest::vendor_dispatch(&event) {
                let entry = insert_relay(
                    tx,
                    "vendor_dispatch",
                    &identity.building,
                    &snapshot.id,
                    &vendor,
                    &json_text(snapshot),
                    now_ms,
                )
                .await?;
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
            )
            .await?;
            outcome.relayed.push(entry);
        }
        Decoded::Audit(entry) => {
            tx.execute(
                "INSERT INTO audit (ticket, hash, ts_ms, actor, action, detail)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &entry.ticket,
                    &entry.hash,
                    &entry.ts_ms,
                    &entry.actor,
                    &entry.action,
                    &entry.detail.to_string(),
                ],
            )
            .await?;
        }
        Decoded::Anomaly => {
            tx.execute(
                "INSERT INTO anomalies (event_id, gateway, building, ts_ms, ticket, payload)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &event_id,
                    &envelope.gateway,
                    &identity.building,
                    &envelope.ts_ms,
                    &envelope.ticket,
                    &payload,
                ],
            )
            .await?;
        }
        Decoded::Telemetry => {
            tx.execute(
                "INSERT INTO telemetry (event_id, gateway, building, ts_ms, payload)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &event_id,
                    &envelope.gateway,
                    &identity.building,
                    &envelope.ts_ms,
                    &payload,
                ],
            )
            .await?;
        }
    }
    outcome.acked.push(envelope.event_id);
    outcome.stored_kinds.push(envelope.kind);
    Ok(())
}

pub(crate) const TICKET_COLUMNS: &str = "snapshot, gateway, seq";

/// Builds a [`TicketRow`] from a row of [`TICKET_COLUMNS`].
pub(crate) fn ticket_from_row(row: &Row) -> StoreResult<TicketRow> {
    let snapshot: crate::protocol::TicketSnapshot =
        decode_json("ticket snapshot", row.get::<_, &str>(0))?;
    Ok(super::row_from_snapshot(snapshot, row.get(1), row.get(2)))
}

fn relay_from_row(row: &Row) -> RelayEntry {
    RelayEntry {
        id: row.get(0),
        kind: row.get(1),
        building: row.get(2),
        ticket: row.get(3),
        subject: row.get(4),
        payload: row.get(5),
        created_ms: row.get(6),
    }
}

#[async_trait::async_trait]
impl CentralStore for PgStore {
    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.redacted_url)
    }

    async fn accept_events(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome> {
        // NOTE: each event costs about four sequential round trips, which bounds the rate
        // (BENCHMARKS.md, central office load); batch-wide queries would remove most of them.
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut outcome = BatchOutcome::default();
        for envelope in &events {
            accept_one(&tx, gateway, envelope, now_ms, &mut outcome).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn changes_after(
        &self,
        building: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OfficeChange>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, ts_ms, actor, change FROM office_changes
                 WHERE building = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&building, &after, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OfficeChange {
                    id: row.get(0),
                    ts_ms: row.get(1),
                    actor: row.get(2),
                    change: decode_json("office change", row.get::<_, &str>(3))?,
                })
            })
            .collect()
    }

    async fn add_change(
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
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&building])
            .await?;
        let row = tx
            .query_one(
                "INSERT INTO office_changes (building, ts_ms, actor, change)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&building, &now_ms, &actor, &json_text(&change)],
            )
            .await?;
        match &change {
            Change::TenantUpsert(record) => {
                tx.execute(
                    "INSERT INTO tenants (building, unit, record, updated_ms)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (building, unit) DO UPDATE SET
                        record = excluded.record, updated_ms = excluded.updated_ms",
                    &[&building, &record.unit, &json_text(record), &now_ms],
                )
                .await?;
            }
            Change::TenantRemove { unit } => {
                tx.execute(
                    "DELETE FROM tenants WHERE building = $1 AND unit = $2",
                    &[&building, unit],
                )
                .await?;
            }
            Change::Ticket { .. } => {}
        }
        tx.commit().await?;
        Ok(OfficeChange {
            id: row.get(0),
            ts_ms: now_ms,
            actor: actor.to_string(),
            change,
        })
    }

    async fn record_heartbeat(
        &self,
        gateway: &GatewayIdentity,
        heartbeat: &Heartbeat,
        now_ms: i64,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO heartbeats (gateway, building, received_ms, heartbeat)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (gateway) DO UPDATE SET building = excluded.building,
                    received_ms = excluded.received_ms, heartbeat = excluded.heartbeat",
                &[
                    &gateway.gateway,
                    &gateway.building,
                    &now_ms,
                    &json_text(heartbeat),
                ],
            )
            .await?;
        Ok(())
    }

    async fn gateway_statuses(
        &self,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> StoreResult<Vec<GatewayStatus>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT gateway, building, received_ms, heartbeat FROM heartbeats
                 ORDER BY building, gateway",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let received_ms: i64 = row.get(2);
                Ok(GatewayStatus {
                    gateway: row.get(0),
                    building: row.get(1),
                    received_ms,
                    heartbeat: decode_json("heartbeat", row.get::<_, &str>(3))?,
                    stale: now_ms - received_ms > stale_after_ms,
                })
            })
            .collect()
    }

    async fn add_token(
        &self,
        gateway: &str,
        building: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO gateway_tokens (gateway, building, token_hash, created_ms)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&gateway, &building, &token_hash, &now_ms],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn revoke_tokens(&self, gateway: &str, now_ms: i64) -> StoreResult<u64> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE gateway_tokens SET revoked_ms = $2
                 WHERE gateway = $1 AND revoked_ms IS NULL",
                &[&gateway, &now_ms],
            )
            .await?)
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, gateway, building, created_ms, revoked_ms FROM gateway_tokens
                 ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| TokenInfo {
                id: row.get(0),
                gateway: row.get(1),
                building: row.get(2),
                created_ms: row.get(3),
                revoked_ms: row.get(4),
            })
            .collect())
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<GatewayIdentity>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, gateway, building FROM gateway_tokens
                 WHERE token_hash = $1 AND revoked_ms IS NULL",
                &[&token_hash],
            )
            .await?;
        Ok(row.map(|row| GatewayIdentity {
            token_id: row.get(0),
            gateway: row.get(1),
            building: row.get(2),
        }))
    }

    async fn add_user(&self, user: &User) -> StoreResult<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO users (name, role, password_hash, created_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[
                    &user.name,
                    &user.role,
                    &user.password_hash,
                    &user.created_ms,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("user {:?}", user.name)));
        }
        Ok(())
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE users SET role = $2, password_hash = $3 WHERE name = $1",
                &[&user.name, &user.role, &user.password_hash],
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("user {:?}", user.name)));
        }
        Ok(())
    }

    async fn find_user(&self, name: &str) -> StoreResult<Option<User>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name, role, password_hash, created_ms FROM users WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(row.map(|row| User {
            name: row.get(0),
            role: row.get(1),
            password_hash: row.get(2),
            created_ms: row.get(3),
        }))
    }

    async fn create_session(
        &self,
        session_hash: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM sessions WHERE expires_ms <= $1", &[&now_ms])
            .await?;
        client
            .execute(
                "INSERT INTO sessions (session_hash, user_name, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4)",
                &[&session_hash, &user, &now_ms, &expires_ms],
            )
            .await?;
        Ok(())
    }

    async fn find_session(&self, session_hash: &str, now_ms: i64) -> StoreResult<Option<Session>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.user_name, u.role, s.created_ms, s.expires_ms
                 FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.session_hash = $1 AND s.expires_ms > $2",
                &[&session_hash, &now_ms],
            )
            .await?;
        Ok(row.map(|row| Session {
            user: row.get(0),
            role: row.get(1),
            created_ms: row.get(2),
            expires_ms: row.get(3),
        }))
    }

    async fn delete_session(&self, session_hash: &str) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM sessions WHERE session_hash = $1",
                &[&session_hash],
            )
            .await?;
        Ok(())
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> StoreResult<Vec<TicketRow>> {
        let client = self.client().await?;
        let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE TRUE");
        let mut values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        if let Some(building) = &filter.building {
            values.push(building);
            sql.push_str(&format!(" AND building = ${}", values.len()));
        }
        if let Some(state) = &filter.state {
            values.push(state);
            sql.push_str(&format!(" AND state = ${}", values.len()));
        }
        if let Some(urgency) = &filter.urgency {
            values.push(urgency);
            sql.push_str(&format!(" AND urgency = ${}", values.len()));
        }
        if filter.open_only {
            sql.push_str(" AND state NOT IN ('resolved', 'closed', 'cancelled')");
        }
        let rows = client.query(&sql, &values).await?;
        let mut tickets = rows
            .iter()
            .map(ticket_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        super::sort_tickets(&mut tickets);
        if let Some(limit) = filter.limit {
            tickets.truncate(usize::try_from(limit).unwrap_or(0));
        }
        Ok(tickets)
    }

    async fn ticket(&self, id: &str) -> StoreResult<Option<TicketRow>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    async fn ticket_history(&self, id: &str) -> StoreResult<Vec<Transition>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, ts_ms, from_state, to_state, actor, reason FROM ticket_history
                 WHERE ticket = $1 ORDER BY seq",
                &[&id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Transition {
                seq: row.get(0),
                ts_ms: row.get(1),
                from: row.get(2),
                to: row.get(3),
                actor: row.get(4),
                reason: row.get(5),
            })
            .collect())
    }

    async fn ticket_audit(&self, id: &str) -> StoreResult<Vec<AuditEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT ticket, ts_ms, actor, action, detail, hash FROM audit
                 WHERE ticket = $1 ORDER BY ts_ms, hash",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    ticket: row.get(0),
                    ts_ms: row.get(1),
                    actor: row.get(2),
                    action: row.get(3),
                    detail: decode_json("audit detail", row.get::<_, &str>(4))?,
                    hash: row.get(5),
                })
            })
            .collect()
    }

    async fn anomalies(&self, building: &str, since_ms: i64) -> StoreResult<Vec<AnomalyRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT event_id, gateway, building, ts_ms, ticket, payload FROM anomalies
                 WHERE building = $1 AND ts_ms >= $2 ORDER BY ts_ms DESC",
                &[&building, &since_ms],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AnomalyRow {
                    event_id: parse_uuid(row.get::<_, &str>(0))?,
                    gateway: row.get(1),
                    building: row.get(2),
                    ts_ms: row.get(3),
                    ticket: row.get(4),
                    payload: decode_json("anomaly", row.get::<_, &str>(5))?,
                })
            })
            .collect()
    }

    async fn telemetry(&self, building: &str, since_ms: i64) -> StoreResult<Vec<TelemetryRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT event_id, gateway, building, ts_ms, payload FROM telemetry
                 WHERE building = $1 AND ts_ms >= $2 ORDER BY ts_ms",
                &[&building, &since_ms],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TelemetryRow {
                    event_id: parse_uuid(row.get::<_, &str>(0))?,
                    gateway: row.get(1),
                    building: row.get(2),
                    ts_ms: row.get(3),
                    payload: decode_json("telemetry", row.get::<_, &str>(4))?,
                })
            })
            .collect()
    }

    async fn relay_after(&self, after: i64, limit: i64) -> StoreResult<Vec<RelayEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, kind, building, ticket, subject, payload, created_ms FROM relay
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await?;
        Ok(rows.iter().map(relay_from_row).collect())
    }

    async fn buildings(&self) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT building FROM gateway_tokens UNION SELECT building FROM tickets
                 UNION SELECT building FROM heartbeats ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn tenants(&self, building: &str) -> StoreResult<Vec<TenantRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM tenants WHERE building = $1 ORDER BY unit",
                &[&building],
            )
            .await?;
        rows.iter()
            .map(|row| decode_json("tenant record", row.get::<_, &str>(0)))
            .collect()
    }

    async fn event_count(&self) -> StoreResult<i64> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .get(0))
    }
}
