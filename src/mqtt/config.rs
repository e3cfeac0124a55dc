//! The `[mqtt]` section: broker, session, TLS, limits and `[[mqtt.subscription]]` entries.
//!
//! ```toml
//! [mqtt]
//! host = "127.0.0.1"
//! client_id = "caretaker-plant-room"
//!
//! [[mqtt.subscription]]
//! filter = "sensors/+/temp"
//! format = "json"
//! value_path = "v"
//! timestamp_path = "ts"
//! asset = "{1}"
//! metric = "temperature"
//! unit = "degC"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml_edit::Item;

use super::payload::{JsonPaths, PayloadFormat, ValuePath};
use super::tls;
use super::topic::{filter_level_count, validate_filter, Template};
use crate::config::{Diagnostics, TomlFile};
use crate::secret::Secret;

/// Largest payload MQTT can carry (the maximum remaining length of a packet), in bytes.
pub const MQTT_MAX_PAYLOAD_BYTES: usize = 268_435_455;

/// Connection to the broker and what to subscribe to.
#[derive(Debug, Clone, Deserialize)]
pub struct MqttConfig {
    /// Host name or IP address of the broker. Required.
    #[serde(default)]
    pub host: String,
    /// TCP port of the broker. Default 1883, or 8883 when `[mqtt.tls]` is set.
    #[serde(skip)]
    pub port: u16,
    /// The `port` key as written; [`load`] resolves it into `port`.
    #[serde(default, rename = "port")]
    port_setting: Option<u16>,
    /// Client id of the persistent session. Required: the broker keeps the subscriptions and
    /// the QoS 1/2 messages queued while the gateway is away under this id, so two gateways
    /// must never share it. The gateway subscribes only when the broker has no session for
    /// this id. After changing the subscription list, pick a new client id or remove the
    /// session on the broker, or the broker keeps delivering the old list.
    //
    // NOTE: with MQTT 3.1.1 a second SUBSCRIBE to a filter replays its retained messages,
    // which is why the list is not sent again on every start.
    #[serde(default)]
    pub client_id: String,
    /// User name sent in CONNECT. Default: none.
    #[serde(default)]
    pub username: Option<String>,
    /// Password sent in CONNECT; needs `username`. Never logged. Default: none.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Seconds between keep-alive pings when nothing else is sent; 0 turns them off.
    /// Default 30, at most 65535.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// TLS to the broker (`[mqtt.tls]`). Default: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// First delay before reconnecting after a failed or dropped connection, in
    /// milliseconds. Default 500. The delay doubles per failure up to `reconnect_max_ms`,
    /// and each wait is drawn between half and all of the current delay.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Maximum delay between reconnection attempts, in milliseconds. Default 30000.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Largest payload decoded, in bytes; a larger one is quarantined. Default 65536.
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Handling of retained messages, which the broker replays on subscribing and which may
    /// be days old. `"stale"` (default) stores them with quality `stale`, so they never count
    /// as current values. `"ignore"` drops them.
    #[serde(default)]
    pub retained: RetainedPolicy,
    /// Handling of NaN and infinities (`nan`, `NaN`, `-nan`, `Infinity`, `inf`), which JSON
    /// forbids but devices send for a failed sensor. Default `true` (lenient): such a value
    /// is stored as a missing value with quality `bad`, and the other values of the same
    /// message are kept. A message with no finite value at all is quarantined. `false`
    /// (strict): any such token quarantines the whole message. NaN and infinities are
    /// never stored as numbers either way.
    #[serde(default = "default_lenient_nan")]
    pub lenient_nan: bool,
    /// Topic filters and how to decode their payloads (`[[mqtt.subscription]]`), in order;
    /// a topic is decoded by the first subscription whose filter matches it.
    #[serde(skip)]
    pub subscriptions: Vec<Subscription>,
}

/// Handling of retained messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetainedPolicy {
    /// Store with quality `stale`.
    #[default]
    Stale,
    /// Drop without storing.
    Ignore,
}

/// Certificate files for TLS (`[mqtt.tls]`). Relative paths are resolved from the config
/// file's folder when loading.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TlsFiles {
    /// PEM file with the CA certificates that the broker's certificate must chain to.
    /// Required.
    pub ca_file: PathBuf,
    /// PEM file with the gateway's client certificate chain, for brokers that require
    /// client certificates. Default: none; needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    /// Default: none; needs `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// One `[[mqtt.subscription]]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Topic filter, such as `sensors/+/temp` or `tele/#`.
    pub filter: String,
    /// QoS requested from the broker: 0, 1 or 2.
    pub qos: u8,
    pub format: PayloadFormat,
    pub sensor_id: Template,
    pub asset: Template,
    pub metric: Template,
    pub unit: Template,
}

