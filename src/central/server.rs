//! The central office's HTTP server: the sync API v1 for gateways, `/healthz`, `/metrics`
//! and the dashboard's pages.
//!
//! Every `/v1/` request carries `Caretaker-Protocol: 1` and `Authorization: Bearer TOKEN`.
//! The protocol header is checked first (426 names the supported versions), then the token
//! (401), then the body's size (413 with `max_body_bytes`) and shape (400).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::central::auth::secret_hash;
use crate::central::metrics::{CentralMetrics, KindLabel, RouteLabel};
use crate::central::relay;
use crate::central::store::{CentralStore, GatewayIdentity, Rejection, StoreError};
use crate::protocol::{Envelope, Heartbeat, PROTOCOL_VERSION};
use crate::time::Clock;

/// Name of the header that carries the protocol version.
pub const PROTOCOL_HEADER: &str = "caretaker-protocol";

/// Changes returned by one pull when the gateway gives no `limit`.
pub const DEFAULT_PULL_LIMIT: i64 = 100;

/// The maximum number of changes one pull returns; a larger `limit` gets 400.
pub const MAX_PULL_LIMIT: i64 = 1000;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
}

/// State shared by the API's handlers.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn CentralStore>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<CentralMetrics>,
    pub config: Arc<ApiConfig>,
}

/// An error response: a status and a JSON body with `error` and any extra fields.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    fn with(mut self, key: &str, value: serde_json::Value) -> ApiError {
        self.body[key] = value;
        self
    }

    fn store(err: StoreError, metrics: &CentralMetrics) -> ApiError {
        metrics.store_errors.inc();
        tracing::error!(error = %err, "store operation failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the central store failed: {err}; retry later"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Builds the router of the API, `/healthz` and `/metrics`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/changes", get(get_changes))
        .route("/v1/heartbeat", post(post_heartbeat))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Bodies are read by `read_body`, which returns 413 with the limit in JSON.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Checks the protocol version and the bearer token of a `/v1/` request.
async fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<GatewayIdentity, ApiError> {
    let version = headers
        .get(PROTOCOL_HEADER)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("missing header Caretaker-Protocol; send Caretaker-Protocol: {PROTOCOL_VERSION}"),
            )
        })?
        .to_str()
        .unwrap_or("");
    if version.trim() != PROTOCOL_VERSION.to_string() {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            format!(
                "protocol version {version:?} is not supported; this server speaks version \
                 {PROTOCOL_VERSION}"
            ),
        )
        .with("supported", json!([PROTOCOL_VERSION])));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing bearer token; send Authorization: Bearer TOKEN with the gateway's token",
            )
        })?;
    match state.store.find_token(&secret_hash(token)).await {
        Ok(Some(identity)) => Ok(identity),
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid or revoked gateway token; create one with `caretaker central token add`",
        )),
        Err(err) => Err(ApiError::store(err, &state.metrics)),
    }
}

/// Reads a request body up to the configured limit.
async fn read_body(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes; send smaller batches"),
        )
        .with("max_body_bytes", json!(limit))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        // `to_bytes` reports an exceeded limit through a boxed `LengthLimitError`.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(current) = source {
            if current.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = current.source();
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("reading the request body failed: {err}"),
        )
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid {what}: {err}; see docs/sync-protocol.md"),
        )
    })
}

fn count(state: &ApiState, route: &'static str, status: StatusCode) {
    state
        .metrics
        .requests
        .get_or_create(&RouteLabel {
            route,
            status: status.as_u16(),
        })
        .inc();
}

/// The body of `POST /v1/events`.
/// Fields it does not know are ignored, so that a newer gateway may add some.
#[derive(Debug, Deserialize)]
pub struct EventBatch {
    pub gateway: String,
    /// The envelopes as sent. Each one is decoded on its own, so a malformed event is
    /// rejected alone and the rest of the batch is stored.
    pub events: Vec<serde_json::Value>,
}

/// A rejected event whose `event_id` is missing or not a UUID, so it can only be named by
/// its position in the batch.
#[derive(Debug, Serialize)]
struct UnidentifiedRejection {
    /// The event's position in the batch's `events`, from 0.
    index: usize,
    /// The `event_id` as sent, or null when it was missing.
    event_id: serde_json::Value,
    status: u16,
    error: String,
}

