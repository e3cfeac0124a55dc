//! Hand-written rules of triage. They cover the emergency lexicon with negation and
//! hypothetical handling, the triggers that hand a message to a human, and cues of urgent
//! repairs. Cues of practical questions that sound like repairs and the word lists that decide
//! the language are here too, and the test for a message that contains no request at all.
//!
//! Every rule runs on clauses of the normalised text (see [`super::text::normalise`]), so
//! "røg", "roeg" and "ROEG" are the same word and digits are all `0`.

mod courtesy;
mod emergency;
mod handover;
mod intent;
mod language;
mod urgency;

use std::sync::LazyLock;

use regex::Regex;

use super::text;

pub use courtesy::no_request;
pub use emergency::{
    denies_emergency, emergencies, heating_outage_without_vulnerable_person, Dismissed, Emergency,
};
pub use handover::handover;
pub use intent::{followup_cues, practical_question_cues, repair_followup_cues, request_parts};
pub use language::language_votes;
pub use urgency::urgent_cues;

/// A rule that fired, for the explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub rule: &'static str,
    /// The words of the message that matched.
    pub matched: String,
}

/// Compiles a pattern for normalised text, with ASCII `\b`, `\w`, `\d` and `\s`. The text is
/// folded to ASCII before the rules see it, and the Unicode versions of these classes made the
/// compiled rules take about 30 MiB of heap.
fn regex(pattern: &str) -> Regex {
    // Every pattern is a literal of this module; the unit tests compile each one.
    regex::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .expect("rule pattern compiles")
}

/// Compiles a pattern for the original text of a message, with Unicode classes.
fn unicode_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("rule pattern compiles")
}

/// Splits `text` into clauses at sentence ends, line breaks and "but"/"men", and normalises
/// each one.
pub fn clauses(text: &str) -> Vec<String> {
    static SPLIT: LazyLock<Regex> =
        LazyLock::new(|| regex(r"[.!?;:\n]+\s|[!?;\n]+|\s(?i:but|men)\s"));
    static ABBREVIATION: LazyLock<Regex> = LazyLock::new(|| {
        regex(r"(?i)(\d|\b(?:st|kl|k|nr|ca|bl\.a|f\.eks|mr|mrs|ms|dr|tlf|reg))\.\s")
    });
    let text = ABBREVIATION.replace_all(text, "$1 ");
    SPLIT
        .split(&text)
        .map(|clause| {
            let normalised = text::normalise(clause);
            text::words(&normalised).collect::<Vec<_>>().join(" ")
        })
        .filter(|clause| !clause.is_empty())
        .collect()
}

/// Returns the rules of `table` whose pattern matches a clause of `text`, each with the words
/// that matched.
fn find_cues(table: &[(&'static str, Regex)], text: &str) -> Vec<Fired> {
    let normalised = clauses(text).join(" . ");
    table
        .iter()
        .filter_map(|(rule, pattern)| {
            pattern.find(&normalised).map(|m| Fired {
                rule,
                matched: m.as_str().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_pattern_compiles() {
        // Forces each lazily built table, so that an invalid pattern fails here and not on the
        // first message that reaches it.
        let text = "Det lugter af gas. The lift is stuck with me inside. No hot water, flat 2";
        let _ = emergencies(text, "da");
        let _ = emergencies(text, "en");
        let _ = handover(text);
        let _ = urgent_cues(text);
        let _ = practical_question_cues("Is it OK to keep a bike here?");
        let _ = followup_cues("Has my notice been received?");
        let _ = repair_followup_cues("Third time I write about the tap.");
        let _ = language_votes(text);
        let _ = no_request(text);
        assert!(!clauses(text).is_empty());
    }

    #[test]
    fn clauses_keep_floor_notation_together() {
        let parts = clauses("Vand fra 4. tv løber ned. Hjælp!");
        assert_eq!(parts, vec!["vand fra 0 tv loeber ned", "hjaelp"]);
    }
}
