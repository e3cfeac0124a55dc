//! Trend forecasts for predictive maintenance: when will a degrading signal cross its limit?
//!
//! A [`TrendForecaster`] keeps a sliding window of one sensor's readings and fits a line to it
//! in two steps, because neither estimator alone suits a plant signal:
//!
//! 1. A Theil–Sen line finds the outliers. Its slope is the median of the slopes between all
//!    pairs of points, so up to about 29 % of gross errors (a loose connector, a bad register)
//!    do not move it. Points whose residual from that line exceeds [`TRIM_SIGMAS`] (4) robust
//!    standard deviations (1.4826 × the residuals' median absolute deviation) are dropped.
//! 2. An ordinary least-squares fit (`linfa_linear::LinearRegression`) on the remaining
//!    inliers gives the line. For the Gaussian noise that is left after trimming, least
//!    squares is the minimum-variance unbiased estimate, where Theil–Sen loses about 5 % of
//!    efficiency. Its residual standard error also gives the slope's standard error.
//!
//! A forecast is made only when Sen's distribution-free 95 % interval for the slope, from the
//! ranks of the pairwise slopes, lies wholly on one side of zero. That gate uses all points,
//! outliers included, so that a flat or noisy signal predicts nothing. The crossing time's
//! uncertainty combines the least-squares intervals of the slope and of the level.

use std::collections::VecDeque;

/// Standard normal quantile for a two-sided 95 % interval.
const Z_95: f64 = 1.959_964;
/// Scales a median absolute deviation to a standard deviation for normal noise.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Residual, in robust standard deviations from the Theil–Sen line, beyond which a point is an
/// outlier. Gaussian noise puts 0.006 % of points beyond 4 sigma. A tighter cut costs
/// efficiency because it drops the points on the side where the Theil–Sen line errs, which
/// pulls the least-squares line towards it. On the Gaussian series of the test
/// `trimmed_slope_beats_theil_sen`, the mean squared slope error relative to
/// Theil–Sen's measured 0.98 with a 3-sigma cut, 0.94 at 3.5 and 0.93 at 4, where untrimmed
/// least squares also gave 0.93.
pub const TRIM_SIGMAS: f64 = 4.0;
/// Variance of a standard normal truncated to ±c, 1 − 2cφ(c) / (2Φ(c) − 1), at
/// c = [`TRIM_SIGMAS`]. Dividing the inliers' residual variance by it undoes the shrinkage
/// that trimming causes.
const TRIMMED_VARIANCE: f64 = 0.998_929;
const HOUR_MS: f64 = 3_600_000.0;

/// Settings of one forecaster. Times are in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendConfig {
    /// Span of readings the line is fitted to.
    pub window_ms: i64,
    /// Points the window keeps at most; readings closer than `window_ms / max_points` to the
    /// previous kept one are skipped, which bounds memory and the O(n²) fit.
    pub max_points: usize,
    /// Points needed before any forecast.
    pub min_points: usize,
    /// How far ahead a crossing is reported.
    pub horizon_ms: i64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            window_ms: 24 * 3_600_000,
            max_points: 240,
            min_points: 30,
            horizon_ms: 14 * 24 * 3_600_000,
        }
    }
}

/// A line fitted by Theil–Sen, with times relative to `origin_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheilSen {
    /// Median pairwise slope, in value units per millisecond.
    pub slope: f64,
    /// Lower and upper ends of the slope's 95 % confidence interval.
    pub slope_low: f64,
    pub slope_high: f64,
    /// Value of the line at `origin_ms`.
    pub intercept: f64,
    pub origin_ms: i64,
    /// Robust standard deviation of the residuals (scaled median absolute deviation).
    pub residual_sigma: f64,
    pub points: usize,
}

impl TheilSen {
    /// Returns the line's value at `ts_ms`.
    pub fn level_at(&self, ts_ms: i64) -> f64 {
        self.intercept + self.slope * (ts_ms - self.origin_ms) as f64
    }
}

