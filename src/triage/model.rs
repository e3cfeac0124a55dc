//! The triage model: one linear model per label ("head") over the hashed features of
//! [`super::text`], stored as JSON.
//!
//! Only the hash buckets that occur in the training corpus get a row of weights, so the file
//! contains `columns × classes` numbers per head instead of `2^HASH_BITS × classes`. A head may
//! cover a subset of the model's columns.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::text::{self, Feature};

/// Version of the file layout that training writes. Version 2 added `column_idf` and version 3
/// a head's own `columns`. A build that reads only older versions would ignore these fields and
/// score the columns wrongly.
pub const FORMAT_VERSION: u32 = 3;
/// Oldest version this build reads: version 1 is version 2 without `column_idf`.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// A trained triage model as it is stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    pub format_version: u32,
    /// Free-form identifier of this training run, such as `2026-12-04T20:10Z-n1840`.
    pub model_version: String,
    pub hash_bits: u32,
    pub char_ngram_min: usize,
    pub char_ngram_max: usize,
    /// Hash buckets that have weights, in row order.
    pub columns: Vec<u32>,
    /// Inverse document frequency of each column, in row order, or empty when the model
    /// weighs every column the same. See [`weigh`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_idf: Vec<f32>,
    pub heads: Vec<HeadFile>,
}

/// One label's linear model: `weights` is row-major, one row of `classes.len()` values per
/// column of the head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadFile {
    pub label: String,
    /// Positions in the model's `columns` that this head has weights for, in row order, or
    /// empty when it has weights for every column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<u32>,
    pub classes: Vec<String>,
    pub intercept: Vec<f32>,
    pub weights: Vec<f32>,
}

impl HeadFile {
    /// Returns the number of weight rows the head must have in a model of `model_columns`.
    fn row_count(&self, model_columns: usize) -> usize {
        if self.columns.is_empty() {
            model_columns
        } else {
            self.columns.len()
        }
    }
}

/// A loaded model, ready to score messages.
#[derive(Debug, Clone)]
pub struct Model {
    pub model_version: String,
    rows: HashMap<u32, u32>,
    column_idf: Vec<f32>,
    heads: Vec<LoadedHead>,
}

#[derive(Debug, Clone)]
struct LoadedHead {
    file: HeadFile,
    /// For each model column, the head's weight row or `NO_ROW`. `None` when the head covers
    /// every column in model order. Heads with the same columns share one map.
    row_of_column: Option<Arc<Vec<u32>>>,
}

const NO_ROW: u32 = u32::MAX;

/// The features of one message that have a model column, weighed as in training by
/// [`Model::rows`].
#[derive(Debug, Clone)]
pub struct Rows(Vec<(usize, usize, f32)>);

/// Class probabilities of one head for one message, with the features that pushed the
/// winning class most.
#[derive(Debug, Clone)]
pub struct HeadOutput {
    pub classes: Vec<String>,
    pub probabilities: Vec<f32>,
    pub top_features: Vec<(String, f32)>,
}

impl HeadOutput {
    /// Returns the probability of `class`, or 0 when the head does not know it.
    pub fn probability(&self, class: &str) -> f32 {
        self.classes
            .iter()
            .position(|c| c == class)
            .map_or(0.0, |i| self.probabilities[i])
    }

    /// Returns the most probable class among those that `allowed` accepts, with its
    /// probability.
    pub fn best_where(&self, allowed: impl Fn(&str) -> bool) -> Option<(&str, f32)> {
        self.classes
            .iter()
            .zip(&self.probabilities)
            .filter(|(c, _)| allowed(c))
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(c, p)| (c.as_str(), *p))
    }
}

/// Error of loading a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid triage model JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "triage model has format version {found}, this build reads \
         {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}; \
         retrain it with `caretaker train-triage`"
    )]
    Version { found: u32 },
    #[error(
        "triage model was trained with hash_bits {bits} and character n-grams {min}..={max}, \
         this build uses {} and {}..={}; retrain it with `caretaker train-triage`",
        text::HASH_BITS,
        text::CHAR_NGRAM_MIN,
        text::CHAR_NGRAM_MAX
    )]
    Hashing { bits: u32, min: usize, max: usize },
    #[error("triage model head '{head}' has {found} weights, expected {expected}")]
    Shape {
        head: String,
        found: usize,
        expected: usize,
    },
    #[error("triage model has {found} column weights for {expected} columns")]
    ColumnIdf { found: usize, expected: usize },
    #[error("triage model head '{head}' names column {column}, the model has {columns}")]
    HeadColumn {
        head: String,
        column: u32,
        columns: usize,
    },
    #[error("triage model has no head '{0}'; retrain it with `caretaker train-triage`")]
    MissingHead(String),
    #[error("the triage model built into this binary is damaged, {0}; rebuild the binary")]
    Builtin(String),
}

