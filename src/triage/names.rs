//! Personal names in tenant messages: names in greetings and signatures, after "my name is",
//! and first names from a list of common Danish and English given names wherever they appear
//! capitalised in the text.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

/// Common given names in Denmark and in English-speaking countries. Names that are also
/// everyday words ("May", "Will", "Mark", "Rose", "Bill") are left out, because a capitalised
/// word at the start of a sentence would be taken for a name.
const GIVEN_NAMES: &str = "
aage adam agnes ahmed aisha alberte alexander alfred ali alice allan amalie amanda amir
andrea anders andreas ane anette anita ann anna anne annette anton arne asger astrid august
benjamin bente birgit birgitte bjarne bo brian britt camilla carina carl caroline casper
charlotte christian christina christine claus clara daniel david dennis dorte ebbe edith
elin elisabeth ella ellen elsa else emil emilie emily emma erik esben ester eva fatima
frederik freja frida gitte grethe gustav hanne hans hassan heidi helen helle henning henrik
holger ib ida inge inger ingrid irene isabella jacob jakob james jan jane janne jens jeppe
jesper jette jimmy johanne john jonas jonathan jørgen joergen julie jytte kaj karen kari karin
karl kasper katrine kenneth kim kirsten kristian lars laura lea lene lilly lina line linda
lisa lise lisbeth louise lucas lukas mads magnus maja malene marianne marie martin mathias
mette michael michelle mikkel mohammed mohammad morten nanna niels nikolaj nina noah ole
oliver olivia omar oscar oskar ove palle per peter pernille poul preben rasmus rikke rita
robert ruth sanne sara sarah simon sofie sofia sophie steen sten stine susanne svend søren
soeren thomas tina tobias tom tommy tove trine ulla ulrik victor viktor vibeke william yasmin
ahmad alan andrew anthony ben charles chris christopher daniela deborah dylan edward eleanor
elizabeth emma ethan george grace hannah harry helena ian jack james jennifer jessica joe
joseph joshua kate katie kevin laura liam lucy margaret maria mary matthew megan michael
mohamed natalie nathan nicholas olivia patricia paul rachel rebecca richard ryan samuel
sandra sophie stephen steven susan thomas timothy victoria zoe priya raj ana carlos jose
juan luis marta pedro sven ingeborg kirsten leif mogens jonna bodil birthe conny dorthe
";

/// Capitalised words that start or end messages without being names.
const NOT_NAMES: &str = "
hej hi hello dear kaere kære goddag god morgen hey hallo thanks thank tak mvh regards best
kind venlig hilsen hilsner team caretaker office kontoret administrationen viceværten
vicevaert vicevaerten alle everyone sir madam there all ejendomskontoret udlejer
";

static GIVEN: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| GIVEN_NAMES.split_whitespace().collect());
static NOT_NAME: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| NOT_NAMES.split_whitespace().collect());

static CAPITALISED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\p{Lu}[\p{Ll}]+(?:-\p{Lu}[\p{Ll}]+)?\b").expect("compiles"));
static INTRODUCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b(?i:my name is|i am|this is|jeg hedder|mit navn er|det er|name:|",
        r"navn:)\s+(\p{Lu}\p{Ll}+(?:\s+\p{Lu}\p{Ll}+){0,2})"
    ))
    .expect("compiles")
});
static GREETING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^\s*(?:Hej|Hi|Hello|Dear|Kære|Kaere|Goddag|Hey|Hallo)\s+(\p{Lu}\p{Ll}+)\b")
        .expect("compiles")
});
static SIGN_OFF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:mvh\.?|med venlig hilsen|venlig hilsen|vh\.?|hilsen|",
        r"kind regards|best regards|regards|best wishes|best|thanks|thank you|",
        r"cheers|tak|many thanks|mange tak|sincerely|",
        r"yours)[,.!]?\s*\n?\s*-?\s*((?-i:\p{Lu}\p{Ll}+(?:\s+\p{Lu}\.?(?:\p{Ll}+",
        r")?){0,2}))\s*(?:\n|$|,|\+|\()"
    ))
    .expect("compiles")
});
static SURNAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s+(\p{Lu}\p{Ll}+(?:sen|son|strup|gaard|holm|berg|lund|dal)\b)")
        .expect("compiles")
});

/// Finds personal names in `text` as byte ranges.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut add = |start: usize, end: usize| {
        let word = text[start..end].to_lowercase();
        let first = word.split_whitespace().next().unwrap_or("");
        if !NOT_NAME.contains(first) && !spans.iter().any(|&(s, e)| start < e && s < end) {
            spans.push((start, end));
        }
    };
    for caps in GREETING.captures_iter(text) {
        if let Some(m) = caps.get(1) {
            add(m.start(), m.end());
        }
    }
    for caps in INTRODUCTION
        .captures_iter(text)
        .chain(SIGN_OFF.captures_iter(text))
    {
        if let Some(m) = caps.get(1) {
            add(m.start(), m.end());
        }
    }
    for m in CAPITALISED.find_iter(text) {
        let lower = m.as_str().to_lowercase();
        let first = lower.split('-').next().unwrap_or("");
        if GIVEN.contains(first) {
            let mut end = m.end();
            if let Some(surname) = SURNAME.captures(&text[end..]).and_then(|c| c.get(1)) {
                end += surname.end();
            }
            add(m.start(), end);
        }
    }
    spans.sort();
    spans
}

/// Returns true when `word` (any case) is a common given name.
pub fn is_given_name(word: &str) -> bool {
    GIVEN.contains(word.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        find(text).into_iter().map(|(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn finds_names_in_context() {
        assert_eq!(names("Hej Birgitte, vasken drypper"), vec!["Birgitte"]);
        assert_eq!(
            names("The drain is slow.\n\nKind regards,\nTomasz Nowak"),
            vec!["Tomasz Nowak"]
        );
        assert_eq!(
            names("my name is Wojciech and I live in 3B"),
            vec!["Wojciech"]
        );
        assert_eq!(names("Can Henrik call me?"), vec!["Henrik"]);
        assert_eq!(names("Mvh Lars Jensen"), vec!["Lars Jensen"]);
    }

    #[test]
    fn ignores_greetings_and_companies() {
        assert!(names("Hi team, the lift is stuck").is_empty());
        assert!(names("Hej viceværten. Tak!").is_empty());
        assert!(names("Dear Sir or Madam, Kind regards").is_empty());
        assert!(names("Contact Aarhus VVS at anna@example.com").is_empty());
    }
}
