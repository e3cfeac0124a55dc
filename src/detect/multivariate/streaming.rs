//! Row-by-row scoring with temporal smoothing, persistence and hysteresis, shared by the
//! gateway and `caretaker detect`.
//!
//! The scorer keeps the recent readings that the change inputs need and the moving average of
//! the scaled inputs that the detector judges. Each row's ratio (statistic of the average over
//! threshold) is capped and averaged over the last `smoothing_rows` rows. An alarm is raised
//! once that mean has stayed at or above 1 for `persistence_rows` rows in a row, and cleared
//! once it has stayed below `release_ratio` for `clear_rows` rows in a row. When the level
//! inputs alone were over the threshold at the raise, the release is judged on them alone, so
//! a temperature that settles slowly after the fault does not hold the alarm. A sustained fault
//! therefore gives one alarm instead of a flickering run of them.

use std::collections::VecDeque;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::fit::{fit_model, min_training_rows, FitOptions, TrainingData};
use super::{ratio_to_score, AssetModel, InputHistory, MvScore};
use crate::detect::replay::Series;
use crate::detect::RowOutput;

/// Smoothing, persistence and hysteresis settings, saved with each model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingOptions {
    /// Rows averaged into the smoothed ratio.
    pub smoothing_rows: usize,
    /// Consecutive rows the smoothed ratio must stay at or above 1 before an alarm is raised.
    pub persistence_rows: usize,
    /// Smoothed ratio below which an active alarm starts to clear (below 1, for hysteresis).
    pub release_ratio: f64,
    /// Consecutive rows below `release_ratio` that clear an alarm.
    pub clear_rows: usize,
    /// Cap on one row's ratio before averaging, and on the ratio to which one row can lift the
    /// moving average of the inputs.
    pub ratio_cap: f64,
}

impl Default for StreamingOptions {
    fn default() -> Self {
        StreamingOptions {
            smoothing_rows: 5,
            persistence_rows: 10,
            release_ratio: 0.5,
            clear_rows: 10,
            ratio_cap: 5.0,
        }
    }
}

impl StreamingOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.smoothing_rows == 0 || self.persistence_rows == 0 || self.clear_rows == 0 {
            bail!(
                "streaming.smoothing_rows, persistence_rows and clear_rows must be at least 1 \
                 (got {}, {}, {})",
                self.smoothing_rows,
                self.persistence_rows,
                self.clear_rows
            );
        }
        if !(self.release_ratio > 0.0 && self.release_ratio <= 1.0) {
            bail!(
                "streaming.release_ratio is {}; it must be in (0, 1]",
                self.release_ratio
            );
        }
        if !(self.ratio_cap.is_finite() && self.ratio_cap >= 1.0) {
            bail!(
                "streaming.ratio_cap is {}; it must be a finite number of at least 1",
                self.ratio_cap
            );
        }
        Ok(())
    }
}

/// A change of alarm state on the latest row. Rows are counted from 0 at the scorer's first
/// update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// An alarm was raised on `row`. The fault is estimated to have started on `onset_row`, the
    /// start of the recent ratios' largest cumulative excess over 1 (a CUSUM estimate).
    Raised { row: u64, onset_row: u64 },
    /// The alarm cleared on `row`. The fault is estimated to have ended on `end_row`, the start
    /// of the recent ratios' largest cumulative shortfall below `release_ratio`.
    Cleared { row: u64, end_row: u64 },
}

/// Scores an asset's rows one at a time and keeps the smoothing and alarm state.
#[derive(Debug, Clone)]
pub struct StreamingAssetScorer {
    model: AssetModel,
    inputs: InputHistory,
    /// Moving average of the scaled inputs; `None` until the first row.
    average: Option<Vec<f64>>,
    /// Capped ratios of the latest rows, newest last; longer than the smoothing window so that
    /// a transition can look back past it.
    history: VecDeque<f64>,
    /// The same for the ratios of the level inputs alone, which decide when an alarm clears.
    level_history: VecDeque<f64>,
    rows: u64,
    alarmed: bool,
    /// Whether the active alarm clears on the level inputs alone, because they were over the
    /// threshold on their own when it was raised.
    released_by_levels: bool,
    rows_above: usize,
    rows_below: usize,
    transition: Option<Transition>,
}

impl StreamingAssetScorer {
    pub fn new(model: AssetModel) -> Self {
        StreamingAssetScorer {
            inputs: InputHistory::new(&model.inputs),
            average: None,
            model,
            history: VecDeque::new(),
            level_history: VecDeque::new(),
            rows: 0,
            alarmed: false,
            released_by_levels: false,
            rows_above: 0,
            rows_below: 0,
            transition: None,
        }
    }

