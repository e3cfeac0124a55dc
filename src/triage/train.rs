//! Training of the triage model on the labelled corpus: feature selection over the hashed
//! n-grams, one multinomial logistic regression per head (linfa-logistic), a least-squares
//! head that ranks the intents, k-fold cross-validation and the model card.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use linfa::prelude::*;
use linfa_linalg::cholesky::SolveCInplace as _;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};

use super::model::{rescale, weigh, HeadFile, Model, ModelFile, FORMAT_VERSION, RANKING_HEAD};
use super::score::{self, Labels, Record, Scores};
use super::{text, Classifier, Triage};

/// Default L2 penalty of the intent ranking head.
pub const DEFAULT_RANKING_ALPHA: f32 = 0.3;

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// L2 penalty of the logistic regressions; the loss is summed over messages.
    pub alpha: f32,
    pub max_iterations: u64,
    /// A hash bucket needs this many training messages to get a column.
    pub min_df: usize,
    /// The logistic regressions get at most this many columns, chosen by their chi-square
    /// association with a class. The intent ranking head uses every column.
    pub max_columns: usize,
    /// L2 penalty of the intent ranking head (on the squared error summed over messages), or
    /// `None` for a model without that head.
    pub ranking_alpha: Option<f32>,
    pub folds: usize,
    /// Share of the log class prior taken off the intent head's intercepts. The corpus has
    /// about four times more repair requests than any other intent, and without the
    /// correction the smaller intents lose their borderline messages to it.
    pub intent_prior_correction: f32,
    /// Weighs each column by its inverse document frequency in the training messages.
    pub idf: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            alpha: 0.1,
            max_iterations: 150,
            min_df: 2,
            max_columns: 10000,
            ranking_alpha: Some(DEFAULT_RANKING_ALPHA),
            folds: 5,
            intent_prior_correction: 0.5,
            idf: true,
        }
    }
}

/// Reads every `*.jsonl` file of `dir`, in name order. Lines that do not parse are reported
/// on stderr and skipped.
pub fn load_corpus(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read corpus folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for file in &files {
        let (mut batch, bad) = score::read_records(file)
            .with_context(|| format!("failed to read corpus file {}", file.display()))?;
        for (line, error) in bad {
            eprintln!(
                "warning: {}:{line}: skipped, not a labelled record: {error}",
                file.display()
            );
        }
        records.append(&mut batch);
    }
    if records.is_empty() {
        bail!(
            "no labelled records in {}; expected *.jsonl files of the triage corpus",
            dir.display()
        );
    }
    Ok(records)
}

/// Reads one label of a record; `None` leaves the record out of that head.
type TargetOf = fn(&Labels) -> Option<String>;

/// Lists the head labels with the function that reads each record's class. A `None` class
/// leaves the record out of that head's training.
fn head_targets() -> Vec<(&'static str, TargetOf)> {
    vec![
        ("language", |l| Some(l.language.clone())),
        ("intent", |l| Some(l.intent.clone())),
        ("category", |l| l.category.clone()),
        ("urgency", |l| Some(l.urgency.clone())),
        ("needs_human", |l| Some(l.needs_human.to_string())),
    ]
}