/// Fits a Theil–Sen line to `(ts_ms, value)` points. Returns `None` with fewer than three
/// points or when every point has the same time.
pub fn theil_sen(points: &[(i64, f64)]) -> Option<TheilSen> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let origin_ms = points[0].0;
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for (i, &(t_i, y_i)) in points.iter().enumerate() {
        for &(t_j, y_j) in &points[i + 1..] {
            if t_j != t_i {
                slopes.push((y_j - y_i) / (t_j - t_i) as f64);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let slope = median_sorted(&slopes);

    // Sen's interval: the ranks (N -/+ C) / 2 of the sorted pairwise slopes, where C is the
    // normal quantile times the standard deviation of Kendall's S without ties.
    let pairs = slopes.len() as f64;
    let n_f = n as f64;
    let c = Z_95 * (n_f * (n_f - 1.0) * (2.0 * n_f + 5.0) / 18.0).sqrt();
    let lower_rank = ((pairs - c) / 2.0).floor().max(0.0) as usize;
    let upper_rank = ((pairs + c) / 2.0).ceil() as usize;
    let slope_low = slopes[lower_rank.min(slopes.len() - 1)];
    let slope_high = slopes[upper_rank.min(slopes.len() - 1)];

    let mut offsets: Vec<f64> = points
        .iter()
        .map(|&(t, y)| y - slope * (t - origin_ms) as f64)
        .collect();
    offsets.sort_by(f64::total_cmp);
    let intercept = median_sorted(&offsets);
    let mut deviations: Vec<f64> = offsets.iter().map(|o| (o - intercept).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let residual_sigma = MAD_TO_SIGMA * median_sorted(&deviations);
    Some(TheilSen {
        slope,
        slope_low,
        slope_high,
        intercept,
        origin_ms,
        residual_sigma,
        points: n,
    })
}

fn median_sorted(values: &[f64]) -> f64 {
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Estimator that produced a [`TrendFit`]'s line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitMethod {
    /// Least squares on the points that trimming kept.
    TrimmedLeastSquares,
    /// The Theil–Sen line, used when the least-squares fit failed.
    TheilSen,
}

/// A line for forecasting, with times relative to `origin_ms`, and the intervals that gate it
/// and bound its crossing time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendFit {
    pub method: FitMethod,
    /// Slope in value units per millisecond.
    pub slope: f64,
    /// Lower and upper ends of the slope's 95 % confidence interval from `method`.
    pub slope_low: f64,
    pub slope_high: f64,
    /// Value of the line at `origin_ms`, the mean time of the fitted points.
    pub intercept: f64,
    pub origin_ms: i64,
    /// Half-width of the 95 % confidence interval of the line's value at `origin_ms`.
    pub intercept_margin: f64,
    /// Sen's 95 % interval of the Theil–Sen slope over all points, outliers included.
    pub sen_low: f64,
    pub sen_high: f64,
    /// Standard deviation of the residuals of the fitted points.
    pub residual_sigma: f64,
    /// Points the line was fitted to, and points dropped as outliers.
    pub points: usize,
    pub outliers: usize,
}

impl TrendFit {
    /// Returns the line's value at `ts_ms`.
    pub fn level_at(&self, ts_ms: i64) -> f64 {
        self.intercept + self.slope * (ts_ms - self.origin_ms) as f64
    }
}

/// Fits a forecasting line to `(ts_ms, value)` points: Theil–Sen to find outliers, then least
/// squares on the inliers. Returns `None` where [`theil_sen`] does.
pub fn fit_trend(points: &[(i64, f64)]) -> Option<TrendFit> {
    let robust = theil_sen(points)?;
    let inliers = trim_outliers(points, &robust);
    let outliers = points.len() - inliers.len();
    let origin_ms = mean_time(&inliers);

    match least_squares_fit(&inliers, origin_ms) {
        Some(fit) => Some(TrendFit {
            method: FitMethod::TrimmedLeastSquares,
            slope: fit.slope,
            slope_low: fit.slope - fit.slope_margin,
            slope_high: fit.slope + fit.slope_margin,
            intercept: fit.intercept,
            origin_ms,
            intercept_margin: fit.intercept_margin,
            sen_low: robust.slope_low,
            sen_high: robust.slope_high,
            residual_sigma: fit.residual_sigma,
            points: inliers.len(),
            outliers,
        }),
        // A failed or non-finite least-squares fit (a rank-deficient design, values so large
        // that their squares overflow) must not stop forecasting, so the Theil–Sen line and
        // Sen's interval take its place.
        None => {
            let all_origin_ms = mean_time(points);
            Some(TrendFit {
                method: FitMethod::TheilSen,
                slope: robust.slope,
                slope_low: robust.slope_low,
                slope_high: robust.slope_high,
                intercept: robust.level_at(all_origin_ms),
                origin_ms: all_origin_ms,
                intercept_margin: Z_95 * robust.residual_sigma / (robust.points as f64).sqrt(),
                sen_low: robust.slope_low,
                sen_high: robust.slope_high,
                residual_sigma: robust.residual_sigma,
                points: robust.points,
                outliers: 0,
            })
        }
    }
}

/// Keeps the points within [`TRIM_SIGMAS`] robust standard deviations of the Theil–Sen line.
fn trim_outliers(points: &[(i64, f64)], robust: &TheilSen) -> Vec<(i64, f64)> {
    // On an exact line the robust sigma is zero and rounding alone separates the residuals,
    // so residuals within 64 ulps of the largest value's magnitude count as zero.
    let magnitude = points.iter().fold(0.0_f64, |max, &(_, y)| max.max(y.abs()));
    let rounding = 64.0 * f64::EPSILON * magnitude.max(1.0);
    let threshold = (TRIM_SIGMAS * robust.residual_sigma).max(rounding);
    points
        .iter()
        .copied()
        .filter(|&(t, y)| (y - robust.level_at(t)).abs() <= threshold)
        .collect()
}

fn mean_time(points: &[(i64, f64)]) -> i64 {
    let Some(&(first_ms, _)) = points.first() else {
        return 0;
    };
    // Offsets from the first time keep the sum far from i64 overflow.
    let offset_sum: f64 = points.iter().map(|&(t, _)| (t - first_ms) as f64).sum();
    first_ms + (offset_sum / points.len() as f64).round() as i64
}

/// A least-squares line with its 95 % margins, in value units and milliseconds.
struct LeastSquaresFit {
    slope: f64,
    slope_margin: f64,
    intercept: f64,
    intercept_margin: f64,
    residual_sigma: f64,
}

/// Fits `linfa_linear::LinearRegression` to `points`. Returns `None` when linfa fails, when
/// fewer than three points leave no residual degree of freedom, or when a result is not finite.
fn least_squares_fit(points: &[(i64, f64)], origin_ms: i64) -> Option<LeastSquaresFit> {
    use linfa::traits::Fit;
    use linfa_linear::LinearRegression;

    let n = points.len();
    if n < 3 {
        return None;
    }
    // Hours from the mean time keep the design's column of times centred and near unit
    // scale, where raw epoch milliseconds would make it ill-conditioned against the intercept.
    let hours: Vec<f64> = points
        .iter()
        .map(|&(t, _)| (t - origin_ms) as f64 / HOUR_MS)
        .collect();
    let values: Vec<f64> = points.iter().map(|&(_, y)| y).collect();
    let records = ndarray::Array2::from_shape_vec((n, 1), hours.clone()).ok()?;
    let targets = ndarray::Array1::from_vec(values.clone());
    let dataset = linfa::DatasetBase::new(records, targets);
    let model = LinearRegression::new().fit(&dataset).ok()?;
    let slope_per_hour = *model.params().first()?;
    let intercept = model.intercept();

    let mean_hour = hours.iter().sum::<f64>() / n as f64;
    let spread: f64 = hours.iter().map(|h| (h - mean_hour).powi(2)).sum();
    let residual_square_sum: f64 = hours
        .iter()
        .zip(&values)
        .map(|(h, y)| (y - intercept - slope_per_hour * h).powi(2))
        .sum();
    let degrees_of_freedom = n - 2;
    let residual_sigma =
        (residual_square_sum / degrees_of_freedom as f64 / TRIMMED_VARIANCE).sqrt();
    let quantile = student_t_975(degrees_of_freedom as f64);
    let slope_margin_per_hour = quantile * residual_sigma / spread.sqrt();
    // The times are centred, so the line's value at the origin is the mean of the values and
    // its error is independent of the slope's.
    let intercept_at_origin = intercept + slope_per_hour * mean_hour;
    let intercept_margin = quantile * residual_sigma / (n as f64).sqrt();

    let fit = LeastSquaresFit {
        slope: slope_per_hour / HOUR_MS,
        slope_margin: slope_margin_per_hour / HOUR_MS,
        intercept: intercept_at_origin,
        intercept_margin,
        residual_sigma,
    };
    let finite = [
        fit.slope,
        fit.slope_margin,
        fit.intercept,
        fit.intercept_margin,
        fit.residual_sigma,
    ]
    .iter()
    .all(|v| v.is_finite());
    finite.then_some(fit)
}

/// Approximates the 97.5 % quantile of Student's t with `dof` degrees of freedom by the
/// Cornish–Fisher expansion in powers of 1 / `dof` around the normal quantile. Against
/// tabulated quantiles the error is below 0.02 from 3 degrees of freedom on.
fn student_t_975(dof: f64) -> f64 {
    let z = Z_95;
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92_160.0;
    z + g1 / dof + g2 / dof.powi(2) + g3 / dof.powi(3) + g4 / dof.powi(4)
}

/// The limit a forecast is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSide {
    /// The signal rises towards `alarm_high`.
    High,
    /// The signal falls towards `alarm_low`.
    Low,
}

impl LimitSide {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSide::High => "high",
            LimitSide::Low => "low",
        }
    }
}

