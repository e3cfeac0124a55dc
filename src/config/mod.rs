//! Gateway configuration: one TOML file, and the device maps it references, validated as a
//! whole before anything starts. Relative paths resolve from the config file's folder.

pub mod diag;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use diag::{Diagnostic, Diagnostics, TomlFile};

use crate::secret::Secret;
use crate::store::{Retention, StoreOptions};
use crate::time::{parse_rfc3339_ms, TimePolicy};

const TOP_LEVEL_KEYS: &[&str] = &[
    "gateway", "store", "time", "log", "http", "mqtt", "modbus", "intake", "detect", "sync",
    "dispatch",
];

/// `[gateway]`: who this gateway is.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySection {
    /// Id of this gateway, unique among the buildings of one central office, such as
    /// `building-7`. Letters, digits, `-` and `_`.
    pub id: String,
}

/// `[store]`: the SQLite database and its bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StoreSection {
    /// Database file. Default `caretaker.db` beside the config file.
    pub path: PathBuf,
    /// `full` (default): every commit is on disk before input is acknowledged. `normal`:
    /// faster, but the last commits may be lost on power loss.
    pub synchronous: String,
    /// Size cap of the database in MiB (default 1024). Over it, the oldest raw readings are
    /// evicted first, then minute rollups, then hour rollups.
    pub max_size_mb: u64,
    /// Days raw readings are kept (default 14).
    pub raw_retention_days: u32,
    /// Days per-minute rollups are kept (default 90).
    pub minute_rollup_retention_days: u32,
    /// Days per-hour rollups are kept (default 3650).
    pub hour_rollup_retention_days: u32,
    /// Most readings committed in one transaction (default 5000).
    pub max_batch_readings: usize,
    /// Milliseconds the writer waits after a batch arrives for more to commit with it
    /// (default 50). Longer saves disk writes on an SD card and delays acknowledgements.
    pub commit_delay_ms: u64,
    /// Batches queued for the writer before ingest waits (default 256).
    pub queue_batches: usize,
    /// Rows kept in the quarantine table (default 10000); the oldest go first.
    pub quarantine_max_rows: u64,
    /// Seconds between rollup, retention and size-cap passes (default 10).
    pub maintenance_interval_secs: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        let retention = Retention::default();
        StoreSection {
            path: PathBuf::from("caretaker.db"),
            synchronous: "full".to_string(),
            max_size_mb: 1024,
            raw_retention_days: retention.raw_days,
            minute_rollup_retention_days: retention.minute_days,
            hour_rollup_retention_days: retention.hour_days,
            max_batch_readings: 5_000,
            commit_delay_ms: 50,
            queue_batches: 256,
            quarantine_max_rows: 10_000,
            maintenance_interval_secs: 10,
        }
    }
}

/// `[time]`: which source timestamps are plausible.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimeSection {
    /// RFC 3339 time before which source timestamps are rejected and the wall clock is not
    /// trusted. Default: the build date of this binary.
    pub earliest_valid: Option<String>,
    /// Seconds a source timestamp may be ahead of the receive time (default 300).
    pub max_future_secs: Option<u64>,
}

/// `[log]`: log output on stderr.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// `text` (default) or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` (default) or `caretaker=debug,info`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".to_string(),
            level: "info".to_string(),
        }
    }
}

/// `[http]`: the local API with `/metrics`, `/healthz` and Modbus writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSection {
    /// Address to listen on (default `127.0.0.1:9780`). Use a loopback or plant-network
    /// address; the API has no TLS.
    pub listen: String,
    /// Bearer token that Modbus write requests must carry. Writes are disabled without it.
    pub write_token: Option<Secret>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: "127.0.0.1:9780".to_string(),
            write_token: None,
        }
    }
}

