//! The sync state that `/healthz` reports: the outbox, the last successful push and pull,
//! the last error and how long requests to the office have failed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use super::config::SyncConfig;
use crate::time::{format_ms, Clock};

/// Text that replaces a secret in a stored error message, as [`crate::secret::Secret`] prints.
const REDACTED: &str = "<redacted>";

/// Sync state shared by the sync task, which records the outcome of its requests, and the
/// local API, which reports it. Clones share the same state.
#[derive(Clone)]
pub struct SyncHealth {
    inner: Arc<Inner>,
}

struct Inner {
    /// The office's base URL without a password.
    url: String,
    outbox_warn_events: u64,
    unreachable_warn: Duration,
    /// Values removed from error messages before they are kept: the token and the URL's
    /// password.
    secrets: Vec<String>,
    clock: Arc<dyn Clock>,
    db_path: PathBuf,
    /// Read connection to the gateway's database, opened on the first report.
    reader: Mutex<Option<Connection>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Monotonic time when sync started; the office counts as unreachable from then until the
    /// first successful request.
    started: Duration,
    /// Monotonic time of the last request that succeeded.
    last_success: Option<Duration>,
    last_push_ms: Option<i64>,
    last_pull_ms: Option<i64>,
    last_error: Option<String>,
    last_error_ms: Option<i64>,
    consecutive_failures: u32,
}

/// The `sync` object of `/healthz`. Times are RFC 3339 in UTC.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// The reasons for `degraded`; empty when the status is `ok`.
    pub problems: Vec<String>,
    pub url: String,
    /// Events waiting in the outbox; `None` when the outbox cannot be read.
    pub outbox_events: Option<i64>,
    /// Payload bytes of the events waiting in the outbox.
    pub outbox_bytes: Option<i64>,
    pub outbox_warn_events: u64,
    /// Age of the oldest waiting event by its timestamp, in seconds; `None` when the outbox
    /// is empty.
    pub oldest_event_age_secs: Option<i64>,
    /// Time of the last batch of events that the office accepted with a 2xx response.
    pub last_push: Option<String>,
    /// Time of the last pull of office changes that completed.
    pub last_pull: Option<String>,
    /// The error of the last failed round, with the token and URL password removed.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Rounds that failed since the last one that succeeded.
    pub consecutive_failures: u32,
    /// Seconds since the last successful request (or since sync started) while requests
    /// fail; `None` after a round that succeeded.
    pub unreachable_secs: Option<u64>,
    pub unreachable_warn_secs: u64,
    /// Events the office rejected for good, kept in the table `sync_rejected`.
    pub rejected_events: Option<i64>,
}

/// Outbox figures read from the database.
struct OutboxFigures {
    events: i64,
    bytes: i64,
    oldest_ts_ms: Option<i64>,
    rejected: i64,
}