/// The response to `POST /v1/events`. The gateway reads `acked` and `rejected`.
/// `unidentified` appears only when the batch has events without a valid id, which the
/// gateway never sends.
#[derive(Debug, Serialize)]
struct BatchReply {
    acked: Vec<uuid::Uuid>,
    rejected: Vec<crate::central::store::Rejection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unidentified: Vec<UnidentifiedRejection>,
}

/// The events of a batch split into the envelopes that decoded and the rejections of those
/// that did not, each with its position in the batch.
struct DecodedEvents {
    envelopes: Vec<(usize, Envelope)>,
    rejected: Vec<(usize, Rejection)>,
    unidentified: Vec<UnidentifiedRejection>,
}

/// Decodes each event of a batch on its own. An event that does not decode is rejected with
/// 400: under its id when the id is a UUID, and by position otherwise.
fn decode_events(events: Vec<serde_json::Value>) -> DecodedEvents {
    let mut decoded = DecodedEvents {
        envelopes: Vec::with_capacity(events.len()),
        rejected: Vec::new(),
        unidentified: Vec::new(),
    };
    for (index, value) in events.into_iter().enumerate() {
        let raw_id = value.get("event_id").cloned();
        let err = match serde_json::from_value::<Envelope>(value) {
            Ok(envelope) => {
                decoded.envelopes.push((index, envelope));
                continue;
            }
            Err(err) => err,
        };
        let event_id = raw_id
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(|text| text.parse::<uuid::Uuid>().ok());
        let problem = match (&raw_id, event_id) {
            (Some(raw_id), None) => format!("event_id {raw_id} is not a UUID"),
            _ => err.to_string(),
        };
        let error = format!(
            "invalid event envelope at index {index}: {problem}; see docs/sync-protocol.md for \
             its fields"
        );
        match event_id {
            Some(event_id) => decoded.rejected.push((
                index,
                Rejection {
                    event_id,
                    status: 400,
                    error,
                },
            )),
            None => decoded.unidentified.push(UnidentifiedRejection {
                index,
                event_id: raw_id.unwrap_or(serde_json::Value::Null),
                status: 400,
                error,
            }),
        }
    }
    decoded
}

/// Merges the store's rejections with those of envelopes that did not decode, in batch
/// order.
fn merge_rejections(
    envelope_indices: &HashMap<uuid::Uuid, usize>,
    store_rejected: Vec<Rejection>,
    decode_rejected: Vec<(usize, Rejection)>,
) -> Vec<Rejection> {
    let mut all: Vec<(usize, Rejection)> = store_rejected
        .into_iter()
        .map(|rejection| {
            let index = envelope_indices
                .get(&rejection.event_id)
                .copied()
                .unwrap_or(usize::MAX);
            (index, rejection)
        })
        .chain(decode_rejected)
        .collect();
    all.sort_by_key(|(index, _)| *index);
    all.into_iter().map(|(_, rejection)| rejection).collect()
}

async fn post_events(State(state): State<ApiState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = accept_batch(&state, &parts.headers, body).await;
    let response = match result {
        Ok(reply) => (StatusCode::OK, Json(reply)).into_response(),
        Err(err) => err.into_response(),
    };
    count(&state, "events", response.status());
    response
}

/// Counts and logs one rejected event.
fn count_rejection(
    state: &ApiState,
    gateway: &str,
    event_id: &dyn std::fmt::Display,
    status: u16,
    error: &str,
) {
    state
        .metrics
        .events_rejected
        .get_or_create(&KindLabel {
            kind: status.to_string(),
        })
        .inc();
    tracing::warn!(gateway, %event_id, status, error, "event rejected");
}

