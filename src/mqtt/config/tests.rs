use std::path::Path;

use super::*;

fn parse(text: &str) -> (Option<MqttConfig>, Vec<String>) {
    let mut diags = Diagnostics::default();
    let file = TomlFile::parse(Path::new("gw.toml"), text.to_string(), &mut diags).unwrap();
    let config = load(&file, Path::new("/etc/caretaker"), &mut diags);
    (config, diags.iter().map(|d| d.to_string()).collect())
}

const MINIMAL: &str = r#"
[mqtt]
host = "127.0.0.1"
client_id = "gw-1"

[[mqtt.subscription]]
filter = "sensors/+/temp"
format = "json"
value_path = "v"
timestamp_path = "ts"
asset = "{1}"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let (config, problems) = parse(MINIMAL);
    assert!(problems.is_empty(), "{problems:?}");
    let config = config.unwrap();
    assert_eq!(config.port, 1883);
    assert_eq!(config.keep_alive_secs, 30);
    assert_eq!(config.reconnect_min_ms, 500);
    assert_eq!(config.reconnect_max_ms, 30_000);
    assert_eq!(config.max_payload_bytes, 65_536);
    assert_eq!(config.retained, RetainedPolicy::Stale);
    assert!(config.lenient_nan);
    let subscription = &config.subscriptions[0];
    assert_eq!(subscription.qos, 1);
    assert_eq!(subscription.sensor_id.as_str(), "{topic}");
    assert_eq!(subscription.metric.as_str(), "{key}");
    assert_eq!(subscription.asset.as_str(), "{1}");
}

#[test]
fn absent_section_is_none_without_problems() {
    let (config, problems) = parse("[other]\nx = 1\n");
    assert!(config.is_none());
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn every_problem_reported_at_once() {
    let text = r#"
[mqtt]
host = ""
port = 0
password = "hunter2"
reconnect_min_ms = 900
reconnect_max_ms = 100
colour = "blue"

[[mqtt.subscription]]
filter = "sensors/#/x"
qos = 3
format = "json"
value_path = ["*.Temperature"]
sensor_id = "{topic}"

[[mqtt.subscription]]
filter = "a/b"
format = "xml"

[[mqtt.subscription]]
filter = "c/d"
format = "number"
value_path = "v"
metric = "{5}"
"#;
    let (config, problems) = parse(text);
    assert!(config.is_none());
    let expected = [
        "gw.toml:8:1: mqtt.colour: unknown key",
        "gw.toml:3:8: mqtt.host: missing broker host",
        "gw.toml:2:1: mqtt.client_id: missing client_id",
        "gw.toml:4:8: mqtt.port: port 0 is invalid",
        "gw.toml:5:12: mqtt.password: password is set without username",
        "gw.toml:7:20: mqtt.reconnect_max_ms: reconnect_max_ms 100 is below reconnect_min_ms 900",
        "gw.toml:11:10: mqtt.subscription[0].filter: invalid topic filter",
        "gw.toml:12:7: mqtt.subscription[0].qos: qos 3 is invalid",
        "mqtt.subscription[0].sensor_id: sensor_id `{topic}` gives every value of a message the same id",
        "mqtt.subscription[1].format: unknown variant `xml`",
        "gw.toml:24:14: mqtt.subscription[2].value_path: value_path applies only to format = \"json\"",
        "mqtt.subscription[2].metric: `{5}` refers to topic level 5",
    ];
    for line in expected {
        assert!(
            problems.iter().any(|p| p.contains(line)),
            "missing {line:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn tls_files_resolved_and_checked() {
    let text = format!(
        "{MINIMAL}\n[mqtt.tls]\nca_file = \"certs/ca.pem\"\nclient_cert_file = \"certs/gw.pem\"\n"
    );
    let (config, problems) = parse(&text);
    assert!(config.is_none());
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("mqtt.tls.ca_file: file /etc/caretaker/certs/ca.pem not found"));
    assert!(problems[1]
        .contains("mqtt.tls.client_cert_file: file /etc/caretaker/certs/gw.pem not found"));
    assert!(problems[2].contains("client_cert_file is set without client_key_file"));
}

#[test]
fn tls_ca_without_certificate_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let text = format!("{MINIMAL}\n[mqtt.tls]\nca_file = \"ca.pem\"\n");
    let mut diags = Diagnostics::default();
    let file = TomlFile::parse(Path::new("gw.toml"), text, &mut diags).unwrap();
    let config = load(&file, dir.path(), &mut diags);
    assert!(config.is_none());
    let problems: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("contains no PEM certificate"),
        "{problems:?}"
    );
}

#[test]
fn several_values_default_to_path_in_sensor_id() {
    let text = r#"
[mqtt]
host = "broker"
client_id = "gw"
lenient_nan = false
retained = "ignore"

[[mqtt.subscription]]
filter = "tele/+/SENSOR"
format = "json"
value_path = ["*.Temperature", "*.Humidity"]

[[mqtt.subscription]]
filter = "senml/#"
format = "senml"
qos = 0
"#;
    let (config, problems) = parse(text);
    assert!(problems.is_empty(), "{problems:?}");
    let config = config.unwrap();
    assert!(!config.lenient_nan);
    assert_eq!(config.retained, RetainedPolicy::Ignore);
    assert_eq!(config.subscriptions[0].sensor_id.as_str(), "{topic}/{path}");
    assert_eq!(config.subscriptions[1].sensor_id.as_str(), "{key}");
    assert_eq!(config.subscriptions[1].unit.as_str(), "{unit}");
}

#[test]
fn password_not_in_debug_output() {
    let text = MINIMAL.replace(
        "client_id",
        "username = \"gw\"\npassword = \"hunter2\"\nclient_id",
    );
    let (config, problems) = parse(&text);
    assert!(problems.is_empty(), "{problems:?}");
    let debug = format!("{:?}", config.unwrap());
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"));
}
