//! Training of asset models on normal operation.
//!
//! Scaling: each feature's center is its median and its scale 1.4826 × MAD. When that scale
//! is at most 0.1 % of the median's magnitude (at least 1e-6), as for a reading that sits on
//! one value most of the time, the standard deviation is used instead, and the floor itself
//! when the standard deviation is smaller still. So a change of a constant reading shows up
//! without a division by zero.

use anyhow::{bail, Context};
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use linfa_reduction::Pca;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{
    nearest_centroid, pca_statistics, ratio_to_score, AssetModel, Detector, FeatureInput,
    InputHistory, ModelCard, Scaling, StreamingAssetScorer, StreamingOptions, ThresholdRule,
    Transition, Validation, FORMAT_VERSION,
};

/// Detector kinds that `caretaker train --kind` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// PCA with Hotelling's T² and SPE (Q) statistics.
    Pca,
    /// Squared distance to the nearest k-means centroid.
    Kmeans,
}

/// Rows of normal operation to train on.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    /// Input name, for the model card and errors.
    pub source: String,
    pub features: Vec<String>,
    /// Timestamp text of each row.
    pub timestamps: Vec<String>,
    /// Feature values of each row, in the order of `features`.
    pub rows: Vec<Vec<Option<f64>>>,
}

impl TrainingData {
    /// Takes the first `limit` rows of a replayed series.
    pub fn from_series(series: &crate::detect::replay::Series, source: &str, limit: usize) -> Self {
        let limit = limit.min(series.len());
        TrainingData {
            source: source.to_string(),
            features: series.features.clone(),
            timestamps: series.timestamps[..limit].to_vec(),
            rows: (0..limit).map(|index| series.row(index)).collect(),
        }
    }
}

/// Settings of a fit.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub kind: ModelKind,
    /// Quantile of the held-out statistics taken as the threshold.
    pub quantile: f64,
    /// Number of contiguous folds for the held-out statistics.
    pub folds: usize,
    /// Share of rows at the end held out for validation only (0 for none).
    pub validation_fraction: f64,
    /// Share of the scaled variance that the retained principal components must explain.
    pub explained_variance: f64,
    /// Number of k-means clusters (fewer when there are few rows).
    pub clusters: usize,
    /// Weight of the newest row in the moving average that the detector judges
    /// ([`AssetModel::ewma_weight`]).
    pub ewma_weight: f64,
    /// Case-insensitive parts of a feature name that mark a slow thermal signal. Such a
    /// feature enters the detector as its change over `change_lag_rows` rows.
    pub change_markers: Vec<String>,
    /// Rows over which a slow feature's change is taken; 0 makes every feature a level. The
    /// lag is shortened when fewer than [`min_training_rows`] fit rows would remain after it.
    pub change_lag_rows: usize,
    pub streaming: StreamingOptions,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            kind: ModelKind::Pca,
            quantile: 0.99,
            folds: 5,
            validation_fraction: 0.2,
            explained_variance: 0.99,
            clusters: 8,
            ewma_weight: 0.2,
            change_markers: vec!["temp".to_string(), "thermo".to_string()],
            change_lag_rows: 60,
            streaming: StreamingOptions::default(),
        }
    }
}

/// Minimum number of fit rows for `features` features: enough for every fold to hold some
/// rows and for the covariance to be estimated.
pub fn min_training_rows(features: usize) -> usize {
    (5 * features).max(40)
}