/// Trains a model on `records`.
pub fn train(records: &[&Record], options: &TrainOptions) -> anyhow::Result<ModelFile> {
    if records.is_empty() {
        bail!("no training records");
    }
    let features: Vec<Vec<text::Feature>> =
        records.iter().map(|r| text::features(&r.text)).collect();

    // Buckets by rank. The logistic regressions take the best `max_columns`; the ranking head,
    // whose training cost does not grow with the number of columns, takes them all.
    let ranked = rank_columns(records, &features, options);
    let lr_count = ranked.len().min(options.max_columns);
    let mut columns: Vec<u32> = match options.ranking_alpha {
        Some(_) => ranked.clone(),
        None => ranked[..lr_count].to_vec(),
    };
    columns.sort_unstable();
    let column_of: HashMap<u32, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, bucket)| (*bucket, i))
        .collect();
    // The logistic regressions' columns as positions in `columns`, empty when they are all.
    let lr_columns: Vec<u32> = if lr_count < columns.len() {
        let mut positions: Vec<u32> = ranked[..lr_count]
            .iter()
            .map(|b| column_of[b] as u32)
            .collect();
        positions.sort_unstable();
        positions
    } else {
        Vec::new()
    };
    let mut lr_row_of = vec![None; columns.len()];
    for (row, &column) in lr_columns.iter().enumerate() {
        lr_row_of[column as usize] = Some(row);
    }
    let lr_width = if lr_columns.is_empty() {
        columns.len()
    } else {
        lr_columns.len()
    };
    let column_idf = if options.idf {
        inverse_document_frequency(&features, &column_of, columns.len())
    } else {
        Vec::new()
    };
    let rows: Vec<Vec<(usize, f32)>> = features
        .iter()
        .map(|f| {
            weigh(f, |b| column_of.get(&b).copied(), &column_idf)
                .into_iter()
                .map(|(_, column, value)| (column, value))
                .collect()
        })
        .collect();

    // Each head is one job: the logistic regressions, then the ranking head. They are
    // independent, so they train side by side.
    let fit_logistic = |label: &'static str, target: TargetOf| -> anyhow::Result<HeadFile> {
        let selected: Vec<usize> = (0..records.len())
            .filter(|&i| target(&records[i].labels).is_some())
            .collect();
        let mut x = Array2::<f32>::zeros((selected.len(), lr_width));
        for (row, &i) in selected.iter().enumerate() {
            let mut values: Vec<(usize, f32)> = if lr_columns.is_empty() {
                rows[i].clone()
            } else {
                rows[i]
                    .iter()
                    .filter_map(|&(column, value)| Some((lr_row_of[column]?, value)))
                    .collect()
            };
            if !lr_columns.is_empty() && options.idf {
                rescale(&mut values, |(_, value)| value);
            }
            for (c, value) in values {
                x[[row, c]] = value;
            }
        }
        let y: Array1<String> = selected
            .iter()
            .map(|&i| target(&records[i].labels).unwrap_or_default())
            .collect();
        let mut head = fit_head(label, x, &y, lr_width, options)?;
        head.columns = lr_columns.clone();
        if label == "intent" {
            correct_prior(&mut head, &y, options.intent_prior_correction);
        }
        Ok(head)
    };
    let mut jobs: Vec<Job<anyhow::Result<HeadFile>>> = head_targets()
        .into_iter()
        .map(|(label, target)| -> Job<_> { Box::new(move || fit_logistic(label, target)) })
        .collect();
    if let Some(alpha) = options.ranking_alpha {
        let rows = &rows;
        let n_columns = columns.len();
        jobs.push(Box::new(move || {
            let intents: Vec<&str> = records.iter().map(|r| r.labels.intent.as_str()).collect();
            fit_ranking(RANKING_HEAD, rows, &intents, n_columns, alpha)
        }));
    }
    let heads = run_in_parallel(jobs)
        .into_iter()
        .collect::<anyhow::Result<Vec<HeadFile>>>()?;

    Ok(ModelFile {
        format_version: FORMAT_VERSION,
        model_version: format!(
            "{}-n{}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%MZ"),
            records.len()
        ),
        hash_bits: text::HASH_BITS,
        char_ngram_min: text::CHAR_NGRAM_MIN,
        char_ngram_max: text::CHAR_NGRAM_MAX,
        columns,
        column_idf,
        heads,
    })
}

/// Returns `ln((1 + n) / (1 + df)) + 1` for each column, where `df` is the number of the `n`
/// training messages that have it. A column found in every message keeps weight 1, and the
/// rarer a column, the more it weighs.
fn inverse_document_frequency(
    features: &[Vec<text::Feature>],
    column_of: &HashMap<u32, usize>,
    n_columns: usize,
) -> Vec<f32> {
    let mut df = vec![0u32; n_columns];
    for message in features {
        for feature in message {
            if let Some(&col) = column_of.get(&feature.bucket) {
                df[col] += 1;
            }
        }
    }
    let n = features.len() as f32;
    df.iter()
        .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
        .collect()
}

