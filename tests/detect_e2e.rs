//! Detection in `caretaker run`, end to end. A pymodbus circulation pump whose bearing heats up
//! yields one predictive maintenance request before the bearing reaches its alarm limit. A
//! pump that stops replying yields one operator request, which closes when it replies again,
//! also across a gateway restart. Everything lands in the gateway's SQLite file.

mod support;

#[path = "support/modbus_harness.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value as Json};
use support::{free_port, read_log, wait_until, Gateway};

const BEARING: &str = "pump-1.bearing_temperature_drive_end";
/// Input register of the drive-end bearing temperature (30009), in 0.1 degC.
const BEARING_REGISTER: u16 = 8;
/// The pump map's `alarm_high` of the bearing temperatures, in degC.
const BEARING_LIMIT: f64 = 90.0;

/// Registers of a running pump: input registers 30001 to 30017, the running flag, the run
/// command and the speed setpoint. The drive-end bearing starts at 60.0 degC.
fn pump_units() -> Json {
    json!({"units": [{
        "id": 1,
        "input": [[0, [150, 350, 200, 1200, 250, 600, 2800, 120, 600, 550, 650, 0, 0, 1234,
                       0, 0, 16]]],
        "discrete_inputs": [[0, [1, 0]]],
        "coils": [[0, [1, 0]]],
        "holding": [[0, [800]]]
    }]})
}