/// A validated gateway configuration.
pub struct GatewayConfig {
    pub path: PathBuf,
    pub gateway: GatewaySection,
    pub store: StoreOptions,
    pub time: TimePolicy,
    pub log: LogSection,
    pub http_listen: SocketAddr,
    pub write_token: Option<Secret>,
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    pub modbus: Option<crate::modbus::ModbusSetup>,
    /// Tenant messages over MQTT and HTTP (`[intake]`).
    pub intake: Option<crate::intake::IntakeConfig>,
    /// Detection, alarms and health checks (`[detect]`).
    pub detect: crate::detect::engine::DetectSettings,
    /// Sync with the central office (`[sync]`); none when the section is absent.
    pub sync: Option<crate::sync::SyncConfig>,
    /// Tickets, vendors, SLAs and tenant updates (`[dispatch]`); none when absent.
    pub dispatch: Option<crate::dispatch::DispatchConfig>,
    /// Settings that load but probably do not do what the operator wants, such as a trade
    /// that no vendor takes. `check-config` prints them and `run` logs them.
    pub warnings: Vec<Diagnostic>,
}

/// Loads and validates the gateway config at `path` and every file it references, returning
/// all problems at once.
pub fn load(path: &Path) -> Result<GatewayConfig, Diagnostics> {
    let mut diags = Diagnostics::default();
    let Some(file) = TomlFile::load(path, &mut diags) else {
        return Err(diags);
    };
    load_file(path, file, diags)
}

/// Validates `text` as the contents of the config file at `path`, which need not hold that
/// text: relative paths still resolve from `path`'s folder. The demo uses it to run a shipped
/// config with its addresses rewritten.
pub fn load_text(path: &Path, text: String) -> Result<GatewayConfig, Diagnostics> {
    let mut diags = Diagnostics::default();
    let Some(file) = TomlFile::parse(path, text, &mut diags) else {
        return Err(diags);
    };
    load_file(path, file, diags)
}

fn load_file(
    path: &Path,
    file: TomlFile,
    mut diags: Diagnostics,
) -> Result<GatewayConfig, Diagnostics> {
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    file.reject_unknown_top_level(TOP_LEVEL_KEYS, &mut diags);

    let gateway: Option<GatewaySection> = file.section("gateway", &mut diags);
    if file.get("gateway").is_none() {
        file.report(
            &mut diags,
            "gateway",
            None,
            "missing [gateway] table with `id`",
        );
    }
    if let Some(gateway) = &gateway {
        let valid = !gateway.id.is_empty()
            && gateway
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            file.report_at(
                &mut diags,
                &["gateway", "id"],
                format!(
                    "invalid id {:?}; use letters, digits, '-' and '_'",
                    gateway.id
                ),
            );
        }
    }

    let store_section: StoreSection = section_or_default(&file, "store", &mut diags);
    let store = store_options(&file, &base_dir, &store_section, &mut diags);
    let time_section: TimeSection = section_or_default(&file, "time", &mut diags);
    let time = time_policy(&file, &time_section, &mut diags);
    let log: LogSection = section_or_default(&file, "log", &mut diags);
    if !matches!(log.format.as_str(), "text" | "json") {
        file.report_at(
            &mut diags,
            &["log", "format"],
            format!(
                "invalid format {:?}; expected \"text\" or \"json\"",
                log.format
            ),
        );
    }
    if let Err(message) = check_log_level(&log.level) {
        file.report_at(&mut diags, &["log", "level"], message);
    }
    let http: HttpSection = section_or_default(&file, "http", &mut diags);
    let http_listen = match http.listen.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            file.report_at(
                &mut diags,
                &["http", "listen"],
                format!(
                    "invalid address {:?}; expected IP:PORT such as 127.0.0.1:9780",
                    http.listen
                ),
            );
            None
        }
    };

    let mqtt = crate::mqtt::load(&file, &base_dir, &mut diags);
    let modbus = crate::modbus::load(&file, &base_dir, &mut diags);
    let detect =
        crate::detect::engine::load_settings(&file, &base_dir, modbus.as_ref(), &mut diags);
    let subscriptions = mqtt
        .as_ref()
        .map_or(&[][..], |mqtt| &mqtt.subscriptions[..]);
    let intake = crate::intake::load(&file, file.get("mqtt").is_some(), subscriptions, &mut diags);
    let sync = crate::sync::config::load(&file, &base_dir, &mut diags);
    let dispatch = crate::dispatch::config::load(&file, &base_dir, &mut diags);
    if file.get("mqtt").is_none() && file.get("modbus").is_none() {
        file.report(
            &mut diags,
            "-",
            None,
            "no [mqtt] or [modbus] section; configure at least one source of readings",
        );
    }

    diags.sort();
    match (gateway, http_listen) {
        (Some(gateway), Some(http_listen)) if diags.is_empty() => Ok(GatewayConfig {
            path: path.to_path_buf(),
            gateway,
            store,
            time,
            log,
            http_listen,
            write_token: http.write_token,
            mqtt,
            modbus,
            intake,
            detect,
            sync,
            dispatch,
            warnings: diags.take_warnings(),
        }),
        _ => Err(diags),
    }
}