/// Label of the optional head whose least-squares scores choose among the intents that no
/// rule decided. Its scores only rank the intents; the `intent` head gives the probabilities.
pub const RANKING_HEAD: &str = "intent_ranking";

/// Labels that every model must have a head for.
pub const REQUIRED_HEADS: &[&str] = &["language", "intent", "category", "urgency", "needs_human"];

impl Model {
    /// Parses and checks a model file.
    pub fn from_json(json: &str) -> Result<Model, ModelError> {
        let file: ModelFile = serde_json::from_str(json)?;
        Model::from_file(file)
    }

    /// Checks a model file's version, hashing parameters and shapes.
    pub fn from_file(file: ModelFile) -> Result<Model, ModelError> {
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&file.format_version) {
            return Err(ModelError::Version {
                found: file.format_version,
            });
        }
        if file.hash_bits != text::HASH_BITS
            || file.char_ngram_min != text::CHAR_NGRAM_MIN
            || file.char_ngram_max != text::CHAR_NGRAM_MAX
        {
            return Err(ModelError::Hashing {
                bits: file.hash_bits,
                min: file.char_ngram_min,
                max: file.char_ngram_max,
            });
        }
        for head in &file.heads {
            if let Some(&column) = head
                .columns
                .iter()
                .find(|&&c| c as usize >= file.columns.len())
            {
                return Err(ModelError::HeadColumn {
                    head: head.label.clone(),
                    column,
                    columns: file.columns.len(),
                });
            }
            let expected = head.row_count(file.columns.len()) * head.classes.len();
            if head.weights.len() != expected || head.intercept.len() != head.classes.len() {
                return Err(ModelError::Shape {
                    head: head.label.clone(),
                    found: head.weights.len(),
                    expected,
                });
            }
        }
        if !file.column_idf.is_empty() && file.column_idf.len() != file.columns.len() {
            return Err(ModelError::ColumnIdf {
                found: file.column_idf.len(),
                expected: file.columns.len(),
            });
        }
        for required in REQUIRED_HEADS {
            if !file.heads.iter().any(|h| h.label == *required) {
                return Err(ModelError::MissingHead((*required).to_string()));
            }
        }
        let rows = file
            .columns
            .iter()
            .enumerate()
            .map(|(row, bucket)| (*bucket, row as u32))
            .collect();
        let n_columns = file.columns.len();
        // The logistic regressions all use the same subset, so its map is built once.
        let mut maps: Vec<(Vec<u32>, Arc<Vec<u32>>)> = Vec::new();
        let mut heads = Vec::with_capacity(file.heads.len());
        for mut head in file.heads {
            let columns = std::mem::take(&mut head.columns);
            let row_of_column = if columns.is_empty() {
                None
            } else if let Some((_, map)) = maps.iter().find(|(c, _)| *c == columns) {
                Some(Arc::clone(map))
            } else {
                let mut map = vec![NO_ROW; n_columns];
                for (row, &column) in columns.iter().enumerate() {
                    map[column as usize] = row as u32;
                }
                let map = Arc::new(map);
                maps.push((columns, Arc::clone(&map)));
                Some(map)
            };
            heads.push(LoadedHead {
                file: head,
                row_of_column,
            });
        }
        Ok(Model {
            model_version: file.model_version,
            rows,
            column_idf: file.column_idf,
            heads,
        })
    }

    /// Looks up and weighs the columns of `features` once, for any number of heads.
    pub fn rows(&self, features: &[Feature]) -> Rows {
        Rows(weigh(
            features,
            |bucket| self.rows.get(&bucket).map(|r| *r as usize),
            &self.column_idf,
        ))
    }

    /// Scores `features` with the head named `label`.
    pub fn predict(&self, label: &str, features: &[Feature]) -> Option<HeadOutput> {
        self.predict_rows(label, features, &self.rows(features))
    }

    /// Scores a message with the head named `label`, given its `features` and their
    /// [`Model::rows`].
    pub fn predict_rows(
        &self,
        label: &str,
        features: &[Feature],
        rows: &Rows,
    ) -> Option<HeadOutput> {
        let loaded = self.heads.iter().find(|h| h.file.label == label)?;
        let head = &loaded.file;
        let n_classes = head.classes.len();
        let mut logits = head.intercept.clone();
        let mut known: Vec<(&Feature, f32, usize)> = Vec::with_capacity(rows.0.len());
        for &(index, column, value) in &rows.0 {
            let row = match &loaded.row_of_column {
                None => column,
                Some(map) if map[column] != NO_ROW => map[column] as usize,
                Some(_) => continue,
            };
            known.push((&features[index], value, row * n_classes));
        }
        if loaded.row_of_column.is_some() && !self.column_idf.is_empty() {
            rescale(&mut known, |(_, value, _)| value);
        }
        for &(_, value, row) in &known {
            for (class, logit) in logits.iter_mut().enumerate() {
                *logit += value * head.weights[row + class];
            }
        }
        let probabilities = softmax(&logits);
        let best = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let mut contributions: Vec<(String, f32)> = known
            .iter()
            .map(|(f, value, row)| (f.name.clone(), value * head.weights[row + best]))
            .filter(|(_, c)| *c > 0.0)
            .collect();
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
        contributions.truncate(5);
        Some(HeadOutput {
            classes: head.classes.clone(),
            probabilities,
            top_features: contributions,
        })
    }

    /// Returns the number of weights, for the model card and the benchmark.
    pub fn parameter_count(&self) -> usize {
        self.heads
            .iter()
            .map(|h| h.file.weights.len() + h.file.intercept.len())
            .sum()
    }
}

