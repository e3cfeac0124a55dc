//! The `[intake]` section: the MQTT topic of tenant messages, the HTTP bridges and their
//! tokens, limits and retention.
//!
//! ```toml
//! [intake]
//! mqtt_topic = "tenants/{unit}/messages"
//! max_text_bytes = 8192
//! rate_limit_burst = 10
//! rate_limit_per_hour = 60
//! retention_days = 90
//!
//! [[intake.bridge]]
//! name = "sms"
//! token = "…"
//! ```

use serde::Deserialize;

use super::limit::RateLimit;
use crate::config::{Diagnostics, TomlFile};
use crate::mqtt::{filter_matches, validate_filter, Subscription};
use crate::secret::Secret;

/// Shortest bridge token accepted, in bytes, so that a token cannot be guessed online.
const MIN_TOKEN_BYTES: usize = 16;

/// Largest `max_text_bytes` accepted: 1 MiB, far above any SMS or e-mail body.
const MAX_TEXT_LIMIT: usize = 1024 * 1024;

/// The `[intake]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawIntake {
    /// Topic of tenant messages with `{unit}` as one whole level, such as
    /// `tenants/{unit}/messages`. The gateway subscribes to it with QoS 1. Default: none, so
    /// no messages are taken from MQTT.
    mqtt_topic: Option<String>,
    /// Channel names a payload may give in `channel` (default sms, email, app, web). They
    /// label the metrics, so the list is fixed here.
    channels: Vec<String>,
    /// Maximum message text in bytes of UTF-8 (default 8192).
    max_text_bytes: usize,
    /// Messages one sender may send at once before the rate limit applies (default 10). Over
    /// the limit, HTTP gets 429 with `Retry-After`, and an MQTT message is quarantined and
    /// acknowledged. On MQTT the limit applies per unit, on HTTP per channel and sender.
    rate_limit_burst: u32,
    /// Messages per hour that a sender may send once its burst is spent (default 60).
    rate_limit_per_hour: u32,
    /// Days a message, with its raw text, is kept in the store (default 90).
    retention_days: u32,
    /// HTTP bridges (`[[intake.bridge]]`): SMS or e-mail gateways that post messages.
    #[serde(skip)]
    bridge: Vec<RawBridge>,
}

impl Default for RawIntake {
    fn default() -> Self {
        RawIntake {
            mqtt_topic: None,
            channels: ["sms", "email", "app", "web"].map(String::from).to_vec(),
            max_text_bytes: 8192,
            rate_limit_burst: 10,
            rate_limit_per_hour: 60,
            retention_days: 90,
            bridge: Vec::new(),
        }
    }
}

/// One `[[intake.bridge]]` as written.
#[derive(Debug, Clone, Deserialize)]
struct RawBridge {
    /// Name recorded with each message the bridge posts, such as `sms-gateway`. Required.
    name: String,
    /// Bearer token the bridge sends in `Authorization`. Required, at least 16 characters.
    token: Secret,
}

/// An HTTP bridge allowed to post messages.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub name: String,
    pub token: Secret,
}

/// The validated `[intake]` section.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub mqtt_topic: Option<TopicPattern>,
    pub channels: Vec<String>,
    pub max_text_bytes: usize,
    pub rate_limit: RateLimit,
    pub retention_days: u32,
    pub bridges: Vec<Bridge>,
}

impl IntakeConfig {
    /// Maximum payload decoded, in bytes: the text limit plus room for the other fields and
    /// for JSON escapes, which can take up to six bytes per character of text.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_text_bytes.saturating_mul(6).saturating_add(4096)
    }
}

/// A topic pattern with a `{unit}` level, such as `tenants/{unit}/messages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
    levels: Vec<String>,
    unit_level: usize,
}

impl TopicPattern {
    /// Parses a pattern. Returns the reason when it is invalid.
    pub fn parse(text: &str) -> Result<TopicPattern, String> {
        let levels: Vec<String> = text.split('/').map(str::to_string).collect();
        let unit_levels: Vec<usize> = levels
            .iter()
            .enumerate()
            .filter(|(_, level)| level.contains("{unit}"))
            .map(|(index, _)| index)
            .collect();
        let [unit_level] = unit_levels[..] else {
            return Err(format!(
                "`{text}` must contain `{{unit}}` exactly once, as in tenants/{{unit}}/messages"
            ));
        };
        if levels[unit_level] != "{unit}" {
            return Err(format!(
                "`{{unit}}` must be a whole topic level, as in tenants/{{unit}}/messages; got `{text}`"
            ));
        }
        for (index, level) in levels.iter().enumerate() {
            if index == unit_level {
                continue;
            }
            if level.contains(['+', '#', '{', '}']) {
                return Err(format!(
                    "`{text}` may contain no wildcard or placeholder besides `{{unit}}`"
                ));
            }
        }
        let pattern = TopicPattern {
            text: text.to_string(),
            levels,
            unit_level,
        };
        validate_filter(&pattern.filter())?;
        Ok(pattern)
    }