/// Ranks the hash buckets seen in at least `min_df` messages by their strongest chi-square
/// association with a class of any head, best first. Ranking by frequency alone would put
/// first the character n-grams that occur under every class.
fn rank_columns(
    records: &[&Record],
    features: &[Vec<text::Feature>],
    options: &TrainOptions,
) -> Vec<u32> {
    let targets = head_targets();
    // For each head, the class index of every record (None when the head skips it) and the
    // number of records per class.
    let mut class_of: Vec<Vec<Option<usize>>> = Vec::new();
    let mut class_totals: Vec<Vec<usize>> = Vec::new();
    let mut offsets: Vec<usize> = Vec::new();
    let mut width = 0;
    for (_, target) in &targets {
        let labels: Vec<Option<String>> = records.iter().map(|r| target(&r.labels)).collect();
        let mut classes: Vec<&String> = labels.iter().flatten().collect();
        classes.sort();
        classes.dedup();
        let index: Vec<Option<usize>> = labels
            .iter()
            .map(|l| {
                l.as_ref()
                    .and_then(|l| classes.iter().position(|c| *c == l))
            })
            .collect();
        let mut totals = vec![0; classes.len()];
        for i in index.iter().flatten() {
            totals[*i] += 1;
        }
        offsets.push(width);
        width += classes.len();
        class_of.push(index);
        class_totals.push(totals);
    }

    // Messages per bucket and class, heads side by side.
    let mut counts: HashMap<u32, Vec<u32>> = HashMap::new();
    for (record, message) in features.iter().enumerate() {
        for feature in message {
            let row = counts
                .entry(feature.bucket)
                .or_insert_with(|| vec![0; width]);
            for (head, index) in class_of.iter().enumerate() {
                if let Some(class) = index[record] {
                    row[offsets[head] + class] += 1;
                }
            }
        }
    }

    // Each head ranks the buckets by their strongest chi-square over its classes, and a bucket
    // keeps its best rank over the heads. So every head gets its own best features, and the
    // language head, whose words separate its classes most, cannot take them all.
    let candidates: Vec<(&u32, &Vec<u32>)> = counts
        .iter()
        .filter(|(_, row)| {
            let total: u32 = row[..class_totals[0].len()].iter().sum();
            total as usize >= options.min_df
        })
        .collect();
    let mut best_rank: Vec<usize> = vec![usize::MAX; candidates.len()];
    for (head, totals) in class_totals.iter().enumerate() {
        let n: usize = totals.iter().sum();
        let mut scores: Vec<(usize, f64)> = candidates
            .iter()
            .enumerate()
            .map(|(i, (_, row))| {
                let cells = &row[offsets[head]..offsets[head] + totals.len()];
                let with: u32 = cells.iter().sum();
                let score = cells
                    .iter()
                    .zip(totals)
                    .map(|(&a, &total)| chi_square(a as f64, with as f64, total as f64, n as f64))
                    .fold(0.0, f64::max);
                (i, score)
            })
            .collect();
        scores.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(candidates[a.0].0.cmp(candidates[b.0].0))
        });
        for (rank, (i, _)) in scores.into_iter().enumerate() {
            best_rank[i] = best_rank[i].min(rank);
        }
    }
    let mut ranked: Vec<(u32, usize)> = candidates
        .iter()
        .zip(&best_rank)
        .map(|((bucket, _), rank)| (**bucket, *rank))
        .collect();
    ranked.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().map(|(bucket, _)| bucket).collect()
}

/// Chi-square statistic of the 2×2 table of a feature against a class: `with_class` messages
/// have both, `with_feature` have the feature, `class_total` have the class, `n` in all.
fn chi_square(with_class: f64, with_feature: f64, class_total: f64, n: f64) -> f64 {
    let a = with_class;
    let b = with_feature - a;
    let c = class_total - a;
    let d = n - a - b - c;
    let denominator = (a + b) * (c + d) * (a + c) * (b + d);
    if denominator <= 0.0 {
        return 0.0;
    }
    n * (a * d - b * c).powi(2) / denominator
}

/// Subtracts `share × ln(prior)` from each class's intercept, so that a class is not
/// favoured merely for being frequent in the corpus.
fn correct_prior(head: &mut HeadFile, y: &Array1<String>, share: f32) {
    let total = y.len() as f32;
    for (class, intercept) in head.classes.iter().zip(head.intercept.iter_mut()) {
        let count = y.iter().filter(|c| *c == class).count() as f32;
        if count > 0.0 {
            *intercept -= share * (count / total).ln();
        }
    }
}

