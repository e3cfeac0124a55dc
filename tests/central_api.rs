//! The sync API v1 of a real `caretaker central` process on a SQLite file: an idempotent
//! batch sent twice, 401, 403 for another building, 413 with `max_body_bytes`, 426, a
//! malformed event rejected alone, 400 for a body that is not a batch, the pull feed, the
//! heartbeat, `/metrics`, TLS and a clean stop on SIGTERM.

#[path = "support/central.rs"]
mod central;

use std::process::Command;

use caretaker::protocol::{
    Change, Envelope, EventKind, TicketAction, TicketEvent, TicketSnapshot, Transition,
};
use central::Central;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn ticket_envelope(gateway: &str, building: &str, ticket: &str, seq: i64) -> Envelope {
    let event = TicketEvent {
        ticket: TicketSnapshot {
            id: ticket.into(),
            building: building.into(),
            state: "new".into(),
            category: "plumbing".into(),
            urgency: "normal".into(),
            needs_human: false,
            escalation_reason: None,
            unit: None,
            asset: None,
            summary: "leak under the sink".into(),
            sources: vec![],
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            ack_due_ms: None,
            onsite_due_ms: None,
            resolve_due_ms: None,
            opened_ms: 1_000,
            updated_ms: 1_000,
        },
        transition: Transition {
            seq,
            ts_ms: 1_000 + seq,
            from: None,
            to: "new".into(),
            actor: "rule:test".into(),
            reason: "opened".into(),
        },
    };
    Envelope {
        event_id: Uuid::now_v7(),
        gateway: gateway.into(),
        seq,
        kind: EventKind::Ticket,
        ticket: Some(ticket.into()),
        ts_ms: 1_000 + seq,
        payload: serde_json::to_value(event).unwrap(),
    }
}

