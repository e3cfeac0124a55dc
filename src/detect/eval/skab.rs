//! SKAB scoring (Skoltech Anomaly Benchmark rules).
//!
//! Outlier detection is scored point-wise against the `anomaly` column, pooled over all files:
//! F1, false-alarm rate (FAR) and missed-alarm rate (MAR). Changepoint detection is scored with
//! SKAB's NAB variant. A window of 60 s opens at each true changepoint. The earliest predicted
//! changepoint inside it earns a reward that falls from the true-positive weight at the window's
//! start to the false-positive weight at its end. A window without one costs the false-negative
//! weight, and every predicted changepoint outside all windows costs the false-positive weight.
//! The first 400 rows of each file are left to the detector to learn from and are not scored.

use std::collections::HashMap;
use std::f64::consts::FRAC_PI_2;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use super::nab::pointwise_rates;
use super::outputs::{format_ms, DetectionRule, DetectorOutput, Table, TIME_COLUMNS};

/// Rows at the start of each file that SKAB's leaderboard leaves for training.
pub const DEFAULT_SKIP_ROWS: usize = 400;
/// Width of the window after each true changepoint, in seconds.
pub const DEFAULT_WINDOW_SECS: f64 = 60.0;
/// Points of the grid on which SKAB evaluates its reward ramp.
const RAMP_STEPS: usize = 1000;

/// Weights of one SKAB changepoint profile, with SKAB's signs: penalties are negative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpProfile {
    pub name: &'static str,
    pub true_positive: f64,
    pub false_positive: f64,
    pub false_negative: f64,
}

pub const CP_PROFILES: [CpProfile; 3] = [
    CpProfile {
        name: "Standard",
        true_positive: 1.0,
        false_positive: -0.11,
        false_negative: -1.0,
    },
    CpProfile {
        name: "LowFP",
        true_positive: 1.0,
        false_positive: -0.22,
        false_negative: -1.0,
    },
    CpProfile {
        name: "LowFN",
        true_positive: 1.0,
        false_positive: -0.11,
        false_negative: -2.0,
    },
];

/// Treatment of a scored row without a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingRows {
    /// No anomaly and no changepoint.
    Zero,
    /// Not scored, as SKAB's own evaluation does.
    Skip,
}

#[derive(Debug, Clone, Copy)]
pub struct SkabOptions {
    pub skip_rows: usize,
    pub rule: DetectionRule,
    pub window_secs: f64,
    pub missing: MissingRows,
}

impl Default for SkabOptions {
    fn default() -> Self {
        SkabOptions {
            skip_rows: DEFAULT_SKIP_ROWS,
            rule: DetectionRule::OwnFlag {
                fallback_threshold: 0.5,
            },
            window_secs: DEFAULT_WINDOW_SECS,
            missing: MissingRows::Zero,
        }
    }
}

/// Labels and predictions of the scored rows of one file.
#[derive(Debug, Clone, Default)]
pub struct ScoredRows {
    pub times_ms: Vec<i64>,
    pub anomaly: Vec<bool>,
    pub changepoint: Vec<bool>,
    pub predicted: Vec<bool>,
    pub predicted_changepoint: Vec<bool>,
}

/// Changepoint counts of one file: reward sums per profile and the detection delays.
#[derive(Debug, Clone, Default)]
pub struct CpTally {
    pub changepoints: u64,
    pub missed: u64,
    pub false_alarms: u64,
    pub delays_secs: Vec<f64>,
    /// Raw score per profile, in the order of `CP_PROFILES`.
    pub raw: [f64; 3],
}

/// Turns outlier flags into changepoints: every row where the flag switches, and the first row
/// when it starts set.
pub fn switching_edges(flags: &[bool]) -> Vec<bool> {
    let mut edges = Vec::with_capacity(flags.len());
    for (index, &flag) in flags.iter().enumerate() {
        edges.push(if index == 0 {
            flag
        } else {
            flag != flags[index - 1]
        });
    }
    edges
}

