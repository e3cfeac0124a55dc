//! Capped exponential backoff with jitter between failed sync rounds.

use std::time::Duration;

/// Retry delays that double after each failure up to a cap. Each delay is drawn uniformly
/// from the upper half of its step (from step/2 to step), so that many gateways that lost the
/// office together do not retry in lockstep, while the delay still grows step by step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff::with_rng(initial, max, fastrand::Rng::new())
    }

    /// Uses `rng` for the jitter, so that a test can seed it.
    pub fn with_rng(initial: Duration, max: Duration, rng: fastrand::Rng) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            rng,
        }
    }

    /// Records a failure and returns the delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step();
        self.failures = self.failures.saturating_add(1);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let half = step_ms / 2;
        Duration::from_millis(half + self.rng.u64(0..=step_ms - half))
    }

    /// Returns the step of the next failure without the jitter.
    pub fn step(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Starts again from the initial delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut backoff = Backoff::with_rng(
            Duration::from_secs(1),
            Duration::from_secs(10),
            fastrand::Rng::with_seed(7),
        );
        let steps: Vec<u64> = (0..6)
            .map(|_| {
                let step = backoff.step().as_millis() as u64;
                let delay = backoff.next_delay().as_millis() as u64;
                assert!(delay >= step / 2, "delay {delay} below half of step {step}");
                assert!(delay <= step, "delay {delay} above step {step}");
                step
            })
            .collect();
        assert_eq!(steps, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
    }

    #[test]
    fn reset_starts_from_initial_delay() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..5 {
            backoff.next_delay();
        }
        assert_eq!(backoff.failures(), 5);
        backoff.reset();
        assert_eq!(backoff.step(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut delays = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut backoff = Backoff::with_rng(
                Duration::from_secs(1),
                Duration::from_secs(60),
                fastrand::Rng::with_seed(seed),
            );
            delays.insert(backoff.next_delay());
        }
        assert!(delays.len() > 10, "only {} distinct delays", delays.len());
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        for _ in 0..200 {
            assert!(backoff.next_delay() <= Duration::from_secs(300));
        }
    }
}
