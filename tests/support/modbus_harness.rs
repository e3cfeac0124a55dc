//! Shared pieces of the Modbus integration tests: a pymodbus device, a gateway with its
//! store in a temporary folder, and queries on the stored rows.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caretaker::config::{Diagnostics, TomlFile};
use caretaker::metrics::Metrics;
use caretaker::modbus::{self, ModbusHandle};
use caretaker::store::{self, StoreHandle, StoreOptions, StoreWriter};
use caretaker::time::{SystemClock, TimeKeeper, TimePolicy};
use serde_json::{json, Value as Json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SETUP_HINT: &str =
    "run the test command from the README, which installs python3, pymodbus and socat";

/// Returns the Python that runs the pymodbus device: `CARETAKER_TEST_PYTHON`, which the
/// README's test command sets to its virtual environment, or else `python3` from PATH.
fn python() -> String {
    std::env::var("CARETAKER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Fails the test, with the way to fix it, when python3 with pymodbus is missing.
pub fn require_pymodbus() {
    let status = Command::new(python())
        .args(["-c", "import pymodbus, serial"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => {}
        _ => panic!("python3 with pymodbus and pyserial is not available; {SETUP_HINT}"),
    }
}

/// Fails the test, with the way to fix it, when socat is missing.
pub fn require_socat() {
    let status = Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => {}
        _ => panic!("socat is not available; {SETUP_HINT}"),
    }
}

/// Returns a loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pymodbus_device.py")
}

/// Where the pymodbus device serves.
pub enum Serve<'a> {
    Tcp(u16),
    Serial(&'a Path),
}

/// A pymodbus device in its own process, controlled over its stdin and stdout.
pub struct PyDevice {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl PyDevice {
    /// Starts the device with `units` (see the script's documentation) and waits until it
    /// serves.
    pub fn start(dir: &Path, serve: Serve<'_>, units: Json) -> PyDevice {
        let config = dir.join(format!("pymodbus-{}.json", fastrand::u32(..)));
        std::fs::write(&config, serde_json::to_vec(&units).unwrap()).unwrap();
        let mut command = Command::new(python());
        command.arg(script()).arg("--config").arg(&config);
        match serve {
            Serve::Tcp(port) => command.arg("--tcp").arg(port.to_string()),
            Serve::Serial(path) => command.arg("--serial").arg(path),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start python3: {error}; {SETUP_HINT}"));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "pymodbus device did not start");
        PyDevice {
            child,
            io: Mutex::new((stdin, stdout)),
        }
    }

    fn command(&self, command: Json) -> Json {
        let mut io = self.io.lock().unwrap();
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let reply: Json =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("bad reply {line:?}"));
        assert_eq!(reply["ok"], json!(true), "{command} failed: {reply}");
        reply
    }

    /// Reads values from the device's datastore: `table` is coils, discrete_inputs, holding
    /// or input.
    pub fn get(&self, unit: u8, table: &str, address: u16, count: u16) -> Vec<i64> {
        let reply = self.command(
            json!({"op": "get", "unit": unit, "table": table, "address": address, "count": count}),
        );
        reply["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    pub fn set(&self, unit: u8, table: &str, address: u16, values: &[i64]) {
        self.command(json!({"op": "set", "unit": unit, "table": table, "address": address, "values": values}));
    }

    /// Makes a unit stop or start replying.
    pub fn silence(&self, unit: u8, silent: bool) {
        self.command(json!({"op": "silence", "unit": unit, "silent": silent}));
    }
}

impl Drop for PyDevice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway's Modbus ingest with a real store in a temporary folder.
pub struct Gateway {
    pub handle: ModbusHandle,
    pub metrics: Arc<Metrics>,
    pub db: PathBuf,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    store: Option<StoreHandle>,
    writer: Option<StoreWriter>,
}

impl Gateway {
    /// Writes `maps` (file name and text) and the gateway config `config` (the `[modbus]`
    /// section) into `dir`, loads them with the gateway's own loader and starts polling.
    pub fn start(dir: &Path, config: &str, maps: &[(&str, &str)]) -> Gateway {
        std::fs::create_dir_all(dir.join("devices")).unwrap();
        for (name, text) in maps {
            std::fs::write(dir.join("devices").join(name), text).unwrap();
        }
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut diags = Diagnostics::default();
        let file = TomlFile::load(&config_path, &mut diags);
        let file = file.unwrap_or_else(|| panic!("config does not parse:\n{diags}"));
        let setup = modbus::load(&file, dir, &mut diags);
        assert!(diags.is_empty(), "config problems:\n{diags}");
        let setup = setup.expect("a [modbus] section");
        let keeper = Arc::new(TimeKeeper::new(
            Arc::new(SystemClock::new()),
            TimePolicy::default(),
        ));
        let metrics = Arc::new(Metrics::new());
        let db = dir.join("caretaker.db");
        let (store, writer) = store::open(
            StoreOptions::new(&db),
            Arc::clone(&keeper),
            Arc::clone(&metrics),
        )
        .expect("store opens");
        let cancel = CancellationToken::new();
        let (handle, tasks) = modbus::spawn(
            setup,
            store.clone(),
            keeper,
            Arc::clone(&metrics),
            cancel.clone(),
        );
        Gateway {
            handle,
            metrics,
            db,
            cancel,
            tasks,
            store: Some(store),
            writer: Some(writer),
        }
    }

    /// Stops polling, waits for the last batches to commit and stops the store. Clones of
    /// `handle` hold the store open, so drop them first.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            task.await.expect("modbus task ended cleanly");
        }
        self.store.take();
        let writer = self.writer.take();
        // The handle keeps a store handle too; drop the gateway's last references first.
        drop(self);
        if let Some(writer) = writer {
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .unwrap();
        }
    }

    /// Returns the value of a metric sample, such as `caretaker_modbus_polls_total{device="a",outcome="ok"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics.render();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// One row of `readings_view`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub sensor_id: String,
    pub asset: String,
    pub metric: String,
    pub unit: String,
    pub source: String,
    pub value: Option<f64>,
    pub text_value: Option<String>,
    pub quality: String,
    pub source_ts_ms: i64,
    pub receive_ts_ms: i64,
    pub detail: Option<String>,
}

/// Returns every stored row of one sensor, oldest first.
pub fn rows(db: &Path, sensor_id: &str) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT sensor_id, asset, metric, unit, source, value, text_value, quality, \
             source_ts_ms, receive_ts_ms, detail FROM readings_view WHERE sensor_id = ?1 \
             ORDER BY receive_ts_ms, id",
        )
        .unwrap();
    statement
        .query_map([sensor_id], |row| {
            Ok(Row {
                sensor_id: row.get(0)?,
                asset: row.get(1)?,
                metric: row.get(2)?,
                unit: row.get(3)?,
                source: row.get(4)?,
                value: row.get(5)?,
                text_value: row.get(6)?,
                quality: row.get(7)?,
                source_ts_ms: row.get(8)?,
                receive_ts_ms: row.get(9)?,
                detail: row.get(10)?,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Returns the rows of one sensor with good quality.
pub fn good_rows(db: &Path, sensor_id: &str) -> Vec<Row> {
    rows(db, sensor_id)
        .into_iter()
        .filter(|row| row.quality == "good")
        .collect()
}

/// Returns every audit row with action `modbus.write`: actor, subject and detail.
pub fn write_audits(db: &Path) -> Vec<(String, String, Json)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT actor, subject, detail FROM audit WHERE action = 'modbus.write' ORDER BY id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            let detail: String = row.get(2)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                serde_json::from_str(&detail).unwrap(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Waits until `condition` holds, checking every 100 ms, and fails after `limit` with
/// `what`.
pub async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Arranges the big-endian bytes of a value into registers in wire order. The orders are
/// written out here rather than taken from the gateway's codec, so the tests check the
/// codec independently.
pub fn wire(order: &str, be_bytes: &[u8]) -> Vec<u16> {
    let words: Vec<u16> = be_bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    match order {
        "ABCD" => words,
        "CDAB" => words.into_iter().rev().collect(),
        "BADC" => words.into_iter().map(u16::swap_bytes).collect(),
        "DCBA" => words.into_iter().rev().map(u16::swap_bytes).collect(),
        other => panic!("unknown order {other}"),
    }
}
