//! `caretaker train`: fits an asset model on normal operation and writes it with its card.
//!
//! The input is a CSV in the `caretaker detect` layout, every row of it normal operation. The
//! last `--validation-fraction` of the rows is held out: the model and its thresholds are fitted
//! on the rows before it, and the card reports how often the model fires on the held-out rows.
//! Besides the model JSON, a readable card `NAME.md` is written beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::multivariate::{
    fit_model, AssetModel, Detector, FeatureInput, FitOptions, ModelKind, TrainingData,
};
use super::replay::read_series;

/// Arguments of `caretaker train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Asset name recorded in the model, such as `circulation-pump`.
    #[arg(long, value_name = "NAME")]
    pub asset: String,
    /// Normal operation of the asset: a CSV in the `caretaker detect` input layout whose
    /// feature columns are the asset's points.
    #[arg(long, value_name = "CSV")]
    pub input: PathBuf,
    /// Output path of the model (JSON). The card `NAME.md` is written beside it.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Detector kind: PCA with T² and SPE statistics, or distance to k-means centroids.
    #[arg(long, value_enum, default_value = "pca")]
    pub kind: ModelKind,
    /// Quantile of held-out normal statistics taken as the threshold.
    #[arg(long, value_name = "Q", default_value_t = 0.99)]
    pub quantile: f64,
    /// Share of rows at the end of the input held out for validation.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// First write HOURS of simulated normal operation of the circulation pump (one row every
    /// 10 s) to --input, then train on it.
    #[arg(long, value_name = "HOURS")]
    pub simulate_hours: Option<f64>,
    /// Seed of the simulation (with --simulate-hours).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// Interval between simulated rows.
const SIMULATION_INTERVAL_MS: i64 = 10_000;
/// Start of the simulated data: 2026-01-05T00:00:00Z.
const SIMULATION_START_MS: i64 = 1_767_571_200_000;

pub fn main(args: TrainArgs) -> ExitCode {
    match train(&args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs `caretaker train` and returns the summary it prints.
pub fn train(args: &TrainArgs) -> anyhow::Result<String> {
    if !(0.0..=0.5).contains(&args.validation_fraction) {
        bail!(
            "--validation-fraction {} is outside [0, 0.5]; give a share such as 0.2",
            args.validation_fraction
        );
    }
    if !(0.5..1.0).contains(&args.quantile) {
        bail!(
            "--quantile {} is outside [0.5, 1); give a high quantile such as 0.99",
            args.quantile
        );
    }
    if let Some(hours) = args.simulate_hours {
        simulate_into(&args.input, hours, args.seed)?;
    }
    let source = args.input.display().to_string();
    let series = read_series(&args.input).with_context(|| {
        format!("cannot train on {source}; give a CSV of normal operation in the `caretaker detect` layout")
    })?;
    let data = TrainingData::from_series(&series, &source, series.len());
    let options = FitOptions {
        kind: args.kind,
        quantile: args.quantile,
        validation_fraction: args.validation_fraction,
        ..FitOptions::default()
    };
    let model = fit_model(&args.asset, &data, &options)?;

    let out = args.out.display();
    std::fs::write(&args.out, model.to_json() + "\n").with_context(|| {
        format!("cannot write the model to {out}; check that its folder exists and is writable")
    })?;
    let card_path = args.out.with_extension("md");
    std::fs::write(&card_path, render_card(&model))
        .with_context(|| format!("cannot write the model card to {}", card_path.display()))?;
    let validation = &model.card.validation;
    Ok(format!(
        "{out}: {} model of `{}` on {} features, fitted on {} rows; on {} held-out rows it \
         flagged {:.2} % after smoothing ({:.2} % of single rows over the threshold); card in {}",
        model.detector.kind(),
        model.asset,
        model.features.len(),
        model.card.rows_fit,
        validation.rows,
        100.0 * validation.flagged_rate,
        100.0 * validation.row_alarm_rate,
        card_path.display()
    ))
}

/// Writes `hours` of simulated normal operation of the circulation pump to `path`.
fn simulate_into(path: &Path, hours: f64, seed: u64) -> anyhow::Result<()> {
    if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0) {
        bail!("--simulate-hours {hours} is outside (0, 8760]; give a duration such as 48");
    }
    let rows = (hours * 3_600_000.0 / SIMULATION_INTERVAL_MS as f64).round() as usize;
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the folder {}", folder.display()))?;
    }
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create {} for the simulated data", path.display()))?;
    let mut pump = crate::sim::Pump::new(seed);
    crate::sim::write_pump_csv(
        std::io::BufWriter::new(file),
        &mut pump,
        SIMULATION_START_MS,
        SIMULATION_INTERVAL_MS,
        rows,
    )
    .with_context(|| format!("cannot write the simulated data to {}", path.display()))
}