/// A predicted crossing of a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub side: LimitSide,
    pub limit: f64,
    /// Predicted crossing time (ms since the epoch) from the fitted line.
    pub crossing_ms: i64,
    /// Earliest and latest crossing times within the 95 % interval of slope and level, and at
    /// least one reading interval from `crossing_ms`.
    pub earliest_ms: i64,
    pub latest_ms: i64,
    /// The fitted level at the time of the forecast.
    pub level: f64,
    /// Slope in value units per hour, with its 95 % interval from the fit's method.
    pub slope_per_hour: f64,
    pub slope_per_hour_low: f64,
    pub slope_per_hour_high: f64,
    /// Standard deviation of the residuals of the fitted points.
    pub residual_sigma: f64,
    /// Points the line was fitted to, and points of the window dropped as outliers.
    pub points: usize,
    pub outliers: usize,
    pub method: FitMethod,
}

impl Forecast {
    /// Half-width of the crossing interval in milliseconds: the larger distance from the
    /// point prediction to either end.
    pub fn uncertainty_ms(&self) -> i64 {
        (self.crossing_ms - self.earliest_ms).max(self.latest_ms - self.crossing_ms)
    }
}

/// Keeps a sensor's recent readings and predicts when they cross `alarm_high` or
/// `alarm_low`.
#[derive(Debug, Clone)]
pub struct TrendForecaster {
    config: TrendConfig,
    high: Option<f64>,
    low: Option<f64>,
    samples: VecDeque<(i64, f64)>,
}

