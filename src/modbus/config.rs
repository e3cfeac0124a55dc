//! The `[modbus]` section of the gateway config and its loader.
//!
//! ```toml
//! [[modbus.device]]
//! name = "pump-1"
//! map = "devices/circulation-pump.toml"
//! asset = "pump-1"
//! unit_id = 1
//! transport = "tcp"
//! address = "192.0.2.10:502"
//!
//! [[modbus.device]]
//! name = "meter-1"
//! map = "devices/energy-meter.toml"
//! unit_id = 3
//! transport = "rtu"
//! port = "/dev/ttyUSB0"
//! baud_rate = 9600
//! ```
//!
//! Devices that name the same serial `port` share one line: one task owns the port and
//! polls its units in turn, so their serial settings must agree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml_edit::Item;

use crate::config::{Diagnostics, TomlFile};
use crate::modbus::map::{load_map, DeviceMap};

/// Default time between polls of one device.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 5_000;
/// Default wait for a reply before a request counts as timed out.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
/// Default extra attempts of a failed request within one poll.
pub const DEFAULT_RETRIES: u32 = 1;
/// Default upper bound of the wait between polls of an offline device.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 60_000;
/// Default number of consecutive failed polls after which a device counts as offline.
pub const DEFAULT_OFFLINE_AFTER: u32 = 3;
/// Default serial speed.
pub const DEFAULT_BAUD_RATE: u32 = 9_600;

/// Kind of transport to a device, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Modbus TCP to `address`.
    Tcp,
    /// Modbus RTU on the serial `port`.
    Rtu,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// One `[[modbus.device]]` entry as written in the gateway config.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceConfig {
    /// Device name, unique in the gateway, without dots; readings get the sensor id
    /// `NAME.POINT`. Required.
    pub name: String,
    /// Path of the device's register map, relative to the gateway config file's folder.
    /// Required.
    pub map: String,
    /// Asset the readings belong to, such as `pump-1`. Default: the device name.
    pub asset: Option<String>,
    /// Modbus unit id (slave address): 1 to 247 on RTU, 0 to 255 on TCP. Default: 1.
    pub unit_id: Option<i64>,
    /// `tcp` or `rtu`. Required.
    pub transport: TransportKind,
    /// TCP only: `host:port` of the device or gateway, such as `192.0.2.10:502`. Required
    /// for TCP.
    pub address: Option<String>,
    /// RTU only: serial device path, such as `/dev/ttyUSB0`. Required for RTU.
    pub port: Option<String>,
    /// RTU only: line speed in bit/s. Default: 9600.
    pub baud_rate: Option<u32>,
    /// RTU only: `none`, `even` or `odd`. Default: `even`, the Modbus serial line default.
    pub parity: Option<Parity>,
    /// RTU only: data bits per character; RTU frames need 8. Default: 8.
    pub data_bits: Option<u8>,
    /// RTU only: stop bits, 1 or 2. Default: 1.
    pub stop_bits: Option<u8>,
    /// RTU only: drop the copy of each request that some RS-485 converters echo back before
    /// the reply. Default: false.
    pub echo_suppression: Option<bool>,
    /// Time between the starts of two polls, in milliseconds. Default: 5000.
    pub poll_interval_ms: Option<u64>,
    /// Wait for one reply, in milliseconds, also used as the TCP connect timeout.
    /// Default: 1000.
    pub timeout_ms: Option<u64>,
    /// Extra attempts of a failed request within one poll. On RTU a timed-out request is not
    /// retried, because each retry would hold the shared line for another timeout.
    /// Default: 1.
    pub retries: Option<u32>,
    /// Upper bound of the growing wait between polls of an offline device, in milliseconds;
    /// at least `poll_interval_ms`. Default: 60000.
    pub backoff_max_ms: Option<u64>,
    /// Consecutive failed polls (no reply at all) after which the device counts as offline
    /// and is polled with backoff. Default: 3.
    pub offline_after: Option<u32>,
}

/// Settings of one serial line, shared by every device on its port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    pub port: PathBuf,
    pub baud_rate: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
    pub echo_suppression: bool,
}

/// Transport of a configured device, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Tcp { address: String },
    Rtu { line: SerialLine },
}

