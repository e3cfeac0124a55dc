//! The built-in triage model on the test split of the project's corpus, against the floors
//! recorded in the `## Triage` section of BENCHMARKS.md. Raise a floor there and here together.

use std::path::Path;

use caretaker::triage::score::{self, Record};
use caretaker::triage::train::load_corpus;
use caretaker::triage::{Classifier, Triage};

/// Floors of the test split: each a little under the figure the benchmark measured, so that
/// only a real regression fails.
const FLOORS: &[(&str, f64)] = &[
    ("intent_macro_f1", 0.88),
    ("emergency_recall", 0.98),
    ("emergency_precision", 0.93),
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

#[test]
fn builtin_model_is_small() {
    let bytes = caretaker::triage::BUILTIN_MODEL_JSON.len();
    assert!(
        bytes < 10 * 1024 * 1024,
        "built-in model is {bytes} bytes, over 10 MiB"
    );
}
