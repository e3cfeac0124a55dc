//! `caretaker evaluate`: scores `detect` outputs against labels, in the layouts of two public
//! benchmarks. `nab` takes a windows file (`{"<dir>/<file>.csv": [[start, end], ...]}`) and one
//! output per series; `skab` takes SKAB's labelled CSV files and one output per file.
//!
//! A row is a detection when the output's `is_anomaly` column is 1. In an output without that
//! column, or when `--threshold` is given, a row is a detection when `anomaly_score >=
//! threshold`.

pub mod nab;
pub mod outputs;
pub mod skab;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use self::nab::{NabCorpus, NabReport, Profile};
use self::outputs::DetectionRule;
use self::skab::{MissingRows, SkabOptions, SkabReport};

/// Threshold on `anomaly_score` for outputs without an `is_anomaly` column.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Arguments of `caretaker evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    #[command(subcommand)]
    pub benchmark: Benchmark,
}

#[derive(Debug, clap::Subcommand)]
pub enum Benchmark {
    /// Score outputs with NAB's window rules (Numenta Anomaly Benchmark v1.1).
    Nab(NabArgs),
    /// Score outputs with SKAB's point-wise and changepoint rules.
    Skab(SkabArgs),
}

#[derive(Debug, clap::Args)]
pub struct NabArgs {
    /// Labelled windows: {"<dir>/<file>.csv": [["START", "END"], ...]}, times inclusive.
    #[arg(long, value_name = "JSON")]
    pub windows: PathBuf,
    /// Folder with one detector output per series, at <dir>/<file>.csv.
    #[arg(long, value_name = "DIR")]
    pub results: PathBuf,
    /// Corpus folder (<dir>/<file>.csv); when given, each output must have the rows of its
    /// input, with the same timestamps.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Detect where anomaly_score >= T, ignoring the outputs' is_anomaly column. Without it the
    /// is_anomaly column decides, and outputs without one use 0.5.
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,
    /// Also find the single threshold on anomaly_score that scores best over the corpus.
    #[arg(long)]
    pub optimize: bool,
    /// Print a line per series (standard profile).
    #[arg(long)]
    pub per_file: bool,
    /// NAB application profile to score with.
    #[arg(long, value_enum, default_value = "all")]
    pub profile: ProfileChoice,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileChoice {
    /// A true positive 1, a false positive 0.11, a false negative 1.
    Standard,
    /// A false positive costs 0.22.
    #[value(name = "reward_low_FP_rate")]
    RewardLowFpRate,
    /// A false negative costs 2.
    #[value(name = "reward_low_FN_rate")]
    RewardLowFnRate,
    /// All three.
    All,
}

impl ProfileChoice {
    pub fn profiles(self) -> Vec<Profile> {
        match self {
            ProfileChoice::Standard => vec![nab::STANDARD],
            ProfileChoice::RewardLowFpRate => vec![nab::LOW_FP],
            ProfileChoice::RewardLowFnRate => vec![nab::LOW_FN],
            ProfileChoice::All => nab::PROFILES.to_vec(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SkabArgs {
    /// SKAB's data folder (valve1/, valve2/, other/ ...) with the labelled CSV files.
    #[arg(long, value_name = "DIR")]
    pub truth: PathBuf,
    /// Folder with one detector output per labelled file, at the same relative path.
    #[arg(long, value_name = "DIR")]
    pub results: PathBuf,
    /// Rows at the start of each file that are not scored (the detector learns from them).
    #[arg(long, value_name = "N", default_value_t = skab::DEFAULT_SKIP_ROWS)]
    pub skip_rows: usize,
    /// Detect where anomaly_score >= T, ignoring the outputs' is_anomaly column. Without it the
    /// is_anomaly column decides, and outputs without one use 0.5.
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,
    /// Treatment of a scored row without an output row: `zero` (no anomaly, no changepoint) or
    /// `skip` (not scored, as SKAB's own evaluation does).
    #[arg(long, value_enum, default_value = "zero")]
    pub missing: MissingRows,
    /// Width of the window after each true changepoint, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = skab::DEFAULT_WINDOW_SECS)]
    pub window_secs: f64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Returns the detection rule for an optional `--threshold`.
pub fn detection_rule(threshold: Option<f64>) -> DetectionRule {
    match threshold {
        Some(threshold) => DetectionRule::Threshold(threshold),
        None => DetectionRule::OwnFlag {
            fallback_threshold: DEFAULT_THRESHOLD,
        },
    }
}

pub fn main(args: EvaluateArgs) -> ExitCode {
    let outcome = match args.benchmark {
        Benchmark::Nab(args) => run_nab(&args),
        Benchmark::Skab(args) => run_skab(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run_nab(args: &NabArgs) -> anyhow::Result<()> {
    if let Some(threshold) = args.threshold {
        if !threshold.is_finite() {
            anyhow::bail!("--threshold {threshold} is not a finite number");
        }
    }
    let corpus = NabCorpus::load(
        &args.windows,
        &args.results,
        args.data.as_deref(),
        detection_rule(args.threshold),
    )?;
    let report = nab::evaluate(&corpus, &args.profile.profiles(), args.optimize);
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", format_nab(&report, args.per_file));
    }
    Ok(())
}

fn run_skab(args: &SkabArgs) -> anyhow::Result<()> {
    if !(args.window_secs.is_finite() && args.window_secs > 0.0) {
        anyhow::bail!(
            "--window-secs {} must be a positive number",
            args.window_secs
        );
    }
    let options = SkabOptions {
        skip_rows: args.skip_rows,
        rule: detection_rule(args.threshold),
        window_secs: args.window_secs,
        missing: args.missing,
    };
    let report = skab::evaluate(&args.truth, &args.results, &options)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", format_skab(&report));
    }
    Ok(())
}

/// Formats an optional figure with `decimals` places, or `n/a`.
pub fn figure(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.decimals$}"),
        Some(value) => format!("{value}"),
        None => "n/a".to_string(),
    }
}

/// Renders a NAB report as text.
pub fn format_nab(report: &NabReport, per_file: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "NAB: {} series, {} windows ({} with scored rows), {} rows scored",
        report.series, report.windows, report.windows_scorable, report.rows_scored
    );
    let _ = writeln!(out, "detection: {}", report.detection);
    let _ = writeln!(
        out,
        "{:<20} {:>10} {:>8} {:>12} {:>10} {:>8}",
        "profile", "raw", "score", "best thr", "raw@best", "best"
    );
    for entry in &report.profiles {
        let _ = write!(
            out,
            "{:<20} {:>10.3} {:>8}",
            entry.profile,
            entry.raw,
            figure(entry.score, 2)
        );
        if let (Some(threshold), Some(raw)) = (entry.best_threshold, entry.raw_best) {
            let _ = write!(
                out,
                " {:>12} {:>10.3} {:>8}",
                format!("{threshold:.6}"),
                raw,
                figure(entry.score_best, 2)
            );
        }
        out.push('\n');
    }
    let points = &report.pointwise;
    let _ = writeln!(
        out,
        "point-wise (a row in a window is a positive): TP={} FP={} FN={} TN={} F1={} FAR={}% \
         MAR={}%",
        points.tp,
        points.fp,
        points.fn_,
        points.tn,
        figure(points.f1, 3),
        figure(points.far_pct, 2),
        figure(points.mar_pct, 2)
    );
    let events = &report.events;
    let _ = writeln!(
        out,
        "events: windows detected {}/{}, false-alarm rows {} in {} runs, precision {} recall {} \
         F1 {}, mean share of a window elapsed at its first detection {}",
        events.windows_detected,
        events.windows_scorable,
        events.false_alarm_rows,
        events.false_alarm_runs,
        figure(events.event_precision, 3),
        figure(events.event_recall, 3),
        figure(events.event_f1, 3),
        figure(events.mean_share_elapsed, 2)
    );
    if per_file {
        let _ = writeln!(
            out,
            "{:<58} {:>9} {:>7} {:>7} {:>6} {:>5}",
            "series (standard profile)", "raw", "score", "windows", "alarms", "runs"
        );
        for series in &report.per_series {
            let _ = writeln!(
                out,
                "{:<58} {:>9.4} {:>7} {:>7} {:>6} {:>5}",
                series.series,
                series.raw,
                figure(series.score, 1),
                format!("{}/{}", series.windows_detected, series.windows_scorable),
                series.false_alarm_rows,
                series.false_alarm_runs
            );
        }
    }
    out
}

/// Renders a SKAB report as text.
pub fn format_skab(report: &SkabReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SKAB: {} files, rows from index {} on",
        report.files, report.skip_rows
    );
    let _ = writeln!(out, "detection: {}", report.detection);
    let _ = writeln!(
        out,
        "outliers (point-wise against `anomaly`): TP={} FP={} FN={} TN={} F1={} FAR={}% MAR={}%",
        report.tp,
        report.fp,
        report.fn_,
        report.tn,
        figure(report.f1, 3),
        figure(report.far_pct, 2),
        figure(report.mar_pct, 2)
    );
    let scores: Vec<String> = report
        .changepoint_scores
        .iter()
        .map(|(name, score)| format!("{name}={}", figure(*score, 2)))
        .collect();
    let _ = writeln!(
        out,
        "changepoints ({}): {}; true {}, missed {}, false alarms {}, mean delay {} s",
        report.changepoint_source,
        scores.join(" "),
        report.changepoints,
        report.missed_changepoints,
        report.false_alarms,
        figure(report.mean_delay_secs, 1)
    );
    let _ = writeln!(
        out,
        "{:<24} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7}",
        "file", "rows", "F1", "FAR %", "MAR %", "missed", "cp"
    );
    for file in &report.per_file {
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7}",
            file.file,
            file.rows_scored,
            figure(file.f1, 3),
            figure(file.far_pct, 1),
            figure(file.mar_pct, 1),
            format!("{}/{}", file.missed_changepoints, file.changepoints),
            figure(file.changepoint_score, 1)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// `rows` rows five minutes apart from 2020-01-01 00:00, as `timestamp,<column>` lines.
    fn rows_text(header: &str, rows: usize, cell: impl Fn(usize) -> String) -> String {
        let mut text = format!("{header}\n");
        for row in 0..rows {
            let minutes = row * 5;
            let _ = writeln!(
                text,
                "2020-01-01 {:02}:{:02}:00,{}",
                minutes / 60,
                minutes % 60,
                cell(row)
            );
        }
        text
    }

    fn nab_fixture(root: &Path) {
        write(
            root,
            "windows.json",
            r#"{"d/a.csv": [["2020-01-01 02:00:00.000000", "2020-01-01 02:15:00.000000"]]}"#,
        );
        write(
            root,
            "data/d/a.csv",
            &rows_text("timestamp,value", 40, |_| "1.0".into()),
        );
    }

    fn load(root: &Path, rule: DetectionRule) -> anyhow::Result<NabCorpus> {
        NabCorpus::load(
            &root.join("windows.json"),
            &root.join("results"),
            Some(&root.join("data")),
            rule,
        )
    }

    #[test]
    fn nab_own_flag_decides() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        // Row 24 (02:00) opens the window. The score is 0.9 on row 30, and the flag is set on
        // row 24.
        let output = rows_text(
            "timestamp,anomaly_score,is_anomaly,changepoint",
            40,
            |row| {
                let score = if row == 30 { "0.9" } else { "0.1" };
                let flag = u8::from(row == 24);
                format!("{score},{flag},0")
            },
        );
        write(dir.path(), "results/d/a.csv", &output);

        let own = load(dir.path(), detection_rule(None)).unwrap();
        let report = nab::evaluate(&own, &nab::PROFILES, true);
        let standard = report.profile("standard").unwrap();
        assert_eq!(standard.score, Some(100.0));
        // The sweep uses the scores: 0.9 comes after the window, so no threshold beats silence.
        assert_eq!(standard.best_threshold, Some(f64::INFINITY));
        assert_eq!(standard.score_best, Some(0.0));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["profiles"][0]["best_threshold"], "inf");

        let fixed = load(dir.path(), detection_rule(Some(0.5))).unwrap();
        let report = nab::evaluate(&fixed, &nab::PROFILES, false);
        assert_eq!(report.events.windows_detected, 0);
        assert_eq!(report.events.false_alarm_rows, 1);
    }