/// A checked device entry with its loaded map.
#[derive(Debug, Clone)]
pub struct DeviceSetup {
    pub name: String,
    pub asset: String,
    pub unit_id: u8,
    pub map: Arc<DeviceMap>,
    pub transport: Transport,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff_max: Duration,
    pub offline_after: u32,
}

/// Everything the Modbus ingest needs to start.
#[derive(Debug, Clone, Default)]
pub struct ModbusSetup {
    pub devices: Vec<DeviceSetup>,
}

/// Loads the `[modbus]` section of a gateway config and every map it references, with map
/// paths resolved from `base_dir`.
///
/// Returns `None` when the section is absent or has problems. Every problem is added to
/// `diags`, so a caller tells the two cases apart by whether `diags` grew.
pub fn load(file: &TomlFile, base_dir: &Path, diags: &mut Diagnostics) -> Option<ModbusSetup> {
    let section = file.get("modbus")?;
    let problems_before = diags.len();
    let entries = device_tables(file, section, diags);

    let mut maps: HashMap<PathBuf, Option<Arc<DeviceMap>>> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut lines = LineChecks::default();
    let mut devices = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let key_path = format!("modbus.device[{index}]");
        let Some(raw) = file.deserialize::<DeviceConfig>(&Item::Table(entry), &key_path, diags)
        else {
            continue;
        };
        let mut checker = EntryChecker {
            file,
            diags,
            index: index.to_string(),
        };
        if let Some(first) = names.get(&raw.name) {
            checker.report(
                "name",
                format!(
                    "duplicate device name `{}`; modbus.device[{first}] has it too",
                    raw.name
                ),
            );
        } else {
            names.insert(raw.name.clone(), index);
        }

        // Each map file is loaded once, however many devices use it.
        let map_path = base_dir.join(&raw.map);
        let map = maps
            .entry(map_path.clone())
            .or_insert_with(|| {
                let mut map_diags = Diagnostics::default();
                let loaded = load_map(&map_path, &mut map_diags).map(Arc::new);
                for diagnostic in map_diags.iter() {
                    checker.diags.push(diagnostic.clone());
                }
                loaded
            })
            .clone();

        let Some(device) = check_entry(raw, map, &mut checker) else {
            continue;
        };
        if let Transport::Rtu { line } = &device.transport {
            lines.check(index, line, device.unit_id, &mut checker);
        }
        devices.push(device);
    }

    if diags.len() > problems_before {
        return None;
    }
    Some(ModbusSetup { devices })
}

/// Returns the `[[modbus.device]]` tables, reporting unknown keys of `[modbus]`.
fn device_tables(
    file: &TomlFile,
    section: &Item,
    diags: &mut Diagnostics,
) -> Vec<toml_edit::Table> {
    let Some(table) = section.as_table_like() else {
        file.report(diags, "modbus", section.span(), "expected a [modbus] table");
        return Vec::new();
    };
    for (key, _) in table.iter() {
        if key != "device" {
            let span = table.key(key).and_then(|k| k.span());
            file.report(
                diags,
                &format!("modbus.{key}"),
                span,
                "unknown key; expected: device",
            );
        }
    }
    match section.get("device") {
        None => Vec::new(),
        Some(Item::ArrayOfTables(array)) => array.iter().cloned().collect(),
        Some(other) => {
            file.report(
                diags,
                "modbus.device",
                other.span(),
                "expected one or more [[modbus.device]] tables",
            );
            Vec::new()
        }
    }
}

/// Serial settings and unit ids seen so far on each port, so that devices sharing a line
/// agree on its settings and use distinct unit ids.
#[derive(Default)]
struct LineChecks {
    settings: HashMap<PathBuf, (usize, SerialLine)>,
    units: HashMap<(PathBuf, u8), usize>,
}