/// Returns the features of a message that have a column, as (index in `features`, row,
/// value). With `idf`, one weight per row, each value is multiplied by its row's weight and the
/// values are scaled to unit L2 norm again by [`rescale`]. With an empty `idf` the values stay
/// as they are.
/// Training and prediction both build their rows with this function.
pub fn weigh(
    features: &[Feature],
    row_of: impl Fn(u32) -> Option<usize>,
    idf: &[f32],
) -> Vec<(usize, usize, f32)> {
    let mut out: Vec<(usize, usize, f32)> = features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let row = row_of(f.bucket)?;
            let weight = idf.get(row).copied().unwrap_or(1.0);
            Some((i, row, f.value * weight))
        })
        .collect();
    if !idf.is_empty() {
        rescale(&mut out, |(_, _, value)| value);
    }
    out
}

/// Scales the values that `value` selects in `items` to unit L2 norm, unless they are all zero.
/// With column weights, a head that covers a subset of the columns scales a message's values
/// over its own columns again, in training and in prediction alike.
pub fn rescale<T>(items: &mut [T], value: impl Fn(&mut T) -> &mut f32) {
    let norm = items
        .iter_mut()
        .map(|item| {
            let v = *value(item);
            v * v
        })
        .sum::<f32>()
        .sqrt();
    if norm > 0.0 {
        for item in items {
            *value(item) /= norm;
        }
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        exps.iter().map(|e| e / sum).collect()
    } else {
        vec![1.0 / logits.len().max(1) as f32; logits.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_model() -> ModelFile {
        let feature = &text::features("drip")[0];
        let mut heads = Vec::new();
        for label in REQUIRED_HEADS {
            heads.push(HeadFile {
                label: (*label).to_string(),
                columns: Vec::new(),
                classes: vec!["a".into(), "b".into()],
                intercept: vec![0.0, 0.0],
                weights: vec![0.0, 5.0],
            });
        }
        ModelFile {
            format_version: FORMAT_VERSION,
            model_version: "test".into(),
            hash_bits: text::HASH_BITS,
            char_ngram_min: text::CHAR_NGRAM_MIN,
            char_ngram_max: text::CHAR_NGRAM_MAX,
            columns: vec![feature.bucket],
            column_idf: Vec::new(),
            heads,
        }
    }

    #[test]
    fn predict_uses_known_buckets() {
        let model = Model::from_file(tiny_model()).unwrap();
        let features = vec![Feature {
            bucket: tiny_model().columns[0],
            value: 1.0,
            name: "x".into(),
        }];
        let out = model.predict("intent", &features).unwrap();
        assert!(out.probability("b") > 0.99);
        assert_eq!(out.top_features[0].0, "x");
        let empty = model.predict("intent", &[]).unwrap();
        assert!((empty.probability("a") - 0.5).abs() < 1e-6);
    }

    /// A head with its own columns ignores the others and, with column weights, scales the
    /// message's values over its own columns to unit norm.
    #[test]
    fn head_own_columns_rescaled() {
        let features: Vec<Feature> = ["drip", "leak"]
            .iter()
            .map(|word| Feature {
                bucket: text::fnv1a(&[word.as_bytes()]) as u32 & 0xffff,
                value: 0.6,
                name: (*word).into(),
            })
            .collect();
        let mut file = tiny_model();
        file.columns = features.iter().map(|f| f.bucket).collect();
        file.column_idf = vec![1.0, 1.0];
        for head in &mut file.heads {
            head.weights = vec![0.0, 1.0, 0.0, 0.0];
        }
        // The intent head has only the second column, whose weights favour neither class.
        let intent = file.heads.iter_mut().find(|h| h.label == "intent").unwrap();
        intent.columns = vec![1];
        intent.weights = vec![0.0, 0.0];
        let language = file
            .heads
            .iter_mut()
            .find(|h| h.label == "language")
            .unwrap();
        language.columns = vec![0];
        language.weights = vec![0.0, 1.0];
        let model = Model::from_file(file.clone()).unwrap();
        let rows = model.rows(&features);

        let intent = model.predict_rows("intent", &features, &rows).unwrap();
        assert!((intent.probability("a") - 0.5).abs() < 1e-6);
        assert!(intent.top_features.is_empty());
        // Alone in its head, "drip" has value 1 after scaling, not 1/√2.
        let language = model.predict_rows("language", &features, &rows).unwrap();
        let expected = 1.0 / (1.0 + (-1.0f32).exp());
        assert!((language.probability("b") - expected).abs() < 1e-5);
        assert_eq!(language.top_features[0].0, "drip");
        // Every column: both count, at 1/√2 each.
        let urgency = model.predict_rows("urgency", &features, &rows).unwrap();
        let expected = 1.0 / (1.0 + (-(0.5f32.sqrt())).exp());
        assert!((urgency.probability("b") - expected).abs() < 1e-5);

        file.heads[0].columns = vec![2];
        assert!(matches!(
            Model::from_file(file),
            Err(ModelError::HeadColumn { column: 2, .. })
        ));
    }

    #[test]
    fn weigh_applies_idf_and_norm() {
        let features = vec![
            Feature {
                bucket: 7,
                value: 0.6,
                name: "common".into(),
            },
            Feature {
                bucket: 9,
                value: 0.6,
                name: "rare".into(),
            },
            Feature {
                bucket: 11,
                value: 0.5,
                name: "unknown".into(),
            },
        ];
        let row_of = |bucket| match bucket {
            7 => Some(0),
            9 => Some(1),
            _ => None,
        };
        let plain = weigh(&features, row_of, &[]);
        assert_eq!(plain, vec![(0, 0, 0.6), (1, 1, 0.6)]);

        let weighed = weigh(&features, row_of, &[1.0, 3.0]);
        assert_eq!(weighed.len(), 2);
        assert!((weighed[1].2 / weighed[0].2 - 3.0).abs() < 1e-5);
        let norm: f32 = weighed.iter().map(|(_, _, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }

    #[test]
    fn format_versions_read() {
        let mut file = tiny_model();
        file.format_version = 1;
        assert!(Model::from_file(file).is_ok());
        let mut file = tiny_model();
        file.format_version = FORMAT_VERSION + 1;
        assert!(matches!(
            Model::from_file(file),
            Err(ModelError::Version { .. })
        ));
    }

    #[test]
    fn from_file_rejects_bad_shapes() {
        let mut file = tiny_model();
        file.heads[0].weights.push(1.0);
        assert!(matches!(
            Model::from_file(file),
            Err(ModelError::Shape { .. })
        ));
        let mut file = tiny_model();
        file.hash_bits = 3;
        assert!(matches!(
            Model::from_file(file),
            Err(ModelError::Hashing { .. })
        ));
        let mut file = tiny_model();
        file.column_idf = vec![1.0, 2.0];
        assert!(matches!(
            Model::from_file(file),
            Err(ModelError::ColumnIdf { .. })
        ));
        let mut file = tiny_model();
        file.heads.retain(|h| h.label != "urgency");
        assert!(matches!(
            Model::from_file(file),
            Err(ModelError::MissingHead(_))
        ));
    }
}
