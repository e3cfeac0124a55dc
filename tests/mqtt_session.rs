//! Session faults that Mosquitto does not produce on demand, played by a scripted broker:
//! redelivery with the DUP flag, packet ids of a lost connection, and a PUBREL the client
//! never saw the PUBLISH for.

#[path = "support/mqtt_fake_broker.rs"]
mod mqtt_fake_broker;
#[path = "support/mqtt_gateway.rs"]
mod mqtt_gateway;

use std::time::Duration;

use mqtt_fake_broker::{FakeBroker, Received};
use mqtt_gateway::{blocking, mqtt_config, readings, wait_for, Gateway};

const TOPIC: &str = "sensors/ahu1/temp";
const M1: &[u8] = br#"{"ts":1700000000000,"v":21.5}"#;
const M2: &[u8] = br#"{"ts":1700000060000,"v":21.6}"#;
const WAIT: Duration = Duration::from_secs(15);

fn start_gateway(port: u16, client_id: &str, dir: &std::path::Path) -> Gateway {
    let text = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client_id}\"\n\
         reconnect_min_ms = 100\nreconnect_max_ms = 400\n\
         [[mqtt.subscription]]\nfilter = \"sensors/+/temp\"\nformat = \"json\"\n\
         value_path = \"v\"\ntimestamp_path = \"ts\"\nqos = 2\n"
    );
    Gateway::start(mqtt_config(&text, dir), &dir.join("gw.db"))
}

fn subscribed(received: &[Received]) -> bool {
    received
        .iter()
        .any(|r| matches!(r, Received::Subscribe { .. }))
}

/// A redelivery with DUP=1 and a new packet id is stored once, and never dropped for its DUP
/// flag: emqx/MQTTX#272 and lensesio/stream-reactor#766.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dup_redelivery_stored_once_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = FakeBroker::bind();
    let gateway = start_gateway(broker.port, "gw-dup-flag", dir.path());
    let db = gateway.db.clone();

    let (first_ack, stored_at_ack, redelivery_acks, conn) = blocking(move || {
        let mut conn = broker.accept();
        conn.connack(false);
        assert!(
            conn.pump(WAIT, subscribed),
            "no SUBSCRIBE: {:?}",
            conn.received
        );
        conn.publish(TOPIC, M1, 1, false, 1);
        let first_ack = conn.pump(WAIT, |r| r.contains(&Received::PubAck(1)));
        let stored_at_ack = readings(&db).len();
        conn.close();

        // The broker missed that acknowledgement, so it sends M1 again with DUP=1 and a new
        // packet id after the reconnect, then M2, also with DUP=1.
        let mut conn = broker.accept();
        conn.connack(true);
        conn.publish(TOPIC, M1, 1, true, 7);
        conn.publish(TOPIC, M2, 1, true, 8);
        let acked = conn.pump(WAIT, |r| {
            r.contains(&Received::PubAck(7)) && r.contains(&Received::PubAck(8))
        });
        (first_ack, stored_at_ack, acked, (broker, conn))
    })
    .await;

    assert!(first_ack, "M1 was not acknowledged");
    assert_eq!(stored_at_ack, 1, "M1 was acknowledged before its commit");
    assert!(
        redelivery_acks,
        "the redelivered messages were not acknowledged"
    );
    let values: Vec<Option<f64>> = readings(&gateway.db).iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(21.5), Some(21.6)]);
    assert_eq!(
        gateway.metric("caretaker_readings_duplicate_total{source=\"mqtt\"}"),
        1.0
    );
    gateway.stop().await;
    drop(conn);
}

/// A message read just before the connection failed is stored, but its packet id is not
/// acknowledged on the next connection, where the broker (without the old session) may have
/// given that id to a different message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_packet_ids_never_acknowledged_later() {
    let dir = tempfile::tempdir().unwrap();
    let broker = FakeBroker::bind();
    let gateway = start_gateway(broker.port, "gw-stale-ack", dir.path());
    let db = gateway.db.clone();

    let (resubscribed, second, keep) = blocking(move || {
        let mut conn = broker.accept();
        conn.connack(false);
        assert!(conn.pump(WAIT, subscribed));
        conn.publish(TOPIC, M1, 1, false, 1);
        conn.close();

        let mut conn = broker.accept();
        conn.connack(false);
        let resubscribed = conn.pump(WAIT, subscribed);
        // Give a stray acknowledgement time to show up.
        assert!(
            wait_for_blocking(WAIT, || !readings(&db).is_empty()),
            "M1 was not stored"
        );
        conn.pump(Duration::from_secs(2), |_| false);
        let second = conn.received.clone();
        (resubscribed, second, (broker, conn))
    })
    .await;

    assert!(
        resubscribed,
        "no SUBSCRIBE after the broker lost the session"
    );
    assert!(
        !second.contains(&Received::PubAck(1)),
        "acknowledged packet id 1 of the lost connection: {second:?}"
    );
    assert_eq!(readings(&gateway.db).len(), 1);
    gateway.stop().await;
    drop(keep);
}

/// rumqttc clears its incoming QoS 2 packet ids on a reconnect, so it rejects the broker's
/// PUBREL as unsolicited. The gateway must not reconnect into the same rejection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pubrel_loop_ends_with_clean_session() {
    let dir = tempfile::tempdir().unwrap();
    let broker = FakeBroker::bind();
    let gateway = start_gateway(broker.port, "gw-pubrel", dir.path());

    let (flags, resubscribed, keep) = blocking(move || {
        let mut flags = Vec::new();
        for _ in 0..8 {
            let mut conn = broker.accept();
            flags.push(conn.clean_session);
            if conn.clean_session {
                conn.connack(false);
                let resubscribed = conn.pump(WAIT, subscribed);
                return (flags, resubscribed, Some((broker, conn)));
            }
            conn.connack(true);
            conn.pubrel(9);
            conn.pump(WAIT, |_| false);
        }
        (flags, false, None)
    })
    .await;

    assert_eq!(
        flags,
        [false, false, false, true],
        "clean-session flag per connection"
    );
    assert!(resubscribed);
    assert!(wait_for(WAIT, || gateway.metric("caretaker_mqtt_connected") == 1.0).await);
    gateway.stop().await;
    drop(keep);
}

fn wait_for_blocking(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}
