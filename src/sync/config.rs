//! The `[sync]` section: where the central office is, how the gateway authenticates, and the
//! bounds of sending and of the outbox.
//!
//! ```toml
//! [sync]
//! url = "https://office.example.net:8443"
//! token = "…"
//! ca_file = "office-ca.pem"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Diagnostics, TomlFile};
use crate::secret::Secret;

/// Shortest token accepted, in bytes, so that a token cannot be guessed online.
const MIN_TOKEN_BYTES: usize = 16;

/// The `[sync]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawSync {
    /// Base URL of the central office, such as `https://office.example.net:8443`. Plain
    /// `http` is accepted only for a loopback host.
    url: String,
    /// This gateway's bearer token, as issued by `caretaker central token add`.
    token: Option<Secret>,
    /// PEM file of the CA that signed the office's certificate. Default: the system's roots.
    ca_file: Option<PathBuf>,
    /// Maximum events in one request (default 500).
    batch_max_events: usize,
    /// Request body limit in bytes until the office states its own (default 1048576).
    max_body_bytes: u64,
    /// Seconds between checks of the outbox for new events (default 2).
    poll_interval_secs: u64,
    /// Seconds between pulls of office changes when nothing else triggers a round
    /// (default 10).
    pull_interval_secs: u64,
    /// Seconds between heartbeats while the outbox is empty (default 60).
    heartbeat_interval_secs: u64,
    /// First retry delay after a failed round, in milliseconds (default 1000).
    backoff_initial_ms: u64,
    /// Maximum retry delay in seconds (default 300).
    backoff_max_secs: u64,
    /// Maximum events sent per second while a backlog drains (default 500).
    drain_events_per_sec: u32,
    /// Maximum events in the outbox (default 100000). Over it, telemetry events are evicted
    /// first, then anomaly summaries; ticket, tenant update and audit events never are.
    outbox_max_events: u64,
    /// Events in the outbox at which the gateway warns and `/healthz` reports degraded
    /// (default: half of `outbox_max_events`).
    outbox_warn_events: Option<u64>,
    /// Seconds without a successful request to the office, while requests fail, after which
    /// `/healthz` reports degraded (default 900).
    unreachable_warn_secs: u64,
    /// Seconds a request may take before it counts as failed (default 30).
    request_timeout_secs: u64,
    /// Maximum office changes fetched per pull request (default 500).
    pull_limit: u32,
    /// Seconds between telemetry summaries of hourly rollups (default 3600; 0 turns them
    /// off).
    telemetry_interval_secs: u64,
}

impl Default for RawSync {
    fn default() -> Self {
        RawSync {
            url: String::new(),
            token: None,
            ca_file: None,
            batch_max_events: 500,
            max_body_bytes: 1024 * 1024,
            poll_interval_secs: 2,
            pull_interval_secs: 10,
            heartbeat_interval_secs: 60,
            backoff_initial_ms: 1000,
            backoff_max_secs: 300,
            drain_events_per_sec: 500,
            outbox_max_events: 100_000,
            outbox_warn_events: None,
            unreachable_warn_secs: 900,
            request_timeout_secs: 30,
            pull_limit: 500,
            telemetry_interval_secs: 3600,
        }
    }
}

/// A validated `[sync]` section.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Base URL without a trailing slash.
    pub url: reqwest::Url,
    pub token: Secret,
    pub ca_file: Option<PathBuf>,
    /// The config file, whose SHA-256 the heartbeat carries.
    pub config_file: PathBuf,
    pub batch_max_events: usize,
    pub max_body_bytes: u64,
    pub poll_interval: Duration,
    pub pull_interval: Duration,
    pub heartbeat_interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub drain_events_per_sec: u32,
    pub outbox_max_events: u64,
    /// Outbox level at which sync warns and reports degraded health.
    pub outbox_warn_events: u64,
    /// Time without a successful request, while requests fail, after which health is
    /// degraded.
    pub unreachable_warn: Duration,
    pub request_timeout: Duration,
    pub pull_limit: u32,
    /// `None` turns telemetry summaries off.
    pub telemetry_interval: Option<Duration>,
}

impl SyncConfig {
    /// Returns a configuration with the defaults of every optional key.
    pub fn new(url: reqwest::Url, token: Secret, config_file: PathBuf) -> SyncConfig {
        let raw = RawSync::default();
        SyncConfig {
            url,
            token,
            ca_file: None,
            config_file,
            batch_max_events: raw.batch_max_events,
            max_body_bytes: raw.max_body_bytes,
            poll_interval: Duration::from_secs(raw.poll_interval_secs),
            pull_interval: Duration::from_secs(raw.pull_interval_secs),
            heartbeat_interval: Duration::from_secs(raw.heartbeat_interval_secs),
            backoff_initial: Duration::from_millis(raw.backoff_initial_ms),
            backoff_max: Duration::from_secs(raw.backoff_max_secs),
            drain_events_per_sec: raw.drain_events_per_sec,
            outbox_max_events: raw.outbox_max_events,
            outbox_warn_events: default_warn_events(raw.outbox_max_events),
            unreachable_warn: Duration::from_secs(raw.unreachable_warn_secs),
            request_timeout: Duration::from_secs(raw.request_timeout_secs),
            pull_limit: raw.pull_limit,
            telemetry_interval: Some(Duration::from_secs(raw.telemetry_interval_secs)),
        }
    }
}

