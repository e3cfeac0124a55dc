//! A fault-making HTTP double of the central office's sync API v1, for faults that a real
//! office does not produce on demand: a status on every request, random 500s before or after
//! storing, responses that never come, a delayed response, a small body limit.
//!
//! It stores each event id once, like the office, and also records every delivery, so that a
//! test can tell redelivery from loss.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use caretaker::protocol::{Envelope, Heartbeat, OfficeChange};
use serde::Deserialize;
use uuid::Uuid;

/// What the double does to a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Responds like the office.
    None,
    /// Responds to every request with this status and stores nothing.
    Status(u16),
    /// Per request, with these probabilities: 500 before storing, 500 after storing (the
    /// acknowledgement is lost), or no answer until the client gives up.
    Random {
        fail_before: f64,
        fail_after: f64,
        hang: f64,
    },
    /// Stores the events, then delays the response until [`Double::release`].
    HoldAfterStore,
}

#[derive(Debug, Clone)]
pub struct RequestLog {
    pub path: String,
    pub bytes: usize,
    pub status: u16,
}

/// Everything the double has seen and the faults it makes.
pub struct Inner {
    pub fault: Fault,
    /// Largest body accepted on `/v1/events`; larger gets 413 with `max_body_bytes`.
    pub max_body_bytes: Option<usize>,
    /// Whether the heartbeat answer states `max_body_bytes`.
    pub announce_limit: bool,
    /// The first copy of each event, in order of arrival.
    pub stored: Vec<Envelope>,
    stored_ids: HashSet<Uuid>,
    /// Every event received, repeats included, in order of arrival.
    pub deliveries: Vec<Envelope>,
    pub requests: Vec<RequestLog>,
    pub heartbeats: Vec<Heartbeat>,
    pub changes: Vec<OfficeChange>,
    /// Tickets whose events are rejected with 403, as another building's would be.
    pub reject_tickets: HashSet<String>,
    /// Base URL of a real office that requests are forwarded to. While set, the double is a
    /// fault-making proxy: the office stores and answers, and `stored` stays empty.
    pub upstream: Option<String>,
    rng: fastrand::Rng,
}

pub struct Shared {
    token: String,
    inner: Mutex<Inner>,
    held: tokio::sync::watch::Sender<bool>,
    hang: Duration,
}

/// A running double; stops when dropped.
pub struct Double {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Double {
    /// Starts the double on `127.0.0.1:port`, accepting `token`.
    pub async fn start(port: u16, token: &str) -> Double {
        // The proxy's HTTP client needs a crypto provider even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (held, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            token: token.to_string(),
            inner: Mutex::new(Inner {
                fault: Fault::None,
                max_body_bytes: None,
                announce_limit: true,
                stored: Vec::new(),
                stored_ids: HashSet::new(),
                deliveries: Vec::new(),
                requests: Vec::new(),
                heartbeats: Vec::new(),
                changes: Vec::new(),
                reject_tickets: HashSet::new(),
                upstream: None,
                rng: fastrand::Rng::with_seed(11),
            }),
            held,
            hang: Duration::from_secs(5),
        });
        let app = Router::new()
            .route("/v1/events", post(events))
            .route("/v1/heartbeat", post(heartbeat))
            .route("/v1/changes", get(changes))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the sync double's port");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Double {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    pub fn set_fault(&self, fault: Fault) {
        if fault == Fault::HoldAfterStore {
            self.shared.held.send_replace(true);
        }
        self.state().fault = fault;
    }

    /// Lets held answers go and answers normally from now on.
    pub fn release(&self) {
        self.state().fault = Fault::None;
        self.shared.held.send_replace(false);
    }

    pub fn stored_ids(&self) -> Vec<Uuid> {
        self.state().stored.iter().map(|e| e.event_id).collect()
    }

    /// Number of `/v1/events` requests answered with `status`.
    pub fn event_requests_with(&self, status: u16) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.path == "/v1/events" && r.status == status)
            .count()
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(status: u16, body: serde_json::Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// Checks token and protocol; returns the answer for a request that fails them.
fn check_headers(shared: &Shared, headers: &HeaderMap) -> Option<(u16, serde_json::Value)> {
    let expected = format!("Bearer {}", shared.token);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        return Some((401, serde_json::json!({"error": "invalid token"})));
    }
    let protocol = headers
        .get("caretaker-protocol")
        .and_then(|v| v.to_str().ok());
    if protocol != Some("1") {
        return Some((
            426,
            serde_json::json!({"error": "unsupported", "supported": [1]}),
        ));
    }
    None
}

