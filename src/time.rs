//! Wall and monotonic time, with an injectable clock so that tests can boot at 1970, step
//! the clock and jump it backwards.
//!
//! A board without a real-time clock may start at 1970 or at the last saved time. Until the
//! wall clock is past a trusted floor (the build date, or the newest receive time already in
//! the store), receive times are derived from the monotonic clock and flagged uncertain. When
//! the wall clock steps past the floor, the offset between the two clocks is published so that
//! the store can re-base the uncertain rows of this run.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

pub use caretaker_wire::timestamp::{epoch_number_to_ms, parse_rfc3339_ms};

/// Seconds since the Unix epoch at which this binary was built.
pub const BUILD_EPOCH_SECS: i64 = match i64::from_str_radix(env!("CARETAKER_BUILD_EPOCH"), 10) {
    Ok(secs) => secs,
    Err(_) => 0,
};

const CENTURY_MS: i64 = 100 * 365 * 86_400_000;

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch. May jump in either direction.
    fn wall_ms(&self) -> i64;
    /// Time since an arbitrary fixed start; never goes backwards.
    fn monotonic(&self) -> Duration;
}

/// The operating system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_millis() as i64,
            Err(before) => -(before.duration().as_millis() as i64),
        }
    }

    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A clock that moves only when a test advances or sets it.
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    monotonic_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(wall_ms: i64) -> Self {
        ManualClock {
            wall_ms: AtomicI64::new(wall_ms),
            monotonic_ms: AtomicI64::new(0),
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = by.as_millis() as i64;
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Steps the wall clock to `wall_ms`, as NTP or an operator would; monotonic time is
    /// unaffected.
    pub fn set_wall(&self, wall_ms: i64) {
        self.wall_ms.store(wall_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.monotonic_ms.load(Ordering::SeqCst).max(0) as u64)
    }
}

/// Limits that a source timestamp must meet to be stored.
#[derive(Debug, Clone, Copy)]
pub struct TimePolicy {
    /// Source timestamps before this (ms since the epoch) are rejected, and the wall clock is
    /// not trusted until it is past it.
    pub earliest_valid_ms: i64,
    /// Source timestamps more than this far ahead of a trusted receive time are rejected.
    pub max_future_ms: i64,
}

impl Default for TimePolicy {
    fn default() -> Self {
        TimePolicy {
            earliest_valid_ms: BUILD_EPOCH_SECS * 1000,
            max_future_ms: 5 * 60 * 1000,
        }
    }
}

/// When a value arrived, as far as the gateway can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveTime {
    /// Milliseconds since the epoch. When `uncertain`, this is the trusted floor plus the
    /// monotonic time since start, and is re-based once the wall clock can be trusted.
    pub ts_ms: i64,
    /// Monotonic milliseconds since the gateway started.
    pub monotonic_ms: i64,
    pub uncertain: bool,
}

#[derive(Debug)]
struct KeeperState {
    /// Wall time minus monotonic time, once the wall clock has been trusted.
    trusted_offset_ms: Option<i64>,
    /// Offset to apply to this run's uncertain rows, not yet taken by the store.
    pending_rebase_ms: Option<i64>,
    floor_ms: i64,
}

/// Decides receive times and checks source timestamps against a [`TimePolicy`].
pub struct TimeKeeper {
    clock: Arc<dyn Clock>,
    policy: TimePolicy,
    state: Mutex<KeeperState>,
}

impl TimeKeeper {
    pub fn new(clock: Arc<dyn Clock>, policy: TimePolicy) -> Self {
        TimeKeeper {
            clock,
            policy,
            state: Mutex::new(KeeperState {
                trusted_offset_ms: None,
                pending_rebase_ms: None,
                floor_ms: policy.earliest_valid_ms,
            }),
        }
    }

    pub fn policy(&self) -> TimePolicy {
        self.policy
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Raises the trust floor to the newest receive time already stored, so that a clock
    /// that restarted from an older saved time is not trusted until it passes it.
    pub fn raise_floor(&self, newest_stored_ms: i64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.floor_ms = state.floor_ms.max(newest_stored_ms);
    }

    /// Returns the receive time for a value arriving now, and notices a clock that became
    /// trusted.
    pub fn receive_time(&self) -> ReceiveTime {
        let wall = self.clock.wall_ms();
        let monotonic_ms = self.clock.monotonic().as_millis() as i64;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(offset) = state.trusted_offset_ms {
            // Once trusted, a later backward step of the wall clock must not reorder rows:
            // keep to whichever is later, the wall clock or the trusted monotonic estimate.
            let estimate = offset + monotonic_ms;
            let ts_ms = if wall + 1000 < estimate {
                estimate
            } else {
                wall
            };
            return ReceiveTime {
                ts_ms,
                monotonic_ms,
                uncertain: false,
            };
        }
        if wall >= state.floor_ms {
            let offset = wall - monotonic_ms;
            state.trusted_offset_ms = Some(offset);
            state.pending_rebase_ms = Some(offset);
            return ReceiveTime {
                ts_ms: wall,
                monotonic_ms,
                uncertain: false,
            };
        }
        ReceiveTime {
            ts_ms: state.floor_ms + monotonic_ms,
            monotonic_ms,
            uncertain: true,
        }
    }

    /// Returns the base of uncertain receive times. An uncertain receive time is this base
    /// plus the monotonic milliseconds since start.
    pub fn uncertain_base_ms(&self) -> i64 {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.floor_ms
    }

    /// Returns whether the wall clock is trusted yet.
    pub fn is_trusted(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.trusted_offset_ms.is_some()
    }

    /// Takes the wall-minus-monotonic offset published when the clock became trusted; the
    /// store adds it to the monotonic time of this run's uncertain rows.
    pub fn take_rebase(&self) -> Option<i64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pending_rebase_ms.take()
    }

