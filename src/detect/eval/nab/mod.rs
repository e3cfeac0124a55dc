//! NAB scoring (Numenta Anomaly Benchmark v1.1 rules).
//!
//! Each labelled window is one anomaly. The earliest detection inside a window earns a reward
//! that falls along a scaled sigmoid from 1 at the window's first row to almost 0 at its last.
//! A window without a detection costs the profile's false-negative weight. Every detection
//! outside the windows costs the false-positive weight, scaled down when it comes shortly after
//! a window ends. The first 15% of each series (at most 750 rows) is a learning period and is
//! not scored. The raw corpus score is normalised so that a detector that never fires scores 0
//! and one that fires on the first row of every window scores 100.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;

use super::outputs::{format_ms, DetectionRule};

mod load;
mod report;

pub use report::{
    evaluate, pointwise_rates, EventFigures, NabReport, PointFigures, ProfileScore, SeriesScore,
};

/// Share of a series, and cap in rows, that NAB leaves to the detector to learn from.
const PROBATION_SHARE: f64 = 0.15;
const PROBATION_MAX_ROWS: usize = 750;
/// Steepness of the reward and penalty sigmoids.
const SIGMOID_SCALE: f64 = 2.5;
/// A false alarm more than this many window widths after a window costs the full weight.
const PENALTY_REACH_WIDTHS: f64 = 3.0;

/// Weights of one NAB application profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub true_positive: f64,
    pub false_positive: f64,
    pub false_negative: f64,
}

pub const STANDARD: Profile = Profile {
    name: "standard",
    true_positive: 1.0,
    false_positive: 0.11,
    false_negative: 1.0,
};
pub const LOW_FP: Profile = Profile {
    name: "reward_low_FP_rate",
    true_positive: 1.0,
    false_positive: 0.22,
    false_negative: 1.0,
};
pub const LOW_FN: Profile = Profile {
    name: "reward_low_FN_rate",
    true_positive: 1.0,
    false_positive: 0.11,
    false_negative: 2.0,
};
pub const PROFILES: [Profile; 3] = [STANDARD, LOW_FP, LOW_FN];

/// Rows at the start of a series of `rows` rows that are never scored.
pub fn probation_rows(rows: usize) -> usize {
    ((PROBATION_SHARE * rows as f64).floor() as usize).min(PROBATION_MAX_ROWS)
}

/// One series ready for scoring: its detections, and the weight of a detection on each row.
#[derive(Debug, Clone)]
pub struct NabSeries {
    pub name: String,
    pub source: String,
    pub rows: usize,
    pub probation: usize,
    /// Row spans `(first, last)` of the windows that matched rows, in order.
    pub windows: Vec<(usize, usize)>,
    /// Windows listed for this series, including those that matched no row.
    pub declared_windows: usize,
    /// `anomaly_score` of each row, 0 where the cell was not a number.
    pub scores: Vec<f64>,
    /// Detections at the fixed rule.
    pub detections: Vec<bool>,
    /// Index into `windows` of the window each row is in.
    window_of: Vec<Option<usize>>,
    /// In a window: the reward share in (0, 1]. Outside: the false-alarm factor in [-1, 0].
    weight: Vec<f64>,
}

