//! Figures of a scored NAB corpus: the normalised score per profile, the best threshold,
//! point-wise and event figures, and a line per series.

use serde::Serialize;

use super::{best_threshold, tally_series, NabCorpus, NabSeries, Profile, STANDARD};

/// Results of one profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileScore {
    pub profile: &'static str,
    pub raw: f64,
    /// Normalised score at the fixed detections; `None` when the corpus has no window.
    pub score: Option<f64>,
    pub null_raw: f64,
    pub perfect_raw: f64,
    /// With `--optimize`: the best single threshold on `anomaly_score`, its raw and normalised
    /// score. The threshold is infinite, written as `"inf"` in JSON, when never firing scores
    /// best.
    #[serde(serialize_with = "serialize_threshold")]
    pub best_threshold: Option<f64>,
    pub raw_best: Option<f64>,
    pub score_best: Option<f64>,
}

/// Event figures at the fixed detections, standard profile.
#[derive(Debug, Clone, Serialize)]
pub struct EventFigures {
    pub windows_detected: u64,
    pub windows_scorable: u64,
    pub false_alarm_rows: u64,
    pub false_alarm_runs: u64,
    pub event_precision: Option<f64>,
    pub event_recall: Option<f64>,
    pub event_f1: Option<f64>,
    /// Mean share of a detected window elapsed at its first detection (0 = its first row).
    pub mean_share_elapsed: Option<f64>,
}

/// Point-wise figures: a row inside a window is a positive.
#[derive(Debug, Clone, Serialize)]
pub struct PointFigures {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    pub f1: Option<f64>,
    pub far_pct: Option<f64>,
    pub mar_pct: Option<f64>,
}

/// One series at the fixed detections, standard profile.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesScore {
    pub series: String,
    pub rows: usize,
    pub raw: f64,
    /// The series scored alone and normalised; `None` when it has no window.
    pub score: Option<f64>,
    pub windows_detected: u64,
    pub windows_scorable: u64,
    pub false_alarm_rows: u64,
    pub false_alarm_runs: u64,
}

/// Everything `caretaker evaluate nab` reports.
#[derive(Debug, Clone, Serialize)]
pub struct NabReport {
    pub series: usize,
    pub windows: usize,
    pub windows_scorable: usize,
    pub rows_scored: usize,
    pub detection: String,
    pub profiles: Vec<ProfileScore>,
    pub pointwise: PointFigures,
    pub events: EventFigures,
    pub per_series: Vec<SeriesScore>,
    pub warnings: Vec<String>,
}

impl NabReport {
    pub fn profile(&self, name: &str) -> Option<&ProfileScore> {
        self.profiles.iter().find(|entry| entry.profile == name)
    }
}

/// Scores `corpus` under `profiles`, and with `optimize` also at each profile's best threshold.
pub fn evaluate(corpus: &NabCorpus, profiles: &[Profile], optimize: bool) -> NabReport {
    let scorable = corpus.scorable_windows();
    let mut scores = Vec::new();
    for profile in profiles {
        let tally = corpus.tally(profile);
        let mut entry = ProfileScore {
            profile: profile.name,
            raw: tally.raw,
            score: corpus.normalise(tally.raw, profile),
            null_raw: -profile.false_negative * scorable as f64,
            perfect_raw: profile.true_positive * corpus.declared_windows as f64,
            best_threshold: None,
            raw_best: None,
            score_best: None,
        };
        if optimize {
            let (threshold, raw) = best_threshold(&corpus.series, profile);
            entry.best_threshold = Some(threshold);
            entry.raw_best = Some(raw);
            entry.score_best = corpus.normalise(raw, profile);
        }
        scores.push(entry);
    }

    let total = corpus.tally(&STANDARD);
    let (f1, far_pct, mar_pct) = pointwise_rates(total.tp, total.fp, total.fn_, total.tn);
    let precision = ratio(
        total.windows_detected,
        total.windows_detected + total.false_alarm_runs,
    );
    let recall = ratio(total.windows_detected, total.windows_scorable);
    let event_f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let per_series = corpus.series.iter().map(series_score).collect();
    NabReport {
        series: corpus.series.len(),
        windows: corpus.declared_windows,
        windows_scorable: scorable,
        rows_scored: corpus
            .series
            .iter()
            .map(|series| series.rows - series.probation)
            .sum(),
        detection: corpus.rule.describe(),
        profiles: scores,
        pointwise: PointFigures {
            tp: total.tp,
            fp: total.fp,
            fn_: total.fn_,
            tn: total.tn,
            f1,
            far_pct,
            mar_pct,
        },
        events: EventFigures {
            windows_detected: total.windows_detected,
            windows_scorable: total.windows_scorable,
            false_alarm_rows: total.false_alarm_rows,
            false_alarm_runs: total.false_alarm_runs,
            event_precision: precision,
            event_recall: recall,
            event_f1,
            mean_share_elapsed: (total.windows_detected > 0)
                .then(|| total.elapsed_share_sum / total.windows_detected as f64),
        },
        per_series,
        warnings: corpus.warnings.clone(),
    }
}

fn series_score(series: &NabSeries) -> SeriesScore {
    let tally = tally_series(series, &series.detections, &STANDARD);
    let null = -STANDARD.false_negative * series.scorable_windows() as f64;
    let perfect = STANDARD.true_positive * series.declared_windows as f64;
    SeriesScore {
        series: series.name.clone(),
        rows: series.rows,
        raw: tally.raw,
        score: (perfect != null).then(|| 100.0 * (tally.raw - null) / (perfect - null)),
        windows_detected: tally.windows_detected,
        windows_scorable: tally.windows_scorable,
        false_alarm_rows: tally.false_alarm_rows,
        false_alarm_runs: tally.false_alarm_runs,
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Point-wise F1, false-alarm rate and missed-alarm rate in percent, as SKAB defines them.
pub fn pointwise_rates(
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let f1 = (tp + fp + fn_ > 0).then(|| tp as f64 / (tp as f64 + 0.5 * (fp + fn_) as f64));
    let far = ratio(fp, fp + tn).map(|rate| 100.0 * rate);
    let mar = ratio(fn_, fn_ + tp).map(|rate| 100.0 * rate);
    (f1, far, mar)
}

fn serialize_threshold<S: serde::Serializer>(
    threshold: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match threshold {
        Some(value) if value.is_infinite() => serializer.serialize_str("inf"),
        Some(value) => serializer.serialize_f64(*value),
        None => serializer.serialize_none(),
    }
}