/// Fits a model of `asset` on `data` (normal operation only).
///
/// Thresholds: the fit rows are cut into contiguous folds. The detector is fitted on all folds
/// but one and evaluated on the one left out, so every fit row gets a statistic from a detector
/// that never saw it. The threshold of each statistic is a high quantile of these held-out
/// values. Contiguous folds (rather than shuffled rows) keep slow drift inside the held-out
/// values, as new data will have it. The final detector is then fitted on all fit rows. The last
/// `options.validation_fraction` of `data` is held out and only scored, for the model card.
pub fn fit_model(
    asset: &str,
    data: &TrainingData,
    options: &FitOptions,
) -> anyhow::Result<AssetModel> {
    let features = data.features.len();
    if features == 0 {
        bail!("{}: no feature columns to train on", data.source);
    }
    if !(0.5..1.0).contains(&options.quantile) {
        bail!(
            "threshold quantile {} is outside [0.5, 1); use a high quantile such as 0.99",
            options.quantile
        );
    }
    let total = data.rows.len();
    let validation_rows = (total as f64 * options.validation_fraction.clamp(0.0, 0.5)) as usize;
    let fit_rows = total - validation_rows;
    let needed = min_training_rows(features);
    if fit_rows < needed {
        bail!(
            "{}: {fit_rows} rows to fit on but {features} features need at least {needed}; \
             give more rows of normal operation",
            data.source
        );
    }
    for (index, name) in data.features.iter().enumerate() {
        if data.rows[..fit_rows].iter().all(|row| row[index].is_none()) {
            bail!(
                "{}: column `{name}` has no numeric value in the {fit_rows} fit rows; fix the \
                 column or drop it from the input",
                data.source
            );
        }
    }

    let inputs = choose_inputs(&data.features, options, fit_rows - needed);
    let skipped = inputs.iter().map(FeatureInput::lag_rows).max().unwrap_or(0);
    let fit_part = input_rows(&inputs, &data.rows[..fit_rows], skipped);
    let scaling = robust_scaling(&fit_part, features);
    if !(options.ewma_weight > 0.0 && options.ewma_weight <= 1.0) {
        bail!(
            "EWMA weight {} is outside (0, 1]; use 1 to judge each row on its own",
            options.ewma_weight
        );
    }
    let (mut matrix, imputed_values) = scaled_matrix(&fit_part, &scaling);
    ewma_rows(&mut matrix, options.ewma_weight);
    let folds = options.folds.clamp(2, fit_part.len() / 10);
    let template = fit_detector(&matrix, options, None)
        .with_context(|| format!("{}: fit failed", data.source))?;
    let components = match &template {
        Detector::Pca { components, .. } => Some(components.len()),
        Detector::Kmeans { .. } => None,
    };

    let held_out = held_out_statistics(&matrix, folds, options, components)
        .with_context(|| format!("{}: fit on a fold failed", data.source))?;
    let thresholds: Vec<f64> = held_out
        .iter()
        .map(|values| quantile(values, options.quantile).max(1e-9))
        .collect();
    let detector = match template {
        Detector::Pca {
            mean,
            components,
            variances,
            explained_variance_ratio,
            ..
        } => Detector::Pca {
            mean,
            components,
            variances,
            explained_variance_ratio,
            t2_threshold: thresholds[0],
            spe_threshold: thresholds[1],
        },
        Detector::Kmeans { centroids, .. } => Detector::Kmeans {
            centroids,
            distance_threshold: thresholds[0],
        },
    };

    let mut model = AssetModel {
        format_version: FORMAT_VERSION,
        asset: asset.to_string(),
        features: data.features.clone(),
        inputs,
        scaling,
        ewma_weight: options.ewma_weight,
        detector,
        threshold: ThresholdRule {
            method: format!(
                "per statistic, the {} quantile of the values of the fit rows, each computed \
                 by a detector fitted on the other {} of {folds} contiguous folds",
                options.quantile,
                folds - 1
            ),
            quantile: options.quantile,
            folds,
        },
        streaming: options.streaming.clone(),
        card: ModelCard {
            source: data.source.clone(),
            first_timestamp: data.timestamps.first().cloned().unwrap_or_default(),
            last_timestamp: data.timestamps.last().cloned().unwrap_or_default(),
            rows: total,
            rows_fit: fit_rows,
            rows_validation: validation_rows,
            imputed_values,
            validation: Validation::default(),
        },
    };
    model.validate()?;
    model.card.validation = validate_on(&model, &data.rows[..fit_rows], &data.rows[fit_rows..]);
    Ok(model)
}

/// Decides how each feature enters the detector: as its change when its name carries one of
/// `options.change_markers`, else as its level. The lag is cut to `spare_rows`, so that enough
/// fit rows remain after the first `lag_rows`, which have no change yet.
fn choose_inputs(
    features: &[String],
    options: &FitOptions,
    spare_rows: usize,
) -> Vec<FeatureInput> {
    let lag_rows = options.change_lag_rows.min(spare_rows);
    features
        .iter()
        .map(|name| {
            let name = name.to_lowercase();
            let slow = options
                .change_markers
                .iter()
                .any(|marker| name.contains(&marker.to_lowercase()));
            if slow && lag_rows > 0 {
                FeatureInput::Change { lag_rows }
            } else {
                FeatureInput::Level
            }
        })
        .collect()
}

/// Turns rows of readings into rows of inputs, leaving out the first `skipped` rows, whose
/// changes would span fewer rows than the lag.
fn input_rows(
    inputs: &[FeatureInput],
    rows: &[Vec<Option<f64>>],
    skipped: usize,
) -> Vec<Vec<Option<f64>>> {
    let mut history = InputHistory::new(inputs);
    let mut out = Vec::with_capacity(rows.len().saturating_sub(skipped));
    for (index, row) in rows.iter().enumerate() {
        let converted = history.push(row);
        if index >= skipped {
            out.push(converted);
        }
    }
    out
}

