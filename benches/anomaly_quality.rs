//! Anomaly detection quality on the NAB and SKAB benchmark subsets.
//!
//! Every NAB series goes through `detect_series` with no warm-up rows and every labelled SKAB
//! run with 400 (the rows SKAB's leaderboard trains on), as `caretaker detect` would replay
//! them. The outputs are written under `target/bench/anomaly/{nab,skab}/` and scored with
//! `caretaker evaluate`'s code at the detectors' own `is_anomaly` flags. The benchmark then
//! checks that scorer against the reference scorer (`tools/anomaly_score.py` beside the
//! datasets folder) on the published outputs of other detectors and on its own outputs.
//!
//! Usage: `cargo bench --bench anomaly_quality [-- --output PATH]`. The datasets are read from
//! `CARETAKER_DATASETS` (default `../shared/datasets`, relative to the repository root).
//! Prints the tables and writes the figures as JSON to `target/bench/anomaly_quality.json`.
//! Without the `--bench` argument that `cargo bench` passes, as under `cargo test
//! --all-targets`, it runs nothing.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use caretaker::detect::eval::nab::{self, NabCorpus, NabReport};
use caretaker::detect::eval::outputs::DetectionRule;
use caretaker::detect::eval::skab::{self, MissingRows, SkabOptions, SkabReport};
use caretaker::detect::eval::{figure, format_nab, format_skab};
use caretaker::detect::replay::{detect_series, read_series, write_outputs};

const USAGE: &str = "\
Usage: cargo bench --bench anomaly_quality [-- OPTIONS]

Options:
  --output PATH   JSON output (default target/bench/anomaly_quality.json)
  --help          print this help

Environment:
  CARETAKER_DATASETS   datasets folder (default ../shared/datasets, relative to the
                       repository root); the reference scorer is tools/anomaly_score.py
                       beside it
";

/// Rows SKAB's leaderboard leaves for training at the start of each run.
const SKAB_WARMUP_ROWS: usize = 400;
/// Published NAB detector outputs used for the cross-check.
const NAB_REFERENCES: [&str; 3] = ["numenta", "contextOSE", "windowedGaussian"];
/// Published SKAB detector outputs used for the cross-check.
const SKAB_REFERENCES: [&str; 7] = [
    "Conv_AE",
    "Isolation_Forest",
    "LSTM_AE",
    "MSCRED",
    "MSET",
    "T2",
    "T2-q",
];
/// Largest difference between this scorer's and the reference scorer's figures, relative to
/// the figure (or absolute below 1), that still counts as the same. The two add the same terms
/// in a different order: on windowedGaussian's NAB outputs, with tens of thousands of false
/// alarms, the standard score differs in the 13th significant digit.
const TOLERANCE: f64 = 1e-6;

enum Invocation {
    Run { output: PathBuf },
    NotBench,
    List,
    Help,
}

