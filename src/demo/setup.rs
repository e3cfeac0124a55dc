//! Turns the demo's gateway config into the config of one run: loopback ports, a temporary
//! database, a fresh bridge token, poll intervals matched to the replay, and in `--data` mode
//! one Modbus device per recorded series.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use super::recorded::{Layout, Series};

/// Where `caretaker demo` looks for its config when `--config` is not given: the source tree
/// it was built from, then `firmware-config/demo/` below the working directory, then the
/// packaged copy.
pub fn default_config_path() -> PathBuf {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/demo/gateway.toml"),
        PathBuf::from("firmware-config/demo/gateway.toml"),
        PathBuf::from("/etc/caretaker/demo/gateway.toml"),
    ];
    candidates
        .iter()
        .find(|path| path.is_file())
        .unwrap_or(&candidates[0])
        .clone()
}

/// The addresses and files of one run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub database: PathBuf,
    pub http_listen: SocketAddr,
    pub broker: (String, u16),
    pub bridge_token: String,
    pub poll_interval_ms: u64,
    /// The central office's base URL and this gateway's token; `None` drops `[sync]`.
    pub sync: Option<(String, String)>,
}

/// Returns the number of `[[modbus.device]]` entries of the document.
pub fn device_count(document: &DocumentMut) -> usize {
    document
        .get("modbus")
        .and_then(|modbus| modbus.get("device"))
        .and_then(Item::as_array_of_tables)
        .map_or(0, ArrayOfTables::len)
}

/// Rewrites `document` for one run. `device_addresses` contains one loopback address per Modbus
/// device, in order: the config's devices, or one per series in `recorded`.
pub fn rewrite(
    document: &mut DocumentMut,
    run: &RunSettings,
    device_addresses: &[SocketAddr],
    recorded: Option<&[Series]>,
) -> anyhow::Result<()> {
    document["store"]["path"] = value(run.database.display().to_string());
    document["http"]["listen"] = value(run.http_listen.to_string());
    document["mqtt"]["host"] = value(run.broker.0.clone());
    document["mqtt"]["port"] = value(i64::from(run.broker.1));

    let bridges = document
        .get_mut("intake")
        .and_then(|intake| intake.get_mut("bridge"))
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| {
            anyhow::anyhow!("the demo config has no [[intake.bridge]] for the HTTP messages")
        })?;
    let bridge = bridges
        .get_mut(0)
        .ok_or_else(|| anyhow::anyhow!("the demo config's [[intake.bridge]] list is empty"))?;
    bridge["token"] = value(run.bridge_token.clone());

    match &run.sync {
        Some((url, token)) if document.get("sync").is_some() => {
            document["sync"]["url"] = value(url.clone());
            document["sync"]["token"] = value(token.clone());
        }
        Some(_) => {}
        None => {
            document.remove("sync");
        }
    }

    if let Some(series) = recorded {
        replace_devices(document, series)?;
    }
    let devices = document
        .get_mut("modbus")
        .and_then(|modbus| modbus.get_mut("device"))
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| anyhow::anyhow!("the demo config has no [[modbus.device]]"))?;
    if devices.len() != device_addresses.len() {
        anyhow::bail!(
            "the demo config has {} Modbus devices but {} addresses were prepared",
            devices.len(),
            device_addresses.len()
        );
    }
    for (device, address) in devices.iter_mut().zip(device_addresses) {
        if device.get("transport").and_then(Item::as_str) != Some("tcp") {
            anyhow::bail!(
                "Modbus device {:?} of the demo config must use transport = \"tcp\"",
                device.get("name").and_then(Item::as_str).unwrap_or("?")
            );
        }
        device["address"] = value(address.to_string());
        device["poll_interval_ms"] = value(run.poll_interval_ms as i64);
        let backoff = device
            .get("backoff_max_ms")
            .and_then(Item::as_integer)
            .unwrap_or(0)
            .max(run.poll_interval_ms as i64);
        device["backoff_max_ms"] = value(backoff);
    }
    Ok(())
}

