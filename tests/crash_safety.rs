//! `kill -9` of the gateway during a flood of QoS 1 messages, several times: after the last
//! restart the database passes `PRAGMA integrity_check` and contains every published reading
//! exactly once, because nothing is acknowledged to the broker before it is committed and the
//! broker redelivers what was not.

mod support;

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::time::Duration;

use mosquitto::Mosquitto;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{count_rows, free_port, wait_until, Gateway};

const MESSAGES: i64 = 40_000;
const BASE_TS_MS: i64 = 1_750_000_000_000;

fn write_config(dir: &std::path::Path, broker_port: u16) -> std::path::PathBuf {
    let config = format!(
        r#"
[gateway]
id = "crash-test"

[store]
path = "store.db"

[time]
earliest_valid = "2020-01-01T00:00:00Z"

[http]
listen = "127.0.0.1:{http}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "crash-test-gateway"
reconnect_min_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscription]]
filter = "flood/#"
qos = 1
format = "json"
value_path = "v"
timestamp_path = "ts"
"#,
        http = free_port(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Publishes every message at QoS 1 and returns once the broker has acknowledged them all.
async fn publish_all(port: u16) {
    let mut options = MqttOptions::new("crash-test-publisher", "127.0.0.1", port);
    options.set_inflight(200);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let publisher = tokio::spawn(async move {
        for i in 0..MESSAGES {
            let topic = format!("flood/s{}", i % 20);
            let payload = format!("{{\"ts\":{},\"v\":{}}}", BASE_TS_MS + i, i);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            // Spread the flood over several seconds so that every kill lands inside it.
            if i % 1_000 == 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
        client
    });
    let mut acked = 0;
    while acked < MESSAGES {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(err) => panic!("publisher lost the broker: {err}"),
        }
    }
    let client = publisher.await.unwrap();
    let _ = client.disconnect().await;
}

#[test]
fn kill_during_flood_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start_with(
        dir.path(),
        "allow_anonymous true\nmax_inflight_messages 1000",
        false,
    );
    let config = write_config(dir.path(), broker.port);
    let db = dir.path().join("store.db");
    let log = dir.path().join("gateway.log");

    // The first run creates the persistent session, so that the broker queues messages for
    // the gateway from here on.
    let gateway = Gateway::start(&config, &log);
    assert!(
        wait_until(Duration::from_secs(30), || count_rows(
            &db,
            "SELECT COUNT(*) FROM sensors"
        )
        .is_some()),
        "the gateway did not create its database; see {}",
        log.display()
    );
    std::thread::sleep(Duration::from_secs(1));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let port = broker.port;
    let flood = std::thread::spawn(move || runtime.block_on(publish_all(port)));

    let mut gateway = Some(gateway);
    for round in 0..4u64 {
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        let stored = count_rows(&db, "SELECT COUNT(*) FROM readings").unwrap_or(0);
        eprintln!("round {round}: {stored} readings stored before the kill");
        gateway.take().unwrap().kill_hard();
        std::thread::sleep(Duration::from_millis(300));
        gateway = Some(Gateway::start(&config, &log));
    }
    flood.join().expect("the publisher failed");

    let complete = wait_until(Duration::from_secs(120), || {
        count_rows(&db, "SELECT COUNT(*) FROM readings") == Some(MESSAGES)
    });
    let stored = count_rows(&db, "SELECT COUNT(*) FROM readings");
    assert!(
        complete,
        "stored {stored:?} of {MESSAGES} readings; see {}",
        log.display()
    );
    let status = gateway.take().unwrap().terminate();
    assert!(status.success(), "gateway exited with {status}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let distinct: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT source_ts_ms) FROM readings",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(distinct, MESSAGES);
}