/// Payload encodings as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FormatName {
    Json,
    Senml,
    Number,
}

/// One path or a list of paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A `[[mqtt.subscription]]` entry as written; see [`Subscription`].
#[derive(Debug, Clone, Deserialize)]
struct RawSubscription {
    /// Topic filter; `+` matches one level, `#` the rest. Required.
    filter: String,
    /// QoS 0, 1 or 2. Default 1.
    #[serde(default = "default_qos")]
    qos: u8,
    /// `json`, `senml` or `number`. Required.
    format: FormatName,
    /// JSON only, required there: a dotted path or a list of them; `*` matches every member,
    /// as in `*.Temperature`.
    #[serde(default)]
    value_path: Option<OneOrMany>,
    /// JSON only: dotted path of the timestamp (s, ms or µs since the epoch by magnitude,
    /// or RFC 3339 text). Default: none, the receive time applies.
    #[serde(default)]
    timestamp_path: Option<String>,
    /// JSON only: dotted path of a sensor id in the payload, available as `{id}`. Default:
    /// none.
    #[serde(default)]
    sensor_id_path: Option<String>,
    /// Template of the sensor id. Default `{topic}` (JSON: `{id}` with `sensor_id_path`,
    /// plus `/{path}` when a message has several values; SenML: `{key}`).
    #[serde(default)]
    sensor_id: Option<String>,
    /// Template of the asset. Default empty.
    #[serde(default)]
    asset: Option<String>,
    /// Template of the metric. Default `{key}`.
    #[serde(default)]
    metric: Option<String>,
    /// Template of the unit. Default `{unit}` (the SenML unit; empty for other formats).
    #[serde(default)]
    unit: Option<String>,
}

fn default_keep_alive_secs() -> u64 {
    30
}

fn default_reconnect_min_ms() -> u64 {
    500
}

fn default_reconnect_max_ms() -> u64 {
    30_000
}

fn default_max_payload_bytes() -> usize {
    65_536
}

fn default_lenient_nan() -> bool {
    true
}

fn default_qos() -> u8 {
    1
}

/// Loads the `[mqtt]` section, resolving TLS paths from `base_dir`. Returns `None` when the
/// section is absent or has a problem; every problem is added to `diags`.
pub fn load(file: &TomlFile, base_dir: &Path, diags: &mut Diagnostics) -> Option<MqttConfig> {
    let item = file.get("mqtt")?;
    let problems_before = diags.len();

    // Subscriptions are read one by one so that one bad entry does not hide the others.
    let mut section = item.clone();
    if let Some(table) = section.as_table_like_mut() {
        table.remove("subscription");
    }
    let config: Option<MqttConfig> = file.deserialize(&section, "mqtt", diags);
    let subscriptions = load_subscriptions(file, item, diags);

    let mut config = config?;
    check_connection(&mut config, file, base_dir, diags);
    config.subscriptions = subscriptions;
    (diags.len() == problems_before).then_some(config)
}

fn check_connection(
    config: &mut MqttConfig,
    file: &TomlFile,
    base_dir: &Path,
    diags: &mut Diagnostics,
) {
    if config.host.trim().is_empty() {
        file.report_at(
            diags,
            &["mqtt", "host"],
            "missing broker host; set host = \"NAME_OR_IP\"",
        );
    }
    if config.client_id.trim().is_empty() {
        file.report_at(
            diags,
            &["mqtt", "client_id"],
            "missing client_id; the persistent session is tied to it, so set a name unique to this gateway",
        );
    }
    if config.port_setting == Some(0) {
        file.report_at(
            diags,
            &["mqtt", "port"],
            "port 0 is invalid; use the broker's TCP port",
        );
    }
    if config.password.is_some() && config.username.is_none() {
        file.report_at(
            diags,
            &["mqtt", "password"],
            "password is set without username",
        );
    }
    if config.keep_alive_secs > u64::from(u16::MAX) {
        file.report_at(
            diags,
            &["mqtt", "keep_alive_secs"],
            format!(
                "keep_alive_secs {} is above the MQTT maximum of 65535",
                config.keep_alive_secs
            ),
        );
    }
    if config.reconnect_min_ms == 0 {
        file.report_at(
            diags,
            &["mqtt", "reconnect_min_ms"],
            "reconnect_min_ms must be at least 1",
        );
    }
    if config.reconnect_max_ms < config.reconnect_min_ms {
        file.report_at(
            diags,
            &["mqtt", "reconnect_max_ms"],
            format!(
                "reconnect_max_ms {} is below reconnect_min_ms {}",
                config.reconnect_max_ms, config.reconnect_min_ms
            ),
        );
    }
    if config.max_payload_bytes == 0 || config.max_payload_bytes > MQTT_MAX_PAYLOAD_BYTES {
        file.report_at(
            diags,
            &["mqtt", "max_payload_bytes"],
            format!(
                "max_payload_bytes {} is outside 1..={MQTT_MAX_PAYLOAD_BYTES}",
                config.max_payload_bytes
            ),
        );
    }
    if let Some(files) = &mut config.tls {
        check_tls(files, file, base_dir, diags);
    }
    config.port = match (config.port_setting, &config.tls) {
        (Some(port), _) => port,
        (None, Some(_)) => 8883,
        (None, None) => 1883,
    };
}