/// Scores the held-out validation rows with the finished model, after the fit rows before
/// them have filled the history of the change inputs.
fn validate_on(
    model: &AssetModel,
    before: &[Vec<Option<f64>>],
    rows: &[Vec<Option<f64>>],
) -> Validation {
    if rows.is_empty() {
        return Validation::default();
    }
    let mut scorer = StreamingAssetScorer::new(model.clone());
    for row in before {
        scorer.prime(row);
    }
    let mut validation = Validation {
        rows: rows.len(),
        ..Validation::default()
    };
    let mut row_alarms = 0;
    let mut flagged = 0;
    for row in rows {
        let verdict = scorer.update(row);
        let ratio = verdict.ratio();
        validation.max_score = validation.max_score.max(ratio_to_score(ratio));
        if ratio >= 1.0 {
            row_alarms += 1;
        }
        if verdict.is_anomaly {
            flagged += 1;
        }
        if matches!(scorer.last_transition(), Some(Transition::Raised { .. })) {
            validation.alarms += 1;
        }
    }
    validation.row_alarm_rate = row_alarms as f64 / rows.len() as f64;
    validation.flagged_rate = flagged as f64 / rows.len() as f64;
    validation
}

fn robust_scaling(rows: &[Vec<Option<f64>>], features: usize) -> Scaling {
    let mut center = Vec::with_capacity(features);
    let mut scale = Vec::with_capacity(features);
    for index in 0..features {
        let mut values: Vec<f64> = rows.iter().filter_map(|row| row[index]).collect();
        values.sort_by(f64::total_cmp);
        let median = quantile_sorted(&values, 0.5);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        let mad = 1.4826 * quantile_sorted(&deviations, 0.5);
        let floor = (median.abs() * 1e-3).max(1e-6);
        let spread = if mad > floor {
            mad
        } else {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let variance =
                values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
            variance.sqrt().max(floor)
        };
        center.push(median);
        scale.push(spread);
    }
    Scaling {
        method: "median and 1.4826 x MAD; standard deviation where the MAD is 0".to_string(),
        center,
        scale,
    }
}

/// Largest distance from the median, in robust standard deviations, that a training value may
/// have. A row with a wilder value (a glitch such as 1e308) is left out of the fit and the
/// thresholds, because it is not normal operation and would dominate both.
const FIT_CLIP: f64 = 20.0;

/// Scales the rows into a matrix, replacing missing values by the median (0 after scaling) and
/// leaving out rows with a value beyond `FIT_CLIP` robust standard deviations.
fn scaled_matrix(rows: &[Vec<Option<f64>>], scaling: &Scaling) -> (Array2<f64>, usize) {
    let features = scaling.center.len();
    let mut imputed = 0;
    let mut kept: Vec<f64> = Vec::with_capacity(rows.len() * features);
    for row in rows {
        let mut scaled = Vec::with_capacity(features);
        let mut row_imputed = 0;
        for (j, cell) in row.iter().take(features).enumerate() {
            match *cell {
                Some(value) => scaled.push((value - scaling.center[j]) / scaling.scale[j]),
                None => {
                    row_imputed += 1;
                    scaled.push(0.0);
                }
            }
        }
        // A short row is missing its last features, which take the median like any gap.
        row_imputed += features - scaled.len();
        scaled.resize(features, 0.0);
        if scaled.iter().all(|z| z.abs() <= FIT_CLIP) {
            imputed += row_imputed;
            kept.extend(scaled);
        }
    }
    let count = kept.len() / features.max(1);
    let matrix = Array2::from_shape_vec((count, features), kept)
        .expect("every kept row has one value per feature");
    (matrix, imputed)
}

/// Replaces each row by the exponentially weighted moving average of the rows up to it. The
/// first row starts the average. Unlike the streaming scorer, no cap limits one row's step.
fn ewma_rows(matrix: &mut Array2<f64>, weight: f64) {
    for r in 1..matrix.nrows() {
        for j in 0..matrix.ncols() {
            matrix[[r, j]] = weight * matrix[[r, j]] + (1.0 - weight) * matrix[[r - 1, j]];
        }
    }
}

/// Fits the detector on scaled rows with placeholder thresholds of 1. `components` fixes the
/// number of principal components (the folds reuse the full fit's choice).
fn fit_detector(
    matrix: &Array2<f64>,
    options: &FitOptions,
    components: Option<usize>,
) -> anyhow::Result<Detector> {
    match options.kind {
        ModelKind::Pca => fit_pca(matrix, options.explained_variance, components),
        ModelKind::Kmeans => fit_kmeans(matrix, options.clusters),
    }
}