impl NabSeries {
    /// Prepares a series from its row times, scores and detections and its windows given as
    /// `(start, end)` times in Unix milliseconds. Windows that match no row are left out with
    /// a warning.
    pub fn new(
        name: &str,
        source: &str,
        times_ms: &[i64],
        scores: Vec<f64>,
        detections: Vec<bool>,
        windows: &[(i64, i64)],
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<Self> {
        let rows = times_ms.len();
        let mut spans = Vec::new();
        for &(start, end) in windows {
            match locate_window(times_ms, start, end) {
                Some(span) => spans.push(span),
                None => warnings.push(format!(
                    "{name}: the window {} .. {} matches no row of {source}; it is left out",
                    format_ms(start),
                    format_ms(end)
                )),
            }
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if pair[1].0 <= pair[0].1 {
                bail!(
                    "{name}: two windows overlap (rows {}..{} and {}..{} of {source}); merge \
                     them in the windows file",
                    pair[0].0 + 2,
                    pair[0].1 + 2,
                    pair[1].0 + 2,
                    pair[1].1 + 2
                );
            }
        }
        let (window_of, weight) = row_weights(rows, &spans);
        Ok(NabSeries {
            name: name.to_string(),
            source: source.to_string(),
            rows,
            probation: probation_rows(rows),
            windows: spans,
            declared_windows: windows.len(),
            scores,
            detections,
            window_of,
            weight,
        })
    }

    /// Windows with at least one row after the learning period.
    pub fn scorable_windows(&self) -> usize {
        self.windows
            .iter()
            .filter(|&&(_, last)| last >= self.probation)
            .count()
    }
}

/// Finds the rows of a window: from the row whose time equals `start` (else the first at or
/// after it) to the row whose time equals `end` (else the last row up to it). The search runs
/// in file order because a few NAB series repeat timestamps.
fn locate_window(times: &[i64], start: i64, end: i64) -> Option<(usize, usize)> {
    let first = times
        .iter()
        .position(|&t| t == start)
        .or_else(|| times.iter().position(|&t| t >= start))?;
    let last = match times[first..].iter().position(|&t| t == end) {
        Some(offset) => first + offset,
        None => {
            let run = times[first..].iter().take_while(|&&t| t <= end).count();
            if run == 0 {
                return None;
            }
            first + run - 1
        }
    };
    Some((first, last))
}

/// Computes the window of each row and the weight a detection on it carries.
fn row_weights(rows: usize, windows: &[(usize, usize)]) -> (Vec<Option<usize>>, Vec<f64>) {
    let mut window_of = vec![None; rows];
    let mut weight = vec![-1.0; rows];
    let full = SIGMOID_SCALE.tanh();
    for (index, &(first, last)) in windows.iter().enumerate() {
        let width = (last - first + 1) as f64;
        for row in first..=last {
            window_of[row] = Some(index);
            weight[row] = (SIGMOID_SCALE * (last - row + 1) as f64 / width).tanh() / full;
        }
        // A false alarm soon after a window costs little, because it most likely belongs to
        // the same event. A one-row window gives no width to scale by.
        let next_start = windows.get(index + 1).map_or(rows, |next| next.0);
        if width > 1.0 {
            for (row, slot) in weight
                .iter_mut()
                .enumerate()
                .take(next_start)
                .skip(last + 1)
            {
                let distance = (row - last) as f64 / (width - 1.0);
                *slot = if distance > PENALTY_REACH_WIDTHS {
                    -1.0
                } else {
                    -(SIGMOID_SCALE * distance).tanh()
                };
            }
        }
    }
    (window_of, weight)
}

/// Counts of one scoring pass at one detection rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub raw: f64,
    /// Point-wise counts over scored rows; a row inside a window is a positive.
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    pub windows_detected: u64,
    pub windows_scorable: u64,
    pub false_alarm_rows: u64,
    /// Runs of consecutive false-alarm rows: roughly one needless ticket each.
    pub false_alarm_runs: u64,
    /// Sum, over detected windows, of the share of the window elapsed at its first detection.
    pub elapsed_share_sum: f64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.raw += other.raw;
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
        self.windows_detected += other.windows_detected;
        self.windows_scorable += other.windows_scorable;
        self.false_alarm_rows += other.false_alarm_rows;
        self.false_alarm_runs += other.false_alarm_runs;
        self.elapsed_share_sum += other.elapsed_share_sum;
    }
}

/// Scores one series with the given detections (one per row) under `profile`.
pub fn tally_series(series: &NabSeries, detections: &[bool], profile: &Profile) -> Tally {
    let mut tally = Tally::default();
    let mut best: Vec<Option<(f64, usize)>> = vec![None; series.windows.len()];
    let mut previous_false_alarm = None;
    let scored = detections.iter().enumerate().take(series.rows);
    for (row, &detected) in scored.skip(series.probation) {
        match series.window_of[row] {
            None if detected => {
                tally.raw += profile.false_positive * series.weight[row];
                tally.fp += 1;
                tally.false_alarm_rows += 1;
                if previous_false_alarm != Some(row.wrapping_sub(1)) {
                    tally.false_alarm_runs += 1;
                }
                previous_false_alarm = Some(row);
            }
            None => tally.tn += 1,
            Some(window) if detected => {
                tally.tp += 1;
                // The weight falls along the window, so the first detection is the best.
                if best[window].is_none() {
                    best[window] = Some((series.weight[row], row));
                }
            }
            Some(_) => tally.fn_ += 1,
        }
    }
    for (index, &(first, last)) in series.windows.iter().enumerate() {
        if last < series.probation {
            continue;
        }
        tally.windows_scorable += 1;
        match best[index] {
            Some((weight, row)) => {
                tally.windows_detected += 1;
                tally.raw += profile.true_positive * weight;
                tally.elapsed_share_sum += (row - first) as f64 / (last - first + 1) as f64;
            }
            None => tally.raw -= profile.false_negative,
        }
    }
    tally
}

