//! The part of a store that differs between SQLite and PostgreSQL, [`SqlBackend`], and the
//! [`CentralStore`] methods that both backends share on top of it.

use std::borrow::Cow;

use crate::protocol::{
    AuditEntry, Change, Envelope, Heartbeat, OfficeChange, TenantRecord, Transition,
};

use super::sql::{self, bind, FromRow, Param, Statement};
use super::{
    AnomalyRow, BatchOutcome, CentralStore, GatewayIdentity, GatewayStatus, RelayEntry, Session,
    StoreError, StoreResult, TelemetryRow, TicketFilter, TicketRow, TokenInfo, User,
};

/// A database backend: it runs the shared SQL of [`super::sql`], and the two writes whose
/// transactions each backend builds its own way.
#[async_trait::async_trait]
pub(crate) trait SqlBackend: Send + Sync + 'static {
    /// Names the backend and its location without credentials, for logs.
    fn describe(&self) -> String;

    /// Runs a query that writes nothing and builds one value per row.
    async fn fetch<T: Send + 'static>(
        &self,
        sql: Cow<'static, str>,
        params: Vec<Param>,
        from_row: FromRow<T>,
    ) -> StoreResult<Vec<T>>;

    /// Runs write statements in one transaction, in order, and returns the number of rows
    /// each one changed.
    async fn execute(&self, statements: Vec<Statement>) -> StoreResult<Vec<u64>>;

    /// Runs one `INSERT ... RETURNING id` and returns the id.
    async fn insert_returning_id(&self, sql: &'static str, params: Vec<Param>) -> StoreResult<i64>;

    /// Stores a batch of events, as [`CentralStore::accept_events`] describes.
    async fn store_batch(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome>;

    /// Adds an office change, as [`CentralStore::add_change`] describes.
    async fn insert_change(
        &self,
        building: &str,
        actor: &str,
        change: Change,
        now_ms: i64,
    ) -> StoreResult<OfficeChange>;
}

/// Runs one write statement and returns the number of rows it changed.
async fn execute_one<B: SqlBackend>(
    backend: &B,
    sql: &'static str,
    params: Vec<Param>,
) -> StoreResult<u64> {
    let changed = backend.execute(vec![(Cow::Borrowed(sql), params)]).await?;
    Ok(changed.first().copied().unwrap_or(0))
}

/// Runs a query that returns at most one row.
async fn fetch_optional<B: SqlBackend, T: Send + 'static>(
    backend: &B,
    sql: &'static str,
    params: Vec<Param>,
    from_row: FromRow<T>,
) -> StoreResult<Option<T>> {
    let rows = backend.fetch(Cow::Borrowed(sql), params, from_row).await?;
    Ok(rows.into_iter().next())
}

#[async_trait::async_trait]
impl<B: SqlBackend> CentralStore for B {
    fn describe(&self) -> String {
        SqlBackend::describe(self)
    }

    async fn accept_events(
        &self,
        gateway: &GatewayIdentity,
        events: Vec<Envelope>,
        now_ms: i64,
    ) -> StoreResult<BatchOutcome> {
        self.store_batch(gateway, events, now_ms).await
    }

