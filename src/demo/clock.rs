//! The demo's accelerated clock.

use std::time::{Duration, Instant};

use crate::time::Clock;

/// A clock that starts at a given wall time and runs `speed` times faster than real time.
/// Wall and monotonic time advance together, so the wall clock never steps.
#[derive(Debug)]
pub struct AcceleratedClock {
    start_wall_ms: i64,
    start: Instant,
    speed: f64,
}

impl AcceleratedClock {
    /// Creates a clock that reads `start_wall_ms` now. `speed` must be positive.
    pub fn new(start_wall_ms: i64, speed: f64) -> Self {
        AcceleratedClock {
            start_wall_ms,
            start: Instant::now(),
            speed,
        }
    }

    /// Returns the wall time, in milliseconds since the epoch, at which the clock started.
    pub fn start_wall_ms(&self) -> i64 {
        self.start_wall_ms
    }

    /// Returns how long `simulated` takes in real time.
    pub fn real_duration(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed)
    }

    /// Returns the real instant at which the clock reads `start_wall_ms + simulated_ms`.
    pub fn instant_at(&self, simulated_ms: i64) -> Instant {
        let simulated = Duration::from_millis(simulated_ms.max(0) as u64);
        self.start + self.real_duration(simulated)
    }
}

impl Clock for AcceleratedClock {
    fn wall_ms(&self) -> i64 {
        self.start_wall_ms + self.monotonic().as_millis() as i64
    }

    fn monotonic(&self) -> Duration {
        self.start.elapsed().mul_f64(self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_faster_than_real_time() {
        let clock = AcceleratedClock::new(1_000_000, 100.0);
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = clock.wall_ms() - 1_000_000;
        assert!(elapsed >= 2_000, "100x speed over 20 ms gave {elapsed} ms");
        assert_eq!(
            clock.real_duration(Duration::from_secs(10)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn monotonic_matches_wall_offset() {
        let clock = AcceleratedClock::new(5_000, 10.0);
        let monotonic = clock.monotonic().as_millis() as i64;
        let wall = clock.wall_ms();
        assert!(wall - 5_000 >= monotonic);
    }
}