/// Finds the single corpus-wide threshold on `anomaly_score` that maximises the raw score.
/// Returns the threshold (infinity when no detection at all scores best) and its raw score.
/// On a tie the higher threshold wins.
pub fn best_threshold(corpus: &[NabSeries], profile: &Profile) -> (f64, f64) {
    let mut candidates = Vec::new();
    let mut window_count = 0;
    for (series_index, series) in corpus.iter().enumerate() {
        window_count += series.scorable_windows();
        for row in series.probation..series.rows {
            candidates.push(Candidate {
                score: series.scores[row],
                window: series.window_of[row].map(|window| (series_index, window)),
                weight: series.weight[row],
            });
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));

    // Lower the threshold one distinct score at a time, adding the rows it lets through.
    let mut windows_part = -profile.false_negative * window_count as f64;
    let mut alarms_part = 0.0;
    let mut best_in_window: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut best = (f64::INFINITY, windows_part);
    let mut next = 0;
    while next < candidates.len() {
        let threshold = candidates[next].score;
        while next < candidates.len() && candidates[next].score == threshold {
            let Candidate { window, weight, .. } = candidates[next];
            match window {
                None => alarms_part += profile.false_positive * weight,
                Some(key) => match best_in_window.get(&key).copied() {
                    None => {
                        best_in_window.insert(key, weight);
                        windows_part += profile.true_positive * weight + profile.false_negative;
                    }
                    Some(old) if weight > old => {
                        best_in_window.insert(key, weight);
                        windows_part += profile.true_positive * (weight - old);
                    }
                    Some(_) => {}
                },
            }
            next += 1;
        }
        let raw = windows_part + alarms_part;
        if raw > best.1 {
            best = (threshold, raw);
        }
    }
    best
}

/// A scored row in the threshold sweep.
#[derive(Clone, Copy)]
struct Candidate {
    score: f64,
    /// The series and window the row is in.
    window: Option<(usize, usize)>,
    weight: f64,
}

/// A corpus of series with its windows, as listed in a windows file.
#[derive(Debug, Clone)]
pub struct NabCorpus {
    pub series: Vec<NabSeries>,
    pub declared_windows: usize,
    /// Rule that turned each row of a detector output into a detection or none.
    pub rule: DetectionRule,
    pub warnings: Vec<String>,
}

impl NabCorpus {
    pub fn scorable_windows(&self) -> usize {
        self.series.iter().map(NabSeries::scorable_windows).sum()
    }

    /// Scores the whole corpus at the fixed detections under `profile`.
    pub fn tally(&self, profile: &Profile) -> Tally {
        let mut total = Tally::default();
        for series in &self.series {
            total.add(&tally_series(series, &series.detections, profile));
        }
        total
    }