    async fn changes_after(
        &self,
        building: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<OfficeChange>> {
        let params = bind![building, after, limit];
        self.fetch(sql::SELECT_CHANGES.into(), params, sql::office_change)
            .await
    }

    async fn add_change(
        &self,
        building: &str,
        actor: &str,
        change: Change,
        now_ms: i64,
    ) -> StoreResult<OfficeChange> {
        self.insert_change(building, actor, change, now_ms).await
    }

    async fn record_heartbeat(
        &self,
        gateway: &GatewayIdentity,
        heartbeat: &Heartbeat,
        now_ms: i64,
    ) -> StoreResult<()> {
        let params = bind![
            gateway.gateway.as_str(),
            gateway.building.as_str(),
            now_ms,
            sql::json_text(heartbeat),
        ];
        execute_one(self, sql::UPSERT_HEARTBEAT, params).await?;
        Ok(())
    }

    async fn gateway_statuses(
        &self,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> StoreResult<Vec<GatewayStatus>> {
        let mut statuses = self
            .fetch(sql::SELECT_HEARTBEATS.into(), vec![], sql::gateway_status)
            .await?;
        for status in &mut statuses {
            status.stale = now_ms - status.received_ms > stale_after_ms;
        }
        Ok(statuses)
    }

    async fn add_token(
        &self,
        gateway: &str,
        building: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let params = bind![gateway, building, token_hash, now_ms];
        self.insert_returning_id(sql::INSERT_TOKEN, params).await
    }

    async fn revoke_tokens(&self, gateway: &str, now_ms: i64) -> StoreResult<u64> {
        execute_one(self, sql::REVOKE_TOKENS, bind![gateway, now_ms]).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        self.fetch(sql::SELECT_TOKENS.into(), vec![], sql::token_info)
            .await
    }

    async fn find_token(&self, token_hash: &str) -> StoreResult<Option<GatewayIdentity>> {
        let params = bind![token_hash];
        fetch_optional(self, sql::SELECT_LIVE_TOKEN, params, sql::gateway_identity).await
    }

    async fn add_user(&self, user: &User) -> StoreResult<()> {
        let params = bind![
            user.name.as_str(),
            user.role.as_str(),
            user.password_hash.as_str(),
            user.created_ms,
        ];
        if execute_one(self, sql::INSERT_USER, params).await? == 0 {
            return Err(StoreError::Conflict(format!("user {:?}", user.name)));
        }
        Ok(())
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let params = bind![
            user.name.as_str(),
            user.role.as_str(),
            user.password_hash.as_str(),
        ];
        if execute_one(self, sql::UPDATE_USER, params).await? == 0 {
            return Err(StoreError::NotFound(format!("user {:?}", user.name)));
        }
        Ok(())
    }

    async fn find_user(&self, name: &str) -> StoreResult<Option<User>> {
        fetch_optional(self, sql::SELECT_USER, bind![name], sql::user).await
    }

    async fn create_session(
        &self,
        session_hash: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        self.execute(vec![
            (sql::DELETE_EXPIRED_SESSIONS.into(), bind![now_ms]),
            (
                sql::INSERT_SESSION.into(),
                bind![session_hash, user, now_ms, expires_ms],
            ),
        ])
        .await?;
        Ok(())
    }

    async fn find_session(&self, session_hash: &str, now_ms: i64) -> StoreResult<Option<Session>> {
        let params = bind![session_hash, now_ms];
        fetch_optional(self, sql::SELECT_SESSION, params, sql::session).await
    }

    async fn delete_session(&self, session_hash: &str) -> StoreResult<()> {
        execute_one(self, sql::DELETE_SESSION, bind![session_hash]).await?;
        Ok(())
    }

    async fn list_tickets(&self, filter: &TicketFilter) -> StoreResult<Vec<TicketRow>> {
        let (query, params) = sql::ticket_filter_query(filter);
        let mut tickets = self.fetch(query.into(), params, sql::ticket_row).await?;
        super::sort_tickets(&mut tickets);
        if let Some(limit) = filter.limit {
            tickets.truncate(usize::try_from(limit).unwrap_or(0));
        }
        Ok(tickets)
    }

    async fn ticket(&self, id: &str) -> StoreResult<Option<TicketRow>> {
        fetch_optional(self, sql::SELECT_TICKET, bind![id], sql::ticket_row).await
    }

    async fn ticket_history(&self, id: &str) -> StoreResult<Vec<Transition>> {
        self.fetch(sql::SELECT_HISTORY.into(), bind![id], sql::transition)
            .await
    }

    async fn ticket_audit(&self, id: &str) -> StoreResult<Vec<AuditEntry>> {
        self.fetch(sql::SELECT_AUDIT.into(), bind![id], sql::audit_entry)
            .await
    }

    async fn anomalies(&self, building: &str, since_ms: i64) -> StoreResult<Vec<AnomalyRow>> {
        let params = bind![building, since_ms];
        self.fetch(sql::SELECT_ANOMALIES.into(), params, sql::anomaly_row)
            .await
    }

    async fn telemetry(&self, building: &str, since_ms: i64) -> StoreResult<Vec<TelemetryRow>> {
        let params = bind![building, since_ms];
        self.fetch(sql::SELECT_TELEMETRY.into(), params, sql::telemetry_row)
            .await
    }

    async fn relay_after(&self, after: i64, limit: i64) -> StoreResult<Vec<RelayEntry>> {
        let params = bind![after, limit];
        self.fetch(sql::SELECT_RELAY.into(), params, sql::relay_entry)
            .await
    }

    async fn buildings(&self) -> StoreResult<Vec<String>> {
        self.fetch(sql::SELECT_BUILDINGS.into(), vec![], sql::first_text)
            .await
    }

    async fn tenants(&self, building: &str) -> StoreResult<Vec<TenantRecord>> {
        self.fetch(
            sql::SELECT_TENANTS.into(),
            bind![building],
            sql::tenant_record,
        )
        .await
    }

    async fn event_count(&self) -> StoreResult<i64> {
        let count = fetch_optional(self, sql::COUNT_EVENTS, vec![], sql::first_int).await?;
        Ok(count.unwrap_or(0))
    }
}