/// Replaces the simulated devices with one device per recorded series, and drops the asset
/// models, whose assets no longer exist.
fn replace_devices(document: &mut DocumentMut, series: &[Series]) -> anyhow::Result<()> {
    let mut devices = ArrayOfTables::new();
    for (index, series) in series.iter().enumerate() {
        let mut device = Table::new();
        let map = match series.layout {
            Layout::Skab => "devices/skab-pump-rig.toml",
            Layout::Nab => "devices/recorded-series.toml",
        };
        device["name"] = value(series.name.clone());
        device["map"] = value(map);
        device["asset"] = value(series.name.clone());
        device["transport"] = value("tcp");
        device["address"] = value("127.0.0.1:502");
        device["unit_id"] = value(1 + (index % 247) as i64);
        device["timeout_ms"] = value(1000);
        device["retries"] = value(1);
        device["backoff_max_ms"] = value(10_000);
        device["offline_after"] = value(3);
        devices.push(device);
    }
    let modbus = document
        .entry("modbus")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| anyhow::anyhow!("[modbus] of the demo config is not a table"))?;
    modbus.insert("device", Item::ArrayOfTables(devices));
    if let Some(detect) = document.get_mut("detect").and_then(Item::as_table_mut) {
        detect.remove("model");
    }
    Ok(())
}

/// Returns a random token for the demo's SMS bridge: 32 hex digits.
pub fn random_token(rng: &mut fastrand::Rng) -> String {
    (0..32)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Returns a loopback address with a port that was free a moment ago.
pub fn free_loopback_address() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> (PathBuf, DocumentMut) {
        let path = default_config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text.parse().unwrap())
    }

    fn run_settings(dir: &Path) -> RunSettings {
        RunSettings {
            database: dir.join("demo.db"),
            http_listen: "127.0.0.1:1".parse().unwrap(),
            broker: ("127.0.0.1".to_string(), 2),
            bridge_token: "0123456789abcdef0123456789abcdef".to_string(),
            poll_interval_ms: 83,
            sync: Some((
                "http://127.0.0.1:3".to_string(),
                "central-token-0123456789abcdef".to_string(),
            )),
        }
    }

    #[test]
    fn rewritten_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut document) = shipped();
        let addresses: Vec<SocketAddr> = (0..device_count(&document))
            .map(|i| format!("127.0.0.1:{}", 3000 + i).parse().unwrap())
            .collect();
        rewrite(&mut document, &run_settings(dir.path()), &addresses, None).unwrap();
        let config = match crate::config::load_text(&path, document.to_string()) {
            Ok(config) => config,
            Err(diags) => panic!("{diags}"),
        };
        assert_eq!(config.store.path, dir.path().join("demo.db"));
        let modbus = config.modbus.unwrap();
        assert_eq!(modbus.devices.len(), 2);
        assert_eq!(
            modbus.devices[0].poll_interval,
            std::time::Duration::from_millis(83)
        );
        assert_eq!(config.mqtt.unwrap().port, 2);
    }

    #[test]
    fn recorded_series_replace_devices() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut document) = shipped();
        let series = vec![Series {
            path: PathBuf::from("x/y.csv"),
            layout: Layout::Nab,
            name: "x-y".to_string(),
            points: vec!["value"],
            rows: vec![vec![Some(1.0)]],
            median_interval_ms: Some(300_000),
        }];
        let addresses = ["127.0.0.1:3000".parse().unwrap()];
        rewrite(
            &mut document,
            &run_settings(dir.path()),
            &addresses,
            Some(&series),
        )
        .unwrap();
        let config = match crate::config::load_text(&path, document.to_string()) {
            Ok(config) => config,
            Err(diags) => panic!("{diags}"),
        };
        let modbus = config.modbus.unwrap();
        assert_eq!(modbus.devices.len(), 1);
        assert_eq!(modbus.devices[0].map.device.kind, "recorded-series");
        assert!(config.detect.models.is_empty());
    }
}