    /// Returns the MQTT subscription filter, with `+` in place of `{unit}`.
    pub fn filter(&self) -> String {
        let mut levels = self.levels.clone();
        levels[self.unit_level] = "+".to_string();
        levels.join("/")
    }

    /// Returns the unit level of `topic` when the topic matches the pattern.
    pub fn unit_of<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let levels: Vec<&str> = topic.split('/').collect();
        if levels.len() != self.levels.len() {
            return None;
        }
        let literals_match = levels
            .iter()
            .zip(&self.levels)
            .enumerate()
            .all(|(index, (level, expected))| index == self.unit_level || level == expected);
        literals_match.then(|| levels[self.unit_level])
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Loads the `[intake]` section. `mqtt_present` is whether an `[mqtt]` section exists, and
/// `subscriptions` are the sensor subscriptions, which must not overlap the message topic.
/// Returns `None` when the section is absent or has a problem; every problem is added to
/// `diags`.
pub fn load(
    file: &TomlFile,
    mqtt_present: bool,
    subscriptions: &[Subscription],
    diags: &mut Diagnostics,
) -> Option<IntakeConfig> {
    let item = file.get("intake")?;
    let problems_before = diags.len();

    // Bridges are read one by one so that one bad entry does not hide the others.
    let mut section = item.clone();
    if let Some(table) = section.as_table_like_mut() {
        table.remove("bridge");
    }
    let raw: Option<RawIntake> = file.deserialize(&section, "intake", diags);
    let bridges: Vec<RawBridge> = file.array_section(Some(item), "bridge", "intake.bridge", diags);
    let raw = raw?;

    let mqtt_topic = raw
        .mqtt_topic
        .as_deref()
        .and_then(|text| check_topic(file, text, mqtt_present, subscriptions, diags));
    check_channels(file, &raw.channels, diags);
    if raw.max_text_bytes == 0 || raw.max_text_bytes > MAX_TEXT_LIMIT {
        file.report_at(
            diags,
            &["intake", "max_text_bytes"],
            format!(
                "max_text_bytes {} is outside 1..={MAX_TEXT_LIMIT}",
                raw.max_text_bytes
            ),
        );
    }
    for (key, value) in [
        ("rate_limit_burst", raw.rate_limit_burst),
        ("retention_days", raw.retention_days),
    ] {
        if value == 0 {
            file.report_at(diags, &["intake", key], "must be greater than 0");
        }
    }
    let bridges = check_bridges(file, bridges, diags);
    if raw.mqtt_topic.is_none() && bridges.is_empty() && diags.len() == problems_before {
        file.report_at(
            diags,
            &["intake"],
            "no message source; set mqtt_topic or add an [[intake.bridge]]",
        );
    }

    (diags.len() == problems_before).then(|| IntakeConfig {
        mqtt_topic,
        channels: raw.channels,
        max_text_bytes: raw.max_text_bytes,
        rate_limit: RateLimit {
            burst: raw.rate_limit_burst,
            per_minute: f64::from(raw.rate_limit_per_hour) / 60.0,
        },
        retention_days: raw.retention_days,
        bridges,
    })
}

fn check_topic(
    file: &TomlFile,
    text: &str,
    mqtt_present: bool,
    subscriptions: &[Subscription],
    diags: &mut Diagnostics,
) -> Option<TopicPattern> {
    let key = &["intake", "mqtt_topic"];
    if !mqtt_present {
        file.report_at(
            diags,
            key,
            "mqtt_topic needs an [mqtt] section with the broker to subscribe to",
        );
        return None;
    }
    let pattern = match TopicPattern::parse(text) {
        Ok(pattern) => pattern,
        Err(reason) => {
            file.report_at(diags, key, format!("invalid topic: {reason}"));
            return None;
        }
    };
    // A sensor filter that also matches message topics would make the broker deliver each
    // message twice, once per subscription.
    let sample = pattern.filter().replace('+', "unit");
    for subscription in subscriptions {
        if filter_matches(&subscription.filter, &sample) {
            file.report_at(
                diags,
                key,
                format!(
                    "`{text}` overlaps the sensor subscription `{}`; narrow that filter",
                    subscription.filter
                ),
            );
            return None;
        }
    }
    Some(pattern)
}

fn check_channels(file: &TomlFile, channels: &[String], diags: &mut Diagnostics) {
    if channels.is_empty() {
        file.report_at(
            diags,
            &["intake", "channels"],
            "channels is empty; list the channels that bridges and apps use, such as \"sms\"",
        );
    }
    for channel in channels {
        let valid = !channel.is_empty()
            && channel.len() <= 32
            && channel
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            file.report_at(
                diags,
                &["intake", "channels"],
                format!(
                    "invalid channel {channel:?}; use up to 32 lowercase letters, digits, '_' \
                     and '-'"
                ),
            );
        }
    }
}