fn fit_head(
    label: &str,
    x: Array2<f32>,
    y: &Array1<String>,
    n_columns: usize,
    options: &TrainOptions,
) -> anyhow::Result<HeadFile> {
    let mut distinct: Vec<String> = y.iter().cloned().collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() < 2 {
        // One class only: nothing to learn, the head always returns it.
        return Ok(HeadFile {
            label: label.to_string(),
            columns: Vec::new(),
            classes: distinct.clone(),
            intercept: vec![0.0; distinct.len()],
            weights: vec![0.0; n_columns * distinct.len()],
        });
    }
    let dataset = Dataset::new(x, y.clone());
    let fitted = MultiLogisticRegression::default()
        .alpha(options.alpha)
        .max_iterations(options.max_iterations)
        .fit(&dataset)
        .with_context(|| format!("failed to fit the triage head '{label}'"))?;
    // Four decimals are far finer than the model's error and keep the JSON small.
    let round = |v: f32| (v * 1e4).round() / 1e4;
    Ok(HeadFile {
        label: label.to_string(),
        columns: Vec::new(),
        classes: fitted.classes().to_vec(),
        intercept: fitted.intercept().iter().map(|v| round(*v)).collect(),
        weights: fitted.params().iter().map(|v| round(*v)).collect(),
    })
}

/// Fits one least-squares regression per class on targets of +1 (the message has the class)
/// and -1 (it has not), with an L2 penalty `alpha` and an unpenalised intercept: a ridge
/// classifier. Its scores rank the classes but are not probabilities.
///
/// It is solved in the dual: with `n` messages, the weights are `Xᵀa` where `a` solves
/// `(K + alpha·I) a = y` for the centred `n × n` Gram matrix `K` of the rows. That costs
/// `n²` dot products of sparse rows and one Cholesky factorisation, whatever the number of
/// columns, where the logistic regressions train on dense columns.
fn fit_ranking(
    label: &str,
    rows: &[Vec<(usize, f32)>],
    targets: &[&str],
    n_columns: usize,
    alpha: f32,
) -> anyhow::Result<HeadFile> {
    let mut classes: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    classes.sort();
    classes.dedup();
    let n = rows.len();
    let mut gram = Array2::<f64>::zeros((n, n));
    let mut dense = vec![0.0f64; n_columns];
    for i in 0..n {
        for &(column, value) in &rows[i] {
            dense[column] = f64::from(value);
        }
        for j in 0..=i {
            let dot: f64 = rows[j]
                .iter()
                .map(|&(column, value)| dense[column] * f64::from(value))
                .sum();
            gram[[i, j]] = dot;
            gram[[j, i]] = dot;
        }
        for &(column, _) in &rows[i] {
            dense[column] = 0.0;
        }
    }
    // Centring the columns of X centres the Gram matrix on both sides; the intercept then
    // follows from the means.
    let row_means: Vec<f64> = gram
        .rows()
        .into_iter()
        .map(|r| r.mean().unwrap_or(0.0))
        .collect();
    let grand_mean = row_means.iter().sum::<f64>() / n as f64;
    for i in 0..n {
        for j in 0..n {
            gram[[i, j]] += grand_mean - row_means[i] - row_means[j];
        }
        gram[[i, i]] += f64::from(alpha);
    }
    let mut y = Array2::<f64>::from_shape_fn((n, classes.len()), |(i, c)| {
        if targets[i] == classes[c] {
            1.0
        } else {
            -1.0
        }
    });
    let y_means: Vec<f64> = y
        .columns()
        .into_iter()
        .map(|c| c.mean().unwrap_or(0.0))
        .collect();
    for (mut column, mean) in y.columns_mut().into_iter().zip(&y_means) {
        column -= *mean;
    }
    let dual = gram
        .solvec_inplace(&mut y)
        .with_context(|| format!("failed to fit the triage head '{label}'"))?;

    let k = classes.len();
    let mut weights = vec![0.0f64; n_columns * k];
    for (i, row) in rows.iter().enumerate() {
        for &(column, value) in row {
            for c in 0..k {
                weights[column * k + c] += dual[[i, c]] * f64::from(value);
            }
        }
    }
    // The mean row dotted with the weights is the mean over messages of `K a`, which the row
    // means of the uncentred Gram matrix give.
    let intercept: Vec<f32> = (0..k)
        .map(|c| {
            let mean_score: f64 = (0..n).map(|i| row_means[i] * dual[[i, c]]).sum();
            (y_means[c] - mean_score) as f32
        })
        .collect();
    // Five decimals, one more than the logistic regressions, because these weights are smaller
    // (a median of about 0.04 against 0.06 to 0.28 in the model of 3,279 messages).
    let round = |v: f64| ((v * 1e5).round() / 1e5) as f32;
    Ok(HeadFile {
        label: label.to_string(),
        columns: Vec::new(),
        classes,
        intercept,
        weights: weights.into_iter().map(round).collect(),
    })
}

