//! Notifications to systemd through `sd_notify(3)`: readiness, watchdog keep-alives and
//! stopping, for a unit with `Type=notify` and `WatchdogSec=`.
//!
//! Every function here does nothing when `NOTIFY_SOCKET` is unset, as when the gateway runs
//! outside systemd, and a failed send is logged and otherwise ignored: a missing notification
//! must not stop the gateway.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::StoreHandle;

/// Sends `READY=1` with a one-line status, once the gateway has started its tasks.
pub fn notify_ready(status: &str) {
    send(
        &[NotifyState::Ready, NotifyState::Status(status)],
        "READY=1",
    );
}

/// Sends `STOPPING=1`, once shutdown has begun.
pub fn notify_stopping() {
    send(
        &[NotifyState::Stopping, NotifyState::Status("shutting down")],
        "STOPPING=1",
    );
}

fn send(states: &[NotifyState<'_>], notification: &str) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(error = %err, notification, "cannot send a notification to systemd");
    }
}

/// Returns the interval between keep-alives for a watchdog timeout: half the timeout, as
/// `sd_watchdog_enabled(3)` recommends, so that one late keep-alive does not trip it.
pub fn keep_alive_interval(timeout: Duration) -> Duration {
    timeout / 2
}

/// Starts the watchdog task when systemd asked for keep-alives (`WATCHDOG_USEC`, and
/// `WATCHDOG_PID` unset or this process), and returns `None` otherwise.
///
/// Every keep-alive interval the task runs an empty transaction on the store writer, and sends
/// `WATCHDOG=1` only when it commits within that interval. A writer that hangs or has stopped
/// therefore lets the watchdog time out, and systemd restarts the service. The task keeps a
/// store handle until `cancel` fires, so it must stop before the writer can finish.
pub fn spawn_watchdog(store: StoreHandle, cancel: CancellationToken) -> Option<JoinHandle<()>> {
    // A watchdog timeout without a notification socket leaves nowhere to send keep-alives.
    std::env::var_os("NOTIFY_SOCKET")?;
    let timeout = sd_notify::watchdog_enabled()?;
    let interval = keep_alive_interval(timeout);
    if interval.is_zero() {
        tracing::warn!(
            watchdog_usec = timeout.as_micros() as u64,
            "the systemd watchdog timeout is too short for keep-alives; sending none"
        );
        return None;
    }
    tracing::info!(
        watchdog_timeout_ms = timeout.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(run_watchdog(store, interval, cancel)))
}

async fn run_watchdog(store: StoreHandle, interval: Duration, cancel: CancellationToken) {
    // The first probe runs at once, so that systemd gets a keep-alive right after READY=1.
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        first = false;
        let probe = store.transact(|_| Ok(()));
        match tokio::time::timeout(interval, probe).await {
            Ok(Ok(())) => send(&[NotifyState::Watchdog], "WATCHDOG=1"),
            Ok(Err(err)) => tracing::error!(
                error = %err,
                "the store writer rejected the watchdog probe; withholding the systemd keep-alive"
            ),
            Err(_) => tracing::error!(
                timeout_ms = interval.as_millis() as u64,
                "the store writer did not commit the watchdog probe in time; withholding the \
                 systemd keep-alive"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_at_half_timeout() {
        assert_eq!(
            keep_alive_interval(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            keep_alive_interval(Duration::from_micros(3)),
            Duration::from_nanos(1500)
        );
    }
}