    /// Maps a raw score to the normalised one: 0 for a detector that never fires, 100 for one
    /// that fires on the first row of every window. `None` when the corpus has no window.
    pub fn normalise(&self, raw: f64, profile: &Profile) -> Option<f64> {
        let null = -profile.false_negative * self.scorable_windows() as f64;
        let perfect = profile.true_positive * self.declared_windows as f64;
        (perfect != null).then(|| 100.0 * (raw - null) / (perfect - null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP_MS: i64 = 300_000;

    fn times(rows: usize) -> Vec<i64> {
        (0..rows as i64)
            .map(|row| 1_577_836_800_000 + row * STEP_MS)
            .collect()
    }

    /// Builds a series of `rows` rows with one window over rows `first..=last`, or none, and a
    /// score of 1 on `fired` rows and 0 elsewhere.
    fn series(rows: usize, window: Option<(usize, usize)>, fired: &[usize]) -> NabSeries {
        let times = times(rows);
        let spans: Vec<(i64, i64)> = window
            .map(|(first, last)| (times[first], times[last]))
            .into_iter()
            .collect();
        let scores: Vec<f64> = (0..rows)
            .map(|row| if fired.contains(&row) { 1.0 } else { 0.0 })
            .collect();
        let detections = scores.iter().map(|&score| score >= 0.5).collect();
        let mut warnings = Vec::new();
        let series = NabSeries::new(
            "d/s.csv",
            "s.csv",
            &times,
            scores,
            detections,
            &spans,
            &mut warnings,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        series
    }

    fn corpus(series: Vec<NabSeries>) -> NabCorpus {
        NabCorpus {
            declared_windows: series.iter().map(|s| s.declared_windows).sum(),
            series,
            rule: DetectionRule::Threshold(0.5),
            warnings: Vec::new(),
        }
    }

    fn raw(series: &NabSeries, profile: &Profile) -> f64 {
        tally_series(series, &series.detections, profile).raw
    }

    fn close(found: f64, expected: f64) -> bool {
        (found - expected).abs() < 1e-12
    }

    #[test]
    fn probation_is_share_capped() {
        assert_eq!(probation_rows(20), 3);
        assert_eq!(probation_rows(2000), 300);
        assert_eq!(probation_rows(18_050), 750);
    }

    #[test]
    fn hit_at_left_edge_scores_one() {
        let s = series(2000, Some((1000, 1199)), &[1000]);
        assert!(close(raw(&s, &STANDARD), 1.0));
        let c = corpus(vec![s]);
        assert!(close(c.normalise(1.0, &STANDARD).unwrap(), 100.0));
    }

    #[test]
    fn miss_scores_minus_one() {
        let s = series(2000, Some((1000, 1199)), &[]);
        assert!(close(raw(&s, &STANDARD), -1.0));
        assert!(close(raw(&s, &LOW_FN), -2.0));
        let c = corpus(vec![s]);
        assert!(close(c.normalise(-1.0, &STANDARD).unwrap(), 0.0));
    }

    #[test]
    fn hit_at_right_edge_earns_little() {
        let s = series(2000, Some((1000, 1199)), &[1199]);
        let expected = (2.5f64 / 200.0).tanh() / 2.5f64.tanh();
        assert!(close(raw(&s, &STANDARD), expected));
    }

    #[test]
    fn later_hits_in_window_are_free() {
        let s = series(2000, Some((1000, 1199)), &[1000, 1100, 1199]);
        assert!(close(raw(&s, &STANDARD), 1.0));
        let tally = tally_series(&s, &s.detections, &STANDARD);
        assert_eq!(tally.tp, 3);
        assert_eq!(tally.fn_, 197);
    }

    #[test]
    fn false_positive_costs_its_weight() {
        // Before any window a false alarm costs the full weight: 0.11, or 0.22 for low FP.
        let s = series(2000, Some((1000, 1199)), &[500]);
        assert!(close(raw(&s, &STANDARD), -1.11));
        assert!(close(raw(&s, &LOW_FP), -1.22));
        // With one window, normalisation maps a raw span of 2 to 100 points: 0.11 is 5.5.
        let c = corpus(vec![s]);
        assert!(close(c.normalise(-1.11, &STANDARD).unwrap(), -5.5));
    }

    #[test]
    fn false_positive_after_window_is_cheap() {
        let just_after = series(2000, Some((1000, 1199)), &[1000, 1200]);
        let expected = 1.0 - 0.11 * (2.5f64 / 199.0).tanh();
        assert!(close(raw(&just_after, &STANDARD), expected));
        // Three widths after the window's end the discount is gone.
        let far = series(2000, Some((1000, 1199)), &[1000, 1900]);
        assert!(close(raw(&far, &STANDARD), 1.0 - 0.11));
    }

    #[test]
    fn probation_rows_are_ignored() {
        let s = series(2000, Some((1000, 1199)), &[100, 299]);
        assert!(close(raw(&s, &STANDARD), -1.0));
        let tally = tally_series(&s, &s.detections, &STANDARD);
        assert_eq!(tally.fp, 0);
        assert_eq!(tally.tn, 2000 - 300 - 200);
    }

    #[test]
    fn window_in_probation_not_scorable() {
        let s = series(2000, Some((100, 199)), &[]);
        assert_eq!(s.scorable_windows(), 0);
        assert!(close(raw(&s, &STANDARD), 0.0));
    }

    #[test]
    fn false_alarm_runs_are_counted() {
        let s = series(2000, None, &[400, 401, 402, 600, 1999]);
        let tally = tally_series(&s, &s.detections, &STANDARD);
        assert_eq!(tally.false_alarm_rows, 5);
        assert_eq!(tally.false_alarm_runs, 3);
        assert!(close(tally.raw, -0.55));
    }

    #[test]
    fn two_series_corpus_matches_hand_sum() {
        // 20 rows each, so rows 0..=2 are the learning period. Series a: window over rows
        // 8..=11, alarms at rows 5, 12, 13, 19 and a hit at row 9; series b: one alarm.
        let times = times(20);
        let a_scores = [1.0, 0.6, 0.9, 0.7, 0.55, 0.8];
        let a_rows = [1, 5, 9, 12, 13, 19];
        let mut scores = vec![0.1; 20];
        for (row, score) in a_rows.iter().zip(a_scores) {
            scores[*row] = score;
        }
        let mut warnings = Vec::new();
        let detections = scores.iter().map(|&s| s >= 0.5).collect();
        let window = [(times[8], times[11])];
        let a = NabSeries::new(
            "d/a.csv",
            "a",
            &times,
            scores,
            detections,
            &window,
            &mut warnings,
        )
        .unwrap();
        let mut scores = vec![0.1; 20];
        scores[10] = 0.95;
        let detections = scores.iter().map(|&s| s >= 0.5).collect();
        let b = NabSeries::new(
            "d/b.csv",
            "b",
            &times,
            scores,
            detections,
            &[],
            &mut warnings,
        )
        .unwrap();
        let c = corpus(vec![a, b]);

        let reward = (2.5f64 * 3.0 / 4.0).tanh() / 2.5f64.tanh();
        let after = |rows: f64| -0.11 * (2.5 * rows / 3.0).tanh();
        let expected = reward - 0.11 + after(1.0) + after(2.0) + after(8.0) - 0.11;
        let tally = c.tally(&STANDARD);
        assert!(close(tally.raw, expected));
        // The same corpus scored by an independent implementation of the NAB rules.
        assert!((tally.raw - 0.459_518_590_231_145_7).abs() < 1e-12);
        let score = c.normalise(tally.raw, &STANDARD).unwrap();
        assert!((score - 72.975_929_511_557_3).abs() < 1e-9);
        assert_eq!(tally.false_alarm_runs, 4);

        let (threshold, best) = best_threshold(&c.series, &STANDARD);
        assert_eq!(threshold, 0.9);
        assert!(close(best, reward - 0.11));
    }

    #[test]
    fn sweep_equals_brute_force() {
        let times = times(400);
        let scores: Vec<f64> = (0..400)
            .map(|row| ((row * 37) % 101) as f64 / 100.0)
            .collect();
        let detections = vec![false; 400];
        let windows = [(times[150], times[189]), (times[300], times[309])];
        let mut warnings = Vec::new();
        let s = NabSeries::new(
            "d/s.csv",
            "s",
            &times,
            scores.clone(),
            detections,
            &windows,
            &mut warnings,
        )
        .unwrap();
        for profile in &PROFILES {
            let (threshold, best) = best_threshold(std::slice::from_ref(&s), profile);
            let mut brute = (f64::INFINITY, -profile.false_negative * 2.0);
            let mut candidates = scores.clone();
            candidates.sort_by(|a, b| b.total_cmp(a));
            candidates.dedup();
            for candidate in candidates {
                let fired: Vec<bool> = scores.iter().map(|&score| score >= candidate).collect();
                let raw = tally_series(&s, &fired, profile).raw;
                if raw > brute.1 + 1e-12 {
                    brute = (candidate, raw);
                }
            }
            assert!(
                (best - brute.1).abs() < 1e-9,
                "{}: {best} vs {}",
                profile.name,
                brute.1
            );
            assert_eq!(threshold, brute.0, "{}", profile.name);
        }
    }

    #[test]
    fn window_located_between_rows() {
        // Repeated stamps resolve to the first matching row; bounds between rows snap inward.
        let t = [0, 10, 10, 20, 30, 40, 50];
        assert_eq!(locate_window(&t, 10, 30), Some((1, 4)));
        assert_eq!(locate_window(&t, 5, 35), Some((1, 4)));
        assert_eq!(locate_window(&t, 41, 45), None);
        assert_eq!(locate_window(&t, 60, 70), None);
    }

    #[test]
    fn unmatched_window_is_warned() {
        let times = times(100);
        let mut warnings = Vec::new();
        let late = times[99] + STEP_MS;
        let s = NabSeries::new(
            "d/s.csv",
            "s.csv",
            &times,
            vec![0.0; 100],
            vec![false; 100],
            &[(late, late + STEP_MS)],
            &mut warnings,
        )
        .unwrap();
        assert_eq!(s.windows.len(), 0);
        assert_eq!(s.declared_windows, 1);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("matches no row of s.csv"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn overlapping_windows_rejected() {
        let times = times(100);
        let mut warnings = Vec::new();
        let err = NabSeries::new(
            "d/s.csv",
            "s.csv",
            &times,
            vec![0.0; 100],
            vec![false; 100],
            &[(times[10], times[30]), (times[30], times[40])],
            &mut warnings,
        )
        .unwrap_err();
        assert!(err.to_string().contains("two windows overlap"), "{err}");
    }

    #[test]
    fn pointwise_rates_follow_skab() {
        let (f1, far, mar) = pointwise_rates(3, 1, 1, 5);
        assert_eq!(f1, Some(0.75));
        assert!((far.unwrap() - 100.0 / 6.0).abs() < 1e-12);
        assert_eq!(mar, Some(25.0));
        assert_eq!(pointwise_rates(0, 0, 0, 0), (None, None, None));
    }
}