impl TrendForecaster {
    pub fn new(config: TrendConfig, high: Option<f64>, low: Option<f64>) -> Self {
        TrendForecaster {
            config,
            high,
            low,
            samples: VecDeque::new(),
        }
    }

    /// Adds a reading. Returns true when it was kept, so that a new forecast is worth making.
    /// Non-finite values and times not after the last kept point are skipped.
    pub fn push(&mut self, ts_ms: i64, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        let spacing = self.config.window_ms / self.config.max_points.max(1) as i64;
        if let Some(&(last, _)) = self.samples.back() {
            if ts_ms <= last || ts_ms - last < spacing {
                return false;
            }
        }
        self.samples.push_back((ts_ms, value));
        while let Some(&(first, _)) = self.samples.front() {
            if ts_ms - first > self.config.window_ms || self.samples.len() > self.config.max_points
            {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        true
    }

    /// Number of points in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Predicts the crossing of the limit the trend heads for, as seen at `now_ms`. Returns
    /// `None` with too few points, without a significant trend towards a limit, when the
    /// least-squares slope contradicts the significant Theil–Sen trend, or when the crossing
    /// is predicted beyond twice the horizon (the caller's alarm decides within the horizon).
    /// A level already past the limit predicts a crossing at `now_ms`.
    pub fn forecast(&self, now_ms: i64) -> Option<Forecast> {
        if self.samples.len() < self.config.min_points.max(3) {
            return None;
        }
        let points: Vec<(i64, f64)> = self.samples.iter().copied().collect();
        let fit = fit_trend(&points)?;
        let (side, limit) = if fit.sen_low > 0.0 {
            (LimitSide::High, self.high?)
        } else if fit.sen_high < 0.0 {
            (LimitSide::Low, self.low?)
        } else {
            return None;
        };

        // Distances and rates are signed so that the limit lies ahead at a positive rate.
        let (distance_from_origin, rate, fast, slow) = match side {
            LimitSide::High => (
                limit - fit.intercept,
                fit.slope,
                fit.slope_high,
                fit.slope_low,
            ),
            LimitSide::Low => (
                fit.intercept - limit,
                -fit.slope,
                -fit.slope_low,
                -fit.slope_high,
            ),
        };
        if rate <= 0.0 {
            // Sen's interval puts the trend on one side of zero and the least-squares slope of
            // the inliers on the other, so the two estimators disagree and nothing is predicted.
            return None;
        }

        // Times are measured from the fit's origin, where the errors of level and slope are
        // independent, and a crossing already behind `now_ms` is placed at `now_ms`.
        let to_ms = |distance: f64, rate: f64| -> i64 {
            let ms = if rate > 0.0 { distance / rate } else { 1e15 };
            let at = fit.origin_ms.saturating_add(ms.clamp(-1e15, 1e15) as i64);
            at.max(now_ms)
        };
        let crossing_ms = to_ms(distance_from_origin, rate);
        // Readings come at intervals, so a crossing cannot be placed more precisely than the
        // mean interval between the window's points, however clean the line is.
        let first_ms = points[0].0;
        let last_ms = points[points.len() - 1].0;
        let spacing_ms = (last_ms - first_ms) / (points.len() as i64 - 1);
        let earliest_ms =
            to_ms(distance_from_origin - fit.intercept_margin, fast).min(crossing_ms - spacing_ms);
        // A slope interval that reaches zero has no latest crossing, so `latest_ms` is set
        // 1e15 ms (about 30,000 years) ahead.
        let latest_ms =
            to_ms(distance_from_origin + fit.intercept_margin, slow).max(crossing_ms + spacing_ms);
        if crossing_ms - now_ms > self.config.horizon_ms.saturating_mul(2) {
            return None;
        }

        Some(Forecast {
            side,
            limit,
            crossing_ms,
            earliest_ms,
            latest_ms,
            level: fit.level_at(now_ms),
            slope_per_hour: fit.slope * HOUR_MS,
            slope_per_hour_low: fit.slope_low * HOUR_MS,
            slope_per_hour_high: fit.slope_high * HOUR_MS,
            residual_sigma: fit.residual_sigma,
            points: fit.points,
            outliers: fit.outliers,
            method: fit.method,
        })
    }

    /// Scores a forecast for alarm handling: the horizon divided by the time to the crossing,
    /// so that 1.0 means "the crossing is exactly one horizon away" and larger is sooner.
    /// No forecast scores 0.
    pub fn score(&self, forecast: Option<&Forecast>, now_ms: i64) -> f64 {
        let Some(forecast) = forecast else {
            return 0.0;
        };
        let remaining = (forecast.crossing_ms - now_ms).max(1) as f64;
        (self.config.horizon_ms as f64 / remaining).min(1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: i64 = 60_000;
    const HOUR_MS: i64 = 3_600_000;

    fn config() -> TrendConfig {
        TrendConfig {
            window_ms: 24 * HOUR_MS,
            max_points: 240,
            min_points: 30,
            horizon_ms: 7 * 24 * HOUR_MS,
        }
    }

    /// Deterministic noise in [-amplitude, amplitude].
    fn noise(rng: &mut fastrand::Rng, amplitude: f64) -> f64 {
        (rng.f64() * 2.0 - 1.0) * amplitude
    }

    /// Feeds a reading every 6 minutes for 24 hours from `value(hour)` plus noise.
    fn feed(
        forecaster: &mut TrendForecaster,
        rng: &mut fastrand::Rng,
        amplitude: f64,
        value: impl Fn(f64) -> f64,
    ) -> i64 {
        let mut now = 0;
        for step in 0..240 {
            now = step * 6 * MINUTE_MS;
            let hours = now as f64 / HOUR_MS as f64;
            forecaster.push(now, value(hours) + noise(rng, amplitude));
        }
        now
    }

    #[test]
    fn noisy_drift_predicts_crossing() {
        // 50 degC rising 0.5 degC per hour: 90 degC is reached after 80 hours.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut forecaster = TrendForecaster::new(config(), Some(90.0), None);
        let now = feed(&mut forecaster, &mut rng, 1.0, |h| 50.0 + 0.5 * h);
        let forecast = forecaster.forecast(now).expect("a forecast");
        let expected = 80 * HOUR_MS;
        let error_hours = (forecast.crossing_ms - expected).abs() as f64 / HOUR_MS as f64;
        assert!(error_hours < 4.0, "crossing off by {error_hours:.1} h");
        assert_eq!(forecast.side, LimitSide::High);
        assert!(forecast.earliest_ms <= forecast.crossing_ms);
        assert!(forecast.latest_ms >= forecast.crossing_ms);
        assert!(forecast.earliest_ms < expected, "{forecast:?}");
        assert!(expected < forecast.latest_ms, "{forecast:?}");
        assert!(forecast.uncertainty_ms() >= 6 * MINUTE_MS, "{forecast:?}");
        assert!((forecast.slope_per_hour - 0.5).abs() < 0.05);
    }

    #[test]
    fn outliers_do_not_move_crossing() {
        let mut clean_rng = fastrand::Rng::with_seed(11);
        let mut clean = TrendForecaster::new(config(), Some(90.0), None);
        let now = feed(&mut clean, &mut clean_rng, 0.5, |h| 50.0 + 0.5 * h);
        let clean_forecast = clean.forecast(now).unwrap();

        // Every 10th reading is a wild value, as a loose connector or a bad register gives.
        let mut rng = fastrand::Rng::with_seed(11);
        let mut dirty = TrendForecaster::new(config(), Some(90.0), None);
        for step in 0..240i64 {
            let ts = step * 6 * MINUTE_MS;
            let hours = ts as f64 / HOUR_MS as f64;
            let mut value = 50.0 + 0.5 * hours + noise(&mut rng, 0.5);
            if step % 10 == 3 {
                value = if step % 20 == 3 { 500.0 } else { -100.0 };
            }
            dirty.push(ts, value);
        }
        let dirty_forecast = dirty.forecast(now).unwrap();
        let shift_hours =
            (dirty_forecast.crossing_ms - clean_forecast.crossing_ms).abs() as f64 / HOUR_MS as f64;
        assert!(
            shift_hours < 2.0,
            "outliers moved the crossing by {shift_hours:.1} h"
        );
    }

    #[test]
    fn flat_signal_predicts_nothing() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut forecaster = TrendForecaster::new(config(), Some(90.0), Some(10.0));
        let now = feed(&mut forecaster, &mut rng, 2.0, |_| 50.0);
        assert_eq!(forecaster.forecast(now), None);
        assert_eq!(forecaster.score(None, now), 0.0);
    }

    #[test]
    fn falling_signal_predicts_low_limit() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut forecaster = TrendForecaster::new(config(), Some(16.0), Some(0.5));
        // Pressure 2.0 bar falling 0.01 bar per hour reaches 0.5 bar after 150 hours.
        let now = feed(&mut forecaster, &mut rng, 0.02, |h| 2.0 - 0.01 * h);
        let forecast = forecaster.forecast(now).expect("a forecast");
        assert_eq!(forecast.side, LimitSide::Low);
        let error_hours = (forecast.crossing_ms - 150 * HOUR_MS).abs() as f64 / HOUR_MS as f64;
        assert!(error_hours < 10.0, "crossing off by {error_hours:.1} h");
    }

    #[test]
    fn rising_signal_without_high_limit_predicts_nothing() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut forecaster = TrendForecaster::new(config(), None, Some(0.0));
        let now = feed(&mut forecaster, &mut rng, 0.1, |h| 10.0 + h);
        assert_eq!(forecaster.forecast(now), None);
    }

    #[test]
    fn crossing_beyond_twice_horizon_is_not_reported() {
        let mut rng = fastrand::Rng::with_seed(9);
        let mut forecaster = TrendForecaster::new(config(), Some(1000.0), None);
        let now = feed(&mut forecaster, &mut rng, 0.1, |h| 50.0 + 0.5 * h);
        assert_eq!(forecaster.forecast(now), None);
    }

    #[test]
    fn score_rises_as_crossing_nears() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut forecaster = TrendForecaster::new(config(), Some(90.0), None);
        let now = feed(&mut forecaster, &mut rng, 1.0, |h| 50.0 + 0.5 * h);
        let forecast = forecaster.forecast(now).unwrap();
        // About 56 hours left of a 168-hour horizon.
        let score = forecaster.score(Some(&forecast), now);
        assert!(score > 2.5, "score {score}");
        assert!(score < 3.5, "score {score}");
    }

