use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::{Diagnostics, TomlFile};
use crate::time::{ManualClock, TimePolicy};

/// 2026-01-01T00:00:00Z.
const NOW_MS: i64 = 1_767_225_600_000;
/// 2020-01-01T00:00:00Z.
const FLOOR_MS: i64 = 1_577_836_800_000;

fn ingest(settings: &str, subscriptions: &str) -> Ingest {
    let text = format!("[mqtt]\nhost = \"h\"\nclient_id = \"c\"\n{settings}\n{subscriptions}");
    let mut diags = Diagnostics::default();
    let file = TomlFile::parse(Path::new("gw.toml"), text, &mut diags).unwrap();
    let config = crate::mqtt::config::load(&file, Path::new("."), &mut diags);
    assert!(diags.is_empty(), "{diags}");
    Ingest::new(&config.unwrap())
}

const JSON_TS_V: &str = r#"
[[mqtt.subscription]]
filter = "sensors/+/temp"
format = "json"
value_path = "v"
timestamp_path = "ts"
asset = "{1}"
metric = "temperature"
unit = "degC"
"#;

fn keeper_at(wall_ms: i64) -> TimeKeeper {
    let policy = TimePolicy {
        earliest_valid_ms: FLOOR_MS,
        max_future_ms: 300_000,
    };
    TimeKeeper::new(Arc::new(ManualClock::new(wall_ms)), policy)
}

/// Runs one message through `ingest` at a trusted clock.
fn run(ingest: &Ingest, topic: &str, payload: &[u8], retain: bool) -> (Outcome, Batch) {
    let keeper = keeper_at(NOW_MS);
    let received = keeper.receive_time();
    let mut batch = Batch::default();
    let outcome = ingest.message(topic, payload, retain, received, &keeper, &mut batch);
    (outcome, batch)
}

fn quarantine_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Quarantined { reason } => reason,
        other => panic!("expected quarantine, got {other:?}"),
    }
}

#[test]
fn json_reading_gets_names_and_time() {
    let ingest = ingest("", JSON_TS_V);
    let (outcome, batch) = run(
        &ingest,
        "sensors/ahu1/temp",
        br#"{"ts":1700000000000,"v":21.5}"#,
        false,
    );
    assert!(
        matches!(
            outcome,
            Outcome::Stored {
                readings: 1,
                missing: 0,
                ..
            }
        ),
        "{outcome:?}"
    );
    let reading = &batch.readings[0];
    assert_eq!(reading.sensor_id, "sensors/ahu1/temp");
    assert_eq!(reading.asset, "ahu1");
    assert_eq!(reading.metric, "temperature");
    assert_eq!(reading.unit, "degC");
    assert_eq!(reading.value, Some(Value::Number(21.5)));
    assert_eq!(reading.quality, Quality::Good);
    assert_eq!(reading.source, Source::Mqtt);
    assert_eq!(reading.source_ts_ms, 1_700_000_000_000);
    assert_eq!(reading.receive_ts_ms, NOW_MS);
}