/// Renders the readable model card.
pub fn render_card(model: &AssetModel) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Model card: {}\n", model.asset);
    let _ = writeln!(
        text,
        "Multivariate `{}` model written by `caretaker train` (format version {}).\n",
        model.detector.kind(),
        model.format_version
    );
    render_data(&mut text, model);
    render_features(&mut text, model);
    render_detector(&mut text, model);
    render_validation(&mut text, model);
    text
}

fn render_data(text: &mut String, model: &AssetModel) {
    let card = &model.card;
    let _ = writeln!(text, "## Data\n");
    let _ = writeln!(text, "- Source: `{}`", card.source);
    let _ = writeln!(
        text,
        "- Window: {} to {}, {} rows",
        card.first_timestamp, card.last_timestamp, card.rows
    );
    let _ = writeln!(
        text,
        "- Fit and thresholds: the first {} rows ({} missing values replaced by the median)",
        card.rows_fit, card.imputed_values
    );
    let _ = writeln!(
        text,
        "- Validation: the last {} rows, seen by neither the fit nor the thresholds\n",
        card.rows_validation
    );
}

fn render_features(text: &mut String, model: &AssetModel) {
    let _ = writeln!(text, "## Features and scaling\n");
    let _ = writeln!(text, "Scaling: {}.\n", model.scaling.method);
    let _ = writeln!(text, "| feature | input | median | scale |");
    let _ = writeln!(text, "| --- | --- | ---: | ---: |");
    for (index, feature) in model.features.iter().enumerate() {
        let input = match model.inputs.get(index) {
            Some(FeatureInput::Change { lag_rows }) => format!("change over {lag_rows} rows"),
            _ => "level".to_string(),
        };
        let _ = writeln!(
            text,
            "| {feature} | {input} | {:.4} | {:.4} |",
            model.scaling.center[index], model.scaling.scale[index]
        );
    }
    let _ = writeln!(
        text,
        "\nThe detector judges an exponentially weighted moving average of the scaled inputs \
         (weight {} on the newest row).",
        model.ewma_weight
    );
}

fn render_detector(text: &mut String, model: &AssetModel) {
    let _ = writeln!(text, "\n## Detector and thresholds\n");
    match &model.detector {
        Detector::Pca {
            components,
            explained_variance_ratio,
            t2_threshold,
            spe_threshold,
            ..
        } => {
            let _ = writeln!(
                text,
                "- PCA with {} of {} components, explaining {:.1} % of the scaled variance",
                components.len(),
                model.features.len(),
                100.0 * explained_variance_ratio
            );
            let _ = writeln!(text, "- Hotelling T² threshold: {t2_threshold:.4}");
            let _ = writeln!(text, "- SPE (Q) threshold: {spe_threshold:.4}");
        }
        Detector::Kmeans {
            centroids,
            distance_threshold,
        } => {
            let _ = writeln!(text, "- k-means with {} centroids", centroids.len());
            let _ = writeln!(
                text,
                "- Squared distance threshold: {distance_threshold:.4}"
            );
        }
    }
    let _ = writeln!(text, "- Thresholds: {}", model.threshold.method);
    let streaming = &model.streaming;
    let _ = writeln!(
        text,
        "- Alarm: the ratio to the threshold (capped at {}) is averaged over {} rows. An alarm \
         is raised after {} rows at or above 1 and cleared after {} rows below {}.\n",
        streaming.ratio_cap,
        streaming.smoothing_rows,
        streaming.persistence_rows,
        streaming.clear_rows,
        streaming.release_ratio
    );
}