impl LineChecks {
    fn check(
        &mut self,
        index: usize,
        line: &SerialLine,
        unit_id: u8,
        checker: &mut EntryChecker<'_>,
    ) {
        match self.settings.get(&line.port) {
            Some((first, shared)) if shared != line => checker.report(
                "port",
                format!(
                    "serial settings differ from modbus.device[{first}] on the same port {}; \
                     devices on one line need the same baud_rate, parity, data_bits, \
                     stop_bits and echo_suppression",
                    line.port.display()
                ),
            ),
            Some(_) => {}
            None => {
                self.settings
                    .insert(line.port.clone(), (index, line.clone()));
            }
        }
        let key = (line.port.clone(), unit_id);
        if let Some(first) = self.units.get(&key) {
            checker.report(
                "unit_id",
                format!(
                    "unit id {unit_id} is already used by modbus.device[{first}] on the same port"
                ),
            );
        } else {
            self.units.insert(key, index);
        }
    }
}

struct EntryChecker<'a> {
    file: &'a TomlFile,
    diags: &'a mut Diagnostics,
    index: String,
}

impl EntryChecker<'_> {
    fn report(&mut self, key: &str, message: impl Into<String>) {
        let segments = ["modbus", "device", self.index.as_str(), key];
        self.file.report_at(self.diags, &segments, message);
    }
}

fn check_entry(
    raw: DeviceConfig,
    map: Option<Arc<DeviceMap>>,
    checker: &mut EntryChecker<'_>,
) -> Option<DeviceSetup> {
    let before = checker.diags.len();
    if raw.name.is_empty() || raw.name.contains('.') || raw.name.chars().any(char::is_whitespace) {
        checker.report(
            "name",
            format!(
                "invalid device name `{}`: use a non-empty name without dots or spaces",
                raw.name
            ),
        );
    }
    if map.is_none() {
        checker.report(
            "map",
            format!(
                "device map `{}` could not be loaded; see the problems reported for that file",
                raw.map
            ),
        );
    }
    let unit_id = check_unit_id(&raw, checker);
    let transport = check_transport(&raw, checker);
    let timing = check_timing(&raw, checker);

    if checker.diags.len() > before {
        return None;
    }
    Some(DeviceSetup {
        asset: raw.asset.clone().unwrap_or_else(|| raw.name.clone()),
        name: raw.name,
        unit_id,
        map: map?,
        transport: transport?,
        poll_interval: timing.poll_interval,
        timeout: timing.timeout,
        retries: timing.retries,
        backoff_max: timing.backoff_max,
        offline_after: timing.offline_after,
    })
}

fn check_unit_id(raw: &DeviceConfig, checker: &mut EntryChecker<'_>) -> u8 {
    let unit_id = raw.unit_id.unwrap_or(1);
    let (unit_range, transport) = match raw.transport {
        TransportKind::Tcp => (0..=255, "tcp"),
        TransportKind::Rtu => (1..=247, "rtu"),
    };
    if !unit_range.contains(&unit_id) {
        checker.report(
            "unit_id",
            format!(
                "unit id {unit_id} is outside {} to {} for {transport}",
                unit_range.start(),
                unit_range.end(),
            ),
        );
        return 0;
    }
    unit_id as u8
}

/// Poll timing of one device, with defaults applied.
struct Timing {
    poll_interval: Duration,
    timeout: Duration,
    retries: u32,
    backoff_max: Duration,
    offline_after: u32,
}

fn check_timing(raw: &DeviceConfig, checker: &mut EntryChecker<'_>) -> Timing {
    let poll_interval_ms = raw.poll_interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS);
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let backoff_max_ms = raw
        .backoff_max_ms
        .unwrap_or(DEFAULT_BACKOFF_MAX_MS.max(poll_interval_ms));
    let offline_after = raw.offline_after.unwrap_or(DEFAULT_OFFLINE_AFTER);
    let retries = raw.retries.unwrap_or(DEFAULT_RETRIES);
    if !(10..=86_400_000).contains(&poll_interval_ms) {
        checker.report(
            "poll_interval_ms",
            format!("poll_interval_ms {poll_interval_ms} is outside 10 to 86400000"),
        );
    }
    if !(1..=60_000).contains(&timeout_ms) {
        checker.report(
            "timeout_ms",
            format!("timeout_ms {timeout_ms} is outside 1 to 60000"),
        );
    }
    if backoff_max_ms < poll_interval_ms || backoff_max_ms > 86_400_000 {
        checker.report(
            "backoff_max_ms",
            format!(
                "backoff_max_ms {backoff_max_ms} must be between poll_interval_ms \
                 ({poll_interval_ms}) and 86400000"
            ),
        );
    }
    if offline_after == 0 {
        checker.report("offline_after", "offline_after must be at least 1");
    }
    if retries > 10 {
        checker.report("retries", format!("retries {retries} is above 10"));
    }
    Timing {
        poll_interval: Duration::from_millis(poll_interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        retries,
        backoff_max: Duration::from_millis(backoff_max_ms),
        offline_after,
    }
}