async fn post(
    client: &reqwest::Client,
    central: &Central,
    path: &str,
    token: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let response = client
        .post(format!("{}{path}", central.url))
        .bearer_auth(token)
        .header("Caretaker-Protocol", "1")
        .json(body)
        .send()
        .await
        .expect("send request");
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

fn sqlite_count(central: &Central, sql: &str) -> i64 {
    let path = central.db_url.strip_prefix("sqlite://").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn batch_sent_twice_stored_once() {
    let central = Central::start_sqlite(&[]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let events = vec![
        ticket_envelope("gw1", "b1", "gw1-000001", 1),
        ticket_envelope("gw1", "b1", "gw1-000002", 1),
    ];
    let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    let body = json!({ "gateway": "gw1", "events": events });
    let (status, first) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["acked"], json!(ids));
    assert_eq!(first["rejected"], json!([]));
    let (status, second) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["acked"], json!(ids));
    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM events"), 2);
    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM tickets"), 2);
    let (_, metrics) = central.get_plain("/metrics").unwrap();
    assert!(
        metrics.contains("caretaker_central_events_duplicate_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn wrong_token_gets_401() {
    let central = Central::start_sqlite(&[]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let body = json!({ "gateway": "gw1", "events": [] });
    let (status, reply) = post(&client, &central, "/v1/events", "ct_wrong", &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        reply["error"].as_str().unwrap().contains("token"),
        "{reply}"
    );
    let missing = client
        .get(format!("{}/v1/changes", central.url))
        .header("Caretaker-Protocol", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);

    // A revoked token stops working at once.
    let output = Command::new(central::binary())
        .args([
            "central",
            "token",
            "revoke",
            "--db",
            &central.db_url,
            "--gateway",
            "gw1",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, _) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !central.read_log().contains(&token),
        "the token reached the log"
    );
}

#[tokio::test]
async fn other_building_gets_403() {
    let central = Central::start_sqlite(&[]);
    let token_one = central.add_token("gw1", "b1");
    let token_two = central.add_token("gw2", "b2");
    let client = client();
    let own = ticket_envelope("gw1", "b1", "gw1-000001", 1);
    let body = json!({ "gateway": "gw1", "events": [own] });
    let (status, _) = post(&client, &central, "/v1/events", &token_one, &body).await;
    assert_eq!(status, StatusCode::OK);

    let foreign = ticket_envelope("gw2", "b2", "gw1-000001", 2);
    let claims = ticket_envelope("gw2", "b1", "gw2-000001", 1);
    let fine = ticket_envelope("gw2", "b2", "gw2-000002", 1);
    let body = json!({ "gateway": "gw2", "events": [foreign, claims, fine] });
    let (status, reply) = post(&client, &central, "/v1/events", &token_two, &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["acked"], json!([fine.event_id.to_string()]));
    let rejected = reply["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["event_id"], json!(foreign.event_id.to_string()));
    assert_eq!(rejected[0]["status"], 403);
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("gw1-000001"),
        "{reply}"
    );
    assert_eq!(rejected[1]["status"], 403);

    // A ticket id under another gateway's prefix is refused before that ticket exists, so
    // the gateway that owns the prefix can still write it later.
    let squat = ticket_envelope("gw2", "b2", "gw1-000003", 1);
    let body = json!({ "gateway": "gw2", "events": [squat] });
    let (status, reply) = post(&client, &central, "/v1/events", &token_two, &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["acked"], json!([]), "{reply}");
    assert_eq!(reply["rejected"][0]["status"], 403, "{reply}");
    let real = ticket_envelope("gw1", "b1", "gw1-000003", 1);
    let body = json!({ "gateway": "gw1", "events": [real] });
    let (status, reply) = post(&client, &central, "/v1/events", &token_one, &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply["acked"],
        json!([real.event_id.to_string()]),
        "{reply}"
    );

    // A batch that names another gateway than the token's is refused whole.
    let body = json!({ "gateway": "gw1", "events": [] });
    let (status, _) = post(&client, &central, "/v1/events", &token_two, &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        sqlite_count(
            &central,
            "SELECT count(*) FROM tickets WHERE building = 'b1'"
        ),
        2
    );
}

#[tokio::test]
async fn oversized_body_gets_413_with_limit() {
    let central = Central::start_sqlite(&["--max-body-bytes", "4096"]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let events: Vec<Envelope> = (1..=20)
        .map(|n| ticket_envelope("gw1", "b1", &format!("gw1-{n:06}"), 1))
        .collect();
    let body = json!({ "gateway": "gw1", "events": events });
    assert!(body.to_string().len() > 4096);
    let (status, reply) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply["max_body_bytes"], 4096);
    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM events"), 0);

    // The heartbeat reply carries the same limit.
    let heartbeat = json!({
        "gateway": "gw1", "version": "0.1.0", "protocol": 1, "config_hash": "ab",
        "ts_ms": 1, "health": "ok", "problems": [], "outbox_events": 20
    });
    let (status, reply) = post(&client, &central, "/v1/heartbeat", &token, &heartbeat).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["max_body_bytes"], 4096);
    assert_eq!(reply["protocol"], 1);
    assert_eq!(reply["server_version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn unsupported_version_gets_426() {
    let central = Central::start_sqlite(&[]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let response = client
        .post(format!("{}/v1/events", central.url))
        .bearer_auth(&token)
        .header("Caretaker-Protocol", "2")
        .json(&json!({ "gateway": "gw1", "events": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["supported"], json!([1]));

    let response = client
        .get(format!("{}/v1/changes", central.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// The part of the events response that the gateway's sync client decodes. A rejection's
/// `event_id` must be a UUID, or the gateway cannot read the response at all.
#[derive(Debug, serde::Deserialize)]
struct GatewayReply {
    acked: Vec<Uuid>,
    rejected: Vec<GatewayRejection>,
}

#[derive(Debug, serde::Deserialize)]
struct GatewayRejection {
    event_id: Uuid,
    status: u16,
    error: String,
}

#[tokio::test]
async fn malformed_event_rejected_alone() {
    let central = Central::start_sqlite(&[]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let first = ticket_envelope("gw1", "b1", "gw1-000001", 1);
    let last = ticket_envelope("gw1", "b1", "gw1-000002", 1);
    let unknown_kind_id = Uuid::now_v7();
    let bad_payload_id = Uuid::now_v7();
    let no_payload_id = Uuid::now_v7();
    let mut unknown_kind =
        serde_json::to_value(ticket_envelope("gw1", "b1", "gw1-000003", 1)).unwrap();
    unknown_kind["event_id"] = json!(unknown_kind_id);
    unknown_kind["kind"] = json!("invoice");
    let mut bad_id = serde_json::to_value(ticket_envelope("gw1", "b1", "gw1-000004", 1)).unwrap();
    bad_id["event_id"] = json!("not-a-uuid");
    let mut bad_payload =
        serde_json::to_value(ticket_envelope("gw1", "b1", "gw1-000005", 1)).unwrap();
    bad_payload["event_id"] = json!(bad_payload_id);
    bad_payload["payload"] = json!({"ticket": 5});
    let mut no_id = serde_json::to_value(ticket_envelope("gw1", "b1", "gw1-000006", 1)).unwrap();
    no_id.as_object_mut().unwrap().remove("event_id");
    let mut no_payload =
        serde_json::to_value(ticket_envelope("gw1", "b1", "gw1-000007", 1)).unwrap();
    no_payload["event_id"] = json!(no_payload_id);
    no_payload.as_object_mut().unwrap().remove("payload");
    let body = json!({
        "gateway": "gw1",
        "events": [
            first, unknown_kind, bad_id, bad_payload, no_id, json!(7), no_payload, last
        ],
    });

    let (status, reply) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let parsed: GatewayReply =
        serde_json::from_value(reply.clone()).expect("the gateway can decode the response");
    assert_eq!(parsed.acked, vec![first.event_id, last.event_id], "{reply}");
    let rejected: Vec<(Uuid, u16)> = parsed
        .rejected
        .iter()
        .map(|rejection| (rejection.event_id, rejection.status))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (unknown_kind_id, 400),
            (bad_payload_id, 400),
            (no_payload_id, 400)
        ],
        "{reply}"
    );
    assert!(
        parsed.rejected[0].error.contains("invoice"),
        "{}",
        parsed.rejected[0].error
    );
    assert!(
        parsed.rejected[0].error.contains("index 1"),
        "{}",
        parsed.rejected[0].error
    );
    assert!(
        parsed.rejected[1].error.contains("ticket payload"),
        "{}",
        parsed.rejected[1].error
    );
    assert!(
        parsed.rejected[2].error.contains("payload"),
        "{}",
        parsed.rejected[2].error
    );

    // Events without a usable id are named by their position in the batch.
    let unidentified = reply["unidentified"]
        .as_array()
        .expect("unidentified listed");
    let indices: Vec<u64> = unidentified
        .iter()
        .map(|entry| entry["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![2, 4, 5], "{reply}");
    assert_eq!(unidentified[0]["event_id"], "not-a-uuid");
    assert_eq!(unidentified[1]["event_id"], Value::Null);
    assert!(unidentified.iter().all(|entry| entry["status"] == 400));
    assert!(
        unidentified[0]["error"]
            .as_str()
            .unwrap()
            .contains("event_id"),
        "{reply}"
    );

    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM events"), 2);
    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM tickets"), 2);
    let (_, metrics) = central.get_plain("/metrics").unwrap();
    assert!(
        metrics.contains("caretaker_central_events_rejected_total{kind=\"400\"} 6"),
        "{metrics}"
    );

    // Sent again, the good events are acknowledged again and the bad ones rejected again.
    let (status, again) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["acked"], reply["acked"]);
    assert_eq!(again["rejected"], reply["rejected"]);
    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM events"), 2);
}

#[tokio::test]
async fn batch_not_json_gets_400() {
    let central = Central::start_sqlite(&[]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let bodies = [
        "{\"gateway\": \"gw1\", \"events\": [",
        "events",
        "{\"gateway\": \"gw1\", \"events\": {}}",
        "{\"events\": []}",
    ];
    for body in bodies {
        let response = client
            .post(format!("{}/v1/events", central.url))
            .bearer_auth(&token)
            .header("Caretaker-Protocol", "1")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "body {body}");
        let reply: Value = response.json().await.unwrap();
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains("invalid event batch"), "{error}");
        assert!(error.contains("line 1"), "{error}");
    }
    assert_eq!(sqlite_count(&central, "SELECT count(*) FROM events"), 0);
}

#[tokio::test]
async fn changes_pulled_per_building() {
    let central = Central::start_sqlite(&[]);
    let token = central.add_token("gw1", "b1");
    let client = client();
    let store = caretaker::central::store::open(&central.db_url)
        .await
        .unwrap();
    let ack = |ticket: &str| Change::Ticket {
        ticket: ticket.into(),
        action: TicketAction::Acknowledge,
        vendor: None,
        slot_start_ms: None,
        slot_end_ms: None,
        note: None,
    };
    let first = store
        .add_change("b1", "office:ann", ack("gw1-000001"), 5)
        .await
        .unwrap();
    store
        .add_change("b2", "office:ann", ack("gw2-000001"), 6)
        .await
        .unwrap();
    let third = store
        .add_change("b1", "office:ann", ack("gw1-000002"), 7)
        .await
        .unwrap();

    let pull = |after: i64| {
        client
            .get(format!("{}/v1/changes?after={after}&limit=10", central.url))
            .bearer_auth(&token)
            .header("Caretaker-Protocol", "1")
            .send()
    };
    let reply: Value = pull(0).await.unwrap().json().await.unwrap();
    let ids: Vec<i64> = reply["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![first.id, third.id]);
    assert_eq!(reply["changes"][0]["change"]["type"], "ticket");
    assert_eq!(reply["changes"][0]["change"]["action"], "acknowledge");
    let reply: Value = pull(third.id).await.unwrap().json().await.unwrap();
    assert_eq!(reply["changes"], json!([]));

    let response = client
        .get(format!("{}/v1/changes?after=abc", central.url))
        .bearer_auth(&token)
        .header("Caretaker-Protocol", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let central = Central::start_sqlite(&[]);
    let (status, body) = central.get_plain("/healthz").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("ok"), "{body}");
    let (status, log) = central.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(log.contains("central office stopped"), "{log}");
}

/// Writes a self-signed certificate for 127.0.0.1, made with openssl, into `dir`.
fn make_certificate(dir: &std::path::Path) {
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn tls_serves_the_api() {
    let certs = tempfile::tempdir().unwrap();
    make_certificate(certs.path());
    let cert = certs.path().join("server.pem");
    let key = certs.path().join("server.key");
    let central = Central::start_sqlite(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let token = central.add_token("gw1", "b1");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(der.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let body =
        json!({ "gateway": "gw1", "events": [ticket_envelope("gw1", "b1", "gw1-000001", 1)] });
    let (status, reply) = post(&client, &central, "/v1/events", &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["acked"].as_array().unwrap().len(), 1);
    // Plain HTTP on the TLS port gets no HTTP response.
    assert!(central.get_plain("/healthz").is_none());
}