fn fit_pca(
    matrix: &Array2<f64>,
    explained_variance: f64,
    fixed_components: Option<usize>,
) -> anyhow::Result<Detector> {
    let features = matrix.ncols();
    let dataset = DatasetBase::from(matrix.clone());
    let pca = Pca::params(features)
        .fit(&dataset)
        .map_err(|err| anyhow::anyhow!("PCA failed: {err}"))?;
    let mean = pca.mean().to_vec();
    let axes: Vec<Vec<f64>> = pca
        .components()
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();

    // The variance along each axis, measured on the rows themselves.
    let rows = matrix.nrows() as f64;
    let mut variances: Vec<f64> = axes
        .iter()
        .map(|axis| {
            matrix
                .rows()
                .into_iter()
                .map(|row| {
                    let t: f64 = row
                        .iter()
                        .zip(&mean)
                        .zip(axis)
                        .map(|((x, m), p)| (x - m) * p)
                        .sum();
                    t * t
                })
                .sum::<f64>()
                / (rows - 1.0).max(1.0)
        })
        .collect();
    let mut order: Vec<usize> = (0..axes.len()).collect();
    order.sort_by(|&a, &b| variances[b].total_cmp(&variances[a]));
    let axes: Vec<Vec<f64>> = order.iter().map(|&i| axes[i].clone()).collect();
    variances = order.iter().map(|&i| variances[i]).collect();

    let total: f64 = variances.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    // Keep one axis fewer than there are features so that SPE measures something.
    let max_components = features.saturating_sub(1).max(1);
    let keep = fixed_components.unwrap_or_else(|| {
        let mut cumulative = 0.0;
        let mut keep = 0;
        for variance in &variances {
            keep += 1;
            cumulative += variance;
            if cumulative / total >= explained_variance {
                break;
            }
        }
        keep
    });
    let keep = keep.clamp(1, max_components);
    let explained = variances[..keep].iter().sum::<f64>() / total;
    // A floor keeps T² finite along an axis on which the training rows did not vary.
    let floor = (total * 1e-6).max(1e-9);
    Ok(Detector::Pca {
        mean,
        components: axes[..keep].to_vec(),
        variances: variances[..keep].iter().map(|v| v.max(floor)).collect(),
        explained_variance_ratio: explained,
        t2_threshold: 1.0,
        spe_threshold: 1.0,
    })
}

fn fit_kmeans(matrix: &Array2<f64>, clusters: usize) -> anyhow::Result<Detector> {
    let clusters = clusters.clamp(1, (matrix.nrows() / 10).max(1));
    let dataset = DatasetBase::from(matrix.clone());
    let model = KMeans::params(clusters)
        .n_runs(4)
        .max_n_iterations(300)
        .fit(&dataset)
        .map_err(|err| anyhow::anyhow!("k-means failed: {err}"))?;
    let centroids = model
        .centroids()
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    Ok(Detector::Kmeans {
        centroids,
        distance_threshold: 1.0,
    })
}

/// Statistics of every row from a detector fitted without the row's fold: for PCA, T² and SPE;
/// for k-means, the squared distance.
fn held_out_statistics(
    matrix: &Array2<f64>,
    folds: usize,
    options: &FitOptions,
    components: Option<usize>,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let rows = matrix.nrows();
    let mut t2 = Vec::with_capacity(rows);
    let mut spe = Vec::with_capacity(rows);
    let mut distances = Vec::with_capacity(rows);
    for fold in 0..folds {
        let start = fold * rows / folds;
        let end = (fold + 1) * rows / folds;
        let keep: Vec<usize> = (0..rows).filter(|r| *r < start || *r >= end).collect();
        let train = matrix.select(ndarray::Axis(0), &keep);
        let detector = fit_detector(&train, options, components)?;
        for r in start..end {
            let z = matrix.row(r).to_vec();
            match &detector {
                Detector::Pca {
                    mean,
                    components,
                    variances,
                    ..
                } => {
                    let (t2_value, spe_value, _, _) =
                        pca_statistics(&z, mean, components, variances);
                    t2.push(t2_value);
                    spe.push(spe_value);
                }
                Detector::Kmeans { centroids, .. } => {
                    let nearest = &centroids[nearest_centroid(&z, centroids)];
                    distances.push(z.iter().zip(nearest).map(|(x, c)| (x - c) * (x - c)).sum());
                }
            }
        }
    }
    Ok(match options.kind {
        ModelKind::Pca => vec![t2, spe],
        ModelKind::Kmeans => vec![distances],
    })
}

/// Computes the `q` quantile of `values`, interpolating linearly between order statistics.
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, q)
}

fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let weight = position - low as f64;
    sorted[low] * (1.0 - weight) + sorted[high] * weight
}
