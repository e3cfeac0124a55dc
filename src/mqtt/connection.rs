//! Reconnection backoff and rate-limited logging of connection failures and bad payloads.

use std::time::{Duration, Instant};

use rumqttc::{ConnectReturnCode, ConnectionError};

use super::config::MqttConfig;

/// How often a repeated connection failure is summed up in the log.
const FAILURE_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Quarantined payloads logged one by one per window; the rest are counted.
const PAYLOAD_LOGS_PER_WINDOW: u32 = 10;
const PAYLOAD_LOG_WINDOW: Duration = Duration::from_secs(60);

/// Capped exponential backoff with jitter: each wait is drawn between half and all of the
/// current delay, which doubles per failure from the minimum up to the maximum.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// Returns the next wait and doubles the delay for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        let jitter_ms = fastrand::u64(0..=(ceiling - half).as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Logs connection failures on change, and a summary of repeats once a minute.
#[derive(Debug)]
pub struct ConnectionLog {
    broker: String,
    username: Option<String>,
    client_id: String,
    last_error: Option<String>,
    repeats: u64,
    last_summary: Instant,
}

impl ConnectionLog {
    pub fn new(config: &MqttConfig) -> Self {
        ConnectionLog {
            broker: format!("{}:{}", config.host, config.port),
            username: config.username.clone(),
            client_id: config.client_id.clone(),
            last_error: None,
            repeats: 0,
            last_summary: Instant::now(),
        }
    }

    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// Records a failed or dropped connection, logging it when it differs from the last one.
    pub fn failed(&mut self, err: &ConnectionError, retry_in: Duration) {
        let message = self.describe(err);
        let retry_in_ms = retry_in.as_millis() as u64;
        if self.last_error.as_deref() == Some(message.as_str()) {
            self.repeats += 1;
            if self.last_summary.elapsed() >= FAILURE_SUMMARY_INTERVAL {
                tracing::warn!(
                    broker = %self.broker,
                    error = %message,
                    failed_attempts = self.repeats,
                    retry_in_ms,
                    "still cannot connect to the mqtt broker"
                );
                self.repeats = 0;
                self.last_summary = Instant::now();
            }
            return;
        }
        if is_auth_error(err) {
            tracing::error!(broker = %self.broker, error = %message, retry_in_ms, "mqtt login rejected");
        } else {
            tracing::warn!(broker = %self.broker, error = %message, retry_in_ms, "mqtt connection failed");
        }
        self.last_error = Some(message);
        self.repeats = 0;
        self.last_summary = Instant::now();
    }

    /// Records a successful connection.
    pub fn connected(&mut self, session_present: bool) {
        tracing::info!(
            broker = %self.broker,
            client_id = %self.client_id,
            session_present,
            "connected to the mqtt broker"
        );
        self.last_error = None;
        self.repeats = 0;
    }

    /// Describes a connection error in words an operator can act on. Never contains the
    /// password.
    pub fn describe(&self, err: &ConnectionError) -> String {
        let broker = &self.broker;
        match err {
            ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
            ) => match &self.username {
                Some(user) => format!(
                    "broker {broker} rejected the login of user `{user}`; check username and password in [mqtt] and the broker's password file"
                ),
                None => format!(
                    "broker {broker} requires a login; set username and password in [mqtt]"
                ),
            },
            ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId) => format!(
                "broker {broker} rejected client_id `{}`; choose another client_id",
                self.client_id
            ),
            ConnectionError::ConnectionRefused(code) => {
                format!("broker {broker} refused the connection: {code:?}")
            }
            ConnectionError::Io(io) => format!("cannot connect to {broker}: {io}"),
            ConnectionError::Tls(tls) => format!(
                "TLS handshake with {broker} failed: {tls}; check ca_file and the broker's certificate"
            ),
            ConnectionError::NetworkTimeout => format!("connecting to {broker} timed out"),
            other => format!("connection to {broker} failed: {other}"),
        }
    }
}

pub fn is_auth_error(err: &ConnectionError) -> bool {
    matches!(
        err,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
        )
    )
}

/// Logs quarantined payloads and missing values, at most a few per minute, and counts the
/// rest so that a flood of bad messages does not flood the log.
#[derive(Debug)]
pub struct PayloadLog {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl PayloadLog {
    pub fn new() -> Self {
        PayloadLog {
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    /// Returns whether the next problem may be logged. Logs the count of suppressed ones
    /// when a new window starts.
    fn admit(&mut self) -> bool {
        if self.window_start.elapsed() >= PAYLOAD_LOG_WINDOW {
            if self.suppressed > 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    window_secs = PAYLOAD_LOG_WINDOW.as_secs(),
                    "more mqtt payloads had problems than were logged"
                );
            }
            self.window_start = Instant::now();
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < PAYLOAD_LOGS_PER_WINDOW {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    pub fn quarantined(&mut self, topic: &str, reason: &str) {
        if self.admit() {
            tracing::warn!(topic, reason, "mqtt payload quarantined");
        }
    }

    pub fn missing_values(&mut self, topic: &str, missing: usize, reason: &str) {
        if self.admit() {
            tracing::warn!(
                topic,
                missing,
                reason,
                "mqtt payload has values that are not usable"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_millis(4000));
        let ceilings = [500, 1000, 2000, 4000, 4000, 4000];
        for ceiling in ceilings {
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(delay >= ceiling / 2, "{delay} below half of {ceiling}");
            assert!(delay <= ceiling, "{delay} above {ceiling}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(500));
    }
}