/// Reads and checks `[sync]`, if present. Relative paths resolve from `base_dir`.
pub fn load(file: &TomlFile, base_dir: &Path, diags: &mut Diagnostics) -> Option<SyncConfig> {
    let item = file.get("sync")?;
    let problems_before = diags.len();
    let raw: RawSync = file.deserialize(item, "sync", diags)?;

    let url = check_url(file, &raw.url, diags);
    let token = match &raw.token {
        None => {
            file.report_at(
                diags,
                &["sync", "token"],
                "missing token; set token to the value from `caretaker central token add`",
            );
            None
        }
        Some(token) if token.expose().len() < MIN_TOKEN_BYTES => {
            file.report_at(
                diags,
                &["sync", "token"],
                format!(
                    "token too short (the value is not shown); use at least {MIN_TOKEN_BYTES} \
                     bytes"
                ),
            );
            None
        }
        Some(token) => Some(token.clone()),
    };
    let ca_file = raw.ca_file.as_ref().map(|path| base_dir.join(path));
    if let Some(path) = &ca_file {
        if !path.is_file() {
            file.report_at(
                diags,
                &["sync", "ca_file"],
                format!(
                    "CA file {} not found; give a PEM file of the office's CA",
                    path.display()
                ),
            );
        }
    }
    let positive = [
        ("batch_max_events", raw.batch_max_events as u64),
        ("max_body_bytes", raw.max_body_bytes),
        ("poll_interval_secs", raw.poll_interval_secs),
        ("pull_interval_secs", raw.pull_interval_secs),
        ("heartbeat_interval_secs", raw.heartbeat_interval_secs),
        ("backoff_initial_ms", raw.backoff_initial_ms),
        ("backoff_max_secs", raw.backoff_max_secs),
        ("drain_events_per_sec", u64::from(raw.drain_events_per_sec)),
        ("outbox_max_events", raw.outbox_max_events),
        ("outbox_warn_events", raw.outbox_warn_events.unwrap_or(1)),
        ("unreachable_warn_secs", raw.unreachable_warn_secs),
        ("request_timeout_secs", raw.request_timeout_secs),
        ("pull_limit", u64::from(raw.pull_limit)),
    ];
    for (key, value) in positive {
        if value == 0 {
            file.report_at(diags, &["sync", key], "must be greater than 0");
        }
    }
    if raw.backoff_max_secs.saturating_mul(1000) < raw.backoff_initial_ms {
        file.report_at(
            diags,
            &["sync", "backoff_max_secs"],
            format!(
                "backoff_max_secs {} is below backoff_initial_ms {}; raise it",
                raw.backoff_max_secs, raw.backoff_initial_ms
            ),
        );
    }
    if let Some(warn) = raw.outbox_warn_events {
        if warn > raw.outbox_max_events {
            file.report_at(
                diags,
                &["sync", "outbox_warn_events"],
                format!(
                    "outbox_warn_events {warn} is above outbox_max_events {}; lower it",
                    raw.outbox_max_events
                ),
            );
        }
    }

    if diags.len() != problems_before {
        return None;
    }
    let (url, token) = (url?, token?);
    Some(SyncConfig {
        url,
        token,
        ca_file,
        config_file: file.path.clone(),
        batch_max_events: raw.batch_max_events,
        max_body_bytes: raw.max_body_bytes,
        poll_interval: Duration::from_secs(raw.poll_interval_secs),
        pull_interval: Duration::from_secs(raw.pull_interval_secs),
        heartbeat_interval: Duration::from_secs(raw.heartbeat_interval_secs),
        backoff_initial: Duration::from_millis(raw.backoff_initial_ms),
        backoff_max: Duration::from_secs(raw.backoff_max_secs),
        drain_events_per_sec: raw.drain_events_per_sec,
        outbox_max_events: raw.outbox_max_events,
        outbox_warn_events: raw
            .outbox_warn_events
            .unwrap_or_else(|| default_warn_events(raw.outbox_max_events)),
        unreachable_warn: Duration::from_secs(raw.unreachable_warn_secs),
        request_timeout: Duration::from_secs(raw.request_timeout_secs),
        pull_limit: raw.pull_limit,
        telemetry_interval: (raw.telemetry_interval_secs > 0)
            .then(|| Duration::from_secs(raw.telemetry_interval_secs)),
    })
}