fn check_tls(files: &mut TlsFiles, file: &TomlFile, base_dir: &Path, diags: &mut Diagnostics) {
    files.ca_file = base_dir.join(&files.ca_file);
    files.client_cert_file = files.client_cert_file.as_ref().map(|p| base_dir.join(p));
    files.client_key_file = files.client_key_file.as_ref().map(|p| base_dir.join(p));

    let mut all_exist = true;
    let paths = [
        ("ca_file", Some(&files.ca_file)),
        ("client_cert_file", files.client_cert_file.as_ref()),
        ("client_key_file", files.client_key_file.as_ref()),
    ];
    for (key, path) in paths {
        let Some(path) = path else { continue };
        if !path.is_file() {
            all_exist = false;
            file.report_at(
                diags,
                &["mqtt", "tls", key],
                format!("file {} not found", path.display()),
            );
        }
    }
    match (&files.client_cert_file, &files.client_key_file) {
        (Some(_), None) => file.report_at(
            diags,
            &["mqtt", "tls", "client_cert_file"],
            "client_cert_file is set without client_key_file",
        ),
        (None, Some(_)) => file.report_at(
            diags,
            &["mqtt", "tls", "client_key_file"],
            "client_key_file is set without client_cert_file",
        ),
        _ => {
            if all_exist {
                if let Err(err) = tls::client_config(files) {
                    file.report_at(diags, &["mqtt", "tls"], err.to_string());
                }
            }
        }
    }
}

fn load_subscriptions(file: &TomlFile, mqtt: &Item, diags: &mut Diagnostics) -> Vec<Subscription> {
    let tables: Vec<toml_edit::Table> = match mqtt.get("subscription") {
        None => Vec::new(),
        Some(Item::ArrayOfTables(array)) => array.iter().cloned().collect(),
        Some(_) => {
            file.report_at(
                diags,
                &["mqtt", "subscription"],
                "expected one or more [[mqtt.subscription]] tables",
            );
            return Vec::new();
        }
    };
    if tables.is_empty() {
        file.report_at(
            diags,
            &["mqtt"],
            "no [[mqtt.subscription]] entries; add at least one topic filter",
        );
    }
    let mut subscriptions = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let key_path = format!("mqtt.subscription[{index}]");
        let raw: Option<RawSubscription> = file.deserialize(&Item::Table(table), &key_path, diags);
        let Some(raw) = raw else { continue };
        let checker = EntryChecker {
            file,
            index: index.to_string(),
        };
        if let Some(subscription) = checker.check(raw, diags) {
            if subscriptions
                .iter()
                .any(|other: &Subscription| other.filter == subscription.filter)
            {
                checker.report(
                    diags,
                    "filter",
                    format!(
                        "filter `{}` is already subscribed above",
                        subscription.filter
                    ),
                );
                continue;
            }
            subscriptions.push(subscription);
        }
    }
    subscriptions
}

/// Semantic checks of one subscription entry, reported at its keys.
struct EntryChecker<'a> {
    file: &'a TomlFile,
    index: String,
}

