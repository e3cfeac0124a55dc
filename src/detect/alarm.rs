//! Alarm handling: turns a stream of scores into one raise and one clear per fault.
//!
//! Detectors score every reading, and a fault makes many consecutive readings score high,
//! with dips in between. An [`Alarm`] raises once the score has stayed at or above its
//! threshold for a minimum duration, and clears once it has stayed below a lower clear level
//! (hysteresis) for a hold time. After a clear, a cooldown keeps a flapping signal from
//! opening a new alarm at once. The caller passes the time of each update, so the logic runs
//! the same on wall-clock time, on reading timestamps and in tests.

/// Tuning of one alarm. Times are in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmPolicy {
    /// The clear level as a share of the threshold: a raised alarm clears only below
    /// `threshold * clear_ratio`. Between 0 and 1.
    pub clear_ratio: f64,
    /// How long the score must stay at or above the threshold before the alarm is raised.
    pub min_duration_ms: i64,
    /// How long the score must stay below the clear level before the alarm clears.
    pub clear_hold_ms: i64,
    /// After a clear, how long a new raise is held back.
    pub cooldown_ms: i64,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        AlarmPolicy {
            clear_ratio: 0.8,
            min_duration_ms: 30_000,
            clear_hold_ms: 60_000,
            cooldown_ms: 600_000,
        }
    }
}

/// A change of alarm state caused by an update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The alarm was raised: open an event and a request.
    Raised {
        /// When the score first reached the threshold in this episode.
        since_ms: i64,
        /// Time of the update that raised it.
        at_ms: i64,
        /// Highest score seen so far in this episode.
        peak: f64,
    },
    /// The alarm cleared: close the event and the request.
    Cleared {
        /// Time of the update that cleared it.
        at_ms: i64,
        /// Highest score of the whole episode.
        peak: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    /// Above the threshold since `since_ms`, not yet for the minimum duration.
    Pending {
        since_ms: i64,
        peak: f64,
    },
    /// Raised; `below_since_ms` is set while the score is under the clear level.
    Active {
        peak: f64,
        below_since_ms: Option<i64>,
    },
}

/// The state of one alarm condition, such as "spike on pump-1.flow".
#[derive(Debug, Clone)]
pub struct Alarm {
    policy: AlarmPolicy,
    state: State,
    /// When the last episode cleared, for the cooldown.
    cleared_ms: Option<i64>,
}

impl Alarm {
    pub fn new(policy: AlarmPolicy) -> Self {
        Alarm {
            policy,
            state: State::Idle,
            cleared_ms: None,
        }
    }

    /// Creates an alarm that is already raised, such as one whose request was open in the store when
    /// the gateway restarted. It clears like any raised alarm.
    pub fn raised(policy: AlarmPolicy) -> Self {
        Alarm {
            policy,
            state: State::Active {
                peak: 0.0,
                below_since_ms: None,
            },
            cleared_ms: None,
        }
    }

