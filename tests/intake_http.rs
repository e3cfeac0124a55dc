//! `POST /v1/messages` against the `caretaker` binary: `202` only after the commit, a retried
//! message stored once, `401`, `413`, `422` and `429` with `Retry-After`, the rejections
//! counted in `/metrics`, and no contact data of a message in the log.

mod support;

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mosquitto::Mosquitto;
use serde_json::{json, Value};
use support::{count_rows, free_port, read_log, wait_until, Gateway};

const SMS_TOKEN: &str = "sms-bridge-token-0123456789";
const MAIL_TOKEN: &str = "mail-bridge-token-0123456789";
const PHONE: &str = "+4522334455";
const EMAIL: &str = "karen.jensen@example.com";

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// Sends `POST /v1/messages` and returns the response.
fn post(port: u16, token: Option<&str>, body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    let auth = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    // A server may send 413 before reading the whole body and close the connection.
    let _ = stream.write_all(body.as_bytes());

    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get_metrics(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn write_config(dir: &Path, broker_port: u16, http_port: u16) -> PathBuf {
    let text = format!(
        r#"
[gateway]
id = "intake-http-test"

[store]
path = "store.db"

[time]
earliest_valid = "2020-01-01T00:00:00Z"

[log]
level = "caretaker=debug,info"

[http]
listen = "127.0.0.1:{http_port}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "intake-http-test"

[[mqtt.subscription]]
filter = "sensors/+/+"
format = "number"

[intake]
max_text_bytes = 200
rate_limit_burst = 2
rate_limit_per_hour = 1

[[intake.bridge]]
name = "sms-gateway"
token = "{SMS_TOKEN}"

[[intake.bridge]]
name = "mail-gateway"
token = "{MAIL_TOKEN}"
"#
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn body(text: &str, sender: &str, received_at: Option<&str>) -> String {
    let mut body = json!({ "text": text, "sender": sender, "channel": "sms", "unit": "4B" });
    if let Some(received_at) = received_at {
        body["received_at"] = json!(received_at);
    }
    body.to_string()
}

#[test]
fn post_message_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let port = free_port();
    let config = write_config(dir.path(), broker.port, port);
    let db = dir.path().join("store.db");
    let log = dir.path().join("gateway.log");
    let gateway = Gateway::start(&config, &log);
    let ready = wait_until(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && count_rows(&db, "SELECT COUNT(*) FROM messages") == Some(0)
    });
    assert!(ready, "gateway not ready; {}", read_log(&log));

    // 202 waits for the commit, so no response comes while another connection holds the
    // write lock.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let text = format!("No hot water since this morning. Call {PHONE} or mail {EMAIL}");
    let request = body(&text, PHONE, Some("2026-03-01T08:15:00Z"));
    let (answered_tx, answered_rx) = std::sync::mpsc::channel();
    let sender_request = request.clone();
    let client = std::thread::spawn(move || {
        let response = post(port, Some(SMS_TOKEN), &sender_request);
        let _ = answered_tx.send(());
        response
    });
    let early = answered_rx.recv_timeout(Duration::from_secs(3));
    assert!(
        early.is_err(),
        "answered while the store could not commit; {}",
        read_log(&log)
    );
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let accepted = client.join().unwrap();
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = accepted.json()["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 26, "{id}");
    let stored = count_rows(
        &db,
        &format!("SELECT COUNT(*) FROM messages WHERE id = '{id}' AND bridge = 'sms-gateway'"),
    );
    assert_eq!(stored, Some(1), "202 came before the commit");

    // A bridge retrying the same message gets the same id, and it is stored once.
    let retried = post(port, Some(SMS_TOKEN), &request);
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(retried.json()["id"], json!(id));
    assert_eq!(retried.json()["duplicate"], json!(true));
    assert_eq!(count_rows(&db, "SELECT COUNT(*) FROM messages"), Some(1));

    // 401: no token and a wrong one.
    for token in [None, Some("wrong-token-0123456789")] {
        let response = post(port, token, &body("hi", "a", None));
        assert_eq!(response.status, 401, "{token:?}: {}", response.body);
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some("Bearer")
        );
        assert!(response.json()["error"]
            .as_str()
            .unwrap()
            .contains("bearer token"));
    }

    // 413: a text over max_text_bytes, and a body over the payload limit.
    let long = post(port, Some(MAIL_TOKEN), &body(&"x".repeat(201), "b", None));
    assert_eq!(long.status, 413, "{}", long.body);
    assert!(long.json()["error"]
        .as_str()
        .unwrap()
        .contains("max_text_bytes"));
    let huge = post(port, Some(MAIL_TOKEN), &"x".repeat(200_000));
    assert_eq!(huge.status, 413, "{}", huge.body);

    // 422: invalid JSON, and a missing text named in the message.
    let invalid = post(port, Some(MAIL_TOKEN), "{\"text\": ");
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert!(invalid.json()["error"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    let missing = post(
        port,
        Some(MAIL_TOKEN),
        r#"{"sender": "c", "channel": "email"}"#,
    );
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("missing field `text`"));

    // 429: the third message of one sender within the burst of 2.
    for index in 0..2 {
        let response = post(
            port,
            Some(MAIL_TOKEN),
            &body(&format!("note {index}"), EMAIL, None),
        );
        assert_eq!(response.status, 202, "{}", response.body);
    }
    let limited = post(port, Some(MAIL_TOKEN), &body("note 2", EMAIL, None));
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert!(limited.json()["error"]
        .as_str()
        .unwrap()
        .contains("rate limit"));
    assert_eq!(count_rows(&db, "SELECT COUNT(*) FROM messages"), Some(3));

    let triaged = wait_until(Duration::from_secs(30), || {
        count_rows(&db, "SELECT COUNT(*) FROM messages WHERE state = 'triaged'") == Some(3)
    });
    assert!(triaged, "messages not triaged; {}", read_log(&log));

    let metrics = get_metrics(port);
    let expected = [
        "caretaker_messages_received_total{channel=\"sms\"} 3",
        "caretaker_messages_duplicate_total{channel=\"sms\"} 1",
        "caretaker_messages_rejected_total{transport=\"http\",reason=\"unauthorized\"} 2",
        "caretaker_messages_rejected_total{transport=\"http\",reason=\"too_large\"} 2",
        "caretaker_messages_rejected_total{transport=\"http\",reason=\"invalid\"} 2",
        "caretaker_messages_rejected_total{transport=\"http\",reason=\"rate_limited\"} 1",
    ];
    for line in expected {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }

    let status = gateway.terminate();
    assert!(status.success(), "gateway exited with {status}");
    let log = std::fs::read_to_string(&log).unwrap();
    for secret in [PHONE, EMAIL, "hot water", SMS_TOKEN, MAIL_TOKEN] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}
