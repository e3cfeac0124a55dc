//! Tenant messages over MQTT, against the `caretaker` binary and a real Mosquitto.
//!
//! A message on a unit's topic is stored with the unit from the topic and triaged. Bad
//! payloads are quarantined redacted, and the log never contains the sender's contact data.
//! A QoS 1 message is not acknowledged before its commit, so a gateway killed before the
//! commit gets it again after a restart and stores it once.

mod support;

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mosquitto::{publish, Mosquitto, Publish};
use support::{count_rows, free_port, read_log, wait_until, Gateway};

const CLIENT_ID: &str = "intake-test-gateway";

const PHONE: &str = "+45 12 34 56 78";
const SENDER: &str = "+4587654321";
const EMAIL: &str = "jens.hansen@example.com";

struct Setup {
    config: PathBuf,
    db: PathBuf,
    log: PathBuf,
    http_port: u16,
}

fn write_config(dir: &Path, broker_port: u16) -> Setup {
    let http_port = free_port();
    let text = format!(
        r#"
[gateway]
id = "intake-test"

[store]
path = "store.db"
commit_delay_ms = 5

[time]
earliest_valid = "2020-01-01T00:00:00Z"

[log]
level = "caretaker=debug,info"

[http]
listen = "127.0.0.1:{http_port}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "{CLIENT_ID}"
reconnect_min_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscription]]
filter = "sensors/+/+"
format = "json"
value_path = "v"

[intake]
mqtt_topic = "tenants/{{unit}}/messages"
"#
    );
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    Setup {
        config,
        db: dir.join("store.db"),
        log: dir.join("gateway.log"),
        http_port,
    }
}

/// Waits until the gateway has subscribed to the message topic, so that the broker keeps
/// QoS 1 messages for its session from then on.
fn wait_subscribed(setup: &Setup) {
    let subscribed = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&setup.log)
            .unwrap_or_default()
            .contains("tenants/+/messages")
    });
    assert!(
        subscribed,
        "no subscription to the message topic; {}",
        read_log(&setup.log)
    );
}

