//! The built-in triage model on the test split of the project's corpus, against the floors
//! recorded in the `## Triage` section of BENCHMARKS.md. Raise a floor there and here together.

use std::path::Path;

use caretaker::triage::score::{self, Record, INTENTS};
use caretaker::triage::train::load_corpus;
use caretaker::triage::{Classifier, Triage, CATEGORIES};

/// Floors of the test split: each a little under the figure the benchmark measured, so that
/// only a real regression fails.
const FLOORS: &[(&str, f64)] = &[
    ("intent_macro_f1", 0.945),
    ("emergency_recall", 0.98),
    ("emergency_precision", 0.95),
    ("needs_human_recall", 0.97),
    ("unit_exact", 0.93),
    ("pii_exact", 0.95),
];

#[test]
fn corpus_test_split_meets_floors() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/triage");
    let records = load_corpus(&corpus).expect("the triage corpus is part of the repository");
    let test: Vec<&Record> = records
        .iter()
        .filter(|r| r.split.as_deref() == Some("test"))
        .collect();
    assert!(
        test.len() >= 100,
        "only {} test messages in {}",
        test.len(),
        corpus.display()
    );

    let classifier = Classifier::builtin().expect("built-in model loads");
    let predictions: Vec<Triage> = test.iter().map(|r| classifier.classify(&r.text)).collect();
    let gold: Vec<_> = test.iter().map(|r| &r.labels).collect();
    let refs: Vec<&Triage> = predictions.iter().collect();
    let scores = score::score(&gold, &refs);

    let figures = serde_json::to_value(&scores).expect("scores serialise");
    for (name, floor) in FLOORS {
        let value = figures[name].as_f64().unwrap_or(f64::NAN);
        assert!(
            value >= *floor,
            "{name} is {value:.3} on {} messages, below the floor {floor}",
            scores.n
        );
    }
}

/// Every record of the corpus follows the label schema: known values, a unique id, an
/// emergency intent exactly with emergency urgency, a category only on repairs and emergencies,
/// and no urgency on intents that need no work.
#[test]
fn corpus_labels_follow_the_schema() {
    const URGENCIES: &[&str] = &["emergency", "urgent", "routine", "none"];
    const PII: &[&str] = &["phone", "email", "cpr", "iban", "name"];

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/triage");
    let records = load_corpus(&corpus).expect("the triage corpus is part of the repository");
    let mut ids = std::collections::HashSet::new();
    let mut problems = Vec::new();
    for record in &records {
        let labels = &record.labels;
        let mut check = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("{}: {what}", record.id));
            }
        };
        check(ids.insert(record.id.as_str()), "id used twice");
        check(
            matches!(record.split.as_deref(), Some("train" | "test")),
            "split is not train or test",
        );
        check(!record.text.trim().is_empty(), "empty text");
        check(
            matches!(labels.language.as_str(), "da" | "en"),
            "unknown language",
        );
        check(INTENTS.contains(&labels.intent.as_str()), "unknown intent");
        check(
            URGENCIES.contains(&labels.urgency.as_str()),
            "unknown urgency",
        );
        check(
            (labels.intent == "emergency") == (labels.urgency == "emergency"),
            "intent emergency without urgency emergency, or the reverse",
        );
        check(
            labels.intent != "emergency" || labels.needs_human,
            "emergency without needs_human",
        );
        let repair = matches!(labels.intent.as_str(), "maintenance_request" | "emergency");
        match &labels.category {
            Some(c) => {
                check(repair, "category on an intent that is not a repair");
                check(CATEGORIES.contains(&c.as_str()), "unknown category");
            }
            None => check(!repair, "repair without a category"),
        }
        let no_work = matches!(
            labels.intent.as_str(),
            "rent_payment" | "lease" | "complaint" | "booking" | "general_question"
        );
        check(
            !no_work || labels.urgency == "none",
            "urgency on an intent with no work",
        );
        check(
            labels.pii.iter().all(|k| PII.contains(&k.as_str())),
            "unknown personal-data kind",
        );
    }
    assert!(
        problems.is_empty(),
        "{} corpus records break the label schema:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn builtin_model_is_small() {
    let bytes = caretaker::triage::builtin_model_json().unwrap().len();
    assert!(
        bytes < 10 * 1024 * 1024,
        "built-in model is {bytes} bytes, over 10 MiB"
    );
}