fn render_validation(text: &mut String, model: &AssetModel) {
    let validation = &model.card.validation;
    let _ = writeln!(text, "## Validation\n");
    if validation.rows == 0 {
        let _ = writeln!(text, "No rows were held out.");
        return;
    }
    let _ = writeln!(
        text,
        "On {} held-out rows of normal operation:\n",
        validation.rows
    );
    let _ = writeln!(
        text,
        "- rows over the threshold on their own: {:.2} %",
        100.0 * validation.row_alarm_rate
    );
    let _ = writeln!(
        text,
        "- rows flagged after smoothing, persistence and hysteresis: {:.2} %",
        100.0 * validation.flagged_rate
    );
    let _ = writeln!(text, "- alarms raised: {}", validation.alarms);
    let _ = writeln!(
        text,
        "- highest single-row score: {:.3}",
        validation.max_score
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, input: &str) -> TrainArgs {
        TrainArgs {
            asset: "circulation-pump".into(),
            input: dir.join(input),
            out: dir.join("pump.json"),
            kind: ModelKind::Pca,
            quantile: 0.99,
            validation_fraction: 0.2,
            simulate_hours: None,
            seed: 1,
        }
    }

    #[test]
    fn simulated_training_writes_model_and_card() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path(), "sim/normal.csv");
        args.simulate_hours = Some(6.0);
        let summary = train(&args).unwrap();
        assert!(
            summary.contains("pca model of `circulation-pump`"),
            "{summary}"
        );
        let model = AssetModel::load(&args.out).unwrap();
        assert_eq!(model.card.rows, 2160);
        assert_eq!(model.card.rows_validation, 432);
        assert_eq!(model.card.first_timestamp, "2026-01-05T00:00:00Z");
        assert_eq!(model.features.len(), crate::sim::PUMP_MODEL_POINTS.len());
        let card = std::fs::read_to_string(dir.path().join("pump.md")).unwrap();
        assert!(card.contains("# Model card: circulation-pump"), "{card}");
        assert!(card.contains("Hotelling T² threshold"), "{card}");
        assert!(card.contains("On 432 held-out rows"), "{card}");
    }

    #[test]
    fn kmeans_kind_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path(), "normal.csv");
        args.simulate_hours = Some(2.0);
        args.kind = ModelKind::Kmeans;
        train(&args).unwrap();
        let model = AssetModel::load(&args.out).unwrap();
        assert_eq!(model.detector.kind(), "kmeans");
    }

    #[test]
    fn missing_input_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", train(&args(dir.path(), "absent.csv")).unwrap_err());
        assert!(err.contains("absent.csv"), "{err}");
        assert!(err.contains("normal operation"), "{err}");
    }

    #[test]
    fn empty_column_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("timestamp,flow,speed\n");
        for i in 0..100 {
            text.push_str(&format!("{i},{},\n", 20.0 + (i % 7) as f64));
        }
        // `speed` has numbers only in the rows held out for validation.
        for i in 100..120 {
            text.push_str(&format!("{i},20.0,2900\n"));
        }
        std::fs::write(dir.path().join("gaps.csv"), text).unwrap();
        let err = format!("{:#}", train(&args(dir.path(), "gaps.csv")).unwrap_err());
        assert!(err.contains("column `speed`"), "{err}");
        assert!(err.contains("gaps.csv"), "{err}");
    }

    #[test]
    fn too_few_rows_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("short.csv"),
            "timestamp,a,b\n1,1,2\n2,2,3\n",
        )
        .unwrap();
        let err = format!("{:#}", train(&args(dir.path(), "short.csv")).unwrap_err());
        assert!(err.contains("short.csv"), "{err}");
        assert!(err.contains("need at least 40"), "{err}");
    }

    #[test]
    fn unwritable_output_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path(), "normal.csv");
        args.simulate_hours = Some(1.0);
        args.out = dir.path().join("no-such-folder/pump.json");
        let err = format!("{:#}", train(&args).unwrap_err());
        assert!(err.contains("no-such-folder/pump.json"), "{err}");
        assert!(err.contains("folder exists"), "{err}");
    }

    #[test]
    fn bad_options_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path(), "normal.csv");
        args.quantile = 1.5;
        let err = train(&args).unwrap_err().to_string();
        assert!(err.contains("--quantile 1.5"), "{err}");
        args.quantile = 0.99;
        args.simulate_hours = Some(-1.0);
        let err = train(&args).unwrap_err().to_string();
        assert!(err.contains("--simulate-hours -1"), "{err}");
    }
}