fn message_payload(text: &str) -> String {
    serde_json::json!({
        "text": text,
        "sender": SENDER,
        "channel": "app",
        "received_at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string()
}

fn query_text(db: &Path, sql: &str) -> Option<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    conn.query_row(sql, [], |row| row.get(0)).ok()
}

fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn unit_topic_message_stored_and_triaged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let setup = write_config(dir.path(), broker.port);
    let gateway = Gateway::start(&setup.config, &setup.log);
    wait_subscribed(&setup);

    let text = format!("The kitchen tap drips. Call me on {PHONE} or write to {EMAIL}");
    let qos1 = Publish {
        qos: 1,
        ..Publish::default()
    };
    publish(
        broker.port,
        "tenants/2.tv/messages",
        message_payload(&text).as_bytes(),
        &qos1,
    );
    let bad_payloads: [&[u8]; 3] = [
        b"not json, call +45 11 22 33 44",
        br#"{"text": "hi", "sender": "x", "channel": "app", "unit": "1.th"}"#,
        br#"{"sender": "someone@example.com", "channel": "app"}"#,
    ];
    for payload in bad_payloads {
        publish(broker.port, "tenants/3.th/messages", payload, &qos1);
    }

    let triaged = wait_until(Duration::from_secs(30), || {
        count_rows(
            &setup.db,
            "SELECT COUNT(*) FROM messages WHERE state = 'triaged'",
        ) == Some(1)
    });
    assert!(
        triaged,
        "the message was not triaged; {}",
        read_log(&setup.log)
    );
    let quarantined = wait_until(Duration::from_secs(30), || {
        count_rows(&setup.db, "SELECT COUNT(*) FROM quarantine") == Some(3)
    });
    assert!(
        quarantined,
        "bad payloads not quarantined; {}",
        read_log(&setup.log)
    );

    let db = &setup.db;
    assert_eq!(
        query_text(db, "SELECT unit FROM messages").as_deref(),
        Some("2.tv")
    );
    assert_eq!(
        query_text(db, "SELECT text FROM messages").as_deref(),
        Some(text.as_str())
    );
    assert_eq!(
        query_text(db, "SELECT sender FROM messages").as_deref(),
        Some(SENDER)
    );
    assert_eq!(
        query_text(db, "SELECT channel FROM messages").as_deref(),
        Some("app")
    );
    assert_eq!(
        query_text(db, "SELECT transport FROM messages").as_deref(),
        Some("mqtt")
    );
    assert_eq!(
        count_rows(
            db,
            "SELECT COUNT(*) FROM messages WHERE needs_human IS NOT NULL"
        ),
        Some(1)
    );
    let explanation = query_text(db, "SELECT explanation FROM messages").unwrap();
    let explanation: serde_json::Value = serde_json::from_str(&explanation).unwrap();
    assert!(explanation.is_object(), "{explanation}");
    let pii = query_text(db, "SELECT pii FROM messages").unwrap();
    assert!(pii.contains("email"), "{pii}");
    assert!(pii.contains("phone"), "{pii}");

    let reasons: Vec<String> = {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut statement = conn
            .prepare("SELECT reason FROM quarantine ORDER BY id")
            .unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert!(reasons[0].contains("invalid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("comes from the topic"), "{reasons:?}");
    assert!(reasons[2].contains("missing field `text`"), "{reasons:?}");
    assert_eq!(
        count_rows(
            db,
            "SELECT COUNT(*) FROM quarantine
             WHERE CAST(raw AS TEXT) LIKE '%11 22 33 44%' OR CAST(raw AS TEXT) LIKE '%someone@%'"
        ),
        Some(0),
        "quarantined payloads must be stored redacted"
    );

    let text = metrics(setup.http_port);
    assert!(
        text.contains("caretaker_messages_received_total{channel=\"app\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("caretaker_messages_rejected_total{transport=\"mqtt\",reason=\"invalid\"} 3"),
        "{text}"
    );

    let status = gateway.terminate();
    assert!(status.success(), "gateway exited with {status}");
    let log = std::fs::read_to_string(&setup.log).unwrap();
    for secret in [
        PHONE,
        SENDER,
        EMAIL,
        "11 22 33 44",
        "someone@example.com",
        "kitchen tap",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}

#[test]
fn kill_before_commit_redelivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let setup = write_config(dir.path(), broker.port);
    let gateway = Gateway::start(&setup.config, &setup.log);
    wait_subscribed(&setup);
    assert!(
        wait_until(Duration::from_secs(30), || count_rows(
            &setup.db,
            "SELECT COUNT(*) FROM messages"
        ) == Some(0)),
        "no messages table; {}",
        read_log(&setup.log)
    );

    // Another connection holds the write lock, so the gateway cannot commit the message.
    let locker = rusqlite::Connection::open(&setup.db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let qos1 = Publish {
        qos: 1,
        ..Publish::default()
    };
    publish(
        broker.port,
        "tenants/2.tv/messages",
        message_payload("The radiator in the bedroom is cold").as_bytes(),
        &qos1,
    );
    let delivered = format!("Sending PUBLISH to {CLIENT_ID}");
    assert!(
        wait_until(Duration::from_secs(30), || broker
            .log()
            .contains(&delivered)),
        "the broker did not deliver the message; broker log:\n{}",
        broker.log()
    );
    // Give the gateway time to try the commit; the lock makes it wait and retry.
    std::thread::sleep(Duration::from_secs(2));
    let acknowledged = format!("Received PUBACK from {CLIENT_ID}");
    assert!(
        !broker.log().contains(&acknowledged),
        "the gateway acknowledged a message it has not committed; broker log:\n{}",
        broker.log()
    );

    gateway.kill_hard();
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(
        count_rows(&setup.db, "SELECT COUNT(*) FROM messages"),
        Some(0)
    );

    let gateway = Gateway::start(&setup.config, &setup.log);
    let stored = wait_until(Duration::from_secs(30), || {
        count_rows(
            &setup.db,
            "SELECT COUNT(*) FROM messages WHERE state = 'triaged'",
        ) == Some(1)
    });
    assert!(
        stored,
        "the redelivered message was not stored; {}",
        read_log(&setup.log)
    );
    assert!(
        wait_until(Duration::from_secs(30), || broker
            .log()
            .contains(&acknowledged)),
        "the gateway did not acknowledge the stored message; broker log:\n{}",
        broker.log()
    );
    let status = gateway.terminate();
    assert!(status.success(), "gateway exited with {status}");

    assert_eq!(
        count_rows(&setup.db, "SELECT COUNT(*) FROM messages"),
        Some(1)
    );
    assert_eq!(
        query_text(&setup.db, "SELECT unit FROM messages").as_deref(),
        Some("2.tv")
    );
}
