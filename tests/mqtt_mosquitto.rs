//! MQTT ingest against a real Mosquitto that each test starts on a free loopback port, with
//! the store writer in-process and the results read back from SQLite.

#[path = "support/mosquitto.rs"]
mod mosquitto;
#[path = "support/mqtt_gateway.rs"]
mod mqtt_gateway;

use std::time::Duration;

use mosquitto::{publish, publish_lines, try_publish, Mosquitto, Publish};
use mqtt_gateway::{blocking, mqtt_config, now_ms, quarantine, readings, wait_for, Gateway};

const WAIT: Duration = Duration::from_secs(30);

const QOS1: Publish = Publish {
    qos: 1,
    retain: false,
    args: &[],
};

fn config(port: u16, client_id: &str, settings: &str, subscriptions: &str) -> String {
    format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client_id}\"\n\
         reconnect_min_ms = 200\nreconnect_max_ms = 1000\n{settings}\n{subscriptions}"
    )
}

/// Waits until the broker has sent the gateway `count` SUBACKs in all.
async fn wait_subscribed(broker: &Mosquitto, client_id: &str, count: usize) {
    let needle = format!("Sending SUBACK to {client_id}");
    let subscribed = wait_for(WAIT, || broker.log().matches(&needle).count() >= count).await;
    assert!(
        subscribed,
        "{client_id} did not subscribe; broker log:\n{}",
        broker.log()
    );
}