const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `tracing` filter such as `info` or `caretaker=debug,warn`. A bare word that is not
/// a level would select a module of that name and silence everything else, so it is rejected.
fn check_log_level(level: &str) -> Result<(), String> {
    for directive in level.split(',') {
        let directive = directive.trim();
        let level_part = match directive.rsplit_once('=') {
            Some((_target, level)) => level,
            None => directive,
        };
        if !LOG_LEVELS.contains(&level_part.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "invalid level {directive:?}; expected one of {} or TARGET=LEVEL",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|err| format!("invalid level {level:?}: {err}"))
}

fn section_or_default<T: serde::de::DeserializeOwned + Default>(
    file: &TomlFile,
    key: &str,
    diags: &mut Diagnostics,
) -> T {
    file.section(key, diags).unwrap_or_default()
}

fn store_options(
    file: &TomlFile,
    base_dir: &Path,
    section: &StoreSection,
    diags: &mut Diagnostics,
) -> StoreOptions {
    let mut options = StoreOptions::new(base_dir.join(&section.path));
    match section.synchronous.as_str() {
        "full" => options.synchronous_full = true,
        "normal" => options.synchronous_full = false,
        other => file.report_at(
            diags,
            &["store", "synchronous"],
            format!("invalid value {other:?}; expected \"full\" or \"normal\""),
        ),
    }
    let positive = [
        ("max_size_mb", section.max_size_mb),
        ("max_batch_readings", section.max_batch_readings as u64),
        ("queue_batches", section.queue_batches as u64),
        (
            "maintenance_interval_secs",
            section.maintenance_interval_secs,
        ),
        ("raw_retention_days", u64::from(section.raw_retention_days)),
        (
            "minute_rollup_retention_days",
            u64::from(section.minute_rollup_retention_days),
        ),
        (
            "hour_rollup_retention_days",
            u64::from(section.hour_rollup_retention_days),
        ),
    ];
    for (key, value) in positive {
        if value == 0 {
            file.report_at(diags, &["store", key], "must be greater than 0");
        }
    }
    options.max_size_bytes = section.max_size_mb.saturating_mul(1024 * 1024);
    options.max_batch_readings = section.max_batch_readings;
    options.commit_delay = std::time::Duration::from_millis(section.commit_delay_ms);
    options.queue_batches = section.queue_batches;
    options.quarantine_max_rows = section.quarantine_max_rows;
    options.maintenance_interval =
        std::time::Duration::from_secs(section.maintenance_interval_secs);
    options.retention = Retention {
        raw_days: section.raw_retention_days,
        minute_days: section.minute_rollup_retention_days,
        hour_days: section.hour_rollup_retention_days,
    };
    options
}

fn time_policy(file: &TomlFile, section: &TimeSection, diags: &mut Diagnostics) -> TimePolicy {
    let mut policy = TimePolicy::default();
    if let Some(text) = &section.earliest_valid {
        match parse_rfc3339_ms(text) {
            Some(ms) => policy.earliest_valid_ms = ms,
            None => file.report_at(
                diags,
                &["time", "earliest_valid"],
                format!("invalid time {text:?}; expected RFC 3339 such as 2026-01-01T00:00:00Z"),
            ),
        }
    }
    if let Some(secs) = section.max_future_secs {
        policy.max_future_ms = secs.saturating_mul(1000) as i64;
    }
    policy
}