    /// Returns true while the alarm is raised.
    pub fn is_raised(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// Feeds one score at time `now_ms`. A score that is not finite counts as below the clear
    /// level, because a detector that cannot score has no evidence of a fault. A `now_ms`
    /// earlier than a previous update is treated as no time passing.
    pub fn update(&mut self, now_ms: i64, score: f64, threshold: f64) -> Option<Transition> {
        let score = if score.is_finite() { score } else { 0.0 };
        let above = score >= threshold;
        let below_clear = score < threshold * self.policy.clear_ratio.clamp(0.0, 1.0);
        match self.state {
            State::Idle => {
                if above {
                    self.state = State::Pending {
                        since_ms: now_ms,
                        peak: score,
                    };
                    return self.try_raise(now_ms);
                }
                None
            }
            State::Pending { since_ms, peak } => {
                if above {
                    self.state = State::Pending {
                        since_ms,
                        peak: peak.max(score),
                    };
                    self.try_raise(now_ms)
                } else {
                    // A dip below the threshold restarts the minimum duration.
                    self.state = State::Idle;
                    None
                }
            }
            State::Active {
                peak,
                below_since_ms,
            } => {
                let peak = peak.max(score);
                if !below_clear {
                    self.state = State::Active {
                        peak,
                        below_since_ms: None,
                    };
                    return None;
                }
                let below_since = below_since_ms.unwrap_or(now_ms);
                if now_ms.saturating_sub(below_since) >= self.policy.clear_hold_ms {
                    self.state = State::Idle;
                    self.cleared_ms = Some(now_ms);
                    return Some(Transition::Cleared {
                        at_ms: now_ms,
                        peak,
                    });
                }
                self.state = State::Active {
                    peak,
                    below_since_ms: Some(below_since),
                };
                None
            }
        }
    }

    fn try_raise(&mut self, now_ms: i64) -> Option<Transition> {
        let State::Pending { since_ms, peak } = self.state else {
            return None;
        };
        if now_ms.saturating_sub(since_ms) < self.policy.min_duration_ms {
            return None;
        }
        if let Some(cleared) = self.cleared_ms {
            if now_ms.saturating_sub(cleared) < self.policy.cooldown_ms {
                return None;
            }
        }
        self.state = State::Active {
            peak,
            below_since_ms: None,
        };
        Some(Transition::Raised {
            since_ms,
            at_ms: now_ms,
            peak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THRESHOLD: f64 = 0.5;

    fn policy() -> AlarmPolicy {
        AlarmPolicy {
            clear_ratio: 0.6,
            min_duration_ms: 3_000,
            clear_hold_ms: 2_000,
            cooldown_ms: 10_000,
        }
    }

    /// Feeds one score per second from `start_s` and returns the transitions with their
    /// second.
    fn feed(alarm: &mut Alarm, start_s: i64, scores: &[f64]) -> Vec<(i64, Transition)> {
        scores
            .iter()
            .enumerate()
            .filter_map(|(i, &score)| {
                let second = start_s + i as i64;
                alarm
                    .update(second * 1000, score, THRESHOLD)
                    .map(|transition| (second, transition))
            })
            .collect()
    }

    fn raised_at(transitions: &[(i64, Transition)]) -> Vec<i64> {
        transitions
            .iter()
            .filter(|(_, t)| matches!(t, Transition::Raised { .. }))
            .map(|(s, _)| *s)
            .collect()
    }

    fn cleared_at(transitions: &[(i64, Transition)]) -> Vec<i64> {
        transitions
            .iter()
            .filter(|(_, t)| matches!(t, Transition::Cleared { .. }))
            .map(|(s, _)| *s)
            .collect()
    }

    #[test]
    fn raises_after_min_duration_only() {
        let mut alarm = Alarm::new(policy());
        let transitions = feed(&mut alarm, 0, &[0.1, 0.9, 0.9, 0.9, 0.9, 0.9]);
        assert_eq!(raised_at(&transitions), [4]);
        assert!(alarm.is_raised());
        match transitions[0].1 {
            Transition::Raised { since_ms, peak, .. } => {
                assert_eq!(since_ms, 1_000);
                assert_eq!(peak, 0.9);
            }
            other => panic!("expected a raise, got {other:?}"),
        }
    }

    #[test]
    fn short_burst_never_raises() {
        let mut alarm = Alarm::new(policy());
        let transitions = feed(&mut alarm, 0, &[0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.9]);
        assert!(transitions.is_empty(), "{transitions:?}");
        assert!(!alarm.is_raised());
    }

    #[test]
    fn hysteresis_keeps_alarm_between_levels() {
        let mut alarm = Alarm::new(policy());
        feed(&mut alarm, 0, &[0.9; 4]);
        assert!(alarm.is_raised());
        // 0.4 is below the threshold but above the clear level 0.3: the alarm holds.
        let transitions = feed(&mut alarm, 4, &[0.4; 20]);
        assert!(transitions.is_empty(), "{transitions:?}");
        assert!(alarm.is_raised());
    }

    #[test]
    fn clears_after_hold_below_clear_level() {
        let mut alarm = Alarm::new(policy());
        feed(&mut alarm, 0, &[0.9; 4]);
        // A single low score inside the hold time does not clear it.
        let transitions = feed(&mut alarm, 4, &[0.1, 0.9, 0.1, 0.1, 0.1]);
        assert_eq!(cleared_at(&transitions), [8]);
        match transitions[0].1 {
            Transition::Cleared { peak, .. } => assert_eq!(peak, 0.9),
            other => panic!("expected a clear, got {other:?}"),
        }
        assert!(!alarm.is_raised());
    }

    #[test]
    fn cooldown_holds_back_new_raise() {
        let mut alarm = Alarm::new(policy());
        feed(&mut alarm, 0, &[0.9; 4]);
        let cleared = feed(&mut alarm, 4, &[0.1; 3]);
        assert_eq!(cleared_at(&cleared), [6]);
        // The fault returns at once and persists: it may raise only 10 s after the clear.
        let transitions = feed(&mut alarm, 7, &[0.9; 12]);
        assert_eq!(raised_at(&transitions), [16]);
    }

    #[test]
    fn reopens_after_recovery_and_cooldown() {
        let mut alarm = Alarm::new(policy());
        let mut transitions = feed(&mut alarm, 0, &[0.9; 4]);
        transitions.extend(feed(&mut alarm, 4, &[0.1; 20]));
        transitions.extend(feed(&mut alarm, 24, &[0.9; 4]));
        assert_eq!(raised_at(&transitions), [3, 27]);
        assert_eq!(cleared_at(&transitions), [6]);
    }

    #[test]
    fn restored_alarm_clears_on_recovery() {
        let mut alarm = Alarm::raised(policy());
        assert!(alarm.is_raised());
        let transitions = feed(&mut alarm, 0, &[0.0; 3]);
        assert_eq!(cleared_at(&transitions), [2]);
    }

    #[test]
    fn non_finite_score_counts_as_no_evidence() {
        let mut alarm = Alarm::new(policy());
        let transitions = feed(&mut alarm, 0, &[f64::NAN, f64::INFINITY, 0.9]);
        assert!(transitions.is_empty());
        assert!(!alarm.is_raised());
    }

    #[test]
    fn zero_min_duration_raises_on_first_score() {
        let mut alarm = Alarm::new(AlarmPolicy {
            min_duration_ms: 0,
            ..policy()
        });
        let transitions = feed(&mut alarm, 0, &[0.7]);
        assert_eq!(raised_at(&transitions), [0]);
    }
}
