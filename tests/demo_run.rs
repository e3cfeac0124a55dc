//! `caretaker demo` as a user runs it: the real binary, a short run, the JSON summary. Every
//! stage must have produced something, with the embedded broker and with a real Mosquitto.

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::process::{Command, Output};
use std::sync::Mutex;

use mosquitto::Mosquitto;
use serde_json::Value;

/// Demos run one at a time: each keeps both cores busy, and two at once would slow the
/// gateway's detection behind its accelerated clock.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Options of a short run: 40 real seconds at 240 times real time, 160 simulated minutes.
const SHORT_RUN: [&str; 6] = ["--duration", "40", "--speed", "240", "--step", "20"];

fn run_demo(extra: &[&str]) -> (Output, Value) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(env!("CARGO_BIN_EXE_caretaker"))
        .arg("demo")
        .arg("--json")
        .args(SHORT_RUN)
        .args(extra)
        .output()
        .expect("run caretaker demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not one JSON summary ({err}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, summary)
}

/// Returns each stage's name, count and status.
fn stages(summary: &Value) -> Vec<(String, u64, String)> {
    summary["stages"]
        .as_array()
        .expect("stages is an array")
        .iter()
        .map(|stage| {
            (
                stage["name"].as_str().unwrap().to_string(),
                stage["count"].as_u64().unwrap(),
                stage["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_every_stage_produced(output: &Output, summary: &Value) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stages = stages(summary);
    let names: Vec<&str> = stages.iter().map(|(name, _, _)| name.as_str()).collect();
    for expected in [
        "readings_modbus",
        "readings_mqtt",
        "anomalies",
        "tenant_messages_triaged",
        "tickets",
        "vendor_bookings",
        "tenant_updates",
        "escalations",
        "events_synced",
    ] {
        assert!(
            names.contains(&expected),
            "no stage {expected} in {names:?}"
        );
    }
    for (name, count, status) in &stages {
        assert_eq!(status, "ok", "stage {name} is {status}; stderr:\n{stderr}");
        assert!(*count > 0, "stage {name} counted 0");
    }
    assert!(
        output.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        output.status
    );
    assert_eq!(summary["counts"]["tenant_messages"].as_u64(), Some(7));
    assert!(
        summary["problems"].as_array().unwrap().is_empty(),
        "{summary}"
    );
}

#[test]
fn demo_embedded_broker_every_stage() {
    let (output, summary) = run_demo(&[]);
    assert_every_stage_produced(&output, &summary);
    assert_eq!(summary["broker"], "embedded");
    assert_eq!(summary["data"], "simulation");
    let dashboard = summary["dashboard_url"].as_str().expect("a dashboard URL");
    assert!(dashboard.starts_with("http://127.0.0.1:"), "{dashboard}");
}

#[test]
fn demo_with_mosquitto_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let address = format!("127.0.0.1:{}", broker.port);
    let (output, summary) = run_demo(&["--broker", &address]);
    assert_every_stage_produced(&output, &summary);
    assert_eq!(summary["broker"], address.as_str());
    let log = broker.log();
    assert!(
        log.contains("caretaker-demo-building"),
        "the gateway never connected to Mosquitto:\n{log}"
    );
}

#[test]
fn demo_replays_recorded_skab_run() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("valve1");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut csv = String::from(
        "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;\
         Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint\n",
    );
    for row in 0..400 {
        // A closing valve from row 250: flow falls and pressure rises.
        let fault = if row >= 250 { 1.0 } else { 0.0 };
        let wobble = ((row * 7919) % 13) as f64 / 1000.0;
        csv.push_str(&format!(
            "2020-03-09 10:{:02}:{:02};{:.4};{:.4};{:.4};{:.4};{:.4};{:.4};{:.4};{:.4};{fault};0\n",
            14 + row / 60,
            row % 60,
            0.026 + wobble,
            0.040 + wobble,
            1.33 + wobble,
            0.3 + wobble + 0.5 * fault,
            79.3 + wobble,
            26.0 + wobble,
            233.0 + wobble,
            32.0 + wobble - 12.0 * fault,
        ));
    }
    std::fs::write(run_dir.join("0.csv"), csv).unwrap();
    let data = dir.path().to_str().unwrap();
    let (output, summary) = run_demo(&["--data", data]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(summary["data"], data);
    let stages = stages(&summary);
    let modbus = stages
        .iter()
        .find(|(name, _, _)| name == "readings_modbus")
        .expect("a readings_modbus stage");
    assert_eq!(modbus.2, "ok", "stderr:\n{stderr}");
    // Each row is served for one poll, so about one reading per row and point arrives.
    assert!(modbus.1 >= 8 * 100, "only {} Modbus readings", modbus.1);
    let empty: Vec<&str> = stages
        .iter()
        .filter(|(_, _, status)| status == "empty")
        .map(|(name, _, _)| name.as_str())
        .collect();
    if output.status.success() {
        assert!(empty.is_empty(), "exit 0 with empty stages {empty:?}");
    } else {
        assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
        for name in &empty {
            assert!(
                stderr.contains(name),
                "stderr does not name {name}:\n{stderr}"
            );
        }
    }
}