    #[test]
    fn nab_missing_output_named() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        fs::create_dir_all(dir.path().join("results")).unwrap();
        let err = load(dir.path(), detection_rule(None)).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("no detector output for the series d/a.csv"),
            "{message}"
        );
        assert!(message.contains("caretaker detect"), "{message}");
    }

    #[test]
    fn nab_nab_layout_found() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        let output = rows_text("timestamp,anomaly_score", 40, |_| "0".into());
        write(dir.path(), "results/d/numenta_a.csv", &output);
        let corpus = load(dir.path(), detection_rule(None)).unwrap();
        assert_eq!(corpus.series.len(), 1);
        assert!(corpus.series[0].source.ends_with("numenta_a.csv"));
    }

    #[test]
    fn nab_row_count_checked() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        write(
            dir.path(),
            "results/d/a.csv",
            &rows_text("timestamp,anomaly_score", 39, |_| "0".into()),
        );
        let message = format!("{:#}", load(dir.path(), detection_rule(None)).unwrap_err());
        assert!(message.contains("39 rows, but its input"), "{message}");
        assert!(message.contains("has 40"), "{message}");
    }

    #[test]
    fn nab_unknown_timestamp_named() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        let output = rows_text("timestamp,anomaly_score", 40, |_| "0".into())
            .replace("2020-01-01 00:10:00", "2020-01-01 00:11:00");
        write(dir.path(), "results/d/a.csv", &output);
        let message = format!("{:#}", load(dir.path(), detection_rule(None)).unwrap_err());
        assert!(
            message.contains("a.csv:4: unknown timestamp 2020-01-01 00:11:00"),
            "{message}"
        );
    }

    #[test]
    fn nab_windows_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        write(
            dir.path(),
            "windows.json",
            r#"{"d/a.csv": [["soon", "later"]]}"#,
        );
        let message = format!("{:#}", load(dir.path(), detection_rule(None)).unwrap_err());
        assert!(message.contains("invalid window time `soon`"), "{message}");
        write(dir.path(), "windows.json", "[1, 2]");
        let message = format!("{:#}", load(dir.path(), detection_rule(None)).unwrap_err());
        assert!(message.contains("invalid windows file"), "{message}");
    }

    /// Writes a SKAB-like run of 12 rows 5 s apart, with anomaly on rows 5..=8 and
    /// changepoints at rows 5 and 9, and a file of normal operation without labels.
    fn skab_fixture(root: &Path) {
        let mut text = "datetime;Current;anomaly;changepoint\n".to_string();
        for row in 0..12 {
            let anomaly = if (5..=8).contains(&row) { "1.0" } else { "0.0" };
            let changepoint = if row == 5 || row == 9 { "1.0" } else { "0.0" };
            let _ = writeln!(
                text,
                "2020-03-09 10:00:{:02};{}.5;{anomaly};{changepoint}",
                row * 5,
                row
            );
        }
        write(root, "truth/v/0.csv", &text);
        write(
            root,
            "truth/free/normal.csv",
            "datetime;Current\n2020-03-09 09:00:00;1.0\n",
        );
    }

    fn skab_output(rows: std::ops::Range<usize>, flagged: &[usize]) -> String {
        let mut text = "timestamp,anomaly_score\n".to_string();
        for row in rows {
            let score = u8::from(flagged.contains(&row));
            let _ = writeln!(text, "2020-03-09 10:00:{:02},{score}", row * 5);
        }
        text
    }

    fn skab_options(missing: MissingRows) -> SkabOptions {
        SkabOptions {
            skip_rows: 2,
            missing,
            ..SkabOptions::default()
        }
    }

    fn evaluate_skab(root: &Path, missing: MissingRows) -> anyhow::Result<SkabReport> {
        skab::evaluate(
            &root.join("truth"),
            &root.join("results"),
            &skab_options(missing),
        )
    }

    #[test]
    fn skab_scores_fixture() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        write(
            dir.path(),
            "results/v/0.csv",
            &skab_output(0..12, &[6, 7, 8, 9]),
        );
        let report = evaluate_skab(dir.path(), MissingRows::Zero).unwrap();
        // The file without an `anomaly` column is not scored.
        assert_eq!(report.files, 1);
        assert_eq!((report.tp, report.fp, report.fn_, report.tn), (3, 1, 1, 5));
        assert_eq!(report.f1, Some(0.75));
        assert_eq!(report.mar_pct, Some(25.0));
        assert_eq!(report.changepoints, 2);
        // The windows are [25 s, 85 s] and [85 s, 105 s]. The switching edges at 30 s and 50 s
        // both fall in the first.
        assert_eq!(report.missed_changepoints, 1);
        assert_eq!(report.false_alarms, 0);
        assert_eq!(report.mean_delay_secs, Some(5.0));
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn skab_changepoint_column_used() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        let mut text = "timestamp,anomaly_score,is_anomaly,changepoint\n".to_string();
        for row in 0..12 {
            let changepoint = u8::from(row == 5 || row == 9);
            let _ = writeln!(text, "2020-03-09 10:00:{:02},0,0,{changepoint}", row * 5);
        }
        write(dir.path(), "results/v/0.csv", &text);
        let report = evaluate_skab(dir.path(), MissingRows::Zero).unwrap();
        // The second window starts where the first ends (85 s), after the file's last row, so
        // even the true changepoints themselves find only the first window: raw 1 - 1 of a
        // range from -2 to 2.
        assert_eq!(report.missed_changepoints, 1);
        assert_eq!(report.false_alarms, 0);
        assert_eq!(report.mean_delay_secs, Some(0.0));
        assert_eq!(report.changepoint_score("Standard"), Some(50.0));
        assert_eq!(report.f1, Some(0.0));
    }

    #[test]
    fn skab_missing_rows_zero_or_skip() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        // Predictions for rows 4..12 only: rows 2 and 3 of the scored part have none.
        write(
            dir.path(),
            "results/v/0.csv",
            &skab_output(4..12, &[5, 6, 7, 8]),
        );
        let zero = evaluate_skab(dir.path(), MissingRows::Zero).unwrap();
        assert_eq!(zero.per_file[0].rows_scored, 10);
        assert_eq!(zero.tn, 6);
        assert_eq!(zero.warnings.len(), 1);
        assert!(
            zero.warnings[0].contains("2 scored row(s)"),
            "{}",
            zero.warnings[0]
        );
        let skip = evaluate_skab(dir.path(), MissingRows::Skip).unwrap();
        assert_eq!(skip.per_file[0].rows_scored, 8);
        assert_eq!(skip.tn, 4);
        assert_eq!(skip.f1, Some(1.0));
    }

    #[test]
    fn skab_missing_output_named() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        fs::create_dir_all(dir.path().join("results")).unwrap();
        let message = format!(
            "{:#}",
            evaluate_skab(dir.path(), MissingRows::Zero).unwrap_err()
        );
        assert!(message.contains("no detector output for"), "{message}");
        assert!(message.contains("v/0.csv"), "{message}");
        assert!(message.contains("--warmup-rows 2"), "{message}");
    }

    #[test]
    fn skab_unknown_timestamp_named() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        let text = skab_output(0..12, &[]).replace("10:00:15", "10:00:16");
        write(dir.path(), "results/v/0.csv", &text);
        let message = format!(
            "{:#}",
            evaluate_skab(dir.path(), MissingRows::Zero).unwrap_err()
        );
        assert!(
            message.contains("0.csv:5: unknown timestamp 2020-03-09 10:00:16"),
            "{message}"
        );
    }

    #[test]
    fn skab_extra_rows_rejected() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        write(dir.path(), "results/v/0.csv", &skab_output(0..13, &[]));
        let message = format!(
            "{:#}",
            evaluate_skab(dir.path(), MissingRows::Zero).unwrap_err()
        );
        assert!(message.contains("13 rows, but its input"), "{message}");
    }

    #[test]
    fn skab_repeated_timestamp_rejected() {
        let dir = tempfile::tempdir().unwrap();
        skab_fixture(dir.path());
        let text = skab_output(0..11, &[]) + "2020-03-09 10:00:00,0\n";
        write(dir.path(), "results/v/0.csv", &text);
        let message = format!(
            "{:#}",
            evaluate_skab(dir.path(), MissingRows::Zero).unwrap_err()
        );
        assert!(
            message.contains("0.csv:13: timestamp 2020-03-09 10:00:00 repeats line 2"),
            "{message}"
        );
    }

    #[test]
    fn skab_without_labels_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "truth/a.csv",
            "datetime;Current\n2020-03-09 09:00:00;1.0\n",
        );
        fs::create_dir_all(dir.path().join("results")).unwrap();
        let message = format!(
            "{:#}",
            evaluate_skab(dir.path(), MissingRows::Zero).unwrap_err()
        );
        assert!(message.contains("no labelled CSV file"), "{message}");
    }

    #[test]
    fn text_report_lists_profiles() {
        let dir = tempfile::tempdir().unwrap();
        nab_fixture(dir.path());
        let output = rows_text("timestamp,anomaly_score", 40, |row| {
            if row == 24 { "1" } else { "0" }.to_string()
        });
        write(dir.path(), "results/d/a.csv", &output);
        let corpus = load(dir.path(), detection_rule(None)).unwrap();
        let text = format_nab(&nab::evaluate(&corpus, &nab::PROFILES, true), true);
        assert!(text.contains("reward_low_FN_rate"), "{text}");
        assert!(text.contains("windows detected 1/1"), "{text}");
        assert!(text.contains("d/a.csv"), "{text}");
    }
}