enum After {
    Answer,
    Fail,
    Hang,
    Hold,
}

async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let upstream = shared.inner.lock().unwrap().upstream.clone();
    if let Some(upstream) = upstream {
        return proxy_events(&shared, &upstream, headers, body).await;
    }
    let (status, answer, after) = {
        let mut inner = shared.inner.lock().unwrap();
        let outcome = handle_events(&shared, &mut inner, &headers, &body);
        inner.requests.push(RequestLog {
            path: "/v1/events".into(),
            bytes: body.len(),
            status: outcome.0,
        });
        outcome
    };
    match after {
        After::Answer => {}
        After::Fail => return reply(500, serde_json::json!({"error": "stored, answer lost"})),
        After::Hang => tokio::time::sleep(shared.hang).await,
        After::Hold => {
            let mut held = shared.held.subscribe();
            let _ = held.wait_for(|held| !*held).await;
        }
    }
    reply(status, answer)
}

fn handle_events(
    shared: &Shared,
    inner: &mut Inner,
    headers: &HeaderMap,
    body: &[u8],
) -> (u16, serde_json::Value, After) {
    if let Some((status, answer)) = check_headers(shared, headers) {
        return (status, answer, After::Answer);
    }
    if let Some(limit) = inner.max_body_bytes {
        if body.len() > limit {
            let answer = serde_json::json!({"error": "body too large", "max_body_bytes": limit});
            return (413, answer, After::Answer);
        }
    }
    let mut after = After::Answer;
    match inner.fault {
        Fault::None => {}
        Fault::Status(status) => {
            return (status, serde_json::json!({"error": "fault"}), After::Answer)
        }
        Fault::Random {
            fail_before,
            fail_after,
            hang,
        } => {
            let draw = inner.rng.f64();
            if draw < fail_before {
                return (500, serde_json::json!({"error": "fault"}), After::Answer);
            } else if draw < fail_before + fail_after {
                after = After::Fail;
            } else if draw < fail_before + fail_after + hang {
                after = After::Hang;
            }
        }
        Fault::HoldAfterStore => after = After::Hold,
    }
    #[derive(Deserialize)]
    struct Batch {
        gateway: String,
        events: Vec<Envelope>,
    }
    let batch: Batch = match serde_json::from_slice(body) {
        Ok(batch) => batch,
        Err(err) => {
            return (
                400,
                serde_json::json!({"error": err.to_string()}),
                After::Answer,
            );
        }
    };
    let mut acked = Vec::new();
    let mut rejected = Vec::new();
    for event in batch.events {
        assert_eq!(
            event.gateway, batch.gateway,
            "envelope gateway differs from the batch's"
        );
        inner.deliveries.push(event.clone());
        let foreign = event
            .ticket
            .as_ref()
            .is_some_and(|t| inner.reject_tickets.contains(t));
        if foreign {
            rejected.push(serde_json::json!({
                "event_id": event.event_id,
                "status": 403,
                "error": "ticket of another building",
            }));
            continue;
        }
        if inner.stored_ids.insert(event.event_id) {
            inner.stored.push(event.clone());
        }
        acked.push(event.event_id);
    }
    (
        200,
        serde_json::json!({"acked": acked, "rejected": rejected}),
        after,
    )
}

async fn heartbeat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let upstream = shared.inner.lock().unwrap().upstream.clone();
    if let Some(upstream) = upstream {
        return proxy_simple(&shared, &upstream, "/v1/heartbeat", headers, Some(body)).await;
    }
    let mut inner = shared.inner.lock().unwrap();
    let (status, answer) = if let Some(failure) = check_headers(&shared, &headers) {
        failure
    } else if let Some(status) = request_fault(&mut inner) {
        (status, serde_json::json!({"error": "fault"}))
    } else {
        let beat: Heartbeat = serde_json::from_slice(&body).expect("heartbeat body");
        inner.heartbeats.push(beat);
        let mut answer = serde_json::json!({"protocol": 1, "server_version": "double"});
        if inner.announce_limit {
            if let Some(limit) = inner.max_body_bytes {
                answer["max_body_bytes"] = limit.into();
            }
        }
        (200, answer)
    };
    inner.requests.push(RequestLog {
        path: "/v1/heartbeat".into(),
        bytes: body.len(),
        status,
    });
    reply(status, answer)
}

/// Returns the status that a fault gives a heartbeat or pull request, if any.
fn request_fault(inner: &mut Inner) -> Option<u16> {
    match inner.fault {
        Fault::Status(status) => Some(status),
        Fault::Random { fail_before, .. } if inner.rng.f64() < fail_before => Some(500),
        _ => None,
    }
}

