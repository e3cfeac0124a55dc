//! The labelled corpus format and the quality figures of triage: intent macro-F1, emergency
//! recall and precision, `needs_human` recall, exact unit and exact personal-data kinds.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Triage;

/// The labels of one message, as in the label schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub language: String,
    pub intent: String,
    pub category: Option<String>,
    pub urgency: String,
    pub needs_human: bool,
    pub unit: Option<String>,
    pub pii: Vec<String>,
}

/// One labelled message of the corpus or of an example set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// `train` or `test`; example sets have none.
    #[serde(default)]
    pub split: Option<String>,
    pub text: String,
    pub labels: Labels,
}

/// A line of a JSON-lines file that did not parse: its line number and the error.
pub type SkippedLine = (usize, String);

/// Reads a JSON-lines file of labelled records. Lines that do not parse are skipped and
/// returned as `(line number, error)`.
pub fn read_records(path: &Path) -> std::io::Result<(Vec<Record>, Vec<SkippedLine>)> {
    let content = std::fs::read_to_string(path)?;
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            Err(e) => bad.push((n + 1, e.to_string())),
        }
    }
    Ok((records, bad))
}

/// Normalises a unit for comparison the way the label schema does: case, spaces,
/// punctuation and filler words ("flat", "lejlighed", "sal", …) are ignored.
pub fn normalise_unit(unit: Option<&str>) -> Option<String> {
    const FILLER: &[&str] = &[
        "flat",
        "apt",
        "apartment",
        "unit",
        "lejlighed",
        "lejl",
        "lejlighedsnr",
        "nr",
        "no",
        "number",
        "sal",
        "floor",
    ];
    let lower = unit?.to_lowercase();
    let lower = lower
        .replace("til venstre", "tv")
        .replace("til højre", "th")
        .replace("til hoejre", "th");
    let mut out = String::new();
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || FILLER.contains(&word) {
            continue;
        }
        out.push_str(if word == "stuen" { "st" } else { word });
    }
    (!out.is_empty()).then_some(out)
}

/// Quality figures over a set of messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub n: usize,
    pub intent_macro_f1: f64,
    pub intent_accuracy: f64,
    pub category_accuracy: f64,
    pub urgency_accuracy: f64,
    pub language_accuracy: f64,
    pub emergency_recall: f64,
    pub emergency_precision: f64,
    pub needs_human_recall: f64,
    pub needs_human_precision: f64,
    pub unit_exact: f64,
    pub pii_exact: f64,
}

/// The intents of the label schema.
pub const INTENTS: &[&str] = &[
    "maintenance_request",
    "rent_payment",
    "lease",
    "complaint",
    "booking",
    "general_question",
    "status_followup",
    "emergency",
];

/// Scores `predictions` against the `gold` labels of the same messages, in the same order.
pub fn score(gold: &[&Labels], predictions: &[&Triage]) -> Scores {
    let n = gold.len().min(predictions.len());
    if n == 0 {
        return Scores::default();
    }
    let rate = |hits: usize, total: usize| {
        if total == 0 {
            1.0
        } else {
            hits as f64 / total as f64
        }
    };
    let pairs = || gold.iter().zip(predictions.iter()).take(n);

    let mut f1_sum = 0.0;
    let mut classes = 0;
    for class in INTENTS {
        let tp = pairs()
            .filter(|(g, p)| g.intent == *class && p.intent == *class)
            .count();
        let fp = pairs()
            .filter(|(g, p)| g.intent != *class && p.intent == *class)
            .count();
        let fn_ = pairs()
            .filter(|(g, p)| g.intent == *class && p.intent != *class)
            .count();
        if tp + fp + fn_ == 0 {
            continue;
        }
        classes += 1;
        f1_sum += 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
    }

    let binary = |gold_pos: &dyn Fn(&Labels) -> bool, pred_pos: &dyn Fn(&Triage) -> bool| {
        let tp = pairs().filter(|(g, p)| gold_pos(g) && pred_pos(p)).count();
        let fp = pairs().filter(|(g, p)| !gold_pos(g) && pred_pos(p)).count();
        let fn_ = pairs().filter(|(g, p)| gold_pos(g) && !pred_pos(p)).count();
        (rate(tp, tp + fn_), rate(tp, tp + fp))
    };
    let (emergency_recall, emergency_precision) =
        binary(&|g| g.urgency == "emergency", &|p| p.urgency == "emergency");
    let (needs_human_recall, needs_human_precision) =
        binary(&|g| g.needs_human, &|p| p.needs_human);

    let accuracy = |same: &dyn Fn(&Labels, &Triage) -> bool| {
        rate(pairs().filter(|(g, p)| same(g, p)).count(), n)
    };
    Scores {
        n,
        intent_macro_f1: if classes == 0 {
            0.0
        } else {
            f1_sum / classes as f64
        },
        intent_accuracy: accuracy(&|g, p| g.intent == p.intent),
        category_accuracy: accuracy(&|g, p| g.category == p.category),
        urgency_accuracy: accuracy(&|g, p| g.urgency == p.urgency),
        language_accuracy: accuracy(&|g, p| g.language == p.language),
        emergency_recall,
        emergency_precision,
        needs_human_recall,
        needs_human_precision,
        unit_exact: accuracy(&|g, p| {
            normalise_unit(g.unit.as_deref()) == normalise_unit(p.unit.as_deref())
        }),
        pii_exact: accuracy(&|g, p| {
            g.pii.iter().collect::<BTreeSet<_>>() == p.pii.iter().collect::<BTreeSet<_>>()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_compare_like_the_schema() {
        assert_eq!(normalise_unit(Some("3. th")), normalise_unit(Some("3.th")));
        assert_eq!(normalise_unit(Some("Flat 12")), Some("12".into()));
        assert_eq!(
            normalise_unit(Some("stuen til venstre")),
            Some("sttv".into())
        );
        assert_eq!(normalise_unit(Some("  ")), None);
    }
}
