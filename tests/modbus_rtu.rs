//! Modbus RTU ingest over a socat pty pair, with pymodbus serving several units on the far
//! end of the line.
//!
//! Reproduces node-red-contrib-modbus #288 and home-assistant/core #122607: one silent unit
//! on an RS-485 line must not stall the other units or block a write to them.

#[path = "support/modbus_harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{
    good_rows, require_pymodbus, require_socat, rows, wait_until, Gateway, PyDevice, Serve,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const UNITS: [u8; 6] = [2, 3, 4, 5, 6, 7];
const SILENT_UNIT: u8 = 5;

/// Two linked pseudo-terminals, as a serial cable between the gateway and the devices.
struct PtyPair {
    child: Child,
    gateway_end: PathBuf,
    device_end: PathBuf,
}

impl PtyPair {
    fn start(dir: &Path) -> PtyPair {
        let gateway_end = dir.join("ttyGateway");
        let device_end = dir.join("ttyDevices");
        let child = Command::new("socat")
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", gateway_end.display()))
            .arg(format!("pty,raw,echo=0,link={}", device_end.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(gateway_end.exists() && device_end.exists()) {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty pair"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PtyPair {
            child,
            gateway_end,
            device_end,
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UNIT_MAP: &str = "[device]
kind = \"energy-meter\"
manufacturer = \"Test\"
model = \"pymodbus\"
asset_kind = \"meter\"

[[point]]
name = \"voltage\"
metric = \"voltage\"
unit = \"V\"
reference = \"30001\"
type = \"f32\"
order = \"CDAB\"

[[point]]
name = \"unit_number\"
metric = \"unit_number\"
unit = \"1\"
reference = \"30003\"
type = \"i16\"
scale = 0.1

[[point]]
name = \"relay\"
metric = \"relay\"
unit = \"1\"
reference = \"00001\"
type = \"bool\"
writable = true
";

fn gateway_config(port: &Path) -> String {
    let mut config = String::new();
    for unit in UNITS {
        config.push_str(&format!(
            "[[modbus.device]]\nname = \"u{unit}\"\nmap = \"devices/unit.toml\"\nunit_id = {unit}\n\
             transport = \"rtu\"\nport = \"{}\"\nbaud_rate = 19200\nparity = \"none\"\n\
             poll_interval_ms = 1000\ntimeout_ms = 300\nbackoff_max_ms = 4000\noffline_after = 3\n\n",
            port.display()
        ));
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_unit_does_not_stall_line() {
    require_pymodbus();
    require_socat();
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::start(dir.path());
    let units: Vec<_> = UNITS
        .iter()
        .map(|&unit| {
            json!({
                "id": unit,
                // 238.6087 V as a float with the low word first, then the unit id times 10.
                "input": [[0, [0x9BD4, 0x436E, u16::from(unit) * 10]]],
                "coils": [[0, [false]]],
            })
        })
        .collect();
    let device = PyDevice::start(
        dir.path(),
        Serve::Serial(&pty.device_end),
        json!({"units": units, "silent": [SILENT_UNIT]}),
    );
    let gateway = Gateway::start(
        dir.path(),
        &gateway_config(&pty.gateway_end),
        &[("unit.toml", UNIT_MAP)],
    );
    let db = gateway.db.clone();
    let healthy: Vec<u8> = UNITS
        .iter()
        .copied()
        .filter(|&u| u != SILENT_UNIT)
        .collect();
    wait_until(WAIT, "three polls of every answering unit", || {
        healthy
            .iter()
            .all(|unit| good_rows(&db, &format!("u{unit}.unit_number")).len() >= 3)
    })
    .await;
    wait_until(WAIT, "three failed polls of the silent unit", || {
        gateway
            .metric("caretaker_modbus_polls_total{device=\"u5\",outcome=\"failed\"}")
            .unwrap_or(0.0)
            >= 3.0
    })
    .await;

    // A write to another unit goes through while the silent unit is configured.
    let outcome = gateway
        .handle
        .write("u3", "relay", 1.0, "test")
        .await
        .expect("coil written");
    assert_eq!(outcome.raw, vec![1]);
    assert_eq!(device.get(3, "coils", 0, 1), vec![1]);

    for &unit in &healthy {
        let numbers = good_rows(&db, &format!("u{unit}.unit_number"));
        // Each unit's own number: nothing of one unit is stored under another.
        assert!(
            numbers.iter().all(|row| row.value == Some(f64::from(unit))),
            "u{unit}: {numbers:?}"
        );
        let voltage = good_rows(&db, &format!("u{unit}.voltage"));
        let value = voltage[0].value.unwrap();
        assert!((value - 238.6087).abs() < 0.001, "u{unit}: {value}");
    }
    let silent_rows = rows(&db, "u5.unit_number");
    assert!(!silent_rows.is_empty());
    for row in &silent_rows {
        assert_eq!(row.quality, "bad", "{row:?}");
        assert_eq!(row.value, None);
        let detail = row.detail.as_deref().unwrap_or("");
        assert!(detail.contains("no reply within 300 ms"), "{detail}");
    }
    assert_eq!(
        gateway.metric("caretaker_modbus_device_online{device=\"u5\"}"),
        Some(0.0)
    );

    // The unit replies again and is polled back within one backoff period.
    device.silence(SILENT_UNIT, false);
    wait_until(WAIT, "the returned unit stored", || {
        !good_rows(&db, "u5.unit_number").is_empty()
    })
    .await;
    assert_eq!(good_rows(&db, "u5.unit_number")[0].value, Some(5.0));
    assert_eq!(
        gateway.metric("caretaker_modbus_device_online{device=\"u5\"}"),
        Some(1.0)
    );
    gateway.stop().await;
}
