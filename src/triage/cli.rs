//! `caretaker triage` and `caretaker train-triage`.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use super::score::Record;
use super::train::{self, CardFacts, TrainOptions};
use super::{Classifier, Triage};

/// Arguments of `caretaker triage`.
#[derive(Debug, clap::Args)]
pub struct TriageArgs {
    /// JSON lines `{"id": …, "text": …}` to classify; standard input when absent or `-`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Output file for one JSON line per input line; standard output when absent or `-`.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A model file written by `caretaker train-triage`, in place of the built-in model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
}

/// Arguments of `caretaker train-triage`.
#[derive(Debug, clap::Args)]
pub struct TrainTriageArgs {
    /// Folder of labelled JSON-lines files (`*.jsonl`), each line
    /// `{"id", "split": "train"|"test", "text", "labels": {…}}`.
    #[arg(long, value_name = "DIR", default_value = "corpus/triage")]
    pub corpus: PathBuf,
    /// Output path of the model. Its card goes beside it with the extension `.md`.
    #[arg(long, value_name = "PATH", default_value = "models/triage.json")]
    pub out: PathBuf,
    /// Number of cross-validation folds on the train split; 0 skips cross-validation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// L2 penalty of the logistic regressions (on the log-loss summed over messages).
    #[arg(long, default_value_t = TrainOptions::default().alpha)]
    pub alpha: f32,
    /// Maximum L-BFGS iterations per head.
    #[arg(long, default_value_t = TrainOptions::default().max_iterations)]
    pub max_iterations: u64,
    /// Share of the log class prior removed from the intent head's intercepts (0 keeps the
    /// fitted intercepts).
    #[arg(long, default_value_t = TrainOptions::default().intent_prior_correction)]
    pub intent_prior_correction: f32,
    /// Maximum number of hashed feature columns of the logistic regressions.
    #[arg(long, default_value_t = TrainOptions::default().max_columns)]
    pub max_columns: usize,
    /// L2 penalty of the intent ranking head (least squares over every column).
    #[arg(long, default_value_t = train::DEFAULT_RANKING_ALPHA)]
    pub ranking_alpha: f32,
    /// Trains no intent ranking head; the logistic regression alone chooses the intent.
    #[arg(long)]
    pub no_ranking: bool,
    /// Writes each train message whose cross-validated intent, category, urgency or
    /// `needs_human` differs from its labels, as JSON lines, for a review of the corpus.
    #[arg(long, value_name = "FILE")]
    pub cv_errors: Option<PathBuf>,
}