    #[test]
    fn window_is_bounded() {
        let mut forecaster = TrendForecaster::new(config(), Some(90.0), None);
        for step in 0..10_000i64 {
            forecaster.push(step * MINUTE_MS, 50.0);
        }
        assert!(forecaster.len() <= 240, "{} points kept", forecaster.len());
        assert!(!forecaster.push(0, 50.0), "an older time must be skipped");
        assert!(!forecaster.push(20_000 * MINUTE_MS, f64::NAN));
    }

    /// Standard normal noise by the Box–Muller transform.
    fn gaussian(rng: &mut fastrand::Rng) -> f64 {
        let u = 1.0 - rng.f64();
        let v = rng.f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    #[test]
    fn twenty_percent_outliers_keep_crossing() {
        let mut clean_rng = fastrand::Rng::with_seed(13);
        let mut clean = TrendForecaster::new(config(), Some(90.0), None);
        let now = feed(&mut clean, &mut clean_rng, 0.5, |h| 50.0 + 0.5 * h);
        let clean_forecast = clean.forecast(now).unwrap();

        // Every 5th reading is a spike of +20 to +40 degC, all on one side, so that a plain
        // least-squares fit would lift the line and pull the crossing forward.
        let mut rng = fastrand::Rng::with_seed(13);
        let mut spikes = fastrand::Rng::with_seed(99);
        let mut dirty = TrendForecaster::new(config(), Some(90.0), None);
        for step in 0..240i64 {
            let ts = step * 6 * MINUTE_MS;
            let hours = ts as f64 / HOUR_MS as f64;
            let mut value = 50.0 + 0.5 * hours + noise(&mut rng, 0.5);
            if step % 5 == 2 {
                value += 20.0 + 20.0 * spikes.f64();
            }
            dirty.push(ts, value);
        }
        let dirty_forecast = dirty.forecast(now).unwrap();

        assert_eq!(dirty_forecast.method, FitMethod::TrimmedLeastSquares);
        assert_eq!(dirty_forecast.outliers, 48, "{dirty_forecast:?}");
        assert_eq!(dirty_forecast.points, 192, "{dirty_forecast:?}");
        let shift_hours =
            (dirty_forecast.crossing_ms - clean_forecast.crossing_ms).abs() as f64 / HOUR_MS as f64;
        assert!(
            shift_hours < 0.5,
            "outliers moved the crossing by {shift_hours:.2} h"
        );
    }

    #[test]
    fn trimmed_slope_beats_theil_sen() {
        // 1,000 series of 100 readings 6 minutes apart, rising 0.5 per hour under unit
        // Gaussian noise.
        const SEEDS: u64 = 1000;
        let true_slope = 0.5 / HOUR_MS as f64;
        let mut least_squares_error = 0.0;
        let mut theil_sen_error = 0.0;
        let mut covered = 0;
        for seed in 0..SEEDS {
            let mut rng = fastrand::Rng::with_seed(seed);
            let points: Vec<(i64, f64)> = (0..100i64)
                .map(|step| {
                    let ts = step * 6 * MINUTE_MS;
                    let hours = ts as f64 / HOUR_MS as f64;
                    (ts, 50.0 + 0.5 * hours + gaussian(&mut rng))
                })
                .collect();
            let trimmed = fit_trend(&points).unwrap();
            let robust = theil_sen(&points).unwrap();
            assert_eq!(trimmed.method, FitMethod::TrimmedLeastSquares);
            least_squares_error += (trimmed.slope - true_slope).powi(2);
            theil_sen_error += (robust.slope - true_slope).powi(2);
            if trimmed.slope_low <= true_slope && true_slope <= trimmed.slope_high {
                covered += 1;
            }
        }

        let ratio = least_squares_error / theil_sen_error;
        assert!(
            ratio <= 1.0,
            "trimmed least squares has {ratio:.3} times the Theil–Sen mean squared error"
        );
        // 95 % intervals over 1,000 seeds: the binomial standard deviation is 0.7 points.
        let coverage = covered as f64 / SEEDS as f64;
        assert!(
            coverage >= 0.92,
            "95 % slope interval covered {coverage:.3}"
        );
        assert!(
            coverage <= 0.98,
            "95 % slope interval covered {coverage:.3}"
        );
    }

    #[test]
    fn trimmed_variance_matches_trim_sigmas() {
        // Simpson's rule for the second moment and the mass of a normal on [-c, c].
        let steps = 10_000;
        let width = 2.0 * TRIM_SIGMAS / steps as f64;
        let (mut moment, mut mass) = (0.0, 0.0);
        for i in 0..=steps {
            let x = -TRIM_SIGMAS + i as f64 * width;
            let weight = if i == 0 || i == steps {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            let density = (-x * x / 2.0).exp();
            moment += weight * x * x * density;
            mass += weight * density;
        }
        let variance = moment / mass;
        assert!(
            (variance - TRIMMED_VARIANCE).abs() < 1e-6,
            "truncated variance {variance:.7}"
        );
    }

    #[test]
    fn least_squares_needs_distinct_times() {
        let same_time = [(5, 1.0), (5, 2.0), (5, 3.0), (5, 4.0)];
        assert!(least_squares_fit(&same_time, 5).is_none());
        assert!(least_squares_fit(&[(0, 1.0), (1000, 2.0)], 500).is_none());
    }

    #[test]
    fn overflowing_fit_falls_back_to_theil_sen() {
        // Residual squares of values near 1e200 overflow, so least squares has no finite
        // result while the Theil–Sen line, built from differences, still has one.
        let points: Vec<(i64, f64)> = (0..20i64)
            .map(|i| {
                (
                    i * 1000,
                    1e200 * i as f64 + if i % 2 == 0 { 1e190 } else { 0.0 },
                )
            })
            .collect();
        let robust = theil_sen(&points).unwrap();
        let fit = fit_trend(&points).unwrap();
        assert_eq!(fit.method, FitMethod::TheilSen);
        assert_eq!(fit.slope, robust.slope);
        assert_eq!(fit.outliers, 0);
        assert!(fit.intercept.is_finite());
    }

    #[test]
    fn student_t_quantile_matches_table() {
        // 97.5 % quantiles of Student's t from standard tables.
        for (dof, table) in [(3.0, 3.182), (5.0, 2.571), (10.0, 2.228), (30.0, 2.042)] {
            let approximation = student_t_975(dof);
            assert!(
                (approximation - table).abs() < 0.02,
                "t({dof}) = {approximation:.4}, table {table}"
            );
        }
        assert!((student_t_975(1e9) - Z_95).abs() < 1e-6);
    }

    #[test]
    fn theil_sen_needs_three_distinct_times() {
        assert_eq!(theil_sen(&[(0, 1.0), (1, 2.0)]), None);
        assert_eq!(theil_sen(&[(5, 1.0), (5, 2.0), (5, 3.0)]), None);
        let fit = theil_sen(&[(0, 1.0), (1000, 2.0), (2000, 3.0)]).unwrap();
        assert!((fit.slope - 0.001).abs() < 1e-12);
        assert!((fit.level_at(3000) - 4.0).abs() < 1e-9);
    }
}