fn parse_args(args: Vec<String>) -> anyhow::Result<Invocation> {
    let mut bench = false;
    let mut output = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => bench = true,
            "--list" => return Ok(Invocation::List),
            "--help" | "-h" => return Ok(Invocation::Help),
            "--output" => {
                let path = args
                    .next()
                    .ok_or_else(|| anyhow!("--output needs a value\n\n{USAGE}"))?;
                output = Some(PathBuf::from(path));
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if !bench {
        return Ok(Invocation::NotBench);
    }
    let output = output.unwrap_or_else(|| repo_root().join("target/bench/anomaly_quality.json"));
    Ok(Invocation::Run { output })
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn datasets_dir() -> PathBuf {
    let configured = std::env::var_os("CARETAKER_DATASETS")
        .map_or_else(|| "../shared/datasets".into(), PathBuf::from);
    if configured.is_absolute() {
        configured
    } else {
        repo_root().join(configured)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(args) {
        Ok(Invocation::Run { output }) => match run(&output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("anomaly_quality: {err:#}");
                ExitCode::FAILURE
            }
        },
        Ok(Invocation::NotBench) => {
            println!(
                "anomaly_quality: not run; start it with `cargo bench --bench anomaly_quality`"
            );
            ExitCode::SUCCESS
        }
        Ok(Invocation::List) => ExitCode::SUCCESS,
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("anomaly_quality: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(output: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let datasets = datasets_dir();
    let anomaly = datasets.join("anomaly");
    let nab_dir = anomaly.join("nab");
    let skab_dir = anomaly.join("skab");
    if !nab_dir.join("windows.json").is_file() {
        bail!(
            "{} not found; set CARETAKER_DATASETS to the datasets folder",
            nab_dir.join("windows.json").display()
        );
    }
    let out_root = repo_root().join("target/bench/anomaly");
    let nab_out = out_root.join("nab");
    let skab_out = out_root.join("skab");

    let detect_started = Instant::now();
    let nab_files = replay_nab(&nab_dir, &nab_out)?;
    let skab_files = replay_skab(&skab_dir.join("data"), &skab_out)?;
    let detect_secs = detect_started.elapsed().as_secs_f64();
    println!(
        "replayed {nab_files} NAB series and {skab_files} SKAB runs in {detect_secs:.2} s; \
         outputs in {}",
        out_root.display()
    );

    let own_rule = DetectionRule::OwnFlag {
        fallback_threshold: 0.5,
    };
    let corpus = NabCorpus::load(
        &nab_dir.join("windows.json"),
        &nab_out,
        Some(&nab_dir.join("data")),
        own_rule,
    )?;
    let nab_report = nab::evaluate(&corpus, &nab::PROFILES, true);
    let skab_options = SkabOptions::default();
    let skab_report = skab::evaluate(&skab_dir.join("data"), &skab_out, &skab_options)?;

    let references = score_nab_references(&nab_dir)?;
    println!("\n== NAB, this detector at its own threshold ==");
    print!("{}", format_nab(&nab_report, false));
    print_nab_series(&nab_report, &references);
    println!("\n== SKAB, this detector at its own threshold ==");
    print!("{}", format_skab(&skab_report));

    println!("\n== Cross-check against the reference scorer ==");
    let crosscheck_started = Instant::now();
    let crosscheck = cross_check(&datasets, &nab_dir, &skab_dir, &nab_out, &skab_out)?;
    let crosscheck_secs = crosscheck_started.elapsed().as_secs_f64();

    let wall_secs = started.elapsed().as_secs_f64();
    println!(
        "\nwall time {wall_secs:.2} s (detection {detect_secs:.2} s, cross-check \
         {crosscheck_secs:.2} s)"
    );

    let mut figures = BTreeMap::new();
    add_nab_figures(&mut figures, &nab_report);
    add_skab_figures(&mut figures, &skab_report);
    if let Some(check) = &crosscheck {
        figures.insert(
            "anomaly.crosscheck_mismatches".into(),
            check.mismatches as f64,
        );
        figures.insert("anomaly.crosscheck_max_rel_diff".into(), check.max_rel_diff);
    }
    figures.insert("anomaly.wall_secs".into(), wall_secs);
    figures.insert("anomaly.detect_secs".into(), detect_secs);
    figures.insert("anomaly.crosscheck_secs".into(), crosscheck_secs);

    let report = json!({
        "benchmark": "anomaly_quality",
        "datasets": datasets.display().to_string(),
        "figures": figures,
        "nab": nab_report,
        "skab": skab_report,
        "nab_references": references,
        "crosscheck": crosscheck.as_ref().map(|check| &check.rows),
        "wall_secs": wall_secs,
    });
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    fs::write(output, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("figures written to {}", output.display());
    if let Some(check) = &crosscheck {
        if check.mismatches > 0 {
            bail!(
                "{} figure(s) differ from the reference scorer by more than {TOLERANCE} (relative)",
                check.mismatches
            );
        }
    }
    Ok(())
}

/// Replays every series named in NAB's windows file; returns how many.
fn replay_nab(nab_dir: &Path, out_dir: &Path) -> anyhow::Result<usize> {
    let windows_path = nab_dir.join("windows.json");
    let text = fs::read_to_string(&windows_path)
        .with_context(|| format!("cannot read {}", windows_path.display()))?;
    let windows: BTreeMap<String, Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid JSON", windows_path.display()))?;
    for name in windows.keys() {
        replay(&nab_dir.join("data").join(name), &out_dir.join(name), 0)?;
    }
    Ok(windows.len())
}

/// Replays every labelled SKAB run (a CSV file with an `anomaly` column); returns how many.
fn replay_skab(data_dir: &Path, out_dir: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for folder in sorted_entries(data_dir)? {
        if !folder.is_dir() {
            continue;
        }
        for file in sorted_entries(&folder)? {
            if file.extension().is_none_or(|ext| ext != "csv") || !has_label_column(&file)? {
                continue;
            }
            let relative = file.strip_prefix(data_dir).unwrap_or(&file);
            replay(&file, &out_dir.join(relative), SKAB_WARMUP_ROWS)?;
            count += 1;
        }
    }
    Ok(count)
}

fn sorted_entries(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(folder)
        .with_context(|| format!("cannot list the folder {}", folder.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list the folder {}", folder.display()))?;
    entries.sort();
    Ok(entries)
}

fn has_label_column(path: &Path) -> anyhow::Result<bool> {
    let mut header = String::new();
    BufReader::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
        .read_line(&mut header)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(header
        .trim_end()
        .split([';', ','])
        .any(|column| column.trim() == "anomaly"))
}

fn replay(input: &Path, output: &Path, warmup_rows: usize) -> anyhow::Result<()> {
    let series = read_series(input)?;
    let outputs = detect_series(&series, warmup_rows, None)
        .with_context(|| format!("detection failed on {}", input.display()))?;
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    let file =
        File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    write_outputs(BufWriter::new(file), &series, &outputs)
        .with_context(|| format!("cannot write {}", output.display()))
}

/// Scores the published NAB outputs at each detector's best corpus-wide threshold for the
/// standard profile, the way NAB's scoreboard ranks detectors.
fn score_nab_references(nab_dir: &Path) -> anyhow::Result<Vec<Reference>> {
    let mut references = Vec::new();
    for name in NAB_REFERENCES {
        let results = nab_dir.join("reference_outputs").join(name);
        let windows = nab_dir.join("windows.json");
        let corpus = NabCorpus::load(&windows, &results, None, DetectionRule::Threshold(0.5))?;
        let (threshold, _) = nab::best_threshold(&corpus.series, &nab::STANDARD);
        let at_best = NabCorpus::load(
            &windows,
            &results,
            None,
            DetectionRule::Threshold(threshold),
        )?;
        references.push(Reference {
            name: name.to_string(),
            threshold,
            report: nab::evaluate(&at_best, &nab::PROFILES, false),
        });
    }
    Ok(references)
}

/// A published NAB detector scored at its best standard-profile threshold.
#[derive(serde::Serialize)]
struct Reference {
    name: String,
    threshold: f64,
    report: NabReport,
}

/// Formats a per-series score, or the raw score of a series without windows.
fn series_figure(score: Option<f64>, raw: f64) -> String {
    match score {
        Some(score) => format!("{score:.1}"),
        None => format!("raw {raw:.2}"),
    }
}

fn print_nab_series(report: &NabReport, references: &[Reference]) {
    println!(
        "per series, standard profile, each series normalised alone; published detectors at \
         their best corpus-wide threshold"
    );
    print!(
        "{:<56} {:>6} {:>10} {:>7} {:>6} {:>5}",
        "series", "rows", "score", "windows", "alarms", "runs"
    );
    for reference in references {
        print!(" {:>16}", reference.name);
    }
    println!();
    for (index, series) in report.per_series.iter().enumerate() {
        print!(
            "{:<56} {:>6} {:>10} {:>7} {:>6} {:>5}",
            series.series,
            series.rows,
            series_figure(series.score, series.raw),
            format!("{}/{}", series.windows_detected, series.windows_scorable),
            series.false_alarm_rows,
            series.false_alarm_runs
        );
        for reference in references {
            let other = &reference.report.per_series[index];
            print!(" {:>16}", series_figure(other.score, other.raw));
        }
        println!();
    }
    print!(
        "{:<56} {:>6} {:>10}",
        "corpus",
        "",
        figure(report.profile("standard").and_then(|entry| entry.score), 1)
    );
    print!(" {:>7} {:>6} {:>5}", "", "", "");
    for reference in references {
        let score = reference
            .report
            .profile("standard")
            .and_then(|entry| entry.score);
        print!(
            " {:>16}",
            format!("{} @{:.3}", figure(score, 1), reference.threshold)
        );
    }
    println!();
}

fn add_nab_figures(figures: &mut BTreeMap<String, f64>, report: &NabReport) {
    let mut put = |name: &str, value: Option<f64>| {
        if let Some(value) = value.filter(|value| value.is_finite()) {
            figures.insert(name.to_string(), value);
        }
    };
    let standard = report.profile("standard");
    put("nab.standard", standard.and_then(|entry| entry.score));
    put(
        "nab.standard_best",
        standard.and_then(|entry| entry.score_best),
    );
    put(
        "nab.best_threshold",
        standard.and_then(|entry| entry.best_threshold),
    );
    put(
        "nab.low_fp",
        report
            .profile("reward_low_FP_rate")
            .and_then(|entry| entry.score),
    );
    put(
        "nab.low_fn",
        report
            .profile("reward_low_FN_rate")
            .and_then(|entry| entry.score),
    );
    put(
        "nab.windows_detected",
        Some(report.events.windows_detected as f64),
    );
    put("nab.windows", Some(report.events.windows_scorable as f64));
    put(
        "nab.false_alarm_runs",
        Some(report.events.false_alarm_runs as f64),
    );
}

fn add_skab_figures(figures: &mut BTreeMap<String, f64>, report: &SkabReport) {
    let mut put = |name: &str, value: Option<f64>| {
        if let Some(value) = value.filter(|value| value.is_finite()) {
            figures.insert(name.to_string(), value);
        }
    };
    put("skab.f1", report.f1);
    put("skab.far_pct", report.far_pct);
    put("skab.mar_pct", report.mar_pct);
    put("skab.changepoint", report.changepoint_score("Standard"));
    put("skab.changepoint_low_fp", report.changepoint_score("LowFP"));
    put("skab.changepoint_low_fn", report.changepoint_score("LowFN"));
    put(
        "skab.missed_changepoints",
        Some(report.missed_changepoints as f64),
    );
    put("skab.false_alarms", Some(report.false_alarms as f64));
}

/// Results of comparing this scorer with the reference scorer.
struct CrossCheck {
    rows: Vec<Value>,
    mismatches: usize,
    max_rel_diff: f64,
}

impl CrossCheck {
    /// Compares one figure; `None` on both sides (an undefined figure) counts as equal.
    fn compare(&mut self, case: &str, figure: &str, ours: Option<f64>, theirs: Option<f64>) {
        let difference = match (ours, theirs) {
            (Some(a), Some(b)) if a.is_infinite() || b.is_infinite() => {
                Some(if a == b { 0.0 } else { f64::INFINITY })
            }
            (Some(a), Some(b)) => Some((a - b).abs() / b.abs().max(1.0)),
            (None, None) => Some(0.0),
            _ => None,
        };
        let same = difference.is_some_and(|difference| difference <= TOLERANCE);
        if let Some(difference) = difference.filter(|difference| difference.is_finite()) {
            self.max_rel_diff = self.max_rel_diff.max(difference);
        }
        if !same {
            self.mismatches += 1;
            println!(
                "MISMATCH {case} {figure}: ours {} reference {}",
                figure_text(ours),
                figure_text(theirs)
            );
        }
        self.rows.push(json!({
            "case": case, "figure": figure, "ours": ours, "reference": theirs, "same": same,
        }));
    }
}

fn figure_text(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_string(), |value| format!("{value:.9}"))
}

/// Runs the reference scorer on the published outputs and on this benchmark's outputs, and
/// compares its figures with this scorer's. Returns `None` when the reference scorer or
/// `python3` is not available.
fn cross_check(
    datasets: &Path,
    nab_dir: &Path,
    skab_dir: &Path,
    nab_out: &Path,
    skab_out: &Path,
) -> anyhow::Result<Option<CrossCheck>> {
    let scorer = datasets.join("../tools/anomaly_score.py");
    if !scorer.is_file() {
        println!(
            "cross-check skipped: the reference scorer {} was not found",
            scorer.display()
        );
        return Ok(None);
    }
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let mut check = CrossCheck {
        rows: Vec::new(),
        mismatches: 0,
        max_rel_diff: 0.0,
    };
    let windows = nab_dir.join("windows.json");

    // NAB: published outputs, and this detector's outputs scored at anomaly_score >= 0.5 (the
    // reference scorer has no notion of is_anomaly).
    let mut nab_cases: Vec<(String, PathBuf)> = NAB_REFERENCES
        .iter()
        .map(|name| {
            (
                name.to_string(),
                nab_dir.join("reference_outputs").join(name),
            )
        })
        .collect();
    nab_cases.push(("caretaker".to_string(), nab_out.to_path_buf()));
    for (name, results) in &nab_cases {
        let json_path = scratch.path().join(format!("nab-{name}.json"));
        let ran = run_scorer(
            &scorer,
            &[
                "nab".as_ref(),
                "--windows".as_ref(),
                windows.as_os_str(),
                "--results".as_ref(),
                results.as_os_str(),
                "--optimize".as_ref(),
                "--json".as_ref(),
                json_path.as_os_str(),
            ],
        )?;
        if !ran {
            return Ok(None);
        }
        let theirs = read_lenient_json(&json_path)?;
        let corpus = NabCorpus::load(&windows, results, None, DetectionRule::Threshold(0.5))?;
        let ours = nab::evaluate(&corpus, &nab::PROFILES, true);
        compare_nab(&mut check, &format!("nab/{name}"), &ours, &theirs);
    }

    // SKAB: published outputs (with rows lacking a prediction counted as 0, and for MSCRED also
    // dropped), and this detector's outputs at anomaly_score >= 0.5.
    let truth = skab_dir.join("data");
    let mut skab_cases: Vec<(String, PathBuf, MissingRows)> = SKAB_REFERENCES
        .iter()
        .map(|name| {
            let path = skab_dir.join("reference_outputs").join(name);
            (name.to_string(), path, MissingRows::Zero)
        })
        .collect();
    skab_cases.push((
        "MSCRED --missing skip".to_string(),
        skab_dir.join("reference_outputs/MSCRED"),
        MissingRows::Skip,
    ));
    skab_cases.push((
        "caretaker".to_string(),
        skab_out.to_path_buf(),
        MissingRows::Zero,
    ));
    for (index, (name, results, missing)) in skab_cases.iter().enumerate() {
        let json_path = scratch.path().join(format!("skab-{index}.json"));
        let missing_arg = match missing {
            MissingRows::Zero => "zero",
            MissingRows::Skip => "skip",
        };
        let ran = run_scorer(
            &scorer,
            &[
                "skab".as_ref(),
                "--truth".as_ref(),
                truth.as_os_str(),
                "--results".as_ref(),
                results.as_os_str(),
                "--missing".as_ref(),
                missing_arg.as_ref(),
                "--json".as_ref(),
                json_path.as_os_str(),
            ],
        )?;
        if !ran {
            return Ok(None);
        }
        let theirs = read_lenient_json(&json_path)?;
        let options = SkabOptions {
            rule: DetectionRule::Threshold(0.5),
            missing: *missing,
            ..SkabOptions::default()
        };
        let ours = skab::evaluate(&truth, results, &options)?;
        compare_skab(&mut check, &format!("skab/{name}"), &ours, &theirs);
    }

    println!(
        "{} figures compared over {} NAB and {} SKAB cases: {} mismatch(es), largest relative \
         difference {:.3e}",
        check.rows.len(),
        nab_cases.len(),
        skab_cases.len(),
        check.mismatches,
        check.max_rel_diff
    );
    print_reference_summary(&check);
    Ok(Some(check))
}

/// Prints the headline figures of each case as both scorers computed them.
fn print_reference_summary(check: &CrossCheck) {
    let headline = [
        "standard.score",
        "standard.score_best",
        "reward_low_FP_rate.score",
        "reward_low_FN_rate.score",
        "f1",
        "far_pct",
        "mar_pct",
        "nab.Standard",
    ];
    let mut current = String::new();
    for row in &check.rows {
        let case = row["case"].as_str().unwrap_or_default();
        let name = row["figure"].as_str().unwrap_or_default();
        if !headline.contains(&name) {
            continue;
        }
        if case != current {
            if !current.is_empty() {
                println!();
            }
            print!("  {case:<28}");
            current = case.to_string();
        }
        let ours = row["ours"].as_f64();
        let theirs = row["reference"].as_f64();
        print!(" {name}={}/{}", figure(ours, 3), figure(theirs, 3));
    }
    println!("\n  (each figure as ours/reference)");
}

/// Runs the reference scorer; returns false, after saying why, when `python3` is missing.
fn run_scorer(scorer: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<bool> {
    let result = Command::new("python3").arg(scorer).args(args).output();
    let output = match result {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            println!("cross-check skipped: python3 not found");
            return Ok(false);
        }
        Err(err) => return Err(err).context("cannot start python3 for the reference scorer"),
    };
    if !output.status.success() {
        bail!(
            "the reference scorer {} failed ({}): {}",
            scorer.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(true)
}

/// Reads JSON as Python's `json` module writes it, where `NaN` and `Infinity` may stand as
/// numbers: `NaN` becomes null, the infinities become strings.
fn read_lenient_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let replaced = [
            ("-Infinity", "\"-inf\""),
            ("Infinity", "\"inf\""),
            ("NaN", "null"),
        ]
        .iter()
        .find(|(token, _)| rest.starts_with(token));
        if let Some((token, replacement)) = replaced {
            out.push_str(replacement);
            rest = &rest[token.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// Reads a number from the reference scorer's JSON. The string `"inf"` is infinity, and null
/// marks an undefined figure, which becomes `None`.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) if text == "inf" => Some(f64::INFINITY),
        Value::String(text) if text == "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|value| !value.is_nan())
}

fn compare_nab(check: &mut CrossCheck, case: &str, ours: &NabReport, theirs: &Value) {
    for entry in &ours.profiles {
        let reference = &theirs["profiles"][entry.profile];
        let name = entry.profile;
        check.compare(
            case,
            &format!("{name}.raw"),
            Some(entry.raw),
            number(&reference["raw"]),
        );
        check.compare(
            case,
            &format!("{name}.score"),
            entry.score,
            number(&reference["score"]),
        );
        check.compare(
            case,
            &format!("{name}.score_best"),
            entry.score_best,
            number(&reference["score_best"]),
        );
        check.compare(
            case,
            &format!("{name}.best_threshold"),
            entry.best_threshold,
            number(&reference["best_threshold"]),
        );
    }
    let points = &ours.pointwise;
    let reference = &theirs["pointwise"];
    for (name, value) in [
        ("tp", points.tp),
        ("fp", points.fp),
        ("fn", points.fn_),
        ("tn", points.tn),
    ] {
        check.compare(case, name, Some(value as f64), number(&reference[name]));
    }
    check.compare(
        case,
        "f1",
        finite(points.f1),
        finite(number(&reference["f1"])),
    );
    let events = &ours.events;
    let reference = &theirs["events"];
    for (name, value) in [
        ("windows_detected", events.windows_detected),
        ("false_alarm_rows", events.false_alarm_rows),
        ("false_alarm_runs", events.false_alarm_runs),
    ] {
        check.compare(case, name, Some(value as f64), number(&reference[name]));
    }
    check.compare(
        case,
        "mean_fraction_elapsed",
        events.mean_share_elapsed,
        finite(number(&reference["mean_fraction_elapsed"])),
    );
}

fn compare_skab(check: &mut CrossCheck, case: &str, ours: &SkabReport, theirs: &Value) {
    check.compare(case, "f1", ours.f1, finite(number(&theirs["f1"])));
    check.compare(
        case,
        "far_pct",
        ours.far_pct,
        finite(number(&theirs["far_pct"])),
    );
    check.compare(
        case,
        "mar_pct",
        ours.mar_pct,
        finite(number(&theirs["mar_pct"])),
    );
    for (name, value) in [
        ("tp", ours.tp),
        ("fp", ours.fp),
        ("fn", ours.fn_),
        ("tn", ours.tn),
    ] {
        check.compare(
            case,
            name,
            Some(value as f64),
            number(&theirs["confusion"][name]),
        );
    }
    check.compare(
        case,
        "missed_cps",
        Some(ours.missed_changepoints as f64),
        number(&theirs["missed_cps"]),
    );
    check.compare(
        case,
        "false_alarms",
        Some(ours.false_alarms as f64),
        number(&theirs["false_alarms"]),
    );
    check.compare(
        case,
        "mean_delay_s",
        ours.mean_delay_secs,
        number(&theirs["mean_delay_s"]),
    );
    for profile in ["Standard", "LowFP", "LowFN"] {
        check.compare(
            case,
            &format!("nab.{profile}"),
            ours.changepoint_score(profile),
            finite(number(&theirs["nab"][profile])),
        );
    }
}
