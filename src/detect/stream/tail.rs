//! Tail probability of a statistic against its own recent history.
//!
//! Each detector turns a reading into a non-negative statistic (a deviation in scale units, a
//! log ratio of spreads). How surprising a value of it is depends on the sensor: a network
//! counter deviates by 50 scales every hour, a room temperature never does. So, as in HTM's
//! anomaly likelihood, the statistic is not thresholded directly but compared with the
//! distribution of its own past values. That distribution is a histogram with exponentially
//! decaying counts, so memory is constant and old behaviour is forgotten.

/// Histogram bins. With `BIN_WIDTH` they cover statistics from 0 to 8.4, which is a deviation
/// of about 4400 scales after the `ln(1 + z)` transform that callers apply.
const BINS: usize = 28;
const BIN_WIDTH: f32 = 0.3;
/// Pseudo-count that keeps the tail probability above zero for a value never seen before.
const PRIOR: f64 = 1.0;
/// A bin whose decayed count is below this is treated as empty when looking for the highest
/// value seen: a range visited by one value only is not yet normal. Without it a statistic
/// that creeps up one bin per reading (a window filling with a new regime) would always be
/// just above the last record and never extrapolated.
const OCCUPIED: f32 = 1.5;
/// Surprise that counting alone can give: no more than 1 in 1000, however long the history.
/// Without the cap, a value just above the record would become an anomaly only once the
/// history is long enough, so the same reading would be flagged late in a series and not
/// early in it.
pub const MAX_COUNTED_SURPRISE: f64 = 3.0;
/// Each empty bin between the highest occupied bin and the value adds this many nats of
/// surprise (0.65 in `log10`), so a value far beyond everything seen scores higher than one
/// just beyond.
const EXTRAPOLATION: f64 = 1.5;

/// Decaying histogram of a non-negative statistic.
#[derive(Debug, Clone)]
pub struct TailHistogram {
    /// Counts scaled by `weight`: adding `weight` instead of 1 and growing `weight` each step
    /// decays every older count without touching each bin.
    bins: [f32; BINS],
    total: f32,
    weight: f32,
    growth: f32,
}

impl TailHistogram {
    /// Creates an empty histogram whose counts decay with a time constant of `horizon`
    /// updates.
    pub fn new(horizon: u32) -> Self {
        TailHistogram {
            bins: [0.0; BINS],
            total: 0.0,
            weight: 1.0,
            growth: 1.0 / (1.0 - 1.0 / horizon.max(2) as f32),
        }
    }

    fn bin(value: f64) -> usize {
        if value.is_nan() || value <= 0.0 {
            return 0;
        }
        ((value / BIN_WIDTH as f64) as usize).min(BINS - 1)
    }

    /// Effective number of values learned, after decay.
    pub fn count(&self) -> f64 {
        (self.total / self.weight) as f64
    }

    /// Adds one value of the statistic.
    pub fn learn(&mut self, value: f64) {
        self.weight *= self.growth;
        self.bins[Self::bin(value)] += self.weight;
        self.total += self.weight;
        if self.weight > 1e20 {
            for bin in &mut self.bins {
                *bin /= self.weight;
            }
            self.total /= self.weight;
            self.weight = 1.0;
        }
    }

    /// Returns the surprise of `value`: `-log10` of the estimated probability that the
    /// statistic is at least this large. 0 for the most common values, at most
    /// `MAX_COUNTED_SURPRISE` from counting, plus 0.65 for each empty bin between the highest
    /// occupied bin and the value's bin.
    ///
    /// `overlap` is 1 for a statistic of single readings. A statistic of a moving window
    /// changes little from one reading to the next. Its histogram contains fewer independent
    /// values than its count, and a new record is less rare than the count suggests, so its
    /// counts are divided by `overlap`.
    pub fn surprise(&self, value: f64, overlap: f64) -> f64 {
        let overlap = overlap.max(1.0);
        let bin = Self::bin(value);
        if bin == 0 {
            // Every value is at least as large as one in the lowest bin.
            return 0.0;
        }
        let occupied = self.weight * OCCUPIED;
        let at_least: f32 = self.bins[bin..].iter().sum();
        let total = self.count() / overlap;
        let probability = ((at_least / self.weight) as f64 / overlap + PRIOR) / (total + PRIOR);
        let mut surprise = (-probability.min(1.0).log10()).min(MAX_COUNTED_SURPRISE);
        if let Some(top) = self.bins.iter().rposition(|&count| count >= occupied) {
            if bin > top + 1 {
                surprise += EXTRAPOLATION * (bin - top - 1) as f64 / std::f64::consts::LN_10;
            }
        }
        surprise
    }
}