fn python() -> String {
    std::env::var("CARETAKER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A pymodbus device started with `--drift`, killed on drop. The harness's device has no
/// drift option, so this one starts the same script itself.
struct DriftingDevice {
    child: Child,
    // The script exits when its stdin closes, so it is held open.
    _stdin: ChildStdin,
}

impl DriftingDevice {
    fn start(dir: &Path, port: u16, units: &Json, drift: &str) -> DriftingDevice {
        let config = dir.join("drifting-device.json");
        std::fs::write(&config, serde_json::to_vec(units).unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pymodbus_device.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--config")
            .arg(&config)
            .arg("--tcp")
            .arg(port.to_string())
            .arg("--drift")
            .arg(drift)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 with pymodbus; run scripts/test.sh, which installs it");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the drifting pymodbus device did not start"
        );
        DriftingDevice {
            child,
            _stdin: stdin,
        }
    }
}

impl Drop for DriftingDevice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the shipped pump map and a gateway config with `detect` as its `[detect]` section.
/// Returns the config's path and the port of the local API.
fn write_config(dir: &Path, device_port: u16, modbus_extra: &str, detect: &str) -> (PathBuf, u16) {
    let map =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/devices/circulation-pump.toml");
    std::fs::copy(map, dir.join("circulation-pump.toml")).unwrap();
    let http_port = free_port();
    let config = format!(
        r#"
[gateway]
id = "detect-test"

[http]
listen = "127.0.0.1:{http_port}"

[modbus]

[[modbus.device]]
name = "pump-1"
map = "circulation-pump.toml"
asset = "heating-pump-1"
transport = "tcp"
address = "127.0.0.1:{device_port}"
unit_id = 1
poll_interval_ms = 200
{modbus_extra}

[detect]
poll_interval_ms = 200
health_interval_secs = 1
min_duration_secs = 2
clear_hold_secs = 2
{detect}
"#
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    (path, http_port)
}

/// Returns the local API's Prometheus text, or an empty string while it does not reply.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn open_db(db: &Path) -> Option<Connection> {
    if !db.exists() {
        return None;
    }
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    Some(conn)
}

/// One row of the `requests` table.
#[derive(Debug, Clone)]
struct RequestRow {
    alarm_key: String,
    source: String,
    asset: String,
    fault_kind: String,
    severity: String,
    category: String,
    urgency: String,
    audience: String,
    forecast_ms: Option<i64>,
    forecast_uncertainty_ms: Option<i64>,
    explanation: Json,
    state: String,
    opened_ms: i64,
    closed_ms: Option<i64>,
}

fn requests(db: &Path, filter: &str) -> Vec<RequestRow> {
    let Some(conn) = open_db(db) else {
        return Vec::new();
    };
    let sql = format!(
        "SELECT alarm_key, source, asset, fault_kind, severity, category, urgency, audience, \
         forecast_ms, forecast_uncertainty_ms, explanation, state, opened_ms, closed_ms \
         FROM requests WHERE {filter} ORDER BY id"
    );
    let Ok(mut statement) = conn.prepare(&sql) else {
        return Vec::new();
    };
    statement
        .query_map([], |row| {
            let explanation: String = row.get(10)?;
            Ok(RequestRow {
                alarm_key: row.get(0)?,
                source: row.get(1)?,
                asset: row.get(2)?,
                fault_kind: row.get(3)?,
                severity: row.get(4)?,
                category: row.get(5)?,
                urgency: row.get(6)?,
                audience: row.get(7)?,
                forecast_ms: row.get(8)?,
                forecast_uncertainty_ms: row.get(9)?,
                explanation: serde_json::from_str(&explanation).unwrap_or(Json::Null),
                state: row.get(11)?,
                opened_ms: row.get(12)?,
                closed_ms: row.get(13)?,
            })
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn query_i64(db: &Path, sql: &str) -> Option<i64> {
    open_db(db)?
        .query_row(sql, [], |row| row.get::<_, Option<i64>>(0))
        .optional()
        .ok()
        .flatten()
        .flatten()
}

#[test]
fn drifting_bearing_forecast_before_limit() {
    harness::require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let device_port = free_port();
    // 10 counts of 0.1 degC per second: the bearing reaches 90 degC about 30 s after start.
    let _device = DriftingDevice::start(
        dir.path(),
        device_port,
        &pump_units(),
        &format!("1:{BEARING_REGISTER}:10"),
    );
    let detect = "forecast_window_secs = 20\nforecast_min_points = 15\nforecast_max_points = \
                  100\nforecast_horizon_secs = 600\ncooldown_secs = 600";
    let (config, _) = write_config(dir.path(), device_port, "", detect);
    let log = dir.path().join("gateway.log");
    let gateway = Gateway::start(&config, &log);
    let db = dir.path().join("caretaker.db");

    let crossing_sql = format!(
        "SELECT min(source_ts_ms) FROM readings_view WHERE sensor_id = '{BEARING}' \
         AND quality = 'good' AND value >= {BEARING_LIMIT}"
    );
    let crossed = wait_until(Duration::from_secs(120), || {
        query_i64(&db, &crossing_sql).is_some()
    });
    assert!(
        crossed,
        "the bearing never reached its limit: {}",
        read_log(&log)
    );
    let crossing_ms = query_i64(&db, &crossing_sql).unwrap();

    // The limit alarm follows the crossing, so once it is open the engine has scored every
    // reading up to the crossing and beyond.
    let limit_open = wait_until(Duration::from_secs(60), || {
        !requests(&db, "fault_kind = 'limit_high'").is_empty()
    });
    assert!(
        limit_open,
        "no limit_high request after the crossing: {}",
        read_log(&log)
    );

    let forecasts = requests(&db, "source = 'forecast'");
    assert_eq!(forecasts.len(), 1, "{forecasts:#?}\n{}", read_log(&log));
    let request = &forecasts[0];
    assert!(
        request.opened_ms < crossing_ms,
        "the forecast request opened at {} ms, not before the crossing at {crossing_ms} ms",
        request.opened_ms
    );
    assert_eq!(
        request.alarm_key,
        "forecast/heating-pump-1/bearing_temperature"
    );
    assert_eq!(request.fault_kind, "forecast_high");
    assert_eq!(request.asset, "heating-pump-1");
    assert_eq!(request.category, "heating");
    assert_eq!(request.severity, "warning");
    assert_eq!(request.audience, "operator");
    assert_eq!(
        request.urgency, "urgent",
        "a crossing within a day is urgent"
    );
    assert_eq!(request.state, "open");
    assert_eq!(request.closed_ms, None);

    let predicted = request.forecast_ms.expect("a forecast date");
    let uncertainty = request
        .forecast_uncertainty_ms
        .expect("a forecast uncertainty");
    assert!(uncertainty >= 0, "uncertainty {uncertainty} ms");
    let error_ms = (predicted - crossing_ms).abs();
    assert!(
        error_ms <= 10_000,
        "predicted crossing {predicted} ms is {error_ms} ms from the actual {crossing_ms} ms"
    );

    let explanation = &request.explanation;
    assert_eq!(explanation["detector"], "forecast", "{explanation:#}");
    assert_eq!(explanation["forecast"]["crossing_ms"], json!(predicted));
    assert_eq!(
        explanation["forecast"]["uncertainty_ms"],
        json!(uncertainty)
    );
    assert!(
        explanation["sensors"]
            .as_array()
            .is_some_and(|sensors| sensors.contains(&json!(BEARING))),
        "{explanation:#}"
    );
    let slope = explanation["detail"]["slope_per_hour"]
        .as_f64()
        .unwrap_or(0.0);
    // 1 degC per second is 3600 degC per hour.
    assert!(slope > 1800.0, "slope {slope} degC/h");
    assert!(slope < 7200.0, "slope {slope} degC/h");
    assert_eq!(explanation["detail"]["limit"], json!(BEARING_LIMIT));

    let events = query_i64(
        &db,
        "SELECT count(*) FROM anomaly_events WHERE detector = 'forecast' AND closed_ms IS NULL \
         AND alarm_key = 'forecast/heating-pump-1/bearing_temperature'",
    );
    assert_eq!(events, Some(1));
    let raises = query_i64(
        &db,
        "SELECT count(*) FROM audit WHERE action = 'detect.raise' \
         AND subject = 'forecast/heating-pump-1/bearing_temperature'",
    );
    assert_eq!(raises, Some(1));
    assert_eq!(gateway.terminate().code(), Some(0), "{}", read_log(&log));
}

#[test]
fn offline_device_opens_one_request() {
    harness::require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let device_port = free_port();
    let device =
        harness::PyDevice::start(dir.path(), harness::Serve::Tcp(device_port), pump_units());
    let modbus_extra = "timeout_ms = 300\nretries = 0\noffline_after = 2\nbackoff_max_ms = 1000";
    let (config, http_port) = write_config(
        dir.path(),
        device_port,
        modbus_extra,
        "stale_after_secs = 3600",
    );
    let log = dir.path().join("gateway.log");
    let db = dir.path().join("caretaker.db");
    let key = "health/pump-1/device_offline";
    let filter = format!("alarm_key = '{key}'");

    let gateway = Gateway::start(&config, &log);
    let polled = wait_until(Duration::from_secs(30), || {
        query_i64(&db, "SELECT count(*) FROM readings WHERE quality = 0").unwrap_or(0) > 20
    });
    assert!(polled, "no readings from the pump: {}", read_log(&log));
    assert!(requests(&db, &filter).is_empty(), "offline before silence");

    device.silence(1, true);
    let opened = wait_until(Duration::from_secs(60), || {
        requests(&db, &filter).iter().any(|r| r.state == "open")
    });
    assert!(opened, "no request for the silent pump: {}", read_log(&log));
    let request = requests(&db, &filter).remove(0);
    assert_eq!(request.source, "health");
    assert_eq!(request.fault_kind, "device_offline");
    assert_eq!(request.severity, "critical");
    assert_eq!(request.audience, "operator");
    assert_eq!(request.asset, "heating-pump-1");
    assert_eq!(request.category, "heating");
    assert_eq!(request.explanation["detail"]["device"], "pump-1");
    // The gauge follows the commit, so it may lag the row by a moment.
    let counted = wait_until(Duration::from_secs(10), || {
        let text = metrics(http_port);
        text.contains("caretaker_anomaly_events_total{kind=\"device_offline\"} 1")
            && text.contains("caretaker_requests_open 1")
    });
    assert!(counted, "{}", metrics(http_port));

    // A restart while the pump is still silent keeps the one open request.
    assert_eq!(gateway.terminate().code(), Some(0), "{}", read_log(&log));
    let cursor_before = query_i64(&db, "SELECT value FROM meta WHERE key = 'detect_cursor'")
        .expect("a detection cursor after the first run");
    let log_after = dir.path().join("gateway-restarted.log");
    let gateway = Gateway::start(&config, &log_after);
    let started = wait_until(Duration::from_secs(30), || {
        read_log(&log_after).contains("detection started")
    });
    assert!(started, "{}", read_log(&log_after));
    let resumed = read_log(&log_after);
    assert!(
        resumed.contains(&format!("cursor={cursor_before}")),
        "detection did not resume after reading {cursor_before}: {resumed}"
    );
    // Longer than the minimum duration and several health checks.
    std::thread::sleep(Duration::from_secs(5));
    let during = requests(&db, &filter);
    assert_eq!(during.len(), 1, "{during:#?}");
    assert_eq!(during[0].state, "open");

    device.silence(1, false);
    let closed = wait_until(Duration::from_secs(60), || {
        requests(&db, &filter).iter().all(|r| r.state == "closed")
    });
    assert!(
        closed,
        "the request did not close: {}",
        read_log(&log_after)
    );
    let after = requests(&db, &filter);
    assert_eq!(after.len(), 1, "{after:#?}");
    let closed_ms = after[0].closed_ms.expect("a close time");
    assert!(closed_ms > after[0].opened_ms);

    let stale = requests(&db, "fault_kind = 'sensor_stale'");
    assert!(
        stale.is_empty(),
        "sensors of an offline device opened requests: {stale:#?}"
    );
    let clears = query_i64(
        &db,
        &format!("SELECT count(*) FROM audit WHERE action = 'detect.clear' AND subject = '{key}'"),
    );
    assert_eq!(clears, Some(1));
    let open_events = query_i64(
        &db,
        &format!("SELECT count(*) FROM anomaly_events WHERE {filter} AND closed_ms IS NULL"),
    );
    assert_eq!(open_events, Some(0));
    assert_eq!(
        gateway.terminate().code(),
        Some(0),
        "{}",
        read_log(&log_after)
    );
}