fn check_bridges(file: &TomlFile, raw: Vec<RawBridge>, diags: &mut Diagnostics) -> Vec<Bridge> {
    let mut bridges: Vec<Bridge> = Vec::new();
    for (index, bridge) in raw.into_iter().enumerate() {
        let index = index.to_string();
        let at = |key: &'static str| ["intake", "bridge", &index, key].map(String::from);
        let report = |diags: &mut Diagnostics, key: &'static str, message: String| {
            let segments = at(key);
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            file.report_at(diags, &segments, message);
        };
        let name_valid = !bridge.name.is_empty()
            && bridge
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_valid {
            report(
                diags,
                "name",
                format!(
                    "invalid bridge name {:?}; use letters, digits, '-' and '_'",
                    bridge.name
                ),
            );
            continue;
        }
        if bridges.iter().any(|other| other.name == bridge.name) {
            report(
                diags,
                "name",
                format!("bridge name {:?} is used above already", bridge.name),
            );
            continue;
        }
        if bridge.token.expose().len() < MIN_TOKEN_BYTES {
            report(
                diags,
                "token",
                format!(
                    "token is shorter than {MIN_TOKEN_BYTES} characters; generate one with \
                     `openssl rand -hex 32`"
                ),
            );
            continue;
        }
        if bridges.iter().any(|other| other.token == bridge.token) {
            report(
                diags,
                "token",
                "token is the same as another bridge's; give each bridge its own".to_string(),
            );
            continue;
        }
        bridges.push(Bridge {
            name: bridge.name,
            token: bridge.token,
        });
    }
    bridges
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load_text(text: &str) -> (Option<IntakeConfig>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let file = TomlFile::parse(Path::new("gateway.toml"), text.to_string(), &mut diags)
            .expect("valid TOML");
        let config = load(&file, true, &[], &mut diags);
        let messages = diags.iter().map(ToString::to_string).collect();
        (config, messages)
    }

    #[test]
    fn topic_pattern_extracts_unit() {
        let pattern = TopicPattern::parse("tenants/{unit}/messages").unwrap();
        assert_eq!(pattern.filter(), "tenants/+/messages");
        assert_eq!(pattern.unit_of("tenants/2.tv/messages"), Some("2.tv"));
        assert_eq!(pattern.unit_of("tenants/2.tv/other"), None);
        assert_eq!(pattern.unit_of("tenants/2.tv/messages/x"), None);
        assert_eq!(pattern.unit_of("other/2.tv/messages"), None);
    }

    #[test]
    fn topic_pattern_rejects_bad_placeholders() {
        for text in [
            "tenants/messages",
            "tenants/{unit}/{unit}",
            "tenants/unit-{unit}/messages",
            "tenants/{unit}/#",
            "tenants/+/{unit}",
        ] {
            assert!(TopicPattern::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn load_reads_section_with_bridges() {
        let (config, problems) = load_text(
            r#"
[intake]
mqtt_topic = "tenants/{unit}/messages"
max_text_bytes = 100
rate_limit_burst = 2
rate_limit_per_hour = 120

[[intake.bridge]]
name = "sms"
token = "0123456789abcdef"
"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        assert_eq!(config.max_text_bytes, 100);
        assert_eq!(config.rate_limit.burst, 2);
        assert_eq!(config.rate_limit.per_minute, 2.0);
        assert_eq!(config.bridges.len(), 1);
        assert_eq!(config.bridges[0].name, "sms");
        assert_eq!(config.channels, ["sms", "email", "app", "web"]);
        assert_eq!(config.retention_days, 90);
    }

    #[test]
    fn load_reports_every_problem() {
        let (config, problems) = load_text(
            r#"
[intake]
mqtt_topic = "tenants/#"
max_text_bytes = 0
channels = ["SMS"]
retention_days = 0

[[intake.bridge]]
name = "sms"
token = "short"

[[intake.bridge]]
name = "mail"
token = "0123456789abcdef"

[[intake.bridge]]
name = "mail2"
token = "0123456789abcdef"
"#,
        );
        assert!(config.is_none());
        let expected = [
            "intake.mqtt_topic: invalid topic",
            "intake.max_text_bytes: max_text_bytes 0 is outside",
            "intake.channels: invalid channel \"SMS\"",
            "intake.retention_days: must be greater than 0",
            "intake.bridge[0].token: token is shorter than 16",
            "intake.bridge[2].token: token is the same as another bridge's",
        ];
        for text in expected {
            assert!(
                problems.iter().any(|p| p.contains(text)),
                "{text:?} not in {problems:?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:?}");
        assert!(
            problems.iter().all(|p| !p.contains("0123456789abcdef")),
            "{problems:?}"
        );
    }

    #[test]
    fn topic_without_mqtt_section_is_reported() {
        let mut diags = Diagnostics::default();
        let text = "[intake]\nmqtt_topic = \"tenants/{unit}/messages\"\n";
        let file =
            TomlFile::parse(Path::new("gateway.toml"), text.to_string(), &mut diags).unwrap();
        assert!(load(&file, false, &[], &mut diags).is_none());
        let problem = diags.iter().next().unwrap().to_string();
        assert!(problem.contains("needs an [mqtt] section"), "{problem}");
    }

    #[test]
    fn section_without_source_is_reported() {
        let (config, problems) = load_text("[intake]\nretention_days = 30\n");
        assert!(config.is_none());
        assert!(problems[0].contains("no message source"), "{problems:?}");
    }
}
