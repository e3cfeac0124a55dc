//! On-board anomaly detection: streaming detectors per sensor, multivariate models per asset,
//! trend forecasts, alarm handling, offline replay and scoring.

pub mod alarm;
pub mod engine;
pub mod eval;
pub mod forecast;
pub mod multivariate;
pub mod replay;
pub mod request;
pub mod stream;
pub mod train;

/// The verdict of a detector on one row of a series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowOutput {
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// The score crossed the detector's own fixed threshold, outside the warm-up rows.
    pub is_anomaly: bool,
    /// The detector believes a fault starts or ends on this row.
    pub changepoint: bool,
}