/// Computes SKAB's reward for a first detection at `time` in a window `[start, end]`. The
/// reward falls along a tanh ramp from `true_positive` at the start to `false_positive` at the
/// end, read on a grid of 1000 points.
pub fn ramp_reward(time: i64, start: i64, end: i64, profile: &CpProfile) -> f64 {
    let span = (end - start) as f64;
    let share = if span > 0.0 {
        (time - start) as f64 / span
    } else {
        0.0
    };
    let step = ((share * RAMP_STEPS as f64).floor().max(0.0) as usize).min(RAMP_STEPS - 1);
    let x = -FRAC_PI_2 + step as f64 * std::f64::consts::PI / (RAMP_STEPS - 1) as f64;
    let half = (profile.true_positive - profile.false_positive) / 2.0;
    half * (-x.tanh() / FRAC_PI_2.tanh()) + half + profile.false_positive
}

/// Scores the changepoints of one file.
pub fn tally_changepoints(rows: &ScoredRows, window_secs: f64) -> CpTally {
    let width_ms = (window_secs * 1000.0).round() as i64;
    let mut windows: Vec<(i64, i64)> = rows
        .times_ms
        .iter()
        .zip(&rows.changepoint)
        .filter(|(_, &set)| set)
        .map(|(&time, _)| (time, time + width_ms))
        .collect();
    // A window that would overlap the next one pushes the next one's start to its own end.
    for index in 1..windows.len() {
        if windows[index - 1].1 >= windows[index].0 {
            windows[index].0 = windows[index - 1].1;
        }
    }
    let detections: Vec<i64> = rows
        .times_ms
        .iter()
        .zip(&rows.predicted_changepoint)
        .filter(|(_, &set)| set)
        .map(|(&time, _)| time)
        .collect();

    let mut tally = CpTally {
        changepoints: windows.len() as u64,
        ..CpTally::default()
    };
    let mut firsts = Vec::with_capacity(windows.len());
    for &(start, end) in &windows {
        let first = detections
            .iter()
            .copied()
            .find(|&time| start <= time && time <= end);
        if let Some(time) = first {
            tally.delays_secs.push((time - start) as f64 / 1000.0);
        } else {
            tally.missed += 1;
        }
        firsts.push(first);
    }
    tally.false_alarms = detections
        .iter()
        .filter(|&&time| {
            !windows
                .iter()
                .any(|&(start, end)| start <= time && time <= end)
        })
        .count() as u64;
    for (slot, profile) in tally.raw.iter_mut().zip(&CP_PROFILES) {
        let mut raw = profile.false_positive * tally.false_alarms as f64
            + profile.false_negative * tally.missed as f64;
        for (&(start, end), first) in windows.iter().zip(&firsts) {
            if let Some(time) = first {
                raw += ramp_reward(*time, start, end, profile);
            }
        }
        *slot = raw;
    }
    tally
}

/// One file's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SkabFile {
    pub file: String,
    pub rows_scored: usize,
    pub f1: Option<f64>,
    pub far_pct: Option<f64>,
    pub mar_pct: Option<f64>,
    pub changepoints: u64,
    pub missed_changepoints: u64,
    pub false_alarms: u64,
    /// Standard-profile changepoint score of this file alone.
    pub changepoint_score: Option<f64>,
}

/// Everything `caretaker evaluate skab` reports.
#[derive(Debug, Clone, Serialize)]
pub struct SkabReport {
    pub files: usize,
    pub skip_rows: usize,
    pub detection: String,
    /// Source of the predicted changepoints: the output's column or the flag's switching edges.
    pub changepoint_source: String,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    pub f1: Option<f64>,
    pub far_pct: Option<f64>,
    pub mar_pct: Option<f64>,
    pub changepoints: u64,
    pub missed_changepoints: u64,
    pub false_alarms: u64,
    pub mean_delay_secs: Option<f64>,
    /// Normalised changepoint score per profile (`Standard`, `LowFP`, `LowFN`).
    pub changepoint_scores: Vec<(String, Option<f64>)>,
    pub per_file: Vec<SkabFile>,
    pub warnings: Vec<String>,
}