/// Classifies every record of `records` with a model trained on the other folds, and returns
/// the predictions in the order of `records`. Folds follow a hash of the record id, so a record
/// stays in its fold as the corpus grows. The folds train in parallel, one thread per core.
/// Each fold also trains its heads in parallel, so the last fold still uses every core, and
/// up to cores × cores threads run at once, each with one head's matrix in memory.
pub fn cross_validate(records: &[&Record], options: &TrainOptions) -> anyhow::Result<Vec<Triage>> {
    let folds = options.folds.max(2);
    let fold_of = |r: &Record| (text::fnv1a(&[r.id.as_bytes()]) % folds as u64) as usize;
    let run_fold = |fold: usize| -> anyhow::Result<Vec<(usize, Triage)>> {
        let training: Vec<&Record> = records
            .iter()
            .copied()
            .filter(|r| fold_of(r) != fold)
            .collect();
        let model = Model::from_file(train(&training, options)?)?;
        let classifier = Classifier::from_model(model);
        Ok(records
            .iter()
            .enumerate()
            .filter(|(_, r)| fold_of(r) == fold)
            .map(|(i, r)| (i, classifier.classify(&r.text)))
            .collect())
    };
    let jobs: Vec<Job<_>> = (0..folds)
        .map(|fold| -> Job<_> { Box::new(move || run_fold(fold)) })
        .collect();
    let results = run_in_parallel(jobs);
    let mut predictions: Vec<Option<Triage>> = vec![None; records.len()];
    for result in results {
        for (i, triage) in result? {
            predictions[i] = Some(triage);
        }
    }
    Ok(predictions.into_iter().flatten().collect())
}

/// A unit of work for [`run_in_parallel`].
type Job<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Runs `jobs` on one thread per core, each thread taking the next job when it is done, and
/// returns their results in the order of `jobs`.
fn run_in_parallel<T: Send>(jobs: Vec<Job<'_, T>>) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let count = jobs.len();
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate());
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((index, job)) = next else {
                            break done;
                        };
                        done.push((index, job()));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a training thread panicked"))
            .collect()
    });
    debug_assert_eq!(results.len(), count);
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Scores `classifier` on `records`.
pub fn evaluate(classifier: &Classifier, records: &[&Record]) -> (Scores, Vec<Triage>) {
    let predictions: Vec<Triage> = records
        .iter()
        .map(|r| classifier.classify(&r.text))
        .collect();
    let gold: Vec<&Labels> = records.iter().map(|r| &r.labels).collect();
    let refs: Vec<&Triage> = predictions.iter().collect();
    (score::score(&gold, &refs), predictions)
}

/// Everything the model card reports.
pub struct CardFacts<'a> {
    pub model: &'a ModelFile,
    pub options: &'a TrainOptions,
    pub corpus_dir: &'a Path,
    pub train: &'a [&'a Record],
    pub test: &'a [&'a Record],
    pub test_scores: &'a Scores,
    /// `None` when the cross-validation did not run.
    pub cv_scores: Option<&'a Scores>,
    pub model_bytes: usize,
}