#[derive(Deserialize)]
struct ChangesQuery {
    after: i64,
    limit: usize,
}

async fn changes(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<ChangesQuery>,
) -> Response {
    let upstream = shared.inner.lock().unwrap().upstream.clone();
    if let Some(upstream) = upstream {
        let path = format!("/v1/changes?after={}&limit={}", query.after, query.limit);
        return proxy_simple(&shared, &upstream, &path, headers, None).await;
    }
    let mut inner = shared.inner.lock().unwrap();
    let (status, answer) = if let Some(failure) = check_headers(&shared, &headers) {
        failure
    } else if let Some(status) = request_fault(&mut inner) {
        (status, serde_json::json!({"error": "fault"}))
    } else {
        let changes: Vec<&OfficeChange> = inner
            .changes
            .iter()
            .filter(|change| change.id > query.after)
            .take(query.limit)
            .collect();
        (200, serde_json::json!({ "changes": changes }))
    };
    inner.requests.push(RequestLog {
        path: "/v1/changes".into(),
        bytes: 0,
        status,
    });
    reply(status, answer)
}

/// Forwards a request to the office with the gateway's headers and returns its status and
/// body, or 502 when the office cannot be reached.
async fn forward(
    upstream: &str,
    path: &str,
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> (u16, Bytes) {
    let client = reqwest::Client::new();
    let url = format!("{upstream}{path}");
    let mut request = match &body {
        Some(body) => client.post(&url).body(body.clone()),
        None => client.get(&url),
    };
    for name in ["authorization", "caretaker-protocol", "content-type"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap_or_default())
        }
        Err(err) => {
            let body = serde_json::json!({ "error": err.to_string() }).to_string();
            (502, Bytes::from(body))
        }
    }
}

fn raw_reply(status: u16, body: Bytes) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// Proxies a heartbeat or pull, failing it first when a fault applies.
async fn proxy_simple(
    shared: &Shared,
    upstream: &str,
    path: &str,
    headers: HeaderMap,
    body: Option<Bytes>,
) -> Response {
    let fault = request_fault(&mut shared.inner.lock().unwrap());
    let (status, answer) = match fault {
        Some(status) => (status, Bytes::from_static(br#"{"error": "fault"}"#)),
        None => forward(upstream, path, &headers, body).await,
    };
    let log_path = path.split('?').next().unwrap_or(path).to_string();
    shared.inner.lock().unwrap().requests.push(RequestLog {
        path: log_path,
        bytes: 0,
        status,
    });
    raw_reply(status, answer)
}

/// Proxies `POST /v1/events`: a fault may fail it before the office receives it, lose
/// the office's response, or delay the response past the gateway's timeout.
async fn proxy_events(
    shared: &Shared,
    upstream: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let after = {
        let mut inner = shared.inner.lock().unwrap();
        let failed_status = match inner.fault {
            Fault::Status(status) => Some(status),
            Fault::Random { fail_before, .. } => {
                let draw = inner.rng.f64();
                if draw < fail_before {
                    Some(500)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(status) = failed_status {
            inner.requests.push(RequestLog {
                path: "/v1/events".into(),
                bytes: body.len(),
                status,
            });
            return reply(status, serde_json::json!({"error": "fault"}));
        }
        match inner.fault {
            Fault::Random {
                fail_after, hang, ..
            } => {
                let draw = inner.rng.f64();
                if draw < fail_after {
                    After::Fail
                } else if draw < fail_after + hang {
                    After::Hang
                } else {
                    After::Answer
                }
            }
            Fault::HoldAfterStore => After::Hold,
            _ => After::Answer,
        }
    };
    #[derive(Deserialize)]
    struct Batch {
        events: Vec<Envelope>,
    }
    if let Ok(batch) = serde_json::from_slice::<Batch>(&body) {
        shared.inner.lock().unwrap().deliveries.extend(batch.events);
    }
    let (status, answer) = forward(upstream, "/v1/events", &headers, Some(body.clone())).await;
    shared.inner.lock().unwrap().requests.push(RequestLog {
        path: "/v1/events".into(),
        bytes: body.len(),
        status,
    });
    match after {
        After::Answer => {}
        After::Fail => return reply(500, serde_json::json!({"error": "stored, answer lost"})),
        After::Hang => tokio::time::sleep(shared.hang).await,
        After::Hold => {
            let mut held = shared.held.subscribe();
            let _ = held.wait_for(|held| !*held).await;
        }
    }
    raw_reply(status, answer)
}
