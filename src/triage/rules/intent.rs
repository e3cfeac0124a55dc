//! Cues of a practical question that only sounds like a repair: the sender writes that nothing
//! is broken, asks whether something is allowed, how to do something or whom to call if a thing
//! breaks, or asks when planned works will happen.

use std::sync::LazyLock;

use regex::Regex;

use super::{clauses, regex, Fired};

static QUESTION_CUES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let q = |rule, pattern: &str| (rule, regex(pattern));
    vec![
        q(
            "nothing is broken",
            concat!(
                r"\b(?:(?:it s|its|it is|is|er) not broken|not broken|nothing is broken|",
                r"nothing s wrong|nothing wrong with|works fine|working fine|works now|",
                r"everything works|all works|virker fint|virker godt|alt virker|",
                r"(?:er|det er) ikke i stykker|ikke noget i vejen|intet i vejen|",
                r"fejler ikke noget|der er ikke noget galt|ingenting i vejen|nothing broken)\b"
            ),
        ),
        q(
            "asks whether something is allowed",
            concat!(
                r"\b(?:is it (?:ok|okay|allowed|legal|permitted|fine) (?:to|if)|",
                r"are (?:\w+ ){1,3}allowed|am i allowed|are we allowed|may i|may we|",
                r"can i keep|can we keep|maa (?:jeg|man|vi) (?:gerne )?(?:selv|have|",
                r"holde|bruge|saette|male|skifte|opbevare|stille)|er det (?:tilladt|",
                r"lovligt|ok|okay|i orden) at|hvilke dage maa|maa (?:alle|beboerne|lejerne) ",
                r"(?:\w+ )?bruge|can i (?:\w+ ){1,6}myself|kan jeg (?:\w+ ){1,6}selv)\b"
            ),
        ),
        q(
            "asks about planned works",
            concat!(
                r"\b(?:planned (?:work|works|renovation|maintenance)|planlagt\w* ",
                r"(?:arbejde\w*|renovering\w*|vedligehold\w*)|when will (?:\w+ ){0,4}",
                r"(?:be renovated|happen|start)|(?:painting|renovation|work|works) ",
                r"(?:\w+ ){0,2}planned|when (?:is|are) (?:\w+ ){1,4}(?:cleaned|painted) next|",
                r"hvornaar (?:\w+ ){0,4}(?:renoveret|",
                r"starter|begynder))\b"
            ),
        ),
        q(
            "asks how to do something",
            concat!(
                r"\b(?:how (?:do|can|should) (?:i|we|you|one) (?:\w+ ){0,2}",
                r"(?:use|set|switch|turn|change|adjust|reset|clean|open|close|sort|get rid of)|",
                r"who (?:do|should|can) (?:i|we) (?:call|contact|ring) if|",
                r"hvordan (?:goer|kan|skal|faar) (?:jeg|vi|man) (?:\w+ ){0,2}",
                r"(?:bruge|indstille|stille|skrue|taende|slukke|skifte|nulstille|rense|",
                r"aabne|lukke|sortere|slippe af med)|",
                r"hvem (?:skal|kan) (?:jeg|vi|man) (?:ringe til|kontakte|henvende \w+ til) hvis)\b"
            ),
        ),
    ]
});

/// Finds the cues of a practical question in `text`. A message with a cue and a question mark
/// requests information, so the classifier may read it as a general question.
pub fn practical_question_cues(text: &str) -> Vec<Fired> {
    if !text.contains('?') {
        return Vec::new();
    }
    let normalised = clauses(text).join(" . ");
    QUESTION_CUES
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
    fn practical_questions_have_cues() {
        let cases = [
            "How do I set the thermostat? It is not broken, I just don't get it.",
            "Må jeg selv skifte lampen i gangen?",
            "Is it OK to keep a bike on the balcony?",
            "When will the planned work on the roof start?",
            "Er det tilladt at sætte en hylde op i opgangen?",
            "Der er ingenting i vejen med ovnen, men hvordan renser jeg glasset?",
            "Må alle beboere bruge fælleshaven om aftenen?",
            "Can I paint the hallway of my flat myself?",
            "Kan jeg skifte elmåleren selv, eller skal I gøre det?",
            "When is the facade painting planned?",
            "When are the basement windows cleaned next?",
            "How do I switch the ventilation to a higher setting?",
            "Hvordan skal jeg indstille gulvvarmen om vinteren?",
            "Who do I call if the lift stops at night?",
            "Hvem skal vi ringe til hvis elevatoren går i stå?",
        ];
        for text in cases {
            assert!(
                !practical_question_cues(text).is_empty(),
                "no cue in: {text}"
            );
        }
    }

    #[test]
    fn repair_requests_have_no_cues() {
        let cases = [
            "The kitchen tap drips, can you send someone?",
            "Radiatoren er kold. Kan I komme i morgen?",
            "How do I get someone to fix the tap? It drips all night.",
            // A cue without a question is a statement, as in a repair report.
            "The light works fine but the socket is dead.",
        ];
        for text in cases {
            assert!(practical_question_cues(text).is_empty(), "cue in: {text}");
        }
    }
}