fn check_transport(raw: &DeviceConfig, checker: &mut EntryChecker<'_>) -> Option<Transport> {
    let serial_keys = [
        ("port", raw.port.is_some()),
        ("baud_rate", raw.baud_rate.is_some()),
        ("parity", raw.parity.is_some()),
        ("data_bits", raw.data_bits.is_some()),
        ("stop_bits", raw.stop_bits.is_some()),
        ("echo_suppression", raw.echo_suppression.is_some()),
    ];
    match raw.transport {
        TransportKind::Tcp => {
            for (key, present) in serial_keys {
                if present {
                    checker.report(key, format!("{key} applies only to transport \"rtu\""));
                }
            }
            let Some(address) = &raw.address else {
                checker.report(
                    "address",
                    "transport \"tcp\" needs address, such as \"192.0.2.10:502\"",
                );
                return None;
            };
            if let Err(message) = check_host_port(address) {
                checker.report("address", message);
                return None;
            }
            Some(Transport::Tcp {
                address: address.clone(),
            })
        }
        TransportKind::Rtu => {
            if raw.address.is_some() {
                checker.report(
                    "address",
                    "address applies only to transport \"tcp\"; use port for a serial line",
                );
            }
            let Some(port) = &raw.port else {
                checker.report(
                    "port",
                    "transport \"rtu\" needs port, such as \"/dev/ttyUSB0\"",
                );
                return None;
            };
            let baud_rate = raw.baud_rate.unwrap_or(DEFAULT_BAUD_RATE);
            if !(300..=4_000_000).contains(&baud_rate) {
                checker.report(
                    "baud_rate",
                    format!("baud_rate {baud_rate} is outside 300 to 4000000"),
                );
            }
            let data_bits = raw.data_bits.unwrap_or(8);
            if data_bits != 8 {
                checker.report(
                    "data_bits",
                    format!("data_bits {data_bits}: Modbus RTU needs 8 data bits"),
                );
            }
            let stop_bits = raw.stop_bits.unwrap_or(1);
            if !(1..=2).contains(&stop_bits) {
                checker.report("stop_bits", format!("stop_bits {stop_bits} must be 1 or 2"));
            }
            Some(Transport::Rtu {
                line: SerialLine {
                    port: PathBuf::from(port),
                    baud_rate,
                    parity: raw.parity.unwrap_or(Parity::Even),
                    data_bits,
                    stop_bits,
                    echo_suppression: raw.echo_suppression.unwrap_or(false),
                },
            })
        }
    }
}