    pub fn model(&self) -> &AssetModel {
        &self.model
    }

    /// Returns whether an alarm is active.
    pub fn is_alarmed(&self) -> bool {
        self.alarmed
    }

    /// Returns the alarm change caused by the latest update, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.transition
    }

    /// Records a row's readings for the features that enter as their change, without scoring
    /// it. Feeding the rows before the first scored one lets that row's changes span the full
    /// lag.
    pub fn prime(&mut self, row: &[Option<f64>]) {
        let inputs = self.inputs.push(row);
        let (z, _) = self.model.scale_inputs(&inputs);
        self.average_in(z);
    }

    /// Adds a scaled row to the moving average and returns the average.
    ///
    /// One row may lift the average's ratio to at most `ratio_cap` (or keep it where it was,
    /// when it was higher): a larger step is shortened along the same direction. So a glitch
    /// of a few rows, however large, fades from the average within a few rows, as a capped
    /// ratio does from a plain mean. The fit averages its normal rows without this cap.
    fn average_in(&mut self, z: Vec<f64>) -> &[f64] {
        let weight = self.model.ewma_weight;
        let average = match self.average.take() {
            None => z,
            Some(previous) => {
                let step = |fraction: f64| -> Vec<f64> {
                    previous
                        .iter()
                        .zip(&z)
                        .map(|(mean, value)| mean + weight * fraction * (value - mean))
                        .collect()
                };
                let bound = self
                    .model
                    .streaming
                    .ratio_cap
                    .max(self.model.detector.ratio(&previous));
                let full = step(1.0);
                if self.model.detector.ratio(&full) <= bound {
                    full
                } else {
                    // The ratio of `step(0)` is within the bound and that of `step(1)` is not,
                    // so bisection finds the longest step that stays within it.
                    let (mut low, mut high) = (0.0, 1.0);
                    for _ in 0..20 {
                        let middle = 0.5 * (low + high);
                        if self.model.detector.ratio(&step(middle)) <= bound {
                            low = middle;
                        } else {
                            high = middle;
                        }
                    }
                    step(low)
                }
            }
        };
        self.average.insert(average)
    }

    /// Scores one row (in the model's feature order) and advances the alarm state.
    ///
    /// `score` and `is_anomaly` of the result are the smoothed verdict. The score is the
    /// smoothed ratio mapped onto [0, 1] against the threshold in force, which is 1 while idle
    /// and `release_ratio` during an alarm. It stays below 0.5 while an alarm waits for
    /// persistence and at 0.5 or more while one is active. `statistic`, `value`, `threshold`
    /// and `contributions` describe the moving average of the inputs up to this row, and
    /// `imputed` lists the features missing from this row.
    pub fn update(&mut self, row: &[Option<f64>]) -> MvScore {
        let inputs = self.inputs.push(row);
        let (z, imputed) = self.model.scale_inputs(&inputs);
        let average = self.average_in(z).to_vec();
        let mut result = self.model.score_scaled(&average, imputed);
        let level_ratio = self.level_ratio(&average, result.ratio());
        let options = &self.model.streaming;
        let capped = result.ratio().min(options.ratio_cap);
        let capacity = options.smoothing_rows + options.persistence_rows + options.clear_rows;
        if self.history.len() == capacity {
            self.history.pop_front();
            self.level_history.pop_front();
        }
        self.history.push_back(capped);
        self.level_history
            .push_back(level_ratio.min(options.ratio_cap));
        let row_index = self.rows;
        self.rows += 1;
        self.transition = None;

        let window = options.smoothing_rows.min(self.history.len());
        let mean_of_latest = |history: &VecDeque<f64>| {
            history.iter().rev().take(window).sum::<f64>() / window as f64
        };
        let smoothed = if self.alarmed {
            let releasing = if self.released_by_levels {
                &self.level_history
            } else {
                &self.history
            };
            let smoothed = mean_of_latest(releasing);
            if smoothed < options.release_ratio {
                self.rows_below += 1;
            } else {
                self.rows_below = 0;
            }
            if self.rows_below >= options.clear_rows {
                self.alarmed = false;
                self.rows_above = 0;
                let back = change_start(releasing, options.release_ratio, -1.0);
                self.transition = Some(Transition::Cleared {
                    row: row_index,
                    end_row: row_index + 1 - back as u64,
                });
            }
            smoothed
        } else {
            let smoothed = mean_of_latest(&self.history);
            if smoothed >= 1.0 {
                self.rows_above += 1;
            } else {
                self.rows_above = 0;
            }
            if self.rows_above >= options.persistence_rows {
                self.alarmed = true;
                self.rows_below = 0;
                // An alarm that the level inputs carry on their own clears when they return
                // to normal, even while a thermal input is still settling after the fault.
                self.released_by_levels = mean_of_latest(&self.level_history) >= 1.0;
                let back = change_start(&self.history, 1.0, 1.0);
                self.transition = Some(Transition::Raised {
                    row: row_index,
                    onset_row: row_index + 1 - back as u64,
                });
            }
            smoothed
        };

        result.is_anomaly = self.alarmed;
        result.score = if self.alarmed {
            ratio_to_score(smoothed / options.release_ratio).max(0.5)
        } else {
            // Just below 0.5, so that a reader thresholding the score at 0.5 agrees with
            // `is_anomaly` while persistence delays the alarm.
            ratio_to_score(smoothed).min(0.499_999)
        };
        result
    }
}

