//! Training of the triage model on the labelled corpus: feature selection over the hashed
//! n-grams, one multinomial logistic regression per head (linfa-logistic), k-fold
//! cross-validation and the model card.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};

use super::model::{weigh, HeadFile, Model, ModelFile, FORMAT_VERSION};
use super::score::{self, Labels, Record, Scores};
use super::{text, Classifier, Triage};

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// L2 penalty of the logistic regressions; the loss is summed over messages.
    pub alpha: f32,
    pub max_iterations: u64,
    /// A hash bucket needs this many training messages to get a column.
    pub min_df: usize,
    /// At most this many columns, chosen by their chi-square association with a class.
    pub max_columns: usize,
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

    let columns = select_columns(records, &features, options);
    let column_of: HashMap<u32, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, bucket)| (*bucket, i))
        .collect();
    let column_idf = if options.idf {
        inverse_document_frequency(&features, &column_of, columns.len())
    } else {
        Vec::new()
    };

    let mut heads = Vec::new();
    for (label, target) in head_targets() {
        let rows: Vec<usize> = (0..records.len())
            .filter(|&i| target(&records[i].labels).is_some())
            .collect();
        let mut x = Array2::<f32>::zeros((rows.len(), columns.len()));
        for (row, &i) in rows.iter().enumerate() {
            let weighed = weigh(&features[i], |b| column_of.get(&b).copied(), &column_idf);
            for (_, col, value) in weighed {
                x[[row, col]] = value;
            }
        }
        let y: Array1<String> = rows
            .iter()
            .map(|&i| target(&records[i].labels).unwrap_or_default())
            .collect();
        let mut head = fit_head(label, x, &y, columns.len(), options)?;
        if label == "intent" {
            correct_prior(&mut head, &y, options.intent_prior_correction);
        }
        heads.push(head);
    }

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

/// Picks the hash buckets that get weights: those seen in at least `min_df` messages, ranked
/// by their strongest chi-square association with a class of any head, at most `max_columns`.
/// Ranking by frequency alone would keep character n-grams that occur under every class.
fn select_columns(
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
    ranked.truncate(options.max_columns);
    let mut columns: Vec<u32> = ranked.into_iter().map(|(bucket, _)| bucket).collect();
    columns.sort_unstable();
    columns
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
        classes: fitted.classes().to_vec(),
        intercept: fitted.intercept().iter().map(|v| round(*v)).collect(),
        weights: fitted.params().iter().map(|v| round(*v)).collect(),
    })
}

/// Classifies every record of `records` with a model trained on the other folds, and returns
/// the predictions in the order of `records`. Folds follow a hash of the record id, so a record
/// stays in its fold as the corpus grows. The folds train in parallel, one thread per core.
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
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(folds);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<anyhow::Result<Vec<(usize, Triage)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let fold = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if fold >= folds {
                            break done;
                        }
                        done.push(run_fold(fold));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a cross-validation thread panicked"))
            .collect()
    });
    let mut predictions: Vec<Option<Triage>> = vec![None; records.len()];
    for result in results {
        for (i, triage) in result? {
            predictions[i] = Some(triage);
        }
    }
    Ok(predictions.into_iter().flatten().collect())
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
    pub cv_scores: &'a Scores,
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
         label over hashed word and character n-grams, combined with the rules of \
         `src/triage/rules/`. Written by `caretaker train-triage`; do not edit by hand.\n"
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
         into 2^{} buckets. The {} buckets with weights are those seen in at least {} training \
         messages with the strongest chi-square association with a class of any head, at most \
         {}, each head taking its best-ranked buckets in turn.",
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
             scaled to unit L2 norm again."
        );
    }
    let _ = writeln!(
        out,
        "\nTraining: `linfa-logistic` 0.8 multinomial logistic regression, L-BFGS, L2 penalty \
         alpha {} on the summed log-loss, at most {} iterations. The intent head's intercepts \
         are lowered by {} × ln(class prior) after fitting. Heads and classes:\n",
        facts.options.alpha, facts.options.max_iterations, facts.options.intent_prior_correction
    );
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
    let _ = writeln!(
        out,
        "Test: the model above on the corpus test split. Cross-validation: {}-fold on the \
         train split (folds by a hash of the id), each fold classified by a model trained on \
         the other folds with the same settings, rules included.\n",
        facts.options.folds
    );
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
    let _ = writeln!(
        out,
        "| messages | {} | {} |",
        facts.test_scores.n, facts.cv_scores.n
    );
    for (name, get) in rows {
        let _ = writeln!(
            out,
            "| {name} | {:.3} | {:.3} |",
            get(facts.test_scores),
            get(facts.cv_scores)
        );
    }
    let _ = writeln!(
        out,
        "\nThe thresholds that turn probabilities into decisions are constants of \
         `src/triage/classify.rs`: low confidence below {}, model emergency from {}, model \
         needs_human from {}. The low-confidence and needs_human thresholds were chosen by \
         cross-validation on the train split.",
        super::classify::LOW_CONFIDENCE,
        super::classify::MODEL_EMERGENCY_MIN,
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