    /// Checks a source timestamp. Returns the reason when it must be rejected.
    pub fn check_source_ts(&self, source_ts_ms: i64, received: &ReceiveTime) -> Result<(), String> {
        if source_ts_ms < self.policy.earliest_valid_ms {
            return Err(format!(
                "timestamp {} is before the earliest valid time {}",
                format_ms(source_ts_ms),
                format_ms(self.policy.earliest_valid_ms)
            ));
        }
        // With an untrusted clock "now" is unknown, except that it is past the floor; a
        // timestamp a century past the floor is still rejected.
        if received.uncertain && source_ts_ms > self.policy.earliest_valid_ms + CENTURY_MS {
            return Err(format!(
                "timestamp {} is implausibly far in the future",
                format_ms(source_ts_ms)
            ));
        }
        if !received.uncertain && source_ts_ms > received.ts_ms + self.policy.max_future_ms {
            return Err(format!(
                "timestamp {} is more than {} s ahead of the receive time {}",
                format_ms(source_ts_ms),
                self.policy.max_future_ms / 1000,
                format_ms(received.ts_ms)
            ));
        }
        Ok(())
    }
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC, such as
/// `2022-03-31T12:55:11.000Z`.
pub fn format_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    fn keeper(clock: &Arc<ManualClock>, floor_ms: i64) -> TimeKeeper {
        let policy = TimePolicy {
            earliest_valid_ms: floor_ms,
            max_future_ms: 300_000,
        };
        TimeKeeper::new(clock.clone(), policy)
    }

    #[test]
    fn clock_before_floor_is_uncertain_then_rebased() {
        let floor = 1_748_900_000_000; // 2025-06-02
        let clock = Arc::new(ManualClock::new(36_000)); // 1970-01-01T00:00:36Z
        let keeper = keeper(&clock, floor);
        let first = keeper.receive_time();
        assert!(first.uncertain);
        assert!(first.ts_ms >= floor);
        assert_eq!(keeper.take_rebase(), None);

        clock.advance(Duration::from_secs(90));
        let stepped = 1_748_932_336_000; // 2025-06-03T06:32:16Z
        clock.set_wall(stepped);
        let after = keeper.receive_time();
        assert!(!after.uncertain);
        assert_eq!(after.ts_ms, stepped);
        let offset = keeper.take_rebase().expect("offset published on the step");
        assert_eq!(offset + first.monotonic_ms, stepped - 90_000);
    }

    #[test]
    fn backward_step_after_trust_keeps_order() {
        let clock = Arc::new(ManualClock::new(10 * HOUR_MS));
        let keeper = keeper(&clock, HOUR_MS);
        let before = keeper.receive_time();
        clock.advance(Duration::from_secs(1));
        clock.set_wall(10 * HOUR_MS - 20 * 60 * 1000);
        let after = keeper.receive_time();
        assert!(after.ts_ms > before.ts_ms);
    }

    #[test]
    fn floor_raised_to_newest_stored_row() {
        let clock = Arc::new(ManualClock::new(10 * HOUR_MS));
        let keeper = keeper(&clock, HOUR_MS);
        keeper.raise_floor(10 * HOUR_MS + 20 * 60 * 1000);
        let received = keeper.receive_time();
        assert!(received.uncertain);
        assert!(received.ts_ms >= 10 * HOUR_MS + 20 * 60 * 1000);
    }

    #[test]
    fn source_ts_window() {
        let clock = Arc::new(ManualClock::new(100 * HOUR_MS));
        let keeper = keeper(&clock, HOUR_MS);
        let now = keeper.receive_time();
        assert!(keeper.check_source_ts(HOUR_MS - 1, &now).is_err());
        assert!(keeper.check_source_ts(2 * HOUR_MS, &now).is_ok());
        assert!(keeper.check_source_ts(now.ts_ms + 299_000, &now).is_ok());
        assert!(keeper.check_source_ts(now.ts_ms + 301_000, &now).is_err());
    }

    #[test]
    fn far_future_rejected_while_clock_untrusted() {
        let clock = Arc::new(ManualClock::new(36_000));
        let keeper = keeper(&clock, 1_748_900_000_000);
        let now = keeper.receive_time();
        assert!(now.uncertain);
        let year_3000 = 32_503_680_000_000;
        assert!(keeper.check_source_ts(year_3000, &now).is_err());
        assert!(keeper.check_source_ts(1_748_932_336_000, &now).is_ok());
    }
}
