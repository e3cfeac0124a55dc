//! The central office's store: one async interface, [`CentralStore`], with a SQLite backend
//! for one office and a PostgreSQL backend for many buildings and several central processes.
//!
//! Both backends keep the same tables: `events` (every accepted envelope, keyed by event id),
//! `tickets` (the latest snapshot per ticket), `ticket_history`, `audit`, `anomalies`,
//! `telemetry`, `relay` (tenant updates and vendor dispatches handed to a channel),
//! `office_changes` (the pull feed, ids increasing per building in commit order),
//! `heartbeats`, `gateway_tokens`, `users`, `sessions` and `tenants`.
//!
//! Every method takes the time it acts at (`now_ms`) from its caller, so that tests can run on
//! a manual clock.
//!
//! The backends share their SQL text and row assembly (`sql`), every method but the batch
//! intake and the office changes (`backend`), and the steps of the batch intake (`ingest`).

mod backend;
mod ingest;
mod postgres;
mod sql;
mod sqlite;

use serde::Serialize;

use crate::protocol::{AuditEntry, Change, Envelope, Heartbeat, OfficeChange, Transition};

pub(crate) use postgres::PgStore;
pub(crate) use sqlite::SqliteStore;

/// Errors of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("invalid database URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the blocking store task failed: {0}")]
    Task(String),
    #[error("stored JSON of {what} could not be decoded: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The gateway that a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayIdentity {
    pub token_id: i64,
    pub gateway: String,
    pub building: String,
}

/// A gateway token's listing entry; the token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub gateway: String,
    pub building: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// The reason one event of a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub event_id: uuid::Uuid,
    /// An HTTP status code: 403 for another building's ticket, 400 for a malformed envelope
    /// or payload.
    pub status: u16,
    pub error: String,
}

/// The outcome of a batch: each event is either acknowledged (stored now or before) or
/// rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    pub acked: Vec<uuid::Uuid>,
    pub rejected: Vec<Rejection>,
    /// Events of `acked` that were already stored before this batch.
    #[serde(skip)]
    pub duplicates: usize,
    /// The kinds of the events stored for the first time by this batch, in batch order.
    #[serde(skip)]
    pub stored_kinds: Vec<crate::protocol::EventKind>,
    /// Relay entries (tenant updates, vendor dispatches) this batch added.
    #[serde(skip)]
    pub relayed: Vec<RelayEntry>,
}

/// A message handed to a relay channel: a tenant update or a vendor dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayEntry {
    pub id: i64,
    /// `tenant_update` or `vendor_dispatch`.
    pub kind: String,
    pub building: String,
    pub ticket: String,
    /// The tenant update's template, or the vendor's name.
    pub subject: String,
    /// The full JSON payload, which may carry personal data; never logged.
    pub payload: String,
    pub created_ms: i64,
}

/// A ticket as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketRow {
    pub id: String,
    pub building: String,
    pub gateway: String,
    pub state: String,
    pub category: String,
    pub urgency: String,
    pub needs_human: bool,
    pub escalation_reason: Option<String>,
    pub unit: Option<String>,
    pub asset: Option<String>,
    pub summary: String,
    pub vendor: Option<String>,
    pub slot_start_ms: Option<i64>,
    pub slot_end_ms: Option<i64>,
    pub ack_due_ms: Option<i64>,
    pub onsite_due_ms: Option<i64>,
    pub resolve_due_ms: Option<i64>,
    pub opened_ms: i64,
    pub updated_ms: i64,
    /// The transition seq of the snapshot.
    pub seq: i64,
}

impl TicketRow {
    /// Returns whether the ticket waits for a human: escalated, or flagged by triage.
    pub fn is_escalated(&self) -> bool {
        self.state == "escalated" || self.needs_human
    }
}

/// Filters of [`CentralStore::list_tickets`]; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub building: Option<String>,
    pub state: Option<String>,
    pub urgency: Option<String>,
    /// Leaves out closed, resolved and cancelled tickets.
    pub open_only: bool,
    pub limit: Option<i64>,
}

