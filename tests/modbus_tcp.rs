//! Modbus TCP ingest against pymodbus as an independent device, end to end into SQLite.
//!
//! Field reports reproduced here:
//! - influxdata/telegraf #8855: float32 with the low word first;
//! - joklee/ha_daikin_altherma4_modbus #36: int16 sign applied before the scale;
//! - influxdata/telegraf #8111 and pymodbus-dev/pymodbus #454: 64-bit values and byte orders;
//! - influxdata/telegraf #14671: one failing block must not cost the rest of the poll;
//! - kellerza/sunsynk PR #658: a truncated reply must not merge with old registers.

#[path = "support/modbus_harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caretaker::modbus::WriteError;
use harness::{
    free_port, good_rows, require_pymodbus, rows, wait_until, wire, write_audits, Gateway,
    PyDevice, Serve,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn device_header(kind: &str) -> String {
    format!(
        "[device]\nkind = \"{kind}\"\nmanufacturer = \"Test\"\nmodel = \"pymodbus\"\nasset_kind = \"meter\"\n"
    )
}

/// Poll timing of most devices in these tests: fast polls, generous timeouts.
const FAST: &str = "poll_interval_ms = 200\ntimeout_ms = 2000\nbackoff_max_ms = 1000";

fn tcp_device(name: &str, map: &str, unit: u8, port: u16, timing: &str) -> String {
    format!(
        "[[modbus.device]]\nname = \"{name}\"\nmap = \"devices/{map}\"\nunit_id = {unit}\n\
         transport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n{timing}\n\n"
    )
}

enum Expected {
    Number(f64, f64),
    Text(&'static str),
    NotANumber,
}

struct Case {
    name: String,
    fields: String,
    words: Vec<u16>,
    expected: Expected,
}

fn case(name: &str, fields: &str, words: Vec<u16>, expected: Expected) -> Case {
    Case {
        name: name.to_string(),
        fields: fields.to_string(),
        words,
        expected,
    }
}

/// Builds one holding-register point per type, order and field case.
fn register_cases() -> Vec<Case> {
    let mut cases = vec![
        // Float32 0x436E9BD4 in all four orders: the meter voltage of the telegraf report.
        case(
            "f32_abcd",
            "type = \"f32\"\norder = \"ABCD\"",
            vec![0x436E, 0x9BD4],
            Expected::Number(238.6087, 0.001),
        ),
        case(
            "f32_cdab",
            "type = \"f32\"\norder = \"CDAB\"",
            vec![0x9BD4, 0x436E],
            Expected::Number(238.6087, 0.001),
        ),
        case(
            "f32_badc",
            "type = \"f32\"\norder = \"BADC\"",
            vec![0x6E43, 0xD49B],
            Expected::Number(238.6087, 0.001),
        ),
        case(
            "f32_dcba",
            "type = \"f32\"\norder = \"DCBA\"",
            vec![0xD49B, 0x6E43],
            Expected::Number(238.6087, 0.001),
        ),
        // Int16 with scaling: sign first, then scale.
        case(
            "i16_minus_ten",
            "type = \"i16\"\nscale = 0.1",
            vec![0xFF9C],
            Expected::Number(-10.0, 1e-9),
        ),
        case(
            "u16_same_register",
            "type = \"u16\"\nscale = 0.1",
            vec![0xFF9C],
            Expected::Number(6543.6, 1e-9),
        ),
        case(
            "i16_minus_tenth",
            "type = \"i16\"\nscale = 0.01",
            vec![0xFFF6],
            Expected::Number(-0.1, 1e-9),
        ),
        case(
            "i16_offset",
            "type = \"i16\"\nscale = 0.1\noffset = -40.0",
            vec![600],
            Expected::Number(20.0, 1e-9),
        ),
        // 64-bit values of the Schneider meter report and the fully reversed double.
        case(
            "i64_energy",
            "type = \"i64\"",
            vec![0x0000, 0x0000, 0x0012, 0xD687],
            Expected::Number(1_234_567.0, 0.0),
        ),
        case(
            "f64_reversed",
            "type = \"f64\"\norder = \"DCBA\"",
            vec![0x7FFB, 0x3A70, 0xCE88, 0xFB3F],
            Expected::Number(1.7209, 0.0001),
        ),
        case(
            "f64_misread",
            "type = \"f64\"",
            vec![0x7FFB, 0x3A70, 0xCE88, 0xFB3F],
            Expected::NotANumber,
        ),
        case(
            "f32_frequency",
            "type = \"f32\"",
            vec![0x4248, 0x082E],
            Expected::Number(50.00799, 0.00001),
        ),
        case(
            "status_mode",
            "type = \"bitfield\"\nbit = 4\nbits = 3",
            vec![0x0050],
            Expected::Number(5.0, 0.0),
        ),
        case(
            "serial",
            "type = \"string\"\nlength = 4",
            vec![0x5055, 0x4D50, 0x2D37, 0x0000],
            Expected::Text("PUMP-7"),
        ),
    ];
    for order in ["ABCD", "CDAB", "BADC", "DCBA"] {
        let lower = order.to_lowercase();
        let typed = |type_name: &str| format!("type = \"{type_name}\"\norder = \"{order}\"");
        cases.push(case(
            &format!("u32_{lower}"),
            &typed("u32"),
            wire(order, &0x1234_5678u32.to_be_bytes()),
            Expected::Number(305_419_896.0, 0.0),
        ));
        cases.push(case(
            &format!("i32_{lower}"),
            &typed("i32"),
            wire(order, &(-123_456_789i32).to_be_bytes()),
            Expected::Number(-123_456_789.0, 0.0),
        ));
        cases.push(case(
            &format!("u64_{lower}"),
            &typed("u64"),
            wire(order, &1_234_567_890_123_456u64.to_be_bytes()),
            Expected::Number(1_234_567_890_123_456.0, 0.0),
        ));
        cases.push(case(
            &format!("i64_{lower}"),
            &typed("i64"),
            wire(order, &(-1_234_567_890_123i64).to_be_bytes()),
            Expected::Number(-1_234_567_890_123.0, 0.0),
        ));
        cases.push(case(
            &format!("f64_{lower}"),
            &typed("f64"),
            wire(order, &(-12_345.678f64).to_be_bytes()),
            Expected::Number(-12_345.678, 1e-9),
        ));
        cases.push(case(
            &format!("f32_{lower}_negative"),
            &typed("f32"),
            wire(order, &(-0.15625f32).to_be_bytes()),
            Expected::Number(-0.15625, 0.0),
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_order_decodes_into_store() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cases = register_cases();
    let mut map = device_header("energy-meter");
    let mut registers: Vec<u16> = Vec::new();
    for case in &cases {
        map.push_str(&format!(
            "\n[[point]]\nname = \"{}\"\nmetric = \"{}\"\nunit = \"1\"\ntable = \"holding_register\"\naddress = {}\n{}\n",
            case.name,
            case.name,
            registers.len(),
            case.fields
        ));
        registers.extend(&case.words);
    }
    map.push_str(
        "\n[[point]]\nname = \"ir_temperature\"\nmetric = \"temperature\"\nunit = \"degC\"\nreference = \"30001\"\ntype = \"i16\"\nscale = 0.01\n\
         \n[[point]]\nname = \"coil_on\"\nmetric = \"run\"\nunit = \"1\"\nreference = \"00001\"\ntype = \"bool\"\n\
         \n[[point]]\nname = \"coil_off\"\nmetric = \"run\"\nunit = \"1\"\nreference = \"00002\"\ntype = \"bool\"\n\
         \n[[point]]\nname = \"input_on\"\nmetric = \"fault\"\nunit = \"1\"\nreference = \"10001\"\ntype = \"bool\"\n",
    );
    let units = json!({"units": [{
        "id": 1,
        "holding": [[0, registers]],
        "input": [[0, [0xFFF6]]],
        "coils": [[0, [true, false]]],
        "discrete_inputs": [[0, [true]]],
    }]});
    let _device = PyDevice::start(dir.path(), Serve::Tcp(port), units);
    let gateway = Gateway::start(
        dir.path(),
        &tcp_device("meter", "types.toml", 1, port, FAST),
        &[("types.toml", &map)],
    );
    let db = gateway.db.clone();
    wait_until(WAIT, "a reading of every point", || {
        cases
            .iter()
            .all(|case| !rows(&db, &format!("meter.{}", case.name)).is_empty())
            && !rows(&db, "meter.input_on").is_empty()
    })
    .await;
    gateway.stop().await;

    for case in &cases {
        let sensor = format!("meter.{}", case.name);
        let row = rows(&db, &sensor).remove(0);
        assert_eq!(row.source, "modbus", "{sensor}");
        assert_eq!(row.asset, "meter", "{sensor}");
        match case.expected {
            Expected::Number(value, tolerance) => {
                assert_eq!(row.quality, "good", "{sensor}: {row:?}");
                let got = row
                    .value
                    .unwrap_or_else(|| panic!("{sensor} has no value: {row:?}"));
                assert!(
                    (got - value).abs() <= tolerance,
                    "{sensor}: got {got}, expected {value}"
                );
            }
            Expected::Text(text) => {
                assert_eq!(row.quality, "good", "{sensor}: {row:?}");
                assert_eq!(row.text_value.as_deref(), Some(text), "{sensor}");
            }
            Expected::NotANumber => {
                assert_eq!(row.quality, "bad", "{sensor}: {row:?}");
                assert_eq!(row.value, None, "{sensor}");
                assert!(
                    row.detail.as_deref().unwrap_or("").contains("NaN"),
                    "{sensor}: {row:?}"
                );
            }
        }
    }
    let temperature = rows(&db, "meter.ir_temperature").remove(0);
    assert_eq!(temperature.value, Some(-0.1));
    assert_eq!(temperature.unit, "degC");
    assert_eq!(temperature.metric, "temperature");
    assert_eq!(rows(&db, "meter.coil_on")[0].value, Some(1.0));
    assert_eq!(rows(&db, "meter.coil_off")[0].value, Some(0.0));
    assert_eq!(rows(&db, "meter.input_on")[0].value, Some(1.0));
}

/// Points at 1455..1461 exist on unit 1; 1466..1469 do not, so their read gets exception 2.
fn rack_map() -> String {
    let mut map = device_header("battery-rack");
    for address in 1455..=1461 {
        map.push_str(&format!(
            "\n[[point]]\nname = \"r{address}\"\nmetric = \"cell_voltage\"\nunit = \"mV\"\ntable = \"holding_register\"\naddress = {address}\ntype = \"u16\"\n"
        ));
    }
    for address in [1466, 1468] {
        map.push_str(&format!(
            "\n[[point]]\nname = \"r{address}\"\nmetric = \"module_energy\"\nunit = \"Wh\"\ntable = \"holding_register\"\naddress = {address}\ntype = \"u32\"\n"
        ));
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_block_leaves_others_stored() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let units = json!({"units": [
        {"id": 1, "holding": [[1455, [3301, 3302, 3303, 3304, 3305, 3306, 3307]]]},
        {"id": 2, "holding": [[1455, [1, 2, 3, 4, 5, 6, 7]], [1466, [0, 10, 0, 20]]]},
    ]});
    let _device = PyDevice::start(dir.path(), Serve::Tcp(port), units);
    let config = tcp_device("rack1", "rack.toml", 1, port, FAST)
        + &tcp_device("rack2", "rack.toml", 2, port, FAST);
    let rack = rack_map();
    let gateway = Gateway::start(dir.path(), &config, &[("rack.toml", &rack)]);
    let db = gateway.db.clone();
    wait_until(WAIT, "ten polls of both racks", || {
        good_rows(&db, "rack1.r1455").len() >= 10 && good_rows(&db, "rack2.r1466").len() >= 10
    })
    .await;
    let partial =
        gateway.metric("caretaker_modbus_polls_total{device=\"rack1\",outcome=\"partial\"}");
    let ok = gateway.metric("caretaker_modbus_polls_total{device=\"rack1\",outcome=\"ok\"}");
    gateway.stop().await;

    for address in 1455..=1461 {
        let stored = good_rows(&db, &format!("rack1.r{address}"));
        assert!(stored.len() >= 10, "rack1.r{address}: {}", stored.len());
        assert_eq!(stored[0].value, Some(f64::from(3301 + address - 1455)));
    }
    for address in [1466, 1468] {
        let sensor = format!("rack1.r{address}");
        let stored = rows(&db, &sensor);
        assert!(!stored.is_empty(), "{sensor} has no rows");
        for row in &stored {
            assert_eq!(row.quality, "bad", "{sensor}: {row:?}");
            assert_eq!(row.value, None, "{sensor}");
            assert_eq!(
                row.detail.as_deref(),
                Some("exception 2 (illegal data address)"),
                "{sensor}"
            );
        }
        // Retried with backoff, so fewer attempts than polls.
        assert!(
            stored.len() < good_rows(&db, "rack1.r1455").len(),
            "{sensor}: {}",
            stored.len()
        );
    }
    assert_eq!(good_rows(&db, "rack2.r1466")[0].value, Some(10.0));
    assert_eq!(good_rows(&db, "rack2.r1468")[0].value, Some(20.0));
    assert!(rows(&db, "rack2.r1455")
        .iter()
        .all(|row| row.quality == "good"));
    // Polls that tried the failing block are partial; the others, between its retries, are ok.
    assert!(partial.unwrap_or(0.0) >= 2.0, "partial polls: {partial:?}");
    assert!(
        partial.unwrap_or(0.0) + ok.unwrap_or(0.0) >= 10.0,
        "polls: {partial:?} partial, {ok:?} ok"
    );
}

/// Starts a listener that accepts connections and never replies, like a hung device, and
/// returns its port.
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open_streams = Vec::new();
        for stream in listener.incoming().flatten() {
            open_streams.push(stream);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_devices_do_not_delay_healthy_one() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let units = json!({"units": [{"id": 1, "input": [[0, [215]]]}]});
    let _device = PyDevice::start(dir.path(), Serve::Tcp(port), units);
    let map = device_header("circulation-pump")
        + "\n[[point]]\nname = \"temperature\"\nmetric = \"temperature\"\nunit = \"degC\"\nreference = \"30001\"\ntype = \"i16\"\nscale = 0.1\n";
    // A minute per attempt: a healthy device blocked behind these would store nothing in the
    // time this test waits.
    let slow = "poll_interval_ms = 200\ntimeout_ms = 60000\nretries = 0\nbackoff_max_ms = 60000";
    let refused_port = free_port();
    let config = tcp_device("healthy", "pump.toml", 1, port, FAST)
        + &tcp_device("refused", "pump.toml", 1, refused_port, slow)
        + &tcp_device("hanging", "pump.toml", 1, silent_listener(), slow);
    let gateway = Gateway::start(dir.path(), &config, &[("pump.toml", &map)]);
    let db = gateway.db.clone();
    wait_until(WAIT, "five polls of the healthy device", || {
        good_rows(&db, "healthy.temperature").len() >= 5
    })
    .await;
    wait_until(WAIT, "a failed poll of the refused device", || {
        !rows(&db, "refused.temperature").is_empty()
    })
    .await;

    let healthy = good_rows(&db, "healthy.temperature");
    assert_eq!(healthy[0].value, Some(21.5));
    let refused = rows(&db, "refused.temperature");
    assert_eq!(refused[0].quality, "bad");
    assert!(
        refused[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("cannot connect"),
        "{refused:?}"
    );
    assert!(rows(&db, "hanging.temperature").is_empty());
    // The hanging device's request is still waiting; dropping the gateway cancels it.
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_device_and_are_audited() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let units = json!({"units": [{
        "id": 1,
        "holding": [[0, [500, 0]]],
        "coils": [[0, [false]]],
        "input": [[0, [12]]],
    }]});
    let device = PyDevice::start(dir.path(), Serve::Tcp(port), units);
    let map = device_header("circulation-pump")
        + "\n[[point]]\nname = \"speed_setpoint\"\nmetric = \"speed_setpoint\"\nunit = \"%\"\nreference = \"40001\"\ntype = \"u16\"\nscale = 0.1\nwritable = true\n\
           \n[[point]]\nname = \"temperature_setpoint\"\nmetric = \"temperature_setpoint\"\nunit = \"degC\"\nreference = \"40002\"\ntype = \"i16\"\nscale = 0.1\nwritable = true\n\
           \n[[point]]\nname = \"run_command\"\nmetric = \"run_command\"\nunit = \"1\"\nreference = \"00001\"\ntype = \"bool\"\nwritable = true\n\
           \n[[point]]\nname = \"flow\"\nmetric = \"flow\"\nunit = \"m3/h\"\nreference = \"30001\"\ntype = \"u16\"\n";
    let gateway = Gateway::start(
        dir.path(),
        &tcp_device("pump", "pump.toml", 1, port, FAST),
        &[("pump.toml", &map)],
    );
    let handle = &gateway.handle;

    let outcome = handle
        .write("pump", "speed_setpoint", 42.5, "test")
        .await
        .expect("setpoint written");
    assert_eq!(outcome.raw, vec![425]);
    assert_eq!(device.get(1, "holding", 0, 1), vec![425]);
    handle
        .write("pump", "run_command", 1.0, "test")
        .await
        .expect("coil written");
    assert_eq!(device.get(1, "coils", 0, 1), vec![1]);
    handle
        .write("pump", "temperature_setpoint", -10.0, "test")
        .await
        .expect("signed setpoint written");
    assert_eq!(device.get(1, "holding", 1, 1), vec![0xFF9C]);

    let too_large = handle.write("pump", "speed_setpoint", 7000.0, "test").await;
    match &too_large {
        Err(WriteError::InvalidValue { .. }) => {
            let message = too_large.as_ref().unwrap_err().to_string();
            assert!(message.contains("70000"), "{message}");
        }
        other => panic!("expected an invalid value, got {other:?}"),
    }
    assert_eq!(device.get(1, "holding", 0, 1), vec![425]);
    let read_only = handle.write("pump", "flow", 1.0, "test").await;
    assert!(
        matches!(read_only, Err(WriteError::NotWritable { .. })),
        "{read_only:?}"
    );

    let db = gateway.db.clone();
    wait_until(WAIT, "the written setpoint read back", || {
        good_rows(&db, "pump.speed_setpoint")
            .iter()
            .any(|row| row.value == Some(42.5))
    })
    .await;
    let written = gateway.metric("caretaker_modbus_writes_total{device=\"pump\",outcome=\"ok\"}");
    gateway.stop().await;

    assert_eq!(written, Some(3.0));
    let audits = write_audits(&db);
    assert_eq!(audits.len(), 5, "{audits:#?}");
    let outcomes: Vec<&str> = audits
        .iter()
        .map(|(_, _, detail)| detail["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["written", "written", "written", "rejected", "rejected"]
    );
    let (actor, subject, detail) = &audits[0];
    assert_eq!(actor, "test");
    assert_eq!(subject, "pump.speed_setpoint");
    assert_eq!(detail["value"], json!(42.5));
    assert_eq!(detail["raw"], json!([425]));
    assert!(audits[3].2["error"].as_str().unwrap().contains("70000"));
}

/// Fault modes of the proxy: 0 forwards every reply, 1 replies to the u32 read with one
/// register (byte count 2), and 2 replies to it with byte count 5.
const FORWARD: u8 = 0;
const ONE_REGISTER: u8 = 1;
const ODD_BYTE_COUNT: u8 = 2;

/// Starts a TCP proxy in front of pymodbus that corrupts the reply to "read 2 holding
/// registers at 10" while `mode` is set, as a device with broken firmware would.
fn faulty_proxy(upstream: u16, mode: Arc<AtomicU8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let mode = Arc::clone(&mode);
            std::thread::spawn(move || {
                let _ = relay(client, upstream, &mode);
            });
        }
    });
    port
}

fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 7];
    stream.read_exact(&mut header)?;
    let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let mut rest = vec![0u8; length.saturating_sub(1)];
    stream.read_exact(&mut rest)?;
    Ok([header.to_vec(), rest].concat())
}

fn relay(mut client: TcpStream, upstream: u16, mode: &AtomicU8) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    loop {
        let request = read_frame(&mut client)?;
        server.write_all(&request)?;
        let reply = read_frame(&mut server)?;
        let is_target =
            request.len() == 12 && request[7] == 0x03 && request[8..12] == [0, 10, 0, 2];
        let reply = match mode.load(Ordering::SeqCst) {
            ONE_REGISTER if is_target => {
                // Byte count 2 and the single register 0x0009, with a consistent MBAP length.
                [&request[..4], &[0, 5, request[6], 0x03, 2, 0x00, 0x09]].concat()
            }
            ODD_BYTE_COUNT if is_target => {
                [&request[..4], &[0, 8, request[6], 0x03, 5, 0, 9, 0, 7, 0]].concat()
            }
            _ => reply,
        };
        client.write_all(&reply)?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_length_reply_never_merges() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let units = json!({"units": [{"id": 1, "holding": [[10, [0, 7]], [20, [99]]]}]});
    let _device = PyDevice::start(dir.path(), Serve::Tcp(port), units);
    let mode = Arc::new(AtomicU8::new(FORWARD));
    let proxy = faulty_proxy(port, Arc::clone(&mode));
    let map = device_header("energy-meter")
        + "\n[[point]]\nname = \"energy\"\nmetric = \"energy\"\nunit = \"Wh\"\ntable = \"holding_register\"\naddress = 10\ntype = \"u32\"\n\
           \n[[point]]\nname = \"other\"\nmetric = \"other\"\nunit = \"1\"\ntable = \"holding_register\"\naddress = 20\ntype = \"u16\"\n";
    let gateway = Gateway::start(
        dir.path(),
        &tcp_device("meter", "meter.toml", 1, proxy, FAST),
        &[("meter.toml", &map)],
    );
    let db = gateway.db.clone();
    wait_until(WAIT, "a good energy reading", || {
        !good_rows(&db, "meter.energy").is_empty()
    })
    .await;

    mode.store(ONE_REGISTER, Ordering::SeqCst);
    let stale_count = |detail: &str| {
        rows(&db, "meter.energy")
            .iter()
            .filter(|row| {
                row.quality == "stale" && row.detail.as_deref().unwrap_or("").contains(detail)
            })
            .count()
    };
    wait_until(WAIT, "two rejected one-register replies", || {
        stale_count("expected 2") >= 2
    })
    .await;
    let other_before = good_rows(&db, "meter.other").len();
    mode.store(ODD_BYTE_COUNT, Ordering::SeqCst);
    wait_until(WAIT, "a rejected odd byte count", || {
        stale_count("invalid quantity") >= 1
    })
    .await;
    wait_until(WAIT, "the other block read during the faults", || {
        good_rows(&db, "meter.other").len() > other_before + 3
    })
    .await;
    gateway.stop().await;

    let energy = rows(&db, "meter.energy");
    for row in &energy {
        assert_eq!(
            row.value,
            Some(7.0),
            "a value other than the device's 7 was stored: {row:?}"
        );
        assert!(row.quality == "good" || row.quality == "stale", "{row:?}");
    }
    assert!(good_rows(&db, "meter.other")
        .iter()
        .all(|row| row.value == Some(99.0)));
}

/// Reproduces pymodbus-dev/pymodbus #490: a read of more than 125 registers must be split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_registers_all_correct() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let values: Vec<u16> = (0..200).map(|i| i * 3).collect();
    let units = json!({"units": [{"id": 1, "holding": [[0, values]]}]});
    let _device = PyDevice::start(dir.path(), Serve::Tcp(port), units);
    let mut map = device_header("energy-meter");
    for address in 0..200 {
        map.push_str(&format!(
            "\n[[point]]\nname = \"h{address}\"\nmetric = \"m\"\nunit = \"1\"\ntable = \"holding_register\"\naddress = {address}\ntype = \"u16\"\n"
        ));
    }
    let gateway = Gateway::start(
        dir.path(),
        &tcp_device("big", "big.toml", 1, port, FAST),
        &[("big.toml", &map)],
    );
    let db = gateway.db.clone();
    wait_until(WAIT, "three polls of the last register", || {
        good_rows(&db, "big.h199").len() >= 3
    })
    .await;
    let partial =
        gateway.metric("caretaker_modbus_polls_total{device=\"big\",outcome=\"partial\"}");
    gateway.stop().await;

    for address in 0..200u16 {
        let stored = rows(&db, &format!("big.h{address}"));
        assert!(!stored.is_empty(), "big.h{address} has no rows");
        for row in &stored {
            assert_eq!(row.quality, "good", "big.h{address}: {row:?}");
            assert_eq!(row.value, Some(f64::from(address * 3)), "big.h{address}");
        }
    }
    assert_eq!(partial, None, "a poll had a failed block");
}