impl SkabReport {
    pub fn changepoint_score(&self, profile: &str) -> Option<f64> {
        self.changepoint_scores
            .iter()
            .find(|(name, _)| name == profile)
            .and_then(|(_, score)| *score)
    }
}

fn normalise(raw: f64, windows: u64, profile: &CpProfile) -> Option<f64> {
    let null = windows as f64 * profile.false_negative;
    let perfect = windows as f64 * profile.true_positive;
    (perfect != null).then(|| 100.0 * (raw - null) / (perfect - null))
}

/// Scores every labelled file under `truth_dir`, searched recursively, against the detector
/// output with the same relative path under `results_dir`. Files without an `anomaly` column,
/// such as a run of normal operation, are not scored.
pub fn evaluate(
    truth_dir: &Path,
    results_dir: &Path,
    options: &SkabOptions,
) -> anyhow::Result<SkabReport> {
    let mut files = Vec::new();
    list_csv_files(truth_dir, &mut files)?;
    let mut relative: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(truth_dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            (name, path)
        })
        .collect();
    relative.sort();

    let mut warnings = Vec::new();
    let mut per_file = Vec::new();
    let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
    let mut cp_total = CpTally::default();
    let mut sources = Vec::new();
    for (name, truth_path) in relative {
        let truth = Table::read(&truth_path)?;
        if truth.column(&["anomaly"]).is_none() {
            continue;
        }
        let output_path = results_dir.join(&name);
        if !output_path.is_file() {
            bail!(
                "no detector output for {}: {} not found; run `caretaker detect --input {} \
                 --output {} --warmup-rows {}`",
                truth.source,
                output_path.display(),
                truth.source,
                output_path.display(),
                options.skip_rows
            );
        }
        let output = DetectorOutput::read(&output_path)?;
        let rows = match_rows(&truth, &output, options, &mut warnings)?;
        sources.push(if output.changepoints.is_some() {
            "changepoint column"
        } else {
            "switching edges of the outlier flag"
        });

        let (mut file_tp, mut file_fp, mut file_fn, mut file_tn) = (0u64, 0u64, 0u64, 0u64);
        for (&label, &predicted) in rows.anomaly.iter().zip(&rows.predicted) {
            match (label, predicted) {
                (true, true) => file_tp += 1,
                (true, false) => file_fn += 1,
                (false, true) => file_fp += 1,
                (false, false) => file_tn += 1,
            }
        }
        tp += file_tp;
        fp += file_fp;
        fn_ += file_fn;
        tn += file_tn;

        let cp = tally_changepoints(&rows, options.window_secs);
        let (f1, far_pct, mar_pct) = pointwise_rates(file_tp, file_fp, file_fn, file_tn);
        per_file.push(SkabFile {
            file: name,
            rows_scored: rows.times_ms.len(),
            f1,
            far_pct,
            mar_pct,
            changepoints: cp.changepoints,
            missed_changepoints: cp.missed,
            false_alarms: cp.false_alarms,
            changepoint_score: normalise(cp.raw[0], cp.changepoints, &CP_PROFILES[0]),
        });
        cp_total.changepoints += cp.changepoints;
        cp_total.missed += cp.missed;
        cp_total.false_alarms += cp.false_alarms;
        cp_total.delays_secs.extend(cp.delays_secs);
        for (total, raw) in cp_total.raw.iter_mut().zip(cp.raw) {
            *total += raw;
        }
    }
    if per_file.is_empty() {
        bail!(
            "{}: no labelled CSV file (one with an `anomaly` column) found; point --truth at \
             SKAB's data folder",
            truth_dir.display()
        );
    }

    sources.sort_unstable();
    sources.dedup();
    let (f1, far_pct, mar_pct) = pointwise_rates(tp, fp, fn_, tn);
    let delays = &cp_total.delays_secs;
    Ok(SkabReport {
        files: per_file.len(),
        skip_rows: options.skip_rows,
        detection: options.rule.describe(),
        changepoint_source: sources.join(" and "),
        tp,
        fp,
        fn_,
        tn,
        f1,
        far_pct,
        mar_pct,
        changepoints: cp_total.changepoints,
        missed_changepoints: cp_total.missed,
        false_alarms: cp_total.false_alarms,
        mean_delay_secs: (!delays.is_empty())
            .then(|| delays.iter().sum::<f64>() / delays.len() as f64),
        changepoint_scores: CP_PROFILES
            .iter()
            .zip(cp_total.raw)
            .map(|(profile, raw)| {
                let score = normalise(raw, cp_total.changepoints, profile);
                (profile.name.to_string(), score)
            })
            .collect(),
        per_file,
        warnings,
    })
}

