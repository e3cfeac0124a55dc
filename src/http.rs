//! The local HTTP API: `/metrics`, `/healthz`, writes to writable Modbus points and tenant
//! messages from SMS and e-mail bridges.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::modbus::{ModbusHandle, WriteError};
use crate::secret::Secret;
use crate::store::StoreHandle;
use crate::time::TimeKeeper;

/// State shared by the request handlers.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: Arc<Metrics>,
    pub keeper: Arc<TimeKeeper>,
    pub store: StoreHandle,
    pub modbus: Option<ModbusHandle>,
    /// Whether an `[mqtt]` section is configured; `/healthz` reports no MQTT state otherwise.
    pub mqtt_configured: bool,
    pub write_token: Option<Secret>,
    /// Tenant message intake; `None` without an `[intake]` section.
    pub intake: Option<Arc<crate::intake::Intake>>,
    /// Sync state; `None` without a `[sync]` section, and `/healthz` then reports no sync.
    pub sync: Option<crate::sync::SyncHealth>,
}

pub fn router(state: ApiState) -> Router {
    // Bodies up to the intake's payload limit are read, so that a larger one is rejected with
    // 413 at that limit instead of axum's default of 2 MB.
    let message_limit = state
        .intake
        .as_ref()
        .map_or(64 * 1024, |intake| intake.config().max_payload_bytes());
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/v1/modbus/{device}/{point}", post(write_point))
        .route(
            "/v1/messages",
            post(crate::intake::http::post_message).layer(DefaultBodyLimit::max(message_limit)),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Reports the gateway's health. The status is 503 while the store writer is stopped, and
/// otherwise 200 with `"status": "degraded"` and the reasons in `problems` when sync reports
/// a problem, because the gateway still stores and handles its input then.
async fn healthz(State(state): State<ApiState>) -> Response {
    let store_running = !state.store.is_closed();
    // Reading the time lets the keeper notice a clock that is already trusted before the
    // first reading arrives.
    let clock_trusted = !state.keeper.receive_time().uncertain;
    let mqtt_connected = state
        .mqtt_configured
        .then(|| state.metrics.mqtt_connected.get() == 1);
    let (sync, problems) = match state.sync.clone() {
        Some(health) => match sync_report(health).await {
            Ok(report) => {
                let problems = report.problems.clone();
                (json!(report), problems)
            }
            Err(message) => (
                json!({ "status": "degraded", "problems": [&message] }),
                vec![message],
            ),
        },
        None => (serde_json::Value::Null, Vec::new()),
    };
    let (status, text) = if !store_running {
        (StatusCode::SERVICE_UNAVAILABLE, "store writer stopped")
    } else if !problems.is_empty() {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    let body = json!({
        "status": text,
        "problems": problems,
        "store_running": store_running,
        "clock_trusted": clock_trusted,
        "mqtt_connected": mqtt_connected,
        "sync": sync,
        "version": env!("CARGO_PKG_VERSION"),
    });
    (status, Json(body)).into_response()
}

/// Builds the sync report on a blocking thread, because it reads the outbox from SQLite.
async fn sync_report(health: crate::sync::SyncHealth) -> Result<crate::sync::SyncReport, String> {
    tokio::task::spawn_blocking(move || health.report())
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "building the sync health report failed");
            format!("building the sync health report failed: {err}")
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteRequest {
    /// Engineering value, before the point's scale and offset are inverted.
    value: f64,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn write_point(
    State(state): State<ApiState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    Path((device, point)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &state.write_token else {
        return error(
            StatusCode::FORBIDDEN,
            "Modbus writes are disabled; set http.write_token in the gateway config",
        );
    };
    // The scheme name is case-insensitive in HTTP.
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.expose().as_bytes())) {
        tracing::warn!(%peer, %device, %point, "Modbus write rejected: missing or wrong bearer token");
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token in the Authorization header",
        );
    }
    let request: WriteRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid body: {err}; expected {{\"value\": NUMBER}}"),
            )
        }
    };
    let Some(modbus) = &state.modbus else {
        return error(StatusCode::NOT_FOUND, "no Modbus devices are configured");
    };
    let actor = format!("http:{peer}");
    match modbus.write(&device, &point, request.value, &actor).await {
        Ok(outcome) => (
            StatusCode::OK,
            Json(json!({
                "device": outcome.device,
                "point": outcome.point,
                "value": outcome.value,
                "address": outcome.address,
            })),
        )
            .into_response(),
        Err(err) => {
            let status = match &err {
                WriteError::UnknownDevice(_) | WriteError::UnknownPoint { .. } => {
                    StatusCode::NOT_FOUND
                }
                WriteError::NotWritable { .. }
                | WriteError::InvalidValue { .. }
                | WriteError::OutOfRange { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                WriteError::Device { .. } | WriteError::Stopped(_) => StatusCode::BAD_GATEWAY,
            };
            error(status, err.to_string())
        }
    }
}

/// Compares without returning early, so that the time taken does not reveal a prefix.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