impl StreamingAssetScorer {
    /// Returns the ratio of the averaged row with the change inputs set to their training
    /// median, or `full_ratio` when every input is a level.
    fn level_ratio(&self, average: &[f64], full_ratio: f64) -> f64 {
        if self.model.inputs.iter().all(|input| input.lag_rows() == 0) {
            return full_ratio;
        }
        let levels: Vec<f64> = average
            .iter()
            .zip(&self.model.inputs)
            .map(|(z, input)| if input.lag_rows() == 0 { *z } else { 0.0 })
            .collect();
        self.model.score_scaled(&levels, Vec::new()).ratio()
    }
}

/// Number of newest values in the suffix with the largest total excess `sign × (value -
/// level)`: the CUSUM estimate of where the latest change began. At least 1.
fn change_start(history: &VecDeque<f64>, level: f64, sign: f64) -> usize {
    let mut sum = 0.0;
    let mut best = (1, f64::NEG_INFINITY);
    for (count, value) in history.iter().rev().enumerate() {
        sum += sign * (value - level);
        if sum > best.1 {
            best = (count + 1, sum);
        }
    }
    best.0
}

/// Scores a series with several features for `caretaker detect`.
///
/// With `model`, the series' features must be the model's (in any order). Without one, a PCA
/// model is fitted on the first `warmup_rows` rows. The warm-up rows are never flagged and get
/// score 0; the changepoint column marks the estimated start and end of each alarm.
pub fn score_series(
    series: &Series,
    warmup_rows: usize,
    model: Option<&AssetModel>,
) -> anyhow::Result<Vec<RowOutput>> {
    let warmup_rows = warmup_rows.min(series.len());
    let model = match model {
        Some(model) => {
            model
                .check_features(&series.features)
                .map_err(anyhow::Error::msg)?;
            model.clone()
        }
        None => {
            let needed = min_training_rows(series.features.len());
            if warmup_rows < needed {
                bail!(
                    "the multivariate detector needs at least {needed} warm-up rows of normal \
                     operation for {} features but got {warmup_rows}; raise --warmup-rows or \
                     give a model trained with `caretaker train` (--model)",
                    series.features.len()
                );
            }
            let data = TrainingData::from_series(series, "the warm-up rows", warmup_rows);
            let options = FitOptions {
                validation_fraction: 0.0,
                ..FitOptions::default()
            };
            fit_model("replay", &data, &options)?
        }
    };

    // Column of the series that feeds each model feature.
    let columns: Vec<usize> = model
        .features
        .iter()
        .map(|feature| {
            series
                .features
                .iter()
                .position(|name| name == feature)
                .unwrap_or_default()
        })
        .collect();
    let mut outputs = vec![RowOutput::default(); series.len()];
    let mut scorer = StreamingAssetScorer::new(model);
    for index in 0..warmup_rows {
        let row: Vec<Option<f64>> = columns.iter().map(|&c| series.columns[c][index]).collect();
        scorer.prime(&row);
    }
    for index in warmup_rows..series.len() {
        let row: Vec<Option<f64>> = columns.iter().map(|&c| series.columns[c][index]).collect();
        let verdict = scorer.update(&row);
        outputs[index].score = verdict.score;
        outputs[index].is_anomaly = verdict.is_anomaly;
        let changepoint = match scorer.last_transition() {
            Some(Transition::Raised { onset_row, .. }) => Some(onset_row),
            Some(Transition::Cleared { end_row, .. }) => Some(end_row),
            None => None,
        };
        if let Some(row) = changepoint {
            outputs[warmup_rows + row as usize].changepoint = true;
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a series of two tied features (`x` and `y = 2x`) with noise. Between rows
    /// `fault.0` and `fault.1`, `y` loses its tie to `x`.
    fn series_with_fault(rows: usize, fault: (usize, usize)) -> Series {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for index in 0..rows {
            let base = (index as f64 / 50.0).sin() * 3.0;
            let noise = (rng.f64() - 0.5) * 0.2;
            x.push(Some(base + noise));
            let broken = if (fault.0..fault.1).contains(&index) {
                4.0
            } else {
                0.0
            };
            y.push(Some(2.0 * base + (rng.f64() - 0.5) * 0.2 + broken));
        }
        Series {
            timestamps: (0..rows).map(|i| i.to_string()).collect(),
            times_ms: vec![None; rows],
            features: vec!["x".into(), "y".into()],
            columns: vec![x, y],
        }
    }

    #[test]
    fn sustained_fault_is_one_alarm() {
        let series = series_with_fault(1200, (700, 900));
        let outputs = score_series(&series, 500, None).unwrap();
        assert!(outputs[..500]
            .iter()
            .all(|o| !o.is_anomaly && o.score == 0.0));
        let flagged: Vec<usize> = (0..outputs.len())
            .filter(|&i| outputs[i].is_anomaly)
            .collect();
        assert!(!flagged.is_empty(), "the fault was not flagged");
        let first = flagged[0];
        let last = *flagged.last().unwrap();
        assert_eq!(
            flagged.len(),
            last - first + 1,
            "the alarm flickered: {flagged:?}"
        );
        assert!((700..760).contains(&first), "raised on row {first}");
        assert!((900..980).contains(&last), "cleared after row {last}");
        let changepoints: Vec<usize> = (0..outputs.len())
            .filter(|&i| outputs[i].changepoint)
            .collect();
        assert_eq!(changepoints.len(), 2, "{changepoints:?}");
        assert!((695..720).contains(&changepoints[0]), "{changepoints:?}");
        assert!((895..930).contains(&changepoints[1]), "{changepoints:?}");
        for output in &outputs {
            assert_eq!(output.score >= 0.5, output.is_anomaly, "{output:?}");
        }
    }

    /// Builds the series of [`series_with_fault`] with a third feature, `temperature`, that
    /// warms slowly from row `fault.0` and stays warm after the fault ends, as a thermal
    /// signal lags its cause.
    fn series_with_thermal_lag(rows: usize, fault: (usize, usize)) -> Series {
        let mut series = series_with_fault(rows, fault);
        let mut rng = fastrand::Rng::with_seed(9);
        let temperature = (0..rows)
            .map(|index| {
                let warmed = index.saturating_sub(fault.0).min(100) as f64 * 0.05;
                Some(40.0 + warmed + (rng.f64() - 0.5) * 0.1)
            })
            .collect();
        series.features.push("temperature".into());
        series.columns.push(temperature);
        series
    }

    /// Returns the flagged rows of `outputs`.
    fn flagged_rows(outputs: &[RowOutput]) -> Vec<usize> {
        (0..outputs.len())
            .filter(|&i| outputs[i].is_anomaly)
            .collect()
    }

    #[test]
    fn thermal_offset_after_fault_clears() {
        let series = series_with_thermal_lag(1400, (700, 900));
        let outputs = score_series(&series, 500, None).unwrap();
        let flagged = flagged_rows(&outputs);
        assert!(!flagged.is_empty(), "the fault was not flagged");
        let first = flagged[0];
        let last = *flagged.last().unwrap();
        assert_eq!(
            flagged.len(),
            last - first + 1,
            "the alarm flickered: {flagged:?}"
        );
        assert!((700..760).contains(&first), "raised on row {first}");
        assert!((900..1000).contains(&last), "cleared after row {last}");
    }

    #[test]
    fn thermal_offset_as_level_keeps_alarm() {
        // The same series judged on every feature's level: the warmer temperature after the
        // fault keeps the alarm active to the end, which the change input avoids.
        let series = series_with_thermal_lag(1400, (700, 900));
        let data = TrainingData::from_series(&series, "x", 500);
        let options = FitOptions {
            validation_fraction: 0.0,
            change_lag_rows: 0,
            ..FitOptions::default()
        };
        let model = fit_model("pump", &data, &options).unwrap();
        let outputs = score_series(&series, 500, Some(&model)).unwrap();
        let flagged = flagged_rows(&outputs);
        assert_eq!(flagged.last(), Some(&1399), "{flagged:?}");
    }

    #[test]
    fn thermal_drift_alone_raises_alarm() {
        // A temperature that climbs steadily while the other features stay normal: its change
        // over the lag stays high, so the drift is flagged without a level model.
        let mut series = series_with_fault(1400, (0, 0));
        let mut rng = fastrand::Rng::with_seed(3);
        let temperature = (0..1400usize)
            .map(|index| {
                let drift = index.saturating_sub(800) as f64 * 0.05;
                Some(40.0 + drift + (rng.f64() - 0.5) * 0.1)
            })
            .collect();
        series.features.push("temperature".into());
        series.columns.push(temperature);
        let outputs = score_series(&series, 500, None).unwrap();
        let flagged = flagged_rows(&outputs);
        assert!(!flagged.is_empty(), "the drift was not flagged");
        assert!(
            (800..880).contains(&flagged[0]),
            "raised on row {}",
            flagged[0]
        );
        assert_eq!(
            flagged.last(),
            Some(&1399),
            "the alarm cleared during the drift"
        );
    }

    #[test]
    fn short_spike_is_not_an_alarm() {
        let series = series_with_fault(1000, (700, 703));
        let outputs = score_series(&series, 500, None).unwrap();
        assert!(outputs.iter().all(|o| !o.is_anomaly));
        assert!(outputs.iter().all(|o| !o.changepoint));
    }

    #[test]
    fn wild_value_does_not_poison_fit_or_scores() {
        let mut series = series_with_fault(1000, (700, 900));
        series.columns[0][10] = Some(1e308);
        series.columns[1][600] = Some(-1e308);
        let outputs = score_series(&series, 500, None).unwrap();
        assert!(outputs.iter().all(|o| o.score.is_finite()));
        let flagged =
            |range: std::ops::Range<usize>| range.filter(|&row| outputs[row].is_anomaly).count();
        let all: Vec<usize> = (0..1000).filter(|&row| outputs[row].is_anomaly).collect();
        assert!(flagged(720..900) > 150, "the fault is still found: {all:?}");
        assert!(
            flagged(620..700) == 0,
            "normal rows after the wild value are not flagged"
        );
    }

    #[test]
    fn too_few_warmup_rows_rejected() {
        let series = series_with_fault(300, (200, 250));
        let err = score_series(&series, 10, None).unwrap_err().to_string();
        assert!(err.contains("at least 40 warm-up rows"), "{err}");
        assert!(err.contains("--warmup-rows"), "{err}");
    }

    #[test]
    fn model_with_other_features_rejected() {
        let series = series_with_fault(600, (400, 450));
        let model = {
            let data = TrainingData::from_series(&series, "x", 300);
            fit_model("pump", &data, &FitOptions::default()).unwrap()
        };
        let mut other = series.clone();
        other.features[1] = "flow".into();
        let err = score_series(&other, 0, Some(&model))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing `y`"), "{err}");
        assert!(err.contains("unexpected `flow`"), "{err}");
        // Columns in another order are matched by name.
        let mut swapped = series.clone();
        swapped.features.swap(0, 1);
        swapped.columns.swap(0, 1);
        let direct = score_series(&series, 0, Some(&model)).unwrap();
        let reordered = score_series(&swapped, 0, Some(&model)).unwrap();
        assert_eq!(direct, reordered);
    }

    #[test]
    fn scorer_reports_transitions() {
        let series = series_with_fault(1200, (700, 900));
        let data = TrainingData::from_series(&series, "x", 500);
        let options = FitOptions {
            validation_fraction: 0.0,
            ..FitOptions::default()
        };
        let mut scorer = StreamingAssetScorer::new(fit_model("pump", &data, &options).unwrap());
        let mut transitions = Vec::new();
        for index in 500..series.len() {
            scorer.update(&series.row(index));
            if let Some(transition) = scorer.last_transition() {
                transitions.push(transition);
            }
        }
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        assert!(matches!(transitions[0], Transition::Raised { .. }));
        assert!(matches!(transitions[1], Transition::Cleared { .. }));
        assert!(!scorer.is_alarmed());
    }

    #[test]
    fn options_validated() {
        let mut options = StreamingOptions::default();
        assert!(options.validate().is_ok());
        options.release_ratio = 1.5;
        assert!(options.validate().is_err());
        options = StreamingOptions {
            smoothing_rows: 0,
            ..StreamingOptions::default()
        };
        assert!(options.validate().is_err());
    }
}