impl EntryChecker<'_> {
    fn report(&self, diags: &mut Diagnostics, key: &str, message: impl Into<String>) {
        self.file
            .report_at(diags, &["mqtt", "subscription", &self.index, key], message);
    }

    fn check(&self, raw: RawSubscription, diags: &mut Diagnostics) -> Option<Subscription> {
        let problems_before = diags.len();
        if let Err(reason) = validate_filter(&raw.filter) {
            self.report(diags, "filter", format!("invalid topic filter: {reason}"));
        }
        if raw.qos > 2 {
            self.report(
                diags,
                "qos",
                format!("qos {} is invalid; use 0, 1 or 2", raw.qos),
            );
        }
        let format = self.format(&raw, diags);

        let several_values = match &format {
            Some(PayloadFormat::Json(paths)) => {
                paths.values.len() > 1 || paths.values.iter().any(ValuePath::has_wildcard)
            }
            _ => false,
        };
        let has_id_path = raw.sensor_id_path.is_some();
        let default_sensor_id = match raw.format {
            FormatName::Json => {
                let base = if has_id_path { "{id}" } else { "{topic}" };
                if several_values {
                    format!("{base}/{{path}}")
                } else {
                    base.to_string()
                }
            }
            FormatName::Senml => "{key}".to_string(),
            FormatName::Number => "{topic}".to_string(),
        };
        let sensor_id = self.template(
            diags,
            "sensor_id",
            raw.sensor_id.as_deref(),
            &default_sensor_id,
            &raw.filter,
        );
        let asset = self.template(diags, "asset", raw.asset.as_deref(), "", &raw.filter);
        let metric = self.template(diags, "metric", raw.metric.as_deref(), "{key}", &raw.filter);
        let unit = self.template(diags, "unit", raw.unit.as_deref(), "{unit}", &raw.filter);

        if let Some(template) = &sensor_id {
            if several_values && !template.names_each_value() {
                self.report(
                    diags,
                    "sensor_id",
                    format!(
                        "sensor_id `{template}` gives every value of a message the same id, so they would overwrite each other; add `{{path}}` or `{{key}}`"
                    ),
                );
            }
        }
        for (key, template) in [
            ("sensor_id", &sensor_id),
            ("asset", &asset),
            ("metric", &metric),
            ("unit", &unit),
        ] {
            if let Some(template) = template {
                if template.uses_id() && !has_id_path {
                    self.report(
                        diags,
                        key,
                        format!("`{template}` uses `{{id}}` but sensor_id_path is not set"),
                    );
                }
            }
        }

        if diags.len() > problems_before {
            return None;
        }
        Some(Subscription {
            filter: raw.filter,
            qos: raw.qos,
            format: format?,
            sensor_id: sensor_id?,
            asset: asset?,
            metric: metric?,
            unit: unit?,
        })
    }

    fn format(&self, raw: &RawSubscription, diags: &mut Diagnostics) -> Option<PayloadFormat> {
        if raw.format != FormatName::Json {
            for (key, set) in [
                ("value_path", raw.value_path.is_some()),
                ("timestamp_path", raw.timestamp_path.is_some()),
                ("sensor_id_path", raw.sensor_id_path.is_some()),
            ] {
                if set {
                    self.report(
                        diags,
                        key,
                        format!("{key} applies only to format = \"json\""),
                    );
                }
            }
            return Some(match raw.format {
                FormatName::Senml => PayloadFormat::Senml,
                _ => PayloadFormat::Number,
            });
        }

        let texts = match &raw.value_path {
            None => {
                self.report(
                    diags,
                    "format",
                    "format = \"json\" needs value_path, such as \"v\" or [\"S0.Temperature\"]",
                );
                return None;
            }
            Some(OneOrMany::One(text)) => vec![text.clone()],
            Some(OneOrMany::Many(texts)) => texts.clone(),
        };
        if texts.is_empty() {
            self.report(diags, "value_path", "value_path is an empty list");
            return None;
        }
        let mut values = Vec::new();
        for text in &texts {
            match ValuePath::parse(text) {
                Ok(path) => values.push(path),
                Err(reason) => {
                    self.report(diags, "value_path", format!("invalid value_path: {reason}"))
                }
            }
        }
        let timestamp = self.single_path(diags, "timestamp_path", raw.timestamp_path.as_deref());
        let sensor_id = self.single_path(diags, "sensor_id_path", raw.sensor_id_path.as_deref());
        if values.len() != texts.len() {
            return None;
        }
        Some(PayloadFormat::Json(JsonPaths {
            values,
            timestamp: timestamp?,
            sensor_id: sensor_id?,
        }))
    }

    /// Parses an optional path without wildcards. The outer `None` means invalid.
    fn single_path(
        &self,
        diags: &mut Diagnostics,
        key: &str,
        text: Option<&str>,
    ) -> Option<Option<ValuePath>> {
        let Some(text) = text else { return Some(None) };
        match ValuePath::parse(text) {
            Ok(path) if path.has_wildcard() => {
                self.report(diags, key, format!("{key} `{text}` must not contain `*`"));
                None
            }
            Ok(path) => Some(Some(path)),
            Err(reason) => {
                self.report(diags, key, format!("invalid {key}: {reason}"));
                None
            }
        }
    }

    fn template(
        &self,
        diags: &mut Diagnostics,
        key: &str,
        text: Option<&str>,
        default: &str,
        filter: &str,
    ) -> Option<Template> {
        let template = match Template::parse(text.unwrap_or(default)) {
            Ok(template) => template,
            Err(reason) => {
                self.report(diags, key, reason);
                return None;
            }
        };
        if let (Some(level), Some(count)) = (template.max_level(), filter_level_count(filter)) {
            if level >= count {
                self.report(
                    diags,
                    key,
                    format!(
                        "`{{{level}}}` refers to topic level {level}, but filter `{filter}` has only levels 0 to {}",
                        count - 1
                    ),
                );
                return None;
            }
        }
        Some(template)
    }
}

#[cfg(test)]
mod tests;
