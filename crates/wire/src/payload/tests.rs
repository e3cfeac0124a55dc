use proptest::prelude::*;

use super::*;

const LENIENT: DecodeOptions = DecodeOptions { lenient_nan: true };
const STRICT: DecodeOptions = DecodeOptions { lenient_nan: false };

/// 2022-03-31T12:55:11Z, the instant of the seconds/milliseconds case.
const MARCH_31_MS: i64 = 1_648_731_311_000;

fn paths(values: &[&str], timestamp: Option<&str>, sensor_id: Option<&str>) -> PayloadFormat {
    PayloadFormat::Json(JsonPaths {
        values: values
            .iter()
            .map(|p| ValuePath::parse(p).unwrap())
            .collect(),
        timestamp: timestamp.map(|p| ValuePath::parse(p).unwrap()),
        sensor_id: sensor_id.map(|p| ValuePath::parse(p).unwrap()),
    })
}

fn ts_and_v() -> PayloadFormat {
    paths(&["v"], Some("ts"), None)
}

fn values(samples: &[Sample]) -> Vec<(&str, &SampleValue)> {
    samples
        .iter()
        .map(|s| (s.path.as_str(), &s.value))
        .collect()
}

fn missing_reason(value: &SampleValue) -> &str {
    match value {
        SampleValue::Missing(reason) => reason,
        other => panic!("expected a missing value, got {other:?}"),
    }
}

