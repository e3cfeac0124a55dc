//! Robust running estimates of a sensor's level and spread, and the short window of recent
//! readings that spikes, level shifts and variance changes are measured on.

/// Readings in the short window.
pub const WINDOW: usize = 16;
/// Readings whose median is the short-term level; odd, and well below `WINDOW`, so that a
/// level shift is seen after `LEVEL_SPAN / 2 + 1` readings.
pub const LEVEL_SPAN: usize = 9;

/// Level and spread that follow slow drift and resist outliers.
///
/// The level is an exponentially weighted mean whose steps are clipped at `CLIP` spreads (a
/// Huber M-estimate), so a spike moves it by a bounded amount however large it is. The spread
/// is a running median of the absolute deviations from the level (the MAD), tracked in small
/// multiplicative steps. It needs no buffer and ignores a minority of outliers however large
/// they are. When the sensor calms down, it shrinks within a few hundred readings.
#[derive(Debug, Clone)]
pub struct RobustLevel {
    level: f64,
    spread: f64,
    /// Unclipped mean absolute deviation: on a sensor that is constant between rare spikes the
    /// MAD is zero, and this keeps the spread's floor above zero.
    raw_spread: f64,
    count: u32,
    level_rate: f64,
    raw_rate: f64,
}

const CLIP: f64 = 3.0;
/// Relative step of the spread per reading once settled; the spread then fluctuates by about
/// ten percent around the MAD.
const SPREAD_STEP: f64 = 0.02;

impl RobustLevel {
    /// Creates an estimator whose level has a time constant of `level_horizon` readings.
    pub fn new(level_horizon: u32) -> Self {
        RobustLevel {
            level: 0.0,
            spread: 0.0,
            raw_spread: 0.0,
            count: 0,
            level_rate: 1.0 / level_horizon.max(1) as f64,
            raw_rate: 1.0 / (2 * level_horizon.max(1)) as f64,
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn level(&self) -> f64 {
        self.level
    }

    /// Spread, never below a floor: a millionth of the level's magnitude, a fiftieth of the
    /// unclipped mean deviation, and 1e-9.
    pub fn spread(&self) -> f64 {
        self.spread.max(self.spread_floor())
    }

    pub fn spread_floor(&self) -> f64 {
        (1e-6 * self.level.abs())
            .max(0.02 * self.raw_spread)
            .max(1e-9)
    }

    /// Learns one reading. The first readings are averaged with equal weight, so the
    /// estimate is usable after a few readings instead of a whole horizon.
    pub fn learn(&mut self, value: f64) {
        self.count = self.count.saturating_add(1);
        let n = self.count as f64;
        if self.count == 1 {
            self.level = value;
            return;
        }
        let deviation = value - self.level;
        if !deviation.is_finite() {
            // Beyond f64's range from the level; learning it would make the spread infinite.
            return;
        }
        let magnitude = deviation.abs();
        if self.count <= 8 {
            // Too few readings for a median: start from the mean deviation.
            self.spread += (magnitude - self.spread) / (n - 1.0);
        } else {
            let step = 1.0 + SPREAD_STEP.max(1.0 / n);
            let floor = self.spread();
            if magnitude > self.spread {
                self.spread = self.spread.max(floor) * step;
            } else if magnitude < self.spread {
                self.spread /= step;
            }
        }
        self.raw_spread += self.raw_rate.max(1.0 / n) * (magnitude - self.raw_spread);
        let spread = self.spread();
        let clipped = if self.count > 8 {
            deviation.clamp(-CLIP * spread, CLIP * spread)
        } else {
            deviation
        };
        self.level += self.level_rate.max(1.0 / n) * clipped;
    }

    /// Moves the level to `level` after a confirmed level shift, keeping the spread.
    pub fn reset_level(&mut self, level: f64) {
        self.level = level;
    }
}

/// The last `WINDOW` readings.
#[derive(Debug, Clone)]
pub struct Window {
    values: [f64; WINDOW],
    /// Bit `i` is set when the reading `i` places back was an outlier.
    outliers: u16,
    next: usize,
    len: usize,
}

impl Window {
    pub fn new() -> Self {
        Window {
            values: [0.0; WINDOW],
            outliers: 0,
            next: 0,
            len: 0,
        }
    }

    /// Adds a reading; `outlier` marks it as far from the level.
    pub fn push(&mut self, value: f64, outlier: bool) {
        self.outliers = (self.outliers << 1) | outlier as u16;
        self.values[self.next] = value;
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
    }

    pub fn is_full(&self) -> bool {
        self.len == WINDOW
    }

    /// Iterates over the `n` most recent readings, newest first (fewer when the window is not
    /// full yet).
    fn recent(&self, n: usize) -> impl Iterator<Item = f64> + '_ {
        let n = n.min(self.len);
        (1..=n).map(move |back| self.values[(self.next + WINDOW - back) % WINDOW])
    }

    /// Outliers among the readings in the window.
    pub fn outlier_count(&self) -> u32 {
        self.outliers.count_ones()
    }

    /// Median of the last `LEVEL_SPAN` readings.
    pub fn level(&self) -> f64 {
        let mut span = [0.0; LEVEL_SPAN];
        let mut len = 0;
        for value in self.recent(LEVEL_SPAN) {
            span[len] = value;
            len += 1;
        }
        let span = &mut span[..len];
        span.sort_unstable_by(f64::total_cmp);
        if len == 0 {
            0.0
        } else {
            span[len / 2]
        }
    }

    /// Mean absolute deviation of the whole window from `center`.
    pub fn spread_around(&self, center: f64) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let sum: f64 = self.recent(WINDOW).map(|v| (v - center).abs()).sum();
        sum / self.len as f64
    }

    /// Counts the last `LEVEL_SPAN` readings that lie more than `distance` above `center`
    /// (positive `distance`) or below it (negative).
    pub fn count_beyond(&self, center: f64, distance: f64) -> usize {
        self.recent(LEVEL_SPAN)
            .filter(|&v| {
                if distance >= 0.0 {
                    v > center + distance
                } else {
                    v < center + distance
                }
            })
            .count()
    }
}