/// Checks `host:port` text: a non-empty host (a bracketed IPv6 address is fine) and a port.
fn check_host_port(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "address `{address}` needs a port, such as \"{address}:502\""
        ));
    };
    if host.is_empty() {
        return Err(format!("address `{address}` has no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "address `{address}` has an invalid port `{port}`; use 1 to 65535"
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "[device]\nkind = \"circulation-pump\"\nmanufacturer = \"M\"\nmodel = \"X\"\nasset_kind = \"pump\"\n\n[[point]]\nname = \"speed\"\nmetric = \"speed\"\nunit = \"rpm\"\nreference = \"30001\"\ntype = \"u16\"\n";

    fn load_text(text: &str) -> (Option<ModbusSetup>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("devices")).unwrap();
        std::fs::write(dir.path().join("devices/pump.toml"), MAP).unwrap();
        let mut diags = Diagnostics::default();
        let file = TomlFile::parse(Path::new("gw.toml"), text.to_string(), &mut diags).unwrap();
        let setup = load(&file, dir.path(), &mut diags);
        (setup, diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn tcp_and_rtu_devices_load_with_defaults() {
        let text = "[[modbus.device]]
name = \"pump-1\"
map = \"devices/pump.toml\"
transport = \"tcp\"
address = \"127.0.0.1:1502\"

[[modbus.device]]
name = \"pump-2\"
map = \"devices/pump.toml\"
asset = \"pump-b\"
unit_id = 2
transport = \"rtu\"
port = \"/dev/ttyUSB0\"

[[modbus.device]]
name = \"pump-3\"
map = \"devices/pump.toml\"
unit_id = 3
transport = \"rtu\"
port = \"/dev/ttyUSB0\"
";
        let (setup, problems) = load_text(text);
        assert!(problems.is_empty(), "{problems:?}");
        let setup = setup.unwrap();
        assert_eq!(setup.devices.len(), 3);
        let first = &setup.devices[0];
        assert_eq!(first.asset, "pump-1");
        assert_eq!(first.unit_id, 1);
        assert_eq!(
            first.poll_interval,
            Duration::from_millis(DEFAULT_POLL_INTERVAL_MS)
        );
        assert_eq!(first.offline_after, 3);
        assert!(Arc::ptr_eq(&setup.devices[1].map, &setup.devices[2].map));
        match &setup.devices[1].transport {
            Transport::Rtu { line } => {
                assert_eq!(line.baud_rate, 9600);
                assert_eq!(line.parity, Parity::Even);
                assert!(!line.echo_suppression);
            }
            other => panic!("expected rtu, got {other:?}"),
        }
    }

    #[test]
    fn entry_problems_reported_together() {
        let text = "[modbus]
colour = 1

[[modbus.device]]
name = \"pump.1\"
map = \"devices/pump.toml\"
transport = \"tcp\"
address = \"localhost\"
baud_rate = 9600

[[modbus.device]]
name = \"pump-2\"
map = \"devices/missing.toml\"
unit_id = 0
transport = \"rtu\"
port = \"/dev/ttyUSB0\"

[[modbus.device]]
name = \"pump-3\"
map = \"devices/pump.toml\"
transport = \"rtu\"
port = \"/dev/ttyUSB0\"
baud_rate = 19200
poll_interval_ms = 1000
backoff_max_ms = 500
";
        let (setup, problems) = load_text(text);
        assert!(setup.is_none());
        let joined = problems.join("\n");
        for expected in [
            "gw.toml:2:1: modbus.colour: unknown key",
            "gw.toml:5:8: modbus.device[0].name: invalid device name `pump.1`",
            "gw.toml:8:11: modbus.device[0].address: address `localhost` needs a port",
            "gw.toml:9:13: modbus.device[0].baud_rate: baud_rate applies only to transport \"rtu\"",
            "gw.toml:14:11: modbus.device[1].unit_id: unit id 0 is outside 1 to 247 for rtu",
            "missing.toml:0:0: -: cannot read file",
            "gw.toml:13:7: modbus.device[1].map: device map `devices/missing.toml` could not be loaded",
            "gw.toml:25:18: modbus.device[2].backoff_max_ms: backoff_max_ms 500 must be between",
        ] {
            assert!(joined.contains(expected), "no `{expected}` in\n{joined}");
        }
    }

    #[test]
    fn shared_port_needs_same_settings() {
        let text = "[[modbus.device]]
name = \"a\"
map = \"devices/pump.toml\"
transport = \"rtu\"
port = \"/dev/ttyUSB0\"

[[modbus.device]]
name = \"b\"
map = \"devices/pump.toml\"
transport = \"rtu\"
port = \"/dev/ttyUSB0\"
baud_rate = 19200
unit_id = 2

[[modbus.device]]
name = \"c\"
map = \"devices/pump.toml\"
transport = \"rtu\"
port = \"/dev/ttyUSB0\"
";
        let (setup, problems) = load_text(text);
        assert!(setup.is_none());
        let joined = problems.join("\n");
        assert!(
            joined.contains("modbus.device[1].port: serial settings differ from modbus.device[0]"),
            "{joined}"
        );
        assert!(
            joined.contains(
                "modbus.device[2].unit_id: unit id 1 is already used by modbus.device[0]"
            ),
            "{joined}"
        );
    }

    #[test]
    fn absent_section_is_none_without_problems() {
        let (setup, problems) = load_text("[mqtt]\n");
        assert!(setup.is_none());
        assert!(problems.is_empty());
    }
}