/// One stored anomaly summary with its sensor windows, as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyRow {
    pub event_id: uuid::Uuid,
    pub gateway: String,
    pub building: String,
    pub ts_ms: i64,
    pub ticket: Option<String>,
    /// The anomaly summary as the gateway sent it: asset, fault, score, sensors, window.
    pub payload: serde_json::Value,
}

/// One telemetry summary as the gateway sent it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryRow {
    pub event_id: uuid::Uuid,
    pub gateway: String,
    pub building: String,
    pub ts_ms: i64,
    pub payload: serde_json::Value,
}

/// The latest heartbeat of a gateway, and whether it is stale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayStatus {
    pub gateway: String,
    pub building: String,
    pub received_ms: i64,
    pub heartbeat: Heartbeat,
    /// No heartbeat arrived within the stale limit before the time of the query.
    pub stale: bool,
}

/// An office user; `password_hash` is an argon2 PHC string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    /// `admin`, `office` or `viewer`; only `admin` and `office` see tenants' personal data.
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_ms: i64,
}

/// A signed-in dashboard session; the session id is stored as its SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub user: String,
    pub role: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// The interface of the central office's store.
///
/// The backends are [`SqliteStore`] and [`PgStore`]. Both structs and their connection
/// handles are `pub(crate)`, so other modules of the central office (such as the dashboard)
/// may add their own queries in `impl SqliteStore` and `impl PgStore` blocks in their own
/// files. A query that both backends need belongs in this trait.
#[async_trait::async_trait]
pub trait CentralStore: Send + Sync + 'static {
    /// Names the backend and its location without credentials, for logs.
    fn describe(&self) -> String;

    /// Stores a batch of events from `gateway` in one transaction. An event already stored is
    /// acknowledged again; an event for a ticket of another building is rejected with 403.
    async fn accept_events(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome>;

    /// Returns the office changes of `building` with ids above `after`, in id order.
    async fn changes_after(
        &self,
        building: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OfficeChange>>;

    /// Adds an office change to the pull feed of `building` and returns it with its id. A
    /// tenant directory change also updates the office's copy of the directory.
    async fn add_change(
        &self,
        building: &str,
        actor: &str,
        change: Change,
        now_ms: i64,
    ) -> StoreResult<OfficeChange>;

    /// Records a gateway's heartbeat, replacing its previous one.
    async fn record_heartbeat(
        &self,
        gateway: &GatewayIdentity,
        heartbeat: &Heartbeat,
        now_ms: i64,
    ) -> StoreResult<()>;

    /// Returns the latest heartbeat of every gateway, flagged stale when older than
    /// `stale_after_ms` at `now_ms`.
    async fn gateway_statuses(
        &self,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> StoreResult<Vec<GatewayStatus>>;

    /// Adds a gateway token by the SHA-256 of its secret and returns its id.
    async fn add_token(
        &self,
        gateway: &str,
        building: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<i64>;

    /// Revokes every live token of `gateway` and returns how many there were.
    async fn revoke_tokens(&self, gateway: &str, now_ms: i64) -> StoreResult<u64>;

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>>;

    /// Finds the live token with this SHA-256.
    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<GatewayIdentity>>;

    /// Adds an office user; fails with [`StoreError::Conflict`] when the name is taken.
    async fn add_user(&self, user: &User) -> StoreResult<()>;

    /// Replaces a user's password hash and role when the user exists.
    async fn update_user(&self, user: &User) -> StoreResult<()>;

    async fn find_user(&self, name: &str) -> StoreResult<Option<User>>;

    async fn create_session(
        &self,
        session_hash: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()>;

    /// Finds a session that has not expired at `now_ms`, with its user's current role.
    async fn find_session(&self, session_hash: &str, now_ms: i64) -> StoreResult<Option<Session>>;

    async fn delete_session(&self, session_hash: &str) -> StoreResult<()>;

    /// Lists tickets, those waiting for a human first, then by urgency and earliest due
    /// time.
    async fn list_tickets(&self, filter: &TicketFilter) -> StoreResult<Vec<TicketRow>>;

    async fn ticket(&self, id: &str) -> StoreResult<Option<TicketRow>>;

    /// Returns a ticket's transitions in seq order.
    async fn ticket_history(&self, id: &str) -> StoreResult<Vec<Transition>>;

    /// Returns a ticket's audit entries in time order.
    async fn ticket_audit(&self, id: &str) -> StoreResult<Vec<AuditEntry>>;

    /// Returns a building's anomalies at or after `since_ms`, newest first.
    async fn anomalies(&self, building: &str, since_ms: i64) -> StoreResult<Vec<AnomalyRow>>;

    /// Returns a building's telemetry summaries at or after `since_ms`, oldest first.
    async fn telemetry(&self, building: &str, since_ms: i64) -> StoreResult<Vec<TelemetryRow>>;

    /// Returns relay entries with ids above `after`, in id order.
    async fn relay_after(&self, after: i64, limit: i64) -> StoreResult<Vec<RelayEntry>>;

    /// Lists the buildings that have a token, a ticket or a heartbeat.
    async fn buildings(&self) -> StoreResult<Vec<String>>;

    /// Returns the tenant directory of a building, as the office last changed it.
    async fn tenants(&self, building: &str) -> StoreResult<Vec<crate::protocol::TenantRecord>>;

    /// Counts the stored events, for metrics and tests.
    async fn event_count(&self) -> StoreResult<i64>;
}

/// Opens the store that `url` names: `postgres://` or `postgresql://` for PostgreSQL, and
/// `sqlite://PATH`, `sqlite:PATH` or a plain path for a SQLite file. Creates the tables.
pub async fn open(url: &str) -> StoreResult<std::sync::Arc<dyn CentralStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PgStore::open(url).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::Url {
                url: url.to_string(),
                reason: "no file path; give sqlite://PATH or postgres://...".into(),
            });
        }
        Ok(std::sync::Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ))
    }
}

