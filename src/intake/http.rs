//! `POST /v1/messages`: tenant messages from SMS and e-mail bridges.
//!
//! Returns `202 {"id"}` only after the message is committed. For a message already stored
//! (same channel, sender, unit, text and `received_at`) it returns `202` with the stored id
//! and `"duplicate": true`, so that a bridge may retry after a timeout. Errors: `401` without a
//! bridge's token, `413` over the size limit, `422` for invalid JSON or fields, `429` with
//! `Retry-After` over the sender's rate limit, `503` when the store has stopped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::message::{NewMessage, RejectKind, Rejection, Transport};
use super::{Intake, Untriaged};
use crate::http::{constant_time_eq, ApiState};
use crate::store::Batch;

/// Handles `POST /v1/messages`.
pub async fn post_message(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let Some(intake) = state.intake.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "tenant message intake is not configured; add an [intake] section with an \
             [[intake.bridge]] to the gateway config",
        );
    };
    let Some(bridge) = authenticate(&intake, &headers) else {
        let rejection = Rejection::new(
            RejectKind::Unauthorized,
            "missing or wrong bearer token in the Authorization header",
        );
        intake.rejected(Transport::Http, &rejection, &peer.to_string());
        let mut response = error(StatusCode::UNAUTHORIZED, rejection.reason);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let rejection = Rejection::new(
                RejectKind::TooLarge,
                format!(
                    "body is larger than {} bytes, the limit derived from intake.max_text_bytes",
                    intake.config().max_payload_bytes()
                ),
            );
            return reject(&intake, &bridge, rejection);
        }
        Err(rejection) => {
            tracing::warn!(%bridge, error = %rejection, "cannot read a tenant message body");
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {rejection}"),
            );
        }
    };
    let message = match intake.http_message(&bridge, &body) {
        Ok(message) => message,
        Err(rejection) => return reject(&intake, &bridge, rejection),
    };
    commit(&state, intake, message).await
}

/// Returns the name of the bridge whose token the request carries.
fn authenticate(intake: &Intake, headers: &HeaderMap) -> Option<String> {
    // The scheme name is case-insensitive in HTTP.
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())?;
    // Every token is compared, so that the time taken does not reveal which one matched.
    let mut found = None;
    for bridge in &intake.config().bridges {
        if constant_time_eq(presented.as_bytes(), bridge.token.expose().as_bytes()) {
            found = Some(bridge.name.clone());
        }
    }
    found
}

fn reject(intake: &Intake, bridge: &str, rejection: Rejection) -> Response {
    intake.rejected(Transport::Http, &rejection, bridge);
    let status = match rejection.kind {
        RejectKind::Unauthorized => StatusCode::UNAUTHORIZED,
        RejectKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        RejectKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    };
    let retry_after = rejection.retry_after_secs;
    let mut response = error(status, rejection.reason);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// Commits the message and returns the response once the commit is done.
async fn commit(state: &ApiState, intake: Arc<Intake>, message: NewMessage) -> Response {
    let id = message.id.clone();
    let bridge = message.bridge.clone().unwrap_or_default();
    let channel = message.channel.clone();
    let unit = message.unit.clone();
    let untriaged = Untriaged {
        id: message.id.clone(),
        text: message.text.clone(),
    };
    let lookup = message.clone();

    let batch = Batch {
        messages: vec![super::MessageOp::Insert(message)],
        ..Batch::default()
    };
    let committed = match state.store.write(batch).await {
        Ok(committed) => committed,
        Err(err) => {
            tracing::error!(error = %err, %bridge, "tenant message not stored");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not accepting writes; retry later",
            );
        }
    };
    if committed.stored == 0 {
        return duplicate(&intake, lookup, &bridge).await;
    }

    intake.committed([untriaged]);
    tracing::info!(
        %id,
        transport = "http",
        %bridge,
        %channel,
        unit = unit.as_deref().unwrap_or("-"),
        "tenant message stored"
    );
    (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response()
}

/// Returns the response for a message that was stored before, with the stored copy's id.
async fn duplicate(intake: &Intake, message: NewMessage, bridge: &str) -> Response {
    let database = intake.database().to_path_buf();
    let found = tokio::task::spawn_blocking(move || stored_id(&database, &message)).await;
    match found {
        Ok(Ok(Some(stored))) => {
            tracing::info!(id = %stored, %bridge, "tenant message already stored; not stored again");
            let body = json!({ "id": stored, "duplicate": true });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        // Retention may have deleted the stored copy in between.
        Ok(Ok(None)) => {
            tracing::info!(%bridge, "tenant message stored before and deleted by retention since");
            error(
                StatusCode::CONFLICT,
                "the message was already stored and has since been deleted by retention",
            )
        }
        Ok(Err(err)) => {
            tracing::warn!(
                error = %err,
                %bridge,
                "cannot look up the stored copy of a duplicate message"
            );
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the message is stored already, but its id cannot be read now; retry later",
            )
        }
        Err(err) => {
            tracing::error!(error = %err, %bridge, "the duplicate lookup task failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "retry later")
        }
    }
}

/// Finds the id of the stored message that `message` duplicates, by the store's rule for
/// messages with a `received_at`.
fn stored_id(database: &Path, message: &NewMessage) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.query_row(
        "SELECT id FROM messages
         WHERE sender = ?1 AND channel = ?2 AND unit IS ?3 AND text = ?4 AND sent_ts_ms = ?5
         ORDER BY id LIMIT 1",
        rusqlite::params![
            message.sender,
            message.channel,
            message.unit,
            message.text,
            message.sent_ms
        ],
        |row| row.get(0),
    )
    .optional()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}