impl SyncHealth {
    pub(super) fn new(config: &SyncConfig, db_path: PathBuf, clock: Arc<dyn Clock>) -> Self {
        let mut url = config.url.clone();
        let mut secrets = vec![config.token.expose().to_string()];
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            secrets.push(password.to_string());
            let _ = url.set_password(None);
        }
        secrets.retain(|secret| !secret.is_empty());
        let state = State {
            started: clock.monotonic(),
            ..State::default()
        };
        SyncHealth {
            inner: Arc::new(Inner {
                url: url.as_str().trim_end_matches('/').to_string(),
                outbox_warn_events: config.outbox_warn_events,
                unreachable_warn: config.unreachable_warn,
                secrets,
                clock,
                db_path,
                reader: Mutex::new(None),
                state: Mutex::new(state),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain values, so one left by a panicking holder is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a request that succeeded.
    pub(super) fn record_success(&self) {
        let now = self.inner.clock.monotonic();
        self.state().last_success = Some(now);
    }

    /// Records a batch of events that the office accepted with a 2xx response.
    pub(super) fn record_push(&self) {
        let now = self.inner.clock.monotonic();
        let wall_ms = self.inner.clock.wall_ms();
        let mut state = self.state();
        state.last_success = Some(now);
        state.last_push_ms = Some(wall_ms);
    }

    /// Records a pull that applied every change the office had.
    pub(super) fn record_pull(&self) {
        let wall_ms = self.inner.clock.wall_ms();
        self.state().last_pull_ms = Some(wall_ms);
    }

    /// Records a round that completed.
    pub(super) fn record_round_ok(&self) {
        self.state().consecutive_failures = 0;
    }

    /// Records a failed round: its error, without secrets, and the failures in a row.
    pub(super) fn record_failure(&self, error: &str, consecutive_failures: u32) {
        let message = redact(error, &self.inner.secrets);
        let wall_ms = self.inner.clock.wall_ms();
        let mut state = self.state();
        state.last_error = Some(message);
        state.last_error_ms = Some(wall_ms);
        state.consecutive_failures = consecutive_failures;
    }

    /// Builds the report. It reads the outbox from the database, so it blocks; call it off
    /// the async runtime.
    pub fn report(&self) -> SyncReport {
        let outbox = self.read_outbox();
        let now = self.inner.clock.monotonic();
        let now_ms = self.inner.clock.wall_ms();
        let state = self.state();
        let unreachable = (state.consecutive_failures > 0).then(|| {
            let since = state.last_success.unwrap_or(state.started);
            now.saturating_sub(since)
        });

        let mut problems = Vec::new();
        if let Some(unreachable) = unreachable.filter(|u| *u >= self.inner.unreachable_warn) {
            problems.push(format!(
                "no successful request to the central office at {} for {} s (warning level \
                 {} s); last error: {}",
                self.inner.url,
                unreachable.as_secs(),
                self.inner.unreachable_warn.as_secs(),
                state.last_error.as_deref().unwrap_or("none recorded"),
            ));
        }
        match &outbox {
            Ok(figures) => {
                let warn = i64::try_from(self.inner.outbox_warn_events).unwrap_or(i64::MAX);
                if figures.events >= warn {
                    problems.push(format!(
                        "the outbox holds {} events, at or above its warning level of {warn} \
                         ([sync] outbox_warn_events); they wait for the central office",
                        figures.events
                    ));
                }
            }
            Err(message) => problems.push(message.clone()),
        }

        let figures = outbox.as_ref().ok();
        SyncReport {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            },
            problems,
            url: self.inner.url.clone(),
            outbox_events: figures.map(|f| f.events),
            outbox_bytes: figures.map(|f| f.bytes),
            outbox_warn_events: self.inner.outbox_warn_events,
            oldest_event_age_secs: figures
                .and_then(|f| f.oldest_ts_ms)
                .map(|ts_ms| (now_ms - ts_ms).max(0) / 1000),
            last_push: state.last_push_ms.map(format_ms),
            last_pull: state.last_pull_ms.map(format_ms),
            last_error: state.last_error.clone(),
            last_error_at: state.last_error_ms.map(format_ms),
            consecutive_failures: state.consecutive_failures,
            unreachable_secs: unreachable.map(|u| u.as_secs()),
            unreachable_warn_secs: self.inner.unreachable_warn.as_secs(),
            rejected_events: figures.map(|f| f.rejected),
        }
    }

    /// Reads the outbox figures, opening the read connection when there is none. A failed
    /// read drops the connection, so that the next report opens a new one.
    fn read_outbox(&self) -> Result<OutboxFigures, String> {
        let mut reader = self
            .inner
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if reader.is_none() {
            let conn = crate::store::connect(&self.inner.db_path, false)
                .map_err(|err| format!("cannot open the store to read the outbox: {err}"))?;
            *reader = Some(conn);
        }
        let conn = reader.as_ref().expect("opened above");
        let result = query_outbox(conn).map_err(|err| {
            format!(
                "cannot read the outbox from {}: {err}",
                self.inner.db_path.display()
            )
        });
        if result.is_err() {
            *reader = None;
        }
        result
    }
}

fn query_outbox(conn: &Connection) -> rusqlite::Result<OutboxFigures> {
    let (events, bytes, oldest_ts_ms) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(ts_ms) FROM outbox",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let rejected = conn.query_row("SELECT COUNT(*) FROM sync_rejected", [], |row| row.get(0))?;
    Ok(OutboxFigures {
        events,
        bytes,
        oldest_ts_ms,
        rejected,
    })
}

/// Replaces every occurrence of each secret in `text` with `<redacted>`.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret.as_str(), REDACTED);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::time::ManualClock;

    fn health(url: &str, dir: &std::path::Path) -> (SyncHealth, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_767_225_600_000));
        let url = reqwest::Url::parse(url).unwrap();
        let mut config = SyncConfig::new(
            url,
            Secret::new("token-0123456789abcdef"),
            dir.join("gateway.toml"),
        );
        config.unreachable_warn = Duration::from_secs(60);
        config.outbox_warn_events = 2;
        let db = dir.join("gateway.db");
        let mut conn = crate::store::connect(&db, false).unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        (SyncHealth::new(&config, db, clock.clone()), clock)
    }

    #[test]
    fn redact_removes_every_secret() {
        let secrets = vec!["s3cret".to_string(), String::new()];
        assert_eq!(
            redact("token s3cret in s3cret", &secrets),
            "token <redacted> in <redacted>"
        );
        assert_eq!(redact("nothing here", &secrets), "nothing here");
    }

    #[test]
    fn report_hides_token_and_url_password() {
        let dir = tempfile::tempdir().unwrap();
        let (health, _clock) = health("https://gw:hunter2-pass@127.0.0.1:8443", dir.path());
        health.record_failure(
            "request to https://gw:hunter2-pass@127.0.0.1:8443 with token-0123456789abcdef",
            1,
        );
        let report = health.report();
        let text = serde_json::to_string(&report).unwrap();
        assert!(!text.contains("hunter2-pass"), "{text}");
        assert!(!text.contains("token-0123456789abcdef"), "{text}");
        assert_eq!(report.url, "https://gw@127.0.0.1:8443");
    }

    #[test]
    fn report_degrades_after_unreachable_warn() {
        let dir = tempfile::tempdir().unwrap();
        let (health, clock) = health("http://127.0.0.1:9", dir.path());
        health.record_success();
        clock.advance(Duration::from_secs(10));
        health.record_failure("connection refused", 1);
        let report = health.report();
        assert_eq!(report.status, "ok", "{:?}", report.problems);
        assert_eq!(report.unreachable_secs, Some(10));

        clock.advance(Duration::from_secs(50));
        let report = health.report();
        assert_eq!(report.status, "degraded");
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0].contains("connection refused"),
            "{:?}",
            report.problems
        );

        health.record_success();
        health.record_round_ok();
        let report = health.report();
        assert_eq!(report.status, "ok", "{:?}", report.problems);
        assert_eq!(report.unreachable_secs, None);
        assert_eq!(report.last_error.as_deref(), Some("connection refused"));
    }
}
