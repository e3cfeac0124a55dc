//! Seasonal baseline in coarse bins: the level and spread of a sensor by hour of the day and
//! by two-hour slot of the week. A reading is compared with the same time on earlier days (the
//! boiler is hot at 7:00 on weekdays) instead of with the last hour.

/// Cycle that the seasonal baseline follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seasonality {
    /// No seasonal baseline.
    Off,
    /// One bin per hour of the day.
    Daily,
    /// One bin per two hours of the week, falling back to the daily bins until each weekly
    /// bin has been visited `MIN_VISITS` times.
    Weekly,
    /// Learns both. Uses the daily bins while their error is clearly below the error of the
    /// plain level (the sensor has a cycle at all), and the weekly bins once their error is
    /// clearly below the daily bins' error.
    #[default]
    Auto,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const DAILY_BINS: usize = 24;
const WEEKLY_BINS: usize = 7 * 12;
/// Visits before a bin's level is used.
const MIN_VISITS: u16 = 3;
/// After this many visits a bin becomes an exponentially weighted mean with a time constant
/// of this many visits.
const BIN_HORIZON: f32 = 8.0;
/// Time constant, in readings, of the errors that decide whether a cycle is present.
const ERROR_HORIZON: f64 = 500.0;
/// In `Auto` mode a finer cycle is used when its mean absolute error is below this fraction
/// of the coarser one's error.
const AUTO_GAIN: f64 = 0.7;

#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    level: f32,
    spread: f32,
    visits: u16,
}

impl Bin {
    fn estimate(&self) -> Option<(f64, f64)> {
        (self.visits >= MIN_VISITS).then_some((self.level as f64, self.spread as f64))
    }

    fn learn(&mut self, value: f64) {
        let value = value as f32;
        if !value.is_finite() || !(value - self.level).is_finite() {
            // Beyond the range of the bins' f32 fields.
            return;
        }
        self.visits = self.visits.saturating_add(1);
        let rate = (1.0 / self.visits as f32).max(1.0 / BIN_HORIZON);
        if self.visits == 1 {
            self.level = value;
            return;
        }
        let mut deviation = value - self.level;
        if self.visits > MIN_VISITS && self.spread > 0.0 {
            deviation = deviation.clamp(-3.0 * self.spread, 3.0 * self.spread);
        }
        self.spread += rate * (deviation.abs() - self.spread);
        self.level += rate * deviation;
    }
}

/// The seasonal bins of one sensor.
#[derive(Debug, Clone)]
pub struct SeasonalProfile {
    mode: Seasonality,
    offset_ms: i64,
    daily_bins: [Bin; DAILY_BINS],
    weekly_bins: [Bin; WEEKLY_BINS],
    /// Mean absolute errors of the daily bins and of the plain level, on readings whose daily
    /// bin is trained.
    daily: Error,
    plain: Error,
    /// Mean absolute errors of the weekly and the daily bins, on readings whose weekly bin is
    /// trained.
    weekly: Error,
    daily_paired: Error,
}

/// Exponentially weighted mean absolute error.
#[derive(Debug, Clone, Copy, Default)]
struct Error {
    mean: f64,
    count: u32,
}

impl Error {
    fn learn(&mut self, error: f64) {
        self.count = self.count.saturating_add(1);
        let rate = (1.0 / self.count as f64).max(1.0 / ERROR_HORIZON);
        self.mean += rate * (error.abs() - self.mean);
    }

    fn settled(&self) -> bool {
        self.count as f64 >= ERROR_HORIZON / 2.0
    }
}

impl SeasonalProfile {
    /// Creates empty bins; `utc_offset_minutes` moves the bins' hours from UTC to local time.
    pub fn new(mode: Seasonality, utc_offset_minutes: i32) -> Self {
        SeasonalProfile {
            mode,
            offset_ms: utc_offset_minutes as i64 * 60_000,
            daily_bins: [Bin::default(); DAILY_BINS],
            weekly_bins: [Bin::default(); WEEKLY_BINS],
            daily: Error::default(),
            plain: Error::default(),
            weekly: Error::default(),
            daily_paired: Error::default(),
        }
    }

    fn bins(&self, ts_ms: i64) -> (usize, usize) {
        let local = ts_ms + self.offset_ms;
        let hour = (local.rem_euclid(DAY_MS) / HOUR_MS) as usize;
        // 1970-01-01 was a Thursday; weekday 0 is Monday.
        let weekday = (local.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize;
        (hour, weekday * 12 + hour / 2)
    }

    /// Returns the expected level and spread at `ts_ms`, when a cycle is in use and its bin
    /// is trained.
    pub fn expected(&self, ts_ms: i64) -> Option<(f64, f64)> {
        let (hour, slot) = self.bins(ts_ms);
        let daily = self.daily_bins[hour].estimate();
        let weekly = self.weekly_bins[slot].estimate().or(daily);
        match self.mode {
            Seasonality::Off => None,
            Seasonality::Daily => daily,
            Seasonality::Weekly => weekly,
            Seasonality::Auto => {
                if !self.daily.settled() || self.daily.mean >= AUTO_GAIN * self.plain.mean {
                    return None;
                }
                let weekly_better =
                    self.weekly.settled() && self.weekly.mean < AUTO_GAIN * self.daily_paired.mean;
                if weekly_better {
                    weekly
                } else {
                    daily
                }
            }
        }
    }

    /// Learns one reading; `plain_level` is the sensor's level without a cycle, before this
    /// reading.
    pub fn learn(&mut self, ts_ms: i64, value: f64, plain_level: f64) {
        if self.mode == Seasonality::Off {
            return;
        }
        let (hour, slot) = self.bins(ts_ms);
        if let Some((daily, _)) = self.daily_bins[hour].estimate() {
            self.daily.learn(value - daily);
            self.plain.learn(value - plain_level);
            if let Some((weekly, _)) = self.weekly_bins[slot].estimate() {
                self.weekly.learn(value - weekly);
                self.daily_paired.learn(value - daily);
            }
        }
        self.daily_bins[hour].learn(value);
        self.weekly_bins[slot].learn(value);
    }
}