#[test]
fn json_value_and_timestamp() {
    let samples = decode(&ts_and_v(), br#"{"ts":1700000000000,"v":21.5}"#, LENIENT).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, SampleValue::Number(21.5));
    assert_eq!(samples[0].time, SampleTime::Epoch(1_700_000_000_000));
    assert_eq!(samples[0].key, "v");
}

#[test]
fn timestamp_units_by_magnitude() {
    for ts in [
        "1648731311",
        "1648731311000",
        "1648731311000000",
        "\"2022-03-31T12:55:11Z\"",
    ] {
        let payload = format!(r#"{{"ts":{ts},"v":3.111}}"#);
        let samples = decode(&ts_and_v(), payload.as_bytes(), LENIENT).unwrap();
        assert_eq!(samples[0].time, SampleTime::Epoch(MARCH_31_MS), "{ts}");
    }
}

#[test]
fn timestamp_zero_and_negative_rejected() {
    for ts in ["0", "-1", "1e18"] {
        let payload = format!(r#"{{"ts":{ts},"v":3.111}}"#);
        let rejection = decode(&ts_and_v(), payload.as_bytes(), LENIENT).unwrap_err();
        assert!(
            rejection.reason.contains("timestamp at `ts`"),
            "{ts}: {rejection}"
        );
    }
}

#[test]
fn timestamp_without_offset_rejected() {
    let payload = br#"{"ts":"2018-10-31T11:57:31","v":1}"#;
    let rejection = decode(&ts_and_v(), payload, LENIENT).unwrap_err();
    assert!(
        rejection.reason.contains("has no UTC offset"),
        "{rejection}"
    );
}

#[test]
fn missing_timestamp_means_receive_time() {
    let samples = decode(&ts_and_v(), br#"{"w":4200,"v":1}"#, LENIENT).unwrap();
    assert_eq!(samples[0].time, SampleTime::Absent);
}

#[test]
fn tasmota_nan_lenient_keeps_healthy_sensors() {
    let payload = br#"{"Time":"2018-10-31T11:57:31","S0":{"Temperature":17.1,"Humidity":70.0},"S2":{"Temperature":nan,"Humidity":nan}}"#;
    let format = paths(&["*.Temperature", "*.Humidity"], None, None);
    let samples = decode(&format, payload, LENIENT).unwrap();
    let found = values(&samples);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.contains(&("S0.Temperature", &SampleValue::Number(17.1))));
    assert!(found.contains(&("S0.Humidity", &SampleValue::Number(70.0))));
    let s2 = samples.iter().find(|s| s.path == "S2.Temperature").unwrap();
    let offset = std::str::from_utf8(payload).unwrap().find("nan").unwrap();
    assert!(
        missing_reason(&s2.value).contains(&format!("byte {offset}")),
        "{s2:?}"
    );
}

#[test]
fn tasmota_nan_strict_rejects_message() {
    let payload = br#"{"S0":{"Temperature":17.1},"S2":{"Temperature":nan}}"#;
    let format = paths(&["*.Temperature"], None, None);
    let rejection = decode(&format, payload, STRICT).unwrap_err();
    let offset = std::str::from_utf8(payload).unwrap().find("nan").unwrap();
    assert_eq!(rejection.offset, Some(offset));
    assert!(
        rejection.reason.contains("lenient_nan is off"),
        "{rejection}"
    );
}

#[test]
fn non_finite_tokens_never_numbers() {
    let format = paths(&["*"], None, None);
    for payload in [
        r#"{"t": NaN}"#,
        r#"{"t": Infinity}"#,
        r#"{"energy": -nan}"#,
        r#"{"t": -inf}"#,
    ] {
        let samples = decode(&format, payload.as_bytes(), LENIENT).unwrap();
        assert_eq!(samples.len(), 1, "{payload}");
        assert!(missing_reason(&samples[0].value).contains("not a finite number"));
        assert!(
            decode(&format, payload.as_bytes(), STRICT).is_err(),
            "{payload}"
        );
    }
}

#[test]
fn invalid_json_reports_offset() {
    let rejection = decode(&ts_and_v(), br#"{"v": x}"#, LENIENT).unwrap_err();
    assert_eq!(rejection.offset, Some(6));
    assert!(
        rejection.reason.starts_with("invalid JSON: "),
        "{rejection}"
    );
    // The offset counts in the original payload even after a NaN was rewritten.
    let rejection = decode(&ts_and_v(), br#"{"a": nan, "v": x}"#, LENIENT).unwrap_err();
    assert_eq!(rejection.offset, Some(16));
}

#[test]
fn invalid_utf8_reports_offset() {
    let rejection = decode(&ts_and_v(), b"{\"v\": \xff}", LENIENT).unwrap_err();
    assert_eq!(rejection.offset, Some(6));
    assert!(rejection.reason.contains("UTF-8"));
}

#[test]
fn json_kinds_of_values() {
    let format = paths(&["a", "b", "c", "d", "e", "f"], None, None);
    let payload = br#"{"a": true, "b": "21.5", "c": "ON", "d": null, "e": {"x": 1}}"#;
    let samples = decode(&format, payload, LENIENT).unwrap();
    assert_eq!(samples[0].value, SampleValue::Number(1.0));
    assert_eq!(samples[1].value, SampleValue::Number(21.5));
    assert_eq!(samples[2].value, SampleValue::Text("ON".into()));
    assert!(missing_reason(&samples[3].value).contains("is null"));
    assert!(missing_reason(&samples[4].value).contains("is an object"));
    assert!(missing_reason(&samples[5].value).contains("no value at `f`"));
}

#[test]
fn wildcard_skips_timestamp_and_sensor_id() {
    let format = paths(&["*"], Some("ts"), Some("id"));
    let payload = br#"{"ts": 1648731311, "id": "ahu-7", "v": 1, "w": 2, "nested": {"x": 3}}"#;
    let samples = decode(&format, payload, LENIENT).unwrap();
    let found: Vec<&str> = samples.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(found, ["v", "w"]);
    assert_eq!(samples[0].sensor_id.as_deref(), Some("ahu-7"));
}

#[test]
fn missing_sensor_id_rejected() {
    let format = paths(&["v"], None, Some("id"));
    let rejection = decode(&format, br#"{"v": 1}"#, LENIENT).unwrap_err();
    assert!(
        rejection.reason.contains("no sensor id at `id`"),
        "{rejection}"
    );
}

#[test]
fn array_index_paths() {
    let format = paths(&["data.1.v"], None, None);
    let samples = decode(&format, br#"{"data":[{"v":1},{"v":2}]}"#, LENIENT).unwrap();
    assert_eq!(samples[0].value, SampleValue::Number(2.0));
}

#[test]
fn bare_numbers() {
    for (payload, expected) in [
        ("21.5", 21.5),
        (" -3 \n", -3.0),
        ("1e3", 1000.0),
        ("+0.5", 0.5),
    ] {
        let samples = decode(&PayloadFormat::Number, payload.as_bytes(), LENIENT).unwrap();
        assert_eq!(
            samples[0].value,
            SampleValue::Number(expected),
            "{payload:?}"
        );
    }
    for payload in ["True", "2023,06,20,00,37,23", "", "0x10", "1.2.3"] {
        assert!(
            decode(&PayloadFormat::Number, payload.as_bytes(), LENIENT).is_err(),
            "{payload:?}"
        );
    }
}

#[test]
fn bare_nan() {
    let samples = decode(&PayloadFormat::Number, b"nan", LENIENT).unwrap();
    assert!(missing_reason(&samples[0].value).contains("not a finite number"));
    assert!(decode(&PayloadFormat::Number, b"-Infinity", STRICT).is_err());
}

#[test]
fn senml_resolves_base_fields() {
    let payload = br#"[
        {"bn":"urn:dev:ow:10e2073a01080063:","bt":1.6487313e9,"bu":"Cel","bv":1,"n":"temp","v":20,"t":11},
        {"n":"rh","u":"%RH","v":40},
        {"n":"door","vb":true},
        {"n":"label","vs":"plant room"},
        {"n":"energy","s":12.5}
    ]"#;
    let samples = decode(&PayloadFormat::Senml, payload, LENIENT).unwrap();
    assert_eq!(samples.len(), 5);
    assert_eq!(samples[0].path, "urn:dev:ow:10e2073a01080063:temp");
    assert_eq!(samples[0].value, SampleValue::Number(21.0));
    assert_eq!(samples[0].unit.as_deref(), Some("Cel"));
    assert_eq!(samples[0].time, SampleTime::Epoch(MARCH_31_MS));
    assert_eq!(samples[1].unit.as_deref(), Some("%RH"));
    assert_eq!(samples[1].value, SampleValue::Number(41.0));
    assert_eq!(samples[1].time, SampleTime::Epoch(1_648_731_300_000));
    assert_eq!(samples[2].value, SampleValue::Number(1.0));
    assert_eq!(samples[3].value, SampleValue::Text("plant room".into()));
    assert_eq!(samples[4].value, SampleValue::Number(12.5));
}

#[test]
fn senml_relative_and_absent_times() {
    let payload = br#"[{"n":"a","v":1,"t":-5},{"n":"b","v":2}]"#;
    let samples = decode(&PayloadFormat::Senml, payload, LENIENT).unwrap();
    assert_eq!(samples[0].time, SampleTime::Relative(-5000));
    assert_eq!(samples[1].time, SampleTime::Absent);
}

#[test]
fn senml_rejections() {
    let cases = [
        (r#"{"n":"a","v":1}"#, "JSON array"),
        (r#"[{"n":"a","v":1,"vs":"x"}]"#, "more than one value field"),
        (r#"[{"n":"a","v":1,"x_":2}]"#, "must be understood"),
        (r#"[{"v":1}]"#, "has no name"),
        (r#"[{"n":"a","v":"1"}]"#, "`v` must be a number"),
        (r#"[{"n":"a","v":1,"t":nan}]"#, "not a finite number"),
        (r#"[{"n":"a","t":1}]"#, "has no value"),
        (r#"[{"bn":"a"}]"#, "no record with a value"),
    ];
    for (payload, expected) in cases {
        let rejection = decode(&PayloadFormat::Senml, payload.as_bytes(), LENIENT).unwrap_err();
        assert!(
            rejection.reason.contains(expected),
            "{payload}: {rejection}"
        );
    }
}

#[test]
fn senml_nan_value_lenient_and_strict() {
    let payload = br#"[{"n":"a","v":NaN},{"n":"b","v":2}]"#;
    let samples = decode(&PayloadFormat::Senml, payload, LENIENT).unwrap();
    assert!(missing_reason(&samples[0].value).contains("`NaN`"));
    assert_eq!(samples[1].value, SampleValue::Number(2.0));
    assert!(decode(&PayloadFormat::Senml, payload, STRICT).is_err());
}

fn all_formats() -> Vec<PayloadFormat> {
    vec![
        PayloadFormat::Number,
        PayloadFormat::Senml,
        ts_and_v(),
        paths(&["*.*", "a.0", "*"], Some("t"), Some("id")),
    ]
}

fn assert_numbers_finite(samples: &[Sample]) {
    for sample in samples {
        if let SampleValue::Number(number) = sample.value {
            assert!(number.is_finite(), "{sample:?}");
        }
    }
}

/// Fragments that make up JSON-like payloads with the usual device mistakes.
fn json_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"v\"".to_string()),
        Just("\"t\"".to_string()),
        Just("\"a\"".to_string()),
        Just("\"n\"".to_string()),
        Just("nan".to_string()),
        Just("-Infinity".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"\\u0000nf0\"".to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z\"\\\\ ]{0,4}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        for format in all_formats() {
            for options in [LENIENT, STRICT] {
                if let Ok(samples) = decode(&format, &payload, options) {
                    assert_numbers_finite(&samples);
                }
            }
        }
    }

    #[test]
    fn json_like_payloads_never_panic(parts in proptest::collection::vec(json_fragment(), 0..30)) {
        let payload = parts.concat();
        for format in all_formats() {
            for options in [LENIENT, STRICT] {
                if let Ok(samples) = decode(&format, payload.as_bytes(), options) {
                    assert_numbers_finite(&samples);
                }
            }
        }
    }

    #[test]
    fn finite_values_round_trip(value in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        let text = format!("{value:?}");
        let number = decode(&PayloadFormat::Number, text.as_bytes(), STRICT).unwrap();
        prop_assert_eq!(&number[0].value, &SampleValue::Number(value));
        let json = format!(r#"{{"v":{text}}}"#);
        let from_json = decode(&ts_and_v(), json.as_bytes(), STRICT).unwrap();
        prop_assert_eq!(&from_json[0].value, &SampleValue::Number(value));
        let senml = format!(r#"[{{"n":"x","v":{text}}}]"#);
        let from_senml = decode(&PayloadFormat::Senml, senml.as_bytes(), STRICT).unwrap();
        prop_assert_eq!(&from_senml[0].value, &SampleValue::Number(value));
    }
}