/// Removes the password from a database URL so that it may be logged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// States in which a ticket needs no more work.
pub(crate) const FINISHED_STATES: [&str; 3] = ["resolved", "closed", "cancelled"];

/// Builds the dashboard's row from a stored snapshot.
pub(crate) fn row_from_snapshot(
    snapshot: crate::protocol::TicketSnapshot,
    gateway: String,
    seq: i64,
) -> TicketRow {
    TicketRow {
        id: snapshot.id,
        building: snapshot.building,
        gateway,
        state: snapshot.state,
        category: snapshot.category,
        urgency: snapshot.urgency,
        needs_human: snapshot.needs_human,
        escalation_reason: snapshot.escalation_reason,
        unit: snapshot.unit,
        asset: snapshot.asset,
        summary: snapshot.summary,
        vendor: snapshot.vendor,
        slot_start_ms: snapshot.slot_start_ms,
        slot_end_ms: snapshot.slot_end_ms,
        ack_due_ms: snapshot.ack_due_ms,
        onsite_due_ms: snapshot.onsite_due_ms,
        resolve_due_ms: snapshot.resolve_due_ms,
        opened_ms: snapshot.opened_ms,
        updated_ms: snapshot.updated_ms,
        seq,
    }
}

fn urgency_rank(urgency: &str) -> u8 {
    match urgency {
        "emergency" => 0,
        "urgent" => 1,
        "normal" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// Orders tickets for the dashboard: open before finished, those waiting for a human first,
/// then by urgency, earliest due time, opening time and id.
pub(crate) fn sort_tickets(tickets: &mut [TicketRow]) {
    tickets.sort_by(|a, b| {
        let key = |t: &TicketRow| {
            let finished = FINISHED_STATES.contains(&t.state.as_str());
            let due = [t.ack_due_ms, t.onsite_due_ms, t.resolve_due_ms]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(i64::MAX);
            (
                finished,
                !t.is_escalated(),
                urgency_rank(&t.urgency),
                due,
                t.opened_ms,
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
}
