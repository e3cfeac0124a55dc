//! The local HTTP API of `caretaker run`: `/healthz`, `/metrics`, and a Modbus write that
//! reaches a pymodbus device only with the right bearer token, and is audited.

mod support;

#[path = "support/modbus_harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::{count_rows, free_port, wait_until, Gateway};

const TOKEN: &str = "test-write-token";

const MAP: &str = r#"
[device]
kind = "test-controller"
manufacturer = "Test"
model = "Heating controller"
asset_kind = "substation"

[[point]]
name = "supply_temperature"
metric = "supply_temperature"
unit = "degC"
table = "input_register"
address = 0
type = "i16"
scale = 0.1

[[point]]
name = "setpoint"
metric = "supply_setpoint"
unit = "degC"
table = "holding_register"
address = 0
type = "i16"
scale = 0.1
min = 20.0
max = 90.0
writable = true
"#;

/// Sends one HTTP/1.1 request and returns the status code and body.
fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn api_serves_health_metrics_and_writes() {
    harness::require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let device_port = free_port();
    let device = harness::PyDevice::start(
        dir.path(),
        harness::Serve::Tcp(device_port),
        json!({"units": [{"id": 1, "input": [[0, [215]]], "holding": [[0, [400]]]}]}),
    );
    std::fs::write(dir.path().join("controller.toml"), MAP).unwrap();
    let http_port = free_port();
    let config = format!(
        r#"
[gateway]
id = "api-test"

[http]
listen = "127.0.0.1:{http_port}"
write_token = "{TOKEN}"

[modbus]

[[modbus.device]]
name = "controller"
map = "controller.toml"
asset = "substation-1"
transport = "tcp"
address = "127.0.0.1:{device_port}"
unit_id = 1
poll_interval_ms = 200
timeout_ms = 1000
"#
    );
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("gateway.log");
    let gateway = Gateway::start(&config_path, &log);
    let db = dir.path().join("caretaker.db");

    let up = wait_until(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", http_port)).is_ok()
    });
    assert!(up, "the API did not start: {}", support::read_log(&log));
    let (status, body) = request(http_port, "GET", "/healthz", None, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"store_running\":true"), "{body}");

    let polled = wait_until(Duration::from_secs(30), || {
        count_rows(
            &db,
            "SELECT COUNT(*) FROM readings_view \
             WHERE sensor_id = 'controller.supply_temperature' AND value = 21.5",
        )
        .unwrap_or(0)
            > 0
    });
    assert!(
        polled,
        "no reading of the device was stored: {}",
        support::read_log(&log)
    );
    let (status, metrics) = request(http_port, "GET", "/metrics", None, "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("caretaker_readings_stored_total{source=\"modbus\"}"),
        "{metrics}"
    );

    let path = "/v1/modbus/controller/setpoint";
    let (status, _) = request(http_port, "POST", path, None, r#"{"value": 45.5}"#);
    assert_eq!(status, 401);
    let (status, _) = request(http_port, "POST", path, Some("wrong"), r#"{"value": 45.5}"#);
    assert_eq!(status, 401);
    assert_eq!(device.get(1, "holding", 0, 1), vec![400]);

    let (status, body) = request(http_port, "POST", path, Some(TOKEN), r#"{"value": "hot"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = request(
        http_port,
        "POST",
        "/v1/modbus/controller/supply_temperature",
        Some(TOKEN),
        r#"{"value": 1}"#,
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = request(
        http_port,
        "POST",
        "/v1/modbus/nowhere/setpoint",
        Some(TOKEN),
        r#"{"value": 1}"#,
    );
    assert_eq!(status, 404, "{body}");

    for outside in ["95", "-5"] {
        let body = format!("{{\"value\": {outside}}}");
        let (status, reply) = request(http_port, "POST", path, Some(TOKEN), &body);
        assert_eq!(status, 422, "{reply}");
        assert!(reply.contains("outside its range"), "{reply}");
    }
    assert_eq!(device.get(1, "holding", 0, 1), vec![400]);

    let (status, body) = request(http_port, "POST", path, Some(TOKEN), r#"{"value": 45.5}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(device.get(1, "holding", 0, 1), vec![455]);
    let audited = count_rows(
        &db,
        "SELECT COUNT(*) FROM audit WHERE action = 'modbus.write' \
         AND subject LIKE '%setpoint%'",
    );
    assert!(audited.unwrap_or(0) >= 1, "the write was not audited");

    let status = gateway.terminate();
    assert!(status.success(), "gateway exited with {status}");
}