#[test]
fn seconds_milliseconds_microseconds_agree() {
    let ingest = ingest("", JSON_TS_V);
    for ts in ["1648731311", "1648731311000", "1648731311000000"] {
        let payload = format!(r#"{{"ts":{ts},"v":3.111}}"#);
        let (_, batch) = run(&ingest, "sensors/ahu1/temp", payload.as_bytes(), false);
        assert_eq!(batch.readings[0].source_ts_ms, 1_648_731_311_000, "{ts}");
        assert_eq!(
            crate::time::format_ms(batch.readings[0].source_ts_ms),
            "2022-03-31T12:55:11.000Z"
        );
    }
}

#[test]
fn timestamps_outside_window_quarantined() {
    let ingest = ingest("", JSON_TS_V);
    for ts in ["0", "-1", "32503680000000", "1262304000"] {
        let payload = format!(r#"{{"ts":{ts},"v":3.111}}"#);
        let (outcome, batch) = run(&ingest, "sensors/ahu1/temp", payload.as_bytes(), false);
        assert!(batch.readings.is_empty(), "{ts}");
        assert_eq!(batch.quarantine.len(), 1, "{ts}");
        assert!(
            quarantine_reason(&outcome).contains("timestamp"),
            "{ts}: {outcome:?}"
        );
        assert_eq!(batch.quarantine[0].origin, "sensors/ahu1/temp");
    }
}

#[test]
fn missing_timestamp_takes_receive_time() {
    let ingest = ingest("", JSON_TS_V);
    let keeper = keeper_at(36_000); // 1970-01-01T00:00:36Z, before the floor
    let received = keeper.receive_time();
    assert!(received.uncertain);
    let mut batch = Batch::default();
    ingest.message(
        "sensors/a/temp",
        br#"{"v":1}"#,
        false,
        received,
        &keeper,
        &mut batch,
    );
    ingest.message(
        "sensors/b/temp",
        br#"{"v":2,"ts":1700000000}"#,
        false,
        received,
        &keeper,
        &mut batch,
    );
    assert_eq!(batch.readings[0].quality, Quality::UncertainTime);
    assert_eq!(batch.readings[0].source_ts_ms, received.ts_ms);
    // Its own timestamp is kept, but its receive time still needs re-basing.
    assert_eq!(batch.readings[1].quality, Quality::UncertainTime);
    assert_eq!(batch.readings[1].source_ts_ms, 1_700_000_000_000);
}

#[test]
fn retained_messages_are_stale() {
    let ingest = ingest("", JSON_TS_V);
    let (_, batch) = run(
        &ingest,
        "sensors/ahu1/temp",
        br#"{"ts":1766966400000,"v":21.5}"#,
        true,
    );
    assert_eq!(batch.readings[0].quality, Quality::Stale);
    assert_eq!(batch.readings[0].source_ts_ms, 1_766_966_400_000);
    let (_, batch) = run(&ingest, "sensors/grid/temp", br#"{"v":4200}"#, true);
    assert_eq!(batch.readings[0].quality, Quality::Stale);
    assert!(batch.readings[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("without a timestamp"));
}

#[test]
fn retained_ignored_when_configured() {
    let ingest = ingest("retained = \"ignore\"", JSON_TS_V);
    let (outcome, batch) = run(&ingest, "sensors/ahu1/temp", br#"{"v":21.5}"#, true);
    assert_eq!(outcome, Outcome::Ignored);
    assert!(batch.readings.is_empty());
    assert!(batch.quarantine.is_empty());
}

#[test]
fn oversized_and_unmatched_quarantined() {
    let ingest = ingest("max_payload_bytes = 300", JSON_TS_V);
    let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(400));
    let (outcome, batch) = run(&ingest, "sensors/ahu1/temp", big.as_bytes(), false);
    assert!(quarantine_reason(&outcome).contains("larger than max_payload_bytes (300)"));
    assert_eq!(
        batch.quarantine[0].raw.len(),
        QuarantineEntry::MAX_RAW_BYTES
    );
    let (outcome, _) = run(&ingest, "other/topic", b"1", false);
    assert!(quarantine_reason(&outcome).contains("matches no configured subscription"));
}

const TASMOTA: &str = r#"
[[mqtt.subscription]]
filter = "sensors/multi"
format = "json"
value_path = ["*.Temperature", "*.Humidity"]
timestamp_path = "ts"
"#;

const TASMOTA_PAYLOAD: &[u8] = br#"{"Time":"2018-10-31T11:57:31","S0":{"Temperature":17.1,"Humidity":70.0},"S2":{"Temperature":nan,"Humidity":nan}}"#;

#[test]
fn lenient_nan_stores_healthy_values_and_marks_missing() {
    let ingest = ingest("", TASMOTA);
    let (outcome, batch) = run(&ingest, "sensors/multi", TASMOTA_PAYLOAD, false);
    assert!(
        matches!(
            outcome,
            Outcome::Stored {
                readings: 4,
                missing: 2,
                ..
            }
        ),
        "{outcome:?}"
    );
    let by_id = |id: &str| batch.readings.iter().find(|r| r.sensor_id == id).unwrap();
    assert_eq!(
        by_id("sensors/multi/S0.Temperature").value,
        Some(Value::Number(17.1))
    );
    assert_eq!(
        by_id("sensors/multi/S0.Humidity").value,
        Some(Value::Number(70.0))
    );
    let s2 = by_id("sensors/multi/S2.Temperature");
    assert_eq!(s2.value, None);
    assert_eq!(s2.quality, Quality::Bad);
    assert!(s2.detail.as_deref().unwrap().contains("`nan`"));
    assert_eq!(by_id("sensors/multi/S0.Temperature").metric, "Temperature");
}

#[test]
fn strict_nan_quarantines_whole_message() {
    let ingest = ingest("lenient_nan = false", TASMOTA);
    let (outcome, batch) = run(&ingest, "sensors/multi", TASMOTA_PAYLOAD, false);
    assert!(batch.readings.is_empty());
    let offset = std::str::from_utf8(TASMOTA_PAYLOAD)
        .unwrap()
        .find("nan")
        .unwrap();
    let reason = quarantine_reason(&outcome);
    assert!(reason.contains(&format!("at byte {offset}")), "{reason}");
}

#[test]
fn message_without_usable_value_quarantined() {
    let ingest = ingest(
        "",
        "[[mqtt.subscription]]\nfilter = \"sensors/a\"\nformat = \"json\"\nvalue_path = \"*\"\n",
    );
    for payload in [r#"{"t": NaN}"#, r#"{"t": Infinity}"#, r#"{"energy": -nan}"#] {
        let (outcome, batch) = run(&ingest, "sensors/a", payload.as_bytes(), false);
        assert!(batch.readings.is_empty(), "{payload}");
        assert!(
            quarantine_reason(&outcome).contains("no usable value"),
            "{outcome:?}"
        );
        assert_eq!(batch.quarantine[0].raw, payload.as_bytes());
    }
}

#[test]
fn bare_number_metric_is_last_level() {
    let ingest = ingest(
        "",
        "[[mqtt.subscription]]\nfilter = \"plant/+/+\"\nformat = \"number\"\nasset = \"{1}\"\n",
    );
    let (_, batch) = run(&ingest, "plant/pump-1/pressure", b"2.5", false);
    let reading = &batch.readings[0];
    assert_eq!(reading.sensor_id, "plant/pump-1/pressure");
    assert_eq!(reading.asset, "pump-1");
    assert_eq!(reading.metric, "pressure");
    let (outcome, _) = run(&ingest, "plant/pump-1/pressure", b"True", false);
    assert!(quarantine_reason(&outcome).contains("is not a number"));
}

#[test]
fn senml_relative_time_and_unit() {
    let ingest = ingest(
        "",
        "[[mqtt.subscription]]\nfilter = \"senml/#\"\nformat = \"senml\"\n",
    );
    let (_, batch) = run(
        &ingest,
        "senml/dev1",
        br#"[{"bn":"dev1:","n":"temp","u":"Cel","v":21,"t":-10}]"#,
        false,
    );
    let reading = &batch.readings[0];
    assert_eq!(reading.sensor_id, "dev1:temp");
    assert_eq!(reading.unit, "Cel");
    assert_eq!(reading.source_ts_ms, NOW_MS - 10_000);
}