/// Runs `caretaker triage`.
pub fn main(args: TriageArgs) -> ExitCode {
    match run_triage(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_triage(args: &TriageArgs) -> anyhow::Result<()> {
    let classifier = match &args.model {
        Some(path) => Classifier::from_path(path)?,
        None => Classifier::builtin().context(
            "the built-in triage model is invalid; rebuild with a model from \
             `caretaker train-triage`",
        )?,
    };
    let dash = |path: &&PathBuf| path.as_os_str() != "-";
    let input: Box<dyn Read> = match args.input.as_ref().filter(dash) {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("failed to open input {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let output: Box<dyn Write> = match args.output.as_ref().filter(dash) {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("failed to create output {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut output = BufWriter::new(output);
    let lines = BufReader::new(input).split(b'\n');
    let mut number = 0usize;
    for line in lines {
        number += 1;
        let line = line.with_context(|| format!("failed to read input line {number}"))?;
        let answer = answer_line(&classifier, &line, number);
        serde_json::to_writer(&mut output, &answer).context("failed to write output")?;
        output.write_all(b"\n").context("failed to write output")?;
    }
    output.flush().context("failed to write output")?;
    Ok(())
}

/// Classifies one input line, or describes why it cannot be classified.
fn answer_line(classifier: &Classifier, line: &[u8], number: usize) -> Value {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Editors on Windows start a UTF-8 file with a byte order mark.
    let line = match number {
        1 => line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line),
        _ => line,
    };
    let expected = "expected a JSON object {\"id\": …, \"text\": …}";
    let Ok(line) = std::str::from_utf8(line) else {
        return json!({"error": format!("line {number} is not valid UTF-8; {expected}")});
    };
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            return json!({"error": format!("line {number} is not valid JSON ({e}); {expected}")})
        }
    };
    let Value::Object(object) = value else {
        return json!({"error": format!("line {number} is not a JSON object; {expected}")});
    };
    let id = object.get("id").cloned();
    let mut out = Map::new();
    if let Some(id) = &id {
        out.insert("id".into(), id.clone());
    }
    match object.get("text") {
        Some(Value::String(text)) => {
            let triage = classifier.classify(text);
            append_triage(&mut out, triage);
        }
        Some(other) => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            out.insert(
                "error".into(),
                json!(format!(
                    "line {number}: \"text\" is {kind}; expected a string"
                )),
            );
        }
        None => {
            out.insert(
                "error".into(),
                json!(format!("line {number} has no \"text\" field")),
            );
        }
    }
    Value::Object(out)
}

fn append_triage(out: &mut Map<String, Value>, triage: Triage) {
    if let Ok(Value::Object(fields)) = serde_json::to_value(triage) {
        out.extend(fields);
    }
}

/// Writes to `file`, created at `path`, the records whose prediction differs from the labels in
/// intent, category, urgency or `needs_human`, and returns how many there were.
fn write_cv_errors(
    file: std::fs::File,
    path: &std::path::Path,
    records: &[&Record],
    predictions: &[Triage],
) -> anyhow::Result<usize> {
    let mut out = BufWriter::new(file);
    let mut written = 0;
    for (record, predicted) in records.iter().zip(predictions) {
        let gold = &record.labels;
        let differs = gold.intent != predicted.intent
            || gold.category != predicted.category
            || gold.urgency != predicted.urgency
            || gold.needs_human != predicted.needs_human;
        if !differs {
            continue;
        }
        let line = json!({
            "id": record.id,
            "text": record.text,
            "labels": gold,
            "predicted": {
                "intent": predicted.intent,
                "category": predicted.category,
                "urgency": predicted.urgency,
                "needs_human": predicted.needs_human,
                "confidence": predicted.confidence,
            },
        });
        let mut bytes = serde_json::to_vec(&line)?;
        bytes.push(b'\n');
        out.write_all(&bytes)
            .with_context(|| format!("failed to write {}", path.display()))?;
        written += 1;
    }
    out.flush()
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(written)
}

/// Runs `caretaker train-triage`.
pub fn train_main(args: TrainTriageArgs) -> ExitCode {
    match run_train(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_train(args: &TrainTriageArgs) -> anyhow::Result<()> {
    if args.cv_errors.is_some() && args.folds < 2 {
        anyhow::bail!(
            "--cv-errors requires cross-validation, but --folds is {}; pass --folds 2 or more",
            args.folds
        );
    }
    // Created before the minutes of training, so that a path that cannot be written fails now.
    let cv_errors_file = match &args.cv_errors {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("failed to create {}", path.display()))?,
        ),
        None => None,
    };
    let options = TrainOptions {
        alpha: args.alpha,
        max_iterations: args.max_iterations,
        max_columns: args.max_columns,
        ranking_alpha: (!args.no_ranking).then_some(args.ranking_alpha),
        folds: args.folds,
        intent_prior_correction: args.intent_prior_correction,
        ..TrainOptions::default()
    };
    let records = train::load_corpus(&args.corpus)?;
    let train_split: Vec<&Record> = records
        .iter()
        .filter(|r| r.split.as_deref() != Some("test"))
        .collect();
    let test_split: Vec<&Record> = records
        .iter()
        .filter(|r| r.split.as_deref() == Some("test"))
        .collect();
    eprintln!(
        "train-triage: {} train and {} test messages from {}",
        train_split.len(),
        test_split.len(),
        args.corpus.display()
    );

    let cv_scores = if args.folds >= 2 {
        let predictions = train::cross_validate(&train_split, &options)?;
        let gold: Vec<_> = train_split.iter().map(|r| &r.labels).collect();
        let refs: Vec<&Triage> = predictions.iter().collect();
        if let (Some(path), Some(file)) = (&args.cv_errors, cv_errors_file) {
            let written = write_cv_errors(file, path, &train_split, &predictions)?;
            eprintln!(
                "train-triage: wrote {written} cross-validation disagreements to {}",
                path.display()
            );
        }
        Some(super::score::score(&gold, &refs))
    } else {
        None
    };

    let model_file = train::train(&train_split, &options)?;
    let json = serde_json::to_string(&model_file).context("failed to serialise the model")?;
    let classifier = Classifier::from_model(super::Model::from_file(model_file.clone())?);
    let (test_scores, _) = train::evaluate(&classifier, &test_split);

    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(&args.out, &json)
        .with_context(|| format!("failed to write model {}", args.out.display()))?;
    let card_path = args.out.with_extension("md");
    let card = train::card(&CardFacts {
        model: &model_file,
        options: &options,
        corpus_dir: &args.corpus,
        train: &train_split,
        test: &test_split,
        test_scores: &test_scores,
        cv_scores: cv_scores.as_ref(),
        model_bytes: json.len(),
    });
    std::fs::write(&card_path, card)
        .with_context(|| format!("failed to write model card {}", card_path.display()))?;
    eprintln!(
        "train-triage: wrote {} ({} bytes) and {}",
        args.out.display(),
        json.len(),
        card_path.display()
    );
    let cv = cv_scores.map_or_else(
        || "cross-validation not run".to_string(),
        |s| {
            format!(
                "cross-validation intent macro-F1 {:.3}, emergency recall {:.3}",
                s.intent_macro_f1, s.emergency_recall
            )
        },
    );
    eprintln!(
        "train-triage: test intent macro-F1 {:.3}, emergency recall {:.3}; {cv}",
        test_scores.intent_macro_f1, test_scores.emergency_recall
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::score::Labels;

    fn labels(intent: &str) -> Labels {
        Labels {
            language: "en".into(),
            intent: intent.into(),
            category: None,
            urgency: "none".into(),
            needs_human: false,
            unit: None,
            pii: Vec::new(),
        }
    }

    fn triage_of(labels: &Labels) -> Triage {
        Triage {
            language: labels.language.clone(),
            intent: labels.intent.clone(),
            category: labels.category.clone(),
            urgency: labels.urgency.clone(),
            needs_human: labels.needs_human,
            unit: None,
            pii: Vec::new(),
            confidence: 0.9,
            explanation: Value::Null,
        }
    }

    #[test]
    fn cv_errors_lists_only_disagreements() {
        let records: Vec<Record> = ["booking", "lease", "rent_payment"]
            .iter()
            .enumerate()
            .map(|(i, intent)| Record {
                id: format!("r-{i}"),
                split: Some("train".into()),
                text: format!("message {i}"),
                labels: labels(intent),
            })
            .collect();
        let refs: Vec<&Record> = records.iter().collect();
        let mut predictions: Vec<Triage> = records.iter().map(|r| triage_of(&r.labels)).collect();
        predictions[1].intent = "general_question".into();
        predictions[2].needs_human = true;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        assert_eq!(
            write_cv_errors(file, &path, &refs, &predictions).unwrap(),
            2
        );
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["id"], "r-1");
        assert_eq!(lines[0]["labels"]["intent"], "lease");
        assert_eq!(lines[0]["predicted"]["intent"], "general_question");
        assert_eq!(lines[1]["id"], "r-2");
        assert_eq!(lines[1]["predicted"]["needs_human"], true);
    }
}