/// Writes the model card in Markdown.
pub fn card(facts: &CardFacts) -> String {
    let mut out = String::new();
    let m = facts.model;
    let _ = writeln!(out, "# Triage model\n");
    let _ = writeln!(
        out,
        "The model built into `caretaker triage`: one multinomial logistic regression per \
         label over hashed word and character n-grams, a least-squares head that ranks the \
         intents, and the rules of `src/triage/rules/`. Written by `caretaker train-triage`; \
         do not edit by hand.\n"
    );
    let _ = writeln!(out, "- model version: `{}`", m.model_version);
    let _ = writeln!(out, "- file: `triage.json`, {} bytes", facts.model_bytes);
    let _ = writeln!(out, "- corpus: `{}`", facts.corpus_dir.display());
    let _ = writeln!(out, "\n## Features\n");
    let _ = writeln!(
        out,
        "Text is lowercased and folded to ASCII (æ, ø, å become ae, oe, aa; accents are \
         dropped; every run of digits becomes `0`). Features: word unigrams, word bigrams, \
         character {}- to {}-grams of each word padded with `<` and `>` and a question mark, \
         valued `weight × (1 + ln(count))` with weight {} for words, bigrams and the question \
         mark and 1 for character n-grams, scaled to unit L2 norm and hashed with 64-bit FNV-1a \
         into 2^{} buckets. The model has a column for each of the {} buckets seen in at least {} \
         training messages. The logistic regressions use at most {} of them: those with the \
         strongest chi-square association with a class of any head, each head taking its \
         best-ranked buckets in turn.",
        m.char_ngram_min,
        m.char_ngram_max,
        text::WORD_WEIGHT,
        m.hash_bits,
        m.columns.len(),
        facts.options.min_df,
        facts.options.max_columns
    );
    if !m.column_idf.is_empty() {
        let _ = writeln!(
            out,
            "\nEach column's value is multiplied by the column's inverse document frequency in \
             the training messages, `ln((1 + n) / (1 + df)) + 1`, and a message's columns are \
             scaled to unit L2 norm again, over the columns that a head uses."
        );
    }
    let _ = writeln!(
        out,
        "\nTraining: `linfa-logistic` 0.8 multinomial logistic regression, L-BFGS, L2 penalty \
         alpha {} on the summed log-loss, at most {} iterations. The intent head's intercepts \
         are lowered by {} × ln(class prior) after fitting.",
        facts.options.alpha, facts.options.max_iterations, facts.options.intent_prior_correction
    );
    if let Some(alpha) = facts.options.ranking_alpha {
        let _ = writeln!(
            out,
            "\nThe `{RANKING_HEAD}` head is a ridge classifier over every column: one \
             least-squares regression per intent on targets +1 and -1, L2 penalty alpha {alpha} \
             on the summed squared error, solved exactly in the dual (Cholesky factorisation of \
             the Gram matrix, `linfa-linalg`). Among the intents that no rule decided it picks \
             the one with the highest score, and the `intent` head gives that intent's \
             probability."
        );
    }
    let _ = writeln!(out, "\nHeads and classes:\n");
    for head in &m.heads {
        let _ = writeln!(out, "- `{}`: {}", head.label, head.classes.join(", "));
    }

    let _ = writeln!(out, "\n## Corpus\n");
    let _ = writeln!(
        out,
        "| label | value | train | test |\n| --- | --- | ---: | ---: |"
    );
    let _ = writeln!(
        out,
        "| all | | {} | {} |",
        facts.train.len(),
        facts.test.len()
    );
    for (label, target) in head_targets() {
        let mut counts: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for r in facts.train {
            counts
                .entry(target(&r.labels).unwrap_or("null".into()))
                .or_default()
                .0 += 1;
        }
        for r in facts.test {
            counts
                .entry(target(&r.labels).unwrap_or("null".into()))
                .or_default()
                .1 += 1;
        }
        for (value, (train, test)) in counts {
            let _ = writeln!(out, "| {label} | {value} | {train} | {test} |");
        }
    }

    let _ = writeln!(out, "\n## Scores\n");
    match facts.cv_scores {
        Some(_) => {
            let _ = writeln!(
                out,
                "Test: the model above on the corpus test split. Cross-validation: {}-fold on \
                 the train split (folds by a hash of the id), each fold classified by a model \
                 trained on the other folds with the same settings, rules included.\n",
                facts.options.folds
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Test: the model above on the corpus test split. Cross-validation was not run \
                 for this model.\n"
            );
        }
    }
    let _ = writeln!(
        out,
        "| figure | test | cross-validation |\n| --- | ---: | ---: |"
    );
    type Figure = fn(&Scores) -> f64;
    let rows: [(&str, Figure); 11] = [
        ("intent macro-F1", |s| s.intent_macro_f1),
        ("intent accuracy", |s| s.intent_accuracy),
        ("category accuracy", |s| s.category_accuracy),
        ("urgency accuracy", |s| s.urgency_accuracy),
        ("language accuracy", |s| s.language_accuracy),
        ("emergency recall", |s| s.emergency_recall),
        ("emergency precision", |s| s.emergency_precision),
        ("needs_human recall", |s| s.needs_human_recall),
        ("needs_human precision", |s| s.needs_human_precision),
        ("unit exact", |s| s.unit_exact),
        ("pii kinds exact", |s| s.pii_exact),
    ];
    let cv_messages = facts
        .cv_scores
        .map_or_else(|| "not run".to_string(), |s| s.n.to_string());
    let _ = writeln!(
        out,
        "| messages | {} | {cv_messages} |",
        facts.test_scores.n
    );
    for (name, get) in rows {
        let cv = facts
            .cv_scores
            .map_or_else(|| "-".to_string(), |s| format!("{:.3}", get(s)));
        let _ = writeln!(out, "| {name} | {:.3} | {cv} |", get(facts.test_scores));
    }
    let _ = writeln!(
        out,
        "\nThe thresholds that turn probabilities into decisions are constants of \
         `src/triage/classify.rs`: low confidence below {}, model emergency from {}, a possible \
         emergency that a human judges from {}, model needs_human from {}. The emergency, \
         low-confidence and needs_human thresholds were chosen by cross-validation on the \
         train split.",
        super::classify::LOW_CONFIDENCE,
        super::classify::MODEL_EMERGENCY_MIN,
        super::classify::MODEL_POSSIBLE_EMERGENCY_MIN,
        super::classify::MODEL_NEEDS_HUMAN_MIN
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize, text: &str, intent: &str) -> Record {
        let repair = intent == "maintenance_request";
        Record {
            id: format!("t-{id}"),
            split: Some("train".into()),
            text: text.into(),
            labels: Labels {
                language: "en".into(),
                intent: intent.into(),
                category: repair.then(|| "plumbing".into()),
                urgency: if repair { "routine" } else { "none" }.into(),
                needs_human: false,
                unit: None,
                pii: Vec::new(),
            },
        }
    }

    /// Twenty repair requests and twenty rent questions that share the word "please".
    fn two_intents() -> Vec<Record> {
        let repairs = ["tap", "sink", "toilet", "shower", "pipe"];
        let payments = ["rent", "deposit", "invoice", "fee", "refund"];
        let mut records = Vec::new();
        for round in 0..4 {
            for (i, thing) in repairs.iter().enumerate() {
                let text = format!("please fix the leaking {thing} in flat {round}");
                records.push(record(records.len(), &text, "maintenance_request"));
                let text = format!("please explain my {} payment {round}", payments[i]);
                records.push(record(records.len(), &text, "rent_payment"));
            }
        }
        records
    }

    #[test]
    fn idf_weighs_rare_columns_more() {
        let records = two_intents();
        let refs: Vec<&Record> = records.iter().collect();
        let file = train(&refs, &TrainOptions::default()).unwrap();
        assert_eq!(file.column_idf.len(), file.columns.len());
        let idf_of = |word: &str| {
            let bucket = text::features(word)
                .into_iter()
                .find(|f| f.name == format!("word '{word}'"))
                .unwrap()
                .bucket;
            let col = file.columns.iter().position(|b| *b == bucket).unwrap();
            file.column_idf[col]
        };
        // "please" is in every message, "leaking" in half of them.
        assert!((idf_of("please") - 1.0).abs() < 1e-6);
        assert!(idf_of("leaking") > idf_of("please"));

        let model = Model::from_file(file).unwrap();
        let classifier = Classifier::from_model(model);
        let triage = classifier.classify("please fix the leaking tap");
        assert_eq!(triage.intent, "maintenance_request");
        let triage = classifier.classify("please explain my deposit payment");
        assert_eq!(triage.intent, "rent_payment");
    }

    #[test]
    fn card_marks_skipped_cross_validation() {
        let records = two_intents();
        let refs: Vec<&Record> = records.iter().collect();
        let options = TrainOptions {
            folds: 0,
            ..TrainOptions::default()
        };
        let file = train(&refs, &options).unwrap();
        let classifier = Classifier::from_model(Model::from_file(file.clone()).unwrap());
        let (test_scores, _) = evaluate(&classifier, &refs[..4]);
        let facts = |cv_scores| CardFacts {
            model: &file,
            options: &options,
            corpus_dir: Path::new("corpus"),
            train: &refs,
            test: &refs[..4],
            test_scores: &test_scores,
            cv_scores,
            model_bytes: 1,
        };
        let card = super::card(&facts(None));
        assert!(card.contains("Cross-validation was not run"), "{card}");
        assert!(card.contains("| messages | 4 | not run |"), "{card}");
        assert!(card.contains("| intent macro-F1 | 1.000 | - |"), "{card}");
        let card = super::card(&facts(Some(&test_scores)));
        assert!(
            card.contains("| intent macro-F1 | 1.000 | 1.000 |"),
            "{card}"
        );
    }

    /// The dual solution must equal ridge regression solved in the primal, with centred
    /// columns: `(XcᵀXc + alpha·I) w = Xcᵀ yc` and `b = mean(y) - mean(x)·w`.
    #[test]
    fn ranking_head_matches_primal_ridge() {
        let rows: Vec<Vec<(usize, f32)>> = vec![
            vec![(0, 0.6), (2, 0.8)],
            vec![(1, 1.0)],
            vec![(0, 0.5), (1, 0.5), (3, 0.7)],
            vec![(2, 0.3), (3, 0.9)],
            vec![(0, 1.0)],
            vec![(1, 0.4), (2, 0.9)],
        ];
        let targets = ["a", "b", "a", "c", "a", "b"];
        let alpha = 0.3;
        let head = fit_ranking("r", &rows, &targets, 4, alpha).unwrap();
        assert_eq!(head.classes, ["a", "b", "c"]);

        let n = rows.len();
        let mut x = Array2::<f64>::zeros((n, 4));
        for (i, row) in rows.iter().enumerate() {
            for &(c, v) in row {
                x[[i, c]] = f64::from(v);
            }
        }
        let x_mean = x.mean_axis(ndarray::Axis(0)).unwrap();
        let xc = &x - &x_mean;
        for (k, class) in head.classes.iter().enumerate() {
            let y: Array1<f64> = targets
                .iter()
                .map(|t| if t == class { 1.0 } else { -1.0 })
                .collect();
            let y_mean = y.mean().unwrap();
            let mut a = xc.t().dot(&xc) + Array2::<f64>::eye(4) * f64::from(alpha);
            let mut rhs = xc.t().dot(&(&y - y_mean)).insert_axis(ndarray::Axis(1));
            let w = a.solvec_inplace(&mut rhs).unwrap().column(0).to_owned();
            for c in 0..4 {
                let got = f64::from(head.weights[c * 3 + k]);
                assert!(
                    (got - w[c]).abs() < 1e-4,
                    "class {class} column {c}: {got} vs {}",
                    w[c]
                );
            }
            let b = y_mean - x_mean.dot(&w);
            let got = f64::from(head.intercept[k]);
            assert!(
                (got - b).abs() < 1e-4,
                "class {class} intercept: {got} vs {b}"
            );
        }
    }

    #[test]
    fn no_idf_no_column_weights() {
        let records = two_intents();
        let refs: Vec<&Record> = records.iter().collect();
        let options = TrainOptions {
            idf: false,
            ..TrainOptions::default()
        };
        let file = train(&refs, &options).unwrap();
        assert!(file.column_idf.is_empty());
        let json = serde_json::to_string(&file).unwrap();
        assert!(!json.contains("column_idf"));
    }
}