/// Returns the default warning level: half of the outbox cap, and at least 1 event.
fn default_warn_events(outbox_max_events: u64) -> u64 {
    (outbox_max_events / 2).max(1)
}

fn check_url(file: &TomlFile, text: &str, diags: &mut Diagnostics) -> Option<reqwest::Url> {
    if text.trim().is_empty() {
        file.report_at(
            diags,
            &["sync", "url"],
            "missing url; set the central office's base URL, such as https://office:8443",
        );
        return None;
    }
    let url = match parse_base_url(text) {
        Ok(url) => url,
        Err(message) => {
            file.report_at(diags, &["sync", "url"], message);
            return None;
        }
    };
    Some(url)
}

/// Parses the office's base URL: `https`, or `http` to a loopback host, without a query.
pub fn parse_base_url(text: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(text.trim())
        .map_err(|err| format!("invalid URL {text:?}: {err}; expected https://HOST[:PORT]"))?;
    // Credentials in the URL would be logged with it, and reqwest sends them as basic
    // authentication in place of the bearer token, so they are rejected without echoing them.
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(format!(
            "invalid URL {}: remove the user name and password; the gateway authenticates \
             with [sync] token",
            url.as_str()
        ));
    }
    let host = url.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "plain http to {text:?} would send the token unencrypted; use https (http is \
                 accepted only for a loopback host)"
            ))
        }
        other => {
            return Err(format!(
                "invalid URL scheme {other:?} in {text:?}; expected https"
            ))
        }
    }
    if url.host().is_none() {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "invalid URL {text:?}: remove the query or fragment; give the base URL only"
        ));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_accepts_https_and_loopback_http() {
        let url = parse_base_url("https://office.example.net:8443/").unwrap();
        assert_eq!(url.as_str(), "https://office.example.net:8443/");
        assert!(parse_base_url("http://127.0.0.1:9000").is_ok());
        assert!(parse_base_url("http://localhost:9000/base/").is_ok());
    }

    #[test]
    fn base_url_rejects_plain_http_to_remote_host() {
        let err = parse_base_url("http://office.example.net").unwrap_err();
        assert!(err.contains("use https"), "{err}");
        let err = parse_base_url("ftp://office.example.net").unwrap_err();
        assert!(err.contains("scheme"), "{err}");
        let err = parse_base_url("https://office.example.net/?a=1").unwrap_err();
        assert!(err.contains("query"), "{err}");
    }

    #[test]
    fn base_url_rejects_credentials_unechoed() {
        let err = parse_base_url("https://user:s3cretpw@office.example.net").unwrap_err();
        assert!(err.contains("remove the user name and password"), "{err}");
        assert!(!err.contains("s3cretpw"), "{err}");
        assert!(!err.contains("user@"), "{err}");
        let err = parse_base_url("http://user@127.0.0.1:9000").unwrap_err();
        assert!(err.contains("[sync] token"), "{err}");
    }

    fn load_text(text: &str) -> (Option<SyncConfig>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let file = TomlFile::parse(Path::new("gateway.toml"), text.to_string(), &mut diags)
            .expect("valid TOML");
        let config = load(&file, Path::new("."), &mut diags);
        (config, diags)
    }

    #[test]
    fn section_with_defaults_loads() {
        let (config, diags) =
            load_text("[sync]\nurl = \"http://127.0.0.1:1\"\ntoken = \"0123456789abcdef\"\n");
        assert!(diags.is_empty(), "{:?}", diags.iter().collect::<Vec<_>>());
        let config = config.unwrap();
        assert_eq!(config.batch_max_events, 500);
        assert_eq!(config.token.expose(), "0123456789abcdef");
        assert_eq!(config.telemetry_interval, Some(Duration::from_secs(3600)));
        assert_eq!(config.outbox_warn_events, 50_000);
        assert_eq!(config.unreachable_warn, Duration::from_secs(900));
    }

    #[test]
    fn warn_level_above_cap_is_reported() {
        let (config, diags) = load_text(
            "[sync]\nurl = \"http://127.0.0.1:1\"\ntoken = \"0123456789abcdef\"\n\
             outbox_max_events = 10\noutbox_warn_events = 11\n",
        );
        assert!(config.is_none());
        let messages: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("outbox_warn_events 11"),
            "{messages:?}"
        );
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let (config, diags) = load_text(
            "[sync]\nurl = \"http://office.example.net\"\ntoken = \"hush-hush\"\n\
             batch_max_events = 0\nca_file = \"missing-ca.pem\"\n",
        );
        assert!(config.is_none());
        let messages: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(
            messages.iter().all(|m| !m.contains("hush-hush")),
            "{messages:?}"
        );
    }
}