fn list_csv_files(folder: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = fs::read_dir(folder)
        .with_context(|| format!("cannot list the folder {}", folder.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot list the folder {}", folder.display()))?;
        let path = entry.path();
        if path.is_dir() {
            list_csv_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "csv") {
            files.push(path);
        }
    }
    Ok(())
}

/// Pairs the scored rows of a labelled file with the detector's predictions, by time.
fn match_rows(
    truth: &Table,
    output: &DetectorOutput,
    options: &SkabOptions,
    warnings: &mut Vec<String>,
) -> anyhow::Result<ScoredRows> {
    let hint = "A SKAB file has the columns datetime, the sensors, anomaly and changepoint.";
    let time_column = truth.require_column(&TIME_COLUMNS, hint)?;
    let anomaly_column = truth.require_column(&["anomaly"], hint)?;
    let changepoint_column = truth.require_column(&["changepoint"], hint)?;
    let times = truth.times_ms(time_column)?;

    if output.len() > times.len() {
        bail!(
            "{}: {} rows, but its input {} has {}; run `caretaker detect` on that input again",
            output.source,
            output.len(),
            truth.source,
            times.len()
        );
    }
    let known: HashMap<i64, usize> = times
        .iter()
        .enumerate()
        .map(|(index, &time)| (time, index))
        .collect();
    let mut prediction_of: HashMap<i64, usize> = HashMap::with_capacity(output.len());
    for (index, &time) in output.times_ms.iter().enumerate() {
        if !known.contains_key(&time) {
            bail!(
                "{}:{}: unknown timestamp {}: no row of {} has it; the output must echo the \
                 input's timestamps",
                output.source,
                output.lines[index],
                format_ms(time),
                truth.source
            );
        }
        if let Some(previous) = prediction_of.insert(time, index) {
            bail!(
                "{}:{}: timestamp {} repeats line {}; write one output row per input row",
                output.source,
                output.lines[index],
                format_ms(time),
                output.lines[previous]
            );
        }
    }

    let detections = options.rule.apply(output);
    let mut rows = ScoredRows::default();
    let mut predicted_changepoint = Vec::new();
    let mut without_prediction = 0;
    for (index, &time) in times.iter().enumerate().skip(options.skip_rows) {
        let prediction = prediction_of.get(&time).copied();
        if prediction.is_none() {
            without_prediction += 1;
            if options.missing == MissingRows::Skip {
                continue;
            }
        }
        rows.times_ms.push(time);
        rows.anomaly.push(truth.flag(index, anomaly_column)?);
        rows.changepoint
            .push(truth.flag(index, changepoint_column)?);
        rows.predicted
            .push(prediction.is_some_and(|found| detections[found]));
        if let Some(changepoints) = &output.changepoints {
            predicted_changepoint.push(prediction.is_some_and(|found| changepoints[found]));
        }
    }
    if without_prediction > 0 {
        let outcome = match options.missing {
            MissingRows::Zero => "count as neither anomaly nor changepoint",
            MissingRows::Skip => "are not scored",
        };
        warnings.push(format!(
            "{}: {without_prediction} scored row(s) of {} have no prediction and {outcome}",
            output.source, truth.source
        ));
    }
    rows.predicted_changepoint = if output.changepoints.is_some() {
        predicted_changepoint
    } else {
        switching_edges(&rows.predicted)
    };
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: CpProfile = CP_PROFILES[0];

    /// Ten rows 10 s apart, labelled as anomalous on rows 3..=6, with true changepoints at rows
    /// 3 and 7, and the outlier flag set on rows 4..=7.
    fn rows() -> ScoredRows {
        let predicted: Vec<bool> = (0..10).map(|row| (4..=7).contains(&row)).collect();
        ScoredRows {
            times_ms: (0..10).map(|row| 20_000 + row * 10_000).collect(),
            anomaly: (0..10).map(|row| (3..=6).contains(&row)).collect(),
            changepoint: (0..10).map(|row| row == 3 || row == 7).collect(),
            predicted_changepoint: switching_edges(&predicted),
            predicted,
        }
    }

    #[test]
    fn edges_mark_switches() {
        let flags = [true, true, false, false, true, false];
        assert_eq!(
            switching_edges(&flags),
            [true, false, true, false, true, true]
        );
        assert!(switching_edges(&[]).is_empty());
    }

    #[test]
    fn ramp_runs_from_tp_to_fp() {
        assert!((ramp_reward(0, 0, 60_000, &STANDARD) - 1.0).abs() < 1e-12);
        assert!((ramp_reward(60_000, 0, 60_000, &STANDARD) + 0.11).abs() < 1e-12);
        // Halfway along, the ramp sits halfway between the two weights, up to the grid step.
        let middle = ramp_reward(30_000, 0, 60_000, &STANDARD);
        assert!((middle - 0.445).abs() < 0.01, "{middle}");
        // An empty window pays the full reward.
        assert!((ramp_reward(5, 5, 5, &STANDARD) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn changepoints_tally_by_hand() {
        let tally = tally_changepoints(&rows(), 60.0);
        // Windows: [50 s, 110 s] and, cut where the first ends, [110 s, 150 s]. Detections at
        // 60 s and 100 s both fall in the first; the second window is missed.
        assert_eq!(tally.changepoints, 2);
        assert_eq!(tally.missed, 1);
        assert_eq!(tally.false_alarms, 0);
        assert_eq!(tally.delays_secs, [10.0]);
        // The grid step for 10 s of 60 s is 166 of 999.
        let x = -FRAC_PI_2 + 166.0 * std::f64::consts::PI / 999.0;
        let reward = 0.555 * (-x.tanh() / FRAC_PI_2.tanh()) + 0.555 - 0.11;
        assert!((tally.raw[0] - (reward - 1.0)).abs() < 1e-12);
        let score = normalise(tally.raw[0], 2, &STANDARD).unwrap();
        // The same file scored by an independent implementation of SKAB's rules.
        assert!((score - 47.945_197_122_767_61).abs() < 1e-9, "{score}");
    }

    #[test]
    fn detection_outside_windows_is_false_alarm() {
        let mut scored = rows();
        scored.predicted_changepoint = vec![false; 10];
        scored.predicted_changepoint[0] = true;
        let tally = tally_changepoints(&scored, 60.0);
        assert_eq!(tally.missed, 2);
        assert_eq!(tally.false_alarms, 1);
        assert!((tally.raw[0] - (-2.11)).abs() < 1e-12);
        assert!((tally.raw[1] - (-2.22)).abs() < 1e-12);
        assert!((tally.raw[2] - (-4.11)).abs() < 1e-12);
    }

    #[test]
    fn no_changepoints_scores_none() {
        assert_eq!(normalise(0.0, 0, &STANDARD), None);
    }
}