async fn accept_batch(
    state: &ApiState,
    headers: &HeaderMap,
    body: Body,
) -> Result<BatchReply, ApiError> {
    let identity = authorize(state, headers).await?;
    let bytes = read_body(state, headers, body).await?;
    let batch: EventBatch = parse_json(&bytes, "event batch")?;

    if batch.gateway != identity.gateway {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the batch names gateway {:?}, but the token belongs to gateway {:?}",
                batch.gateway, identity.gateway
            ),
        ));
    }

    let received = batch.events.len();
    let decoded = decode_events(batch.events);
    let mut envelope_indices = HashMap::with_capacity(decoded.envelopes.len());
    let mut envelopes = Vec::with_capacity(decoded.envelopes.len());
    for (index, envelope) in decoded.envelopes {
        envelope_indices.entry(envelope.event_id).or_insert(index);
        envelopes.push(envelope);
    }
    let started = Instant::now();
    let outcome = state
        .store
        .accept_events(&identity, envelopes, state.clock.wall_ms())
        .await
        .map_err(|err| ApiError::store(err, &state.metrics))?;
    state
        .metrics
        .batch_seconds
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .events_duplicate
        .inc_by(outcome.duplicates as u64);
    for kind in &outcome.stored_kinds {
        state
            .metrics
            .events_stored
            .get_or_create(&KindLabel {
                kind: kind.as_str().into(),
            })
            .inc();
    }
    let rejected = merge_rejections(&envelope_indices, outcome.rejected, decoded.rejected);
    let by_id = rejected.iter().map(|rejection| {
        let event_id: &dyn std::fmt::Display = &rejection.event_id;
        (event_id, rejection.status, rejection.error.as_str())
    });
    let by_index = decoded.unidentified.iter().map(|rejection| {
        let event_id: &dyn std::fmt::Display = &rejection.event_id;
        (event_id, rejection.status, rejection.error.as_str())
    });
    for (event_id, status, error) in by_id.chain(by_index) {
        count_rejection(state, &identity.gateway, event_id, status, error);
    }

    relay::relay(&outcome.relayed, &state.metrics);
    tracing::debug!(
        gateway = %identity.gateway,
        received,
        acked = outcome.acked.len(),
        duplicates = outcome.duplicates,
        rejected = rejected.len() + decoded.unidentified.len(),
        "event batch stored"
    );
    Ok(BatchReply {
        acked: outcome.acked,
        rejected,
        unidentified: decoded.unidentified,
    })
}

/// Query of `GET /v1/changes`.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    pub after: i64,
    pub limit: Option<i64>,
}

async fn get_changes(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let identity = authorize(&state, &headers).await?;
        let Query(query) = query.map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid query: {err}; use ?after=ID&limit=N with integers"),
            )
        })?;
        let limit = query.limit.unwrap_or(DEFAULT_PULL_LIMIT);
        if !(1..=MAX_PULL_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("limit {limit} is out of range; give 1 to {MAX_PULL_LIMIT}"),
            ));
        }
        let changes = state
            .store
            .changes_after(&identity.building, query.after, limit)
            .await
            .map_err(|err| ApiError::store(err, &state.metrics))?;
        state.metrics.changes_served.inc_by(changes.len() as u64);
        Ok(json!({ "changes": changes }))
    }
    .await;
    let response = match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(err) => err.into_response(),
    };
    count(&state, "changes", response.status());
    response
}

async fn post_heartbeat(State(state): State<ApiState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let identity = authorize(&state, &parts.headers).await?;
        let bytes = read_body(&state, &parts.headers, body).await?;
        let heartbeat: Heartbeat = parse_json(&bytes, "heartbeat")?;
        if heartbeat.gateway != identity.gateway {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the heartbeat names gateway {:?}, but the token belongs to gateway {:?}",
                    heartbeat.gateway, identity.gateway
                ),
            ));
        }
        state
            .store
            .record_heartbeat(&identity, &heartbeat, state.clock.wall_ms())
            .await
            .map_err(|err| ApiError::store(err, &state.metrics))?;
        state.metrics.heartbeats.inc();
        Ok(json!({
            "protocol": PROTOCOL_VERSION,
            "server_version": env!("CARGO_PKG_VERSION"),
            "max_body_bytes": state.config.max_body_bytes,
        }))
    }
    .await;
    let response = match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(err) => err.into_response(),
    };
    count(&state, "heartbeat", response.status());
    response
}

async fn healthz(State(state): State<ApiState>) -> Response {
    match state.store.event_count().await {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        Err(err) => {
            state.metrics.store_errors.inc();
            tracing::warn!(error = %err, "health check: the store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "failing", "error": err.to_string() })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The server's listening socket, plain HTTP or TLS.
pub enum Listen {
    Plain(tokio::net::TcpListener),
    Tls(crate::central::tls::TlsListener),
}

/// Serves `app` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listen: Listen,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match listen {
        Listen::Plain(listener) => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Listen::Tls(listener) => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