const TEMPERATURE: &str = r#"
[[mqtt.subscription]]
filter = "sensors/+/temp"
format = "json"
value_path = "v"
timestamp_path = "ts"
asset = "{1}"
metric = "temperature"
unit = "degC"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_format_lands_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let subscriptions = format!(
        r#"{TEMPERATURE}
[[mqtt.subscription]]
filter = "senml/#"
format = "senml"
qos = 2

[[mqtt.subscription]]
filter = "plain/+/+"
format = "number"
qos = 0
asset = "{{1}}"

[[mqtt.subscription]]
filter = "tele/+/SENSOR"
format = "json"
value_path = ["*.Temperature", "*.Humidity"]
asset = "{{1}}"
"#
    );
    let text = config(broker.port, "gw-formats", "", &subscriptions);
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    wait_subscribed(&broker, "gw-formats", 1).await;

    let ts = now_ms() - 1_000;
    let port = broker.port;
    blocking(move || {
        let json = format!(r#"{{"ts":{ts},"v":21.5}}"#);
        publish(port, "sensors/ahu1/temp", json.as_bytes(), &QOS1);
        let senml =
            br#"[{"bn":"urn:dev:boiler1:","n":"flow","u":"Cel","v":65.5},{"n":"pump","vb":true}]"#;
        let qos2 = Publish { qos: 2, ..QOS1 };
        publish(port, "senml/boiler1", senml, &qos2);
        publish(
            port,
            "plain/pump-1/pressure",
            b"2.75",
            &Publish { qos: 0, ..QOS1 },
        );
        let tasmota =
            br#"{"Time":"2018-10-31T11:57:31","S0":{"Temperature":17.1,"Humidity":70.0}}"#;
        publish(port, "tele/office/SENSOR", tasmota, &QOS1);
    })
    .await;

    let db = gateway.db.clone();
    assert!(
        wait_for(WAIT, || readings(&db).len() >= 6).await,
        "{:#?}",
        readings(&db)
    );
    let rows = readings(&db);
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.sensor_id == id)
            .unwrap_or_else(|| panic!("{id} in {rows:#?}"))
    };

    let json = row("sensors/ahu1/temp");
    assert_eq!(json.value, Some(21.5));
    assert_eq!(json.source_ts_ms, ts);
    assert_eq!(
        (
            json.asset.as_str(),
            json.metric.as_str(),
            json.unit.as_str()
        ),
        ("ahu1", "temperature", "degC")
    );
    assert_eq!(json.quality, "good");
    let flow = row("urn:dev:boiler1:flow");
    assert_eq!(flow.value, Some(65.5));
    assert_eq!(flow.unit, "Cel");
    assert_eq!(row("urn:dev:boiler1:pump").value, Some(1.0));
    let pressure = row("plain/pump-1/pressure");
    assert_eq!(pressure.value, Some(2.75));
    assert_eq!(
        (pressure.asset.as_str(), pressure.metric.as_str()),
        ("pump-1", "pressure")
    );
    assert_eq!(row("tele/office/SENSOR/S0.Temperature").value, Some(17.1));
    assert_eq!(row("tele/office/SENSOR/S0.Humidity").value, Some(70.0));
    assert!(quarantine(&db).is_empty(), "{:#?}", quarantine(&db));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_quarantined_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let text = config(
        broker.port,
        "gw-malformed",
        "max_payload_bytes = 1024",
        TEMPERATURE,
    );
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    wait_subscribed(&broker, "gw-malformed", 1).await;

    let port = broker.port;
    let good = format!(r#"{{"ts":{},"v":19.5}}"#, now_ms());
    blocking(move || {
        let topic = "sensors/ahu1/temp";
        publish(port, topic, br#"{"v": 21.5,"#, &QOS1);
        publish(port, topic, br#"{"v": NaN}"#, &QOS1);
        publish(port, topic, b"{\"v\": \"\xff\xfe\"}", &QOS1);
        // Larger than rumqttc's default packet limit of 10 KiB too, which would drop the
        // connection instead of letting the gateway quarantine the payload.
        let oversized = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(20_000));
        publish(port, topic, oversized.as_bytes(), &QOS1);
        publish(port, topic, good.as_bytes(), &QOS1);
    })
    .await;

    let db = gateway.db.clone();
    assert!(
        wait_for(WAIT, || !readings(&db).is_empty()).await,
        "the good message after the bad ones was not stored"
    );
    assert_eq!(readings(&db)[0].value, Some(19.5));
    let entries = quarantine(&db);
    assert_eq!(entries.len(), 4, "{entries:#?}");
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        reasons[0].starts_with("invalid JSON") && reasons[0].contains("at byte"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("`NaN`, not a finite number"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("not valid UTF-8 (at byte 7)"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].contains("larger than max_payload_bytes (1024)"),
        "{reasons:?}"
    );
    assert!(entries.iter().all(|e| e.origin == "sensors/ahu1/temp"));
    assert_eq!(entries[1].raw, br#"{"v": NaN}"#);
    assert_eq!(entries[3].raw.len(), 256);
    gateway.stop().await;
}

/// The Tasmota and Telegraf reports behind the NaN case: ioBroker/ioBroker.sonoff#65 and
/// influxdata/telegraf#13476.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_payloads_never_stall_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let subscriptions = r#"
[[mqtt.subscription]]
filter = "sensors/multi"
format = "json"
value_path = ["*.Temperature", "*.Humidity"]

[[mqtt.subscription]]
filter = "sensors/a"
format = "json"
value_path = "*"

[[mqtt.subscription]]
filter = "sensors/b"
format = "number"
"#;
    let text = config(broker.port, "gw-nan", "", subscriptions);
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    wait_subscribed(&broker, "gw-nan", 1).await;

    let port = broker.port;
    blocking(move || {
        let tasmota = br#"{"Time":"2018-10-31T11:57:31","S0":{"Temperature":17.1,"Humidity":70.0},"S2":{"Temperature":nan,"Humidity":nan}}"#;
        publish(port, "sensors/multi", tasmota, &QOS1);
        for payload in [r#"{"t": NaN}"#, r#"{"t": Infinity}"#, r#"{"energy": -nan}"#] {
            publish(port, "sensors/a", payload.as_bytes(), &QOS1);
        }
        publish(port, "sensors/b", b"True", &QOS1);
        publish(port, "sensors/b", b"2023,06,20,00,37,23", &QOS1);
        let flood = vec![r#"{"t": NaN}"#.to_string(); 1500];
        publish_lines(port, "sensors/a", &flood, 1);
        publish(port, "sensors/a", br#"{"t": 20.0}"#, &QOS1);
    })
    .await;

    let db = gateway.db.clone();
    let healthy = |rows: &[mqtt_gateway::Row]| {
        rows.iter()
            .any(|r| r.sensor_id == "sensors/a/t" && r.value == Some(20.0))
    };
    assert!(
        wait_for(WAIT, || healthy(&readings(&db))).await,
        "{{\"t\": 20.0}} not stored after 1,500 NaN messages"
    );

    let rows = readings(&db);
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.sensor_id == id)
            .unwrap_or_else(|| panic!("{id} in {rows:#?}"))
    };
    assert_eq!(row("sensors/multi/S0.Temperature").value, Some(17.1));
    assert_eq!(row("sensors/multi/S0.Humidity").value, Some(70.0));
    let s2 = row("sensors/multi/S2.Temperature");
    assert_eq!((s2.value, s2.quality.as_str()), (None, "bad"));
    assert!(s2
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("not a finite number"));
    assert!(rows.iter().all(|r| r.value.is_none_or(f64::is_finite)));

    let entries = quarantine(&db);
    assert_eq!(
        entries.len(),
        3 + 2 + 1500,
        "one quarantine row per bad message"
    );
    assert!(
        entries[3].reason.contains("`True` is not a number"),
        "{:?}",
        entries[3]
    );
    assert!(
        entries[4].reason.contains("is not a number"),
        "{:?}",
        entries[4]
    );
    assert!(entries
        .iter()
        .filter(|e| e.origin == "sensors/a")
        .all(|e| e.reason.contains("not a finite number")));
    gateway.stop().await;
}

/// Retained values replayed on subscribe: influxdata/telegraf#10824 and
/// mr-manuel/venus-os_dbus-mqtt-grid#48.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_values_stored_once_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let three_days_ago = now_ms() - 3 * 86_400_000;
    let port = broker.port;
    blocking(move || {
        let retained = Publish {
            retain: true,
            ..QOS1
        };
        publish(port, "sensors/grid/power", br#"{"w":4200}"#, &retained);
        let ahu = format!(r#"{{"ts":{three_days_ago},"v":21.5}}"#);
        publish(port, "sensors/ahu1/temp", ahu.as_bytes(), &retained);
    })
    .await;

    let subscriptions = format!("{TEMPERATURE}\n[[mqtt.subscription]]\nfilter = \"sensors/grid/power\"\nformat = \"json\"\nvalue_path = \"w\"\n");
    let text = config(broker.port, "gw-retained", "", &subscriptions);
    let db = dir.path().join("gw.db");
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &db);
    assert!(
        wait_for(WAIT, || readings(&db).len() >= 2).await,
        "{:#?}",
        readings(&db)
    );
    gateway.stop().await;

    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &db);
    let live = format!(r#"{{"ts":{},"v":22.0}}"#, now_ms());
    let marker_sent = wait_for(WAIT, || {
        try_publish(port, "sensors/ahu2/temp", live.as_bytes(), &QOS1)
    })
    .await;
    assert!(marker_sent);
    assert!(
        wait_for(WAIT, || readings(&db)
            .iter()
            .any(|r| r.sensor_id == "sensors/ahu2/temp"))
        .await
    );

    let rows = readings(&db);
    assert_eq!(
        rows.len(),
        3,
        "retained values stored again after the restart: {rows:#?}"
    );
    let ahu1 = rows
        .iter()
        .find(|r| r.sensor_id == "sensors/ahu1/temp")
        .unwrap();
    assert_eq!(
        (ahu1.quality.as_str(), ahu1.source_ts_ms),
        ("stale", three_days_ago)
    );
    let grid = rows
        .iter()
        .find(|r| r.sensor_id == "sensors/grid/power")
        .unwrap();
    assert_eq!((grid.quality.as_str(), grid.value), ("stale", Some(4200.0)));
    assert!(grid.detail.as_deref().unwrap_or("").contains("retained"));
    let ahu2 = rows
        .iter()
        .find(|r| r.sensor_id == "sensors/ahu2/temp")
        .unwrap();
    assert_eq!(ahu2.quality, "good");
    gateway.stop().await;
}

/// QoS 1 redelivery stores each reading once: emqx/MQTTX#272.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_duplicates_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let text = config(broker.port, "gw-dup", "", TEMPERATURE);
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    wait_subscribed(&broker, "gw-dup", 1).await;

    let port = broker.port;
    blocking(move || {
        let m1 = br#"{"ts":1700000000000,"v":21.5}"#;
        publish(port, "sensors/ahu1/temp", m1, &QOS1);
        publish(port, "sensors/ahu1/temp", m1, &QOS1);
        publish(
            port,
            "sensors/ahu1/temp",
            br#"{"ts":1700000060000,"v":21.6}"#,
            &QOS1,
        );
    })
    .await;

    let duplicates = "caretaker_readings_duplicate_total{source=\"mqtt\"}";
    assert!(wait_for(WAIT, || gateway.metric(duplicates) >= 1.0).await);
    let db = gateway.db.clone();
    assert!(wait_for(WAIT, || readings(&db).len() >= 2).await);
    let values: Vec<Option<f64>> = readings(&db).iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(21.5), Some(21.6)]);
    assert_eq!(gateway.metric(duplicates), 1.0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_no_acknowledged_reading() {
    const MESSAGES: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let subscriptions = "[[mqtt.subscription]]\nfilter = \"load/#\"\nformat = \"json\"\nvalue_path = \"v\"\ntimestamp_path = \"ts\"\n";
    let text = config(broker.port, "gw-restart", "", subscriptions);
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    wait_subscribed(&broker, "gw-restart", 1).await;

    // The publisher counts a message as published once the broker acknowledged it, and it
    // retries while the broker is down. The broker restarts a third of the way through.
    let base_ts = now_ms() - 60_000;
    let (broker, published) = blocking(move || {
        let mut broker = broker;
        let mut published = Vec::new();
        for i in 0..MESSAGES {
            if i == MESSAGES / 3 {
                broker.restart();
            }
            let payload = format!(r#"{{"ts":{},"v":{i}}}"#, base_ts + i);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !try_publish(broker.port, "load/sensor", payload.as_bytes(), &QOS1) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "broker did not come back"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            published.push(i);
        }
        (broker, published)
    })
    .await;

    let db = gateway.db.clone();
    let all_stored = wait_for(Duration::from_secs(60), || {
        readings(&db).len() as i64 >= MESSAGES
    })
    .await;
    let stored: std::collections::BTreeSet<i64> = readings(&db)
        .iter()
        .map(|r| r.value.unwrap() as i64)
        .collect();
    let lost: Vec<&i64> = published.iter().filter(|i| !stored.contains(i)).collect();
    assert!(
        all_stored && lost.is_empty(),
        "acknowledged but not stored: {lost:?}"
    );
    assert!(
        broker.log().matches("mosquitto version").count() >= 2,
        "the broker did not restart"
    );
    gateway.stop().await;
}

/// A broker restarted without persistence has forgotten the session, so the gateway must
/// subscribe again: bytebeamio/rumqtt#250 and influxdata/telegraf#6232.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_after_broker_loses_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start_with(dir.path(), "allow_anonymous true", false);
    let text = config(broker.port, "gw-resub", "", TEMPERATURE);
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    wait_subscribed(&broker, "gw-resub", 1).await;

    broker.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.launch();
    wait_subscribed(&broker, "gw-resub", 2).await;

    let payload = format!(r#"{{"ts":{},"v":21.5}}"#, now_ms());
    let port = broker.port;
    blocking(move || publish(port, "sensors/ahu1/temp", payload.as_bytes(), &QOS1)).await;
    let db = gateway.db.clone();
    assert!(
        wait_for(WAIT, || readings(&db).len() == 1).await,
        "reading after the broker restart not stored"
    );
    assert!(gateway.metric("caretaker_mqtt_connection_errors_total") >= 1.0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_acknowledges_what_it_committed() {
    const FIRST_RUN: usize = 3000;
    const SECOND_RUN: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let subscriptions = "[[mqtt.subscription]]\nfilter = \"load/#\"\nformat = \"json\"\nvalue_path = \"v\"\ntimestamp_path = \"ts\"\n";
    let text = config(broker.port, "gw-shutdown", "", subscriptions);
    let db = dir.path().join("gw.db");
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &db);
    wait_subscribed(&broker, "gw-shutdown", 1).await;

    let base_ts = now_ms() - 60_000;
    let lines = move |range: std::ops::Range<usize>| -> Vec<String> {
        range
            .map(|i| format!(r#"{{"ts":{},"v":{i}}}"#, base_ts + i as i64))
            .collect()
    };
    let port = broker.port;
    let first = lines(0..FIRST_RUN);
    let publisher =
        tokio::task::spawn_blocking(move || publish_lines(port, "load/sensor", &first, 1));

    // Stop while the stream flows: what was committed by then must be acknowledged on the
    // way out, or the broker delivers it again to the next run, which counts duplicates.
    assert!(wait_for(WAIT, || readings(&db).len() >= 100).await);
    gateway.stop().await;
    publisher.await.unwrap();

    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &db);
    let second = lines(FIRST_RUN..FIRST_RUN + SECOND_RUN);
    blocking(move || publish_lines(port, "load/sensor", &second, 1)).await;
    let total = FIRST_RUN + SECOND_RUN;
    let all_stored = wait_for(Duration::from_secs(60), || readings(&db).len() >= total).await;
    assert!(all_stored, "{} of {total} stored", readings(&db).len());
    let duplicates = "caretaker_readings_duplicate_total{source=\"mqtt\"}";
    assert_eq!(
        gateway.metric(duplicates),
        0.0,
        "committed messages were delivered again"
    );
    gateway.stop().await;
}
