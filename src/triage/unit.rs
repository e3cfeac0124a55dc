//! The sender's flat in a tenant message: Danish floor and side notation ("2. tv", "st. th",
//! "K.tv", "3. sal til venstre") and English flat numbers ("flat 12", "apt 4B", "unit 7").
//!
//! A match is dropped when the words just before it place it at someone else's flat (a
//! neighbour, the flat above) or make it a case number. A floor on its own, a staircase or a
//! street address never match, because every pattern needs a side or a flat word.

use std::sync::LazyLock;

use regex::Regex;

static DANISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        (?:^|[^\p{L}0-9])
        (
          (?:[0-9]{1,2}\s*\.?|st\.?|stuen|kl\.?|kælder|k\.?)
          \s*(?:sal\s*\.?\s*)?,?\s*
          (?:tv|th|mf|til\ venstre|til\ højre|til\ hoejre)\b\.?
        )",
    )
    .expect("unit pattern compiles")
});

static ENGLISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \b(
          (?:flat|apt\.?|apartment|unit|lejlighed|lejl\.?|lejlighedsnr\.?)
          \s*(?:nr\.?|no\.?|number|\#)?\s*
          [0-9]{1,4}[a-z]?
        )\b",
    )
    .expect("unit pattern compiles")
});

/// A flat code such as "4B" or "12C" standing on its own after "in", "i" or at a sign-off.
static BARE_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\b(?:in|i|bor i|live in|from|fra)\s+|^|\n|,\s*)([0-9]{1,3}[A-H])\b")
        .expect("unit pattern compiles")
});

static NEIGHBOUR_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)(?:
          neighbo|nabo|overbo|underbo|genbo|above|below|upstairs|downstairs|next\ door|
          ovenpå|ovenpaa|nedenunder|under\ mig|over\ mig|ved\ siden\ af|across|overfor|
          the\ people\ in|the\ tenant\ in|the\ family\ in|those\ in|dem\ i|folkene\ i|
          familien\ i|beboeren\ i|lejeren\ i|manden\ i|kvinden\ i|damen\ i|from\ flat|
          fra\ lejlighed|man\ in|woman\ in|guy\ in|lady\ in|people\ in|kids\ in|børnene\ i
        )[^.!?\n]{0,25}$",
    )
    .expect("cue pattern compiles")
});

static SELF_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)(?:\bmy|\bour|\bi\ live|\bwe\ live|\bjeg\ bor|\bvi\ bor|\bmin|\bvores|\bmit|
          \bmother|\bfather|\bmum|\bmom|\bdad|\bmor|\bfar|\bmormor|\bfarmor|\bparents|\bforældre)
          [^.!?\n]{0,25}$",
    )
    .expect("cue pattern compiles")
});

static CASE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:sag|sags|case|ticket|ref|opgang|staircase|entrance|parking|",
        r"p-plads|depot|storage|kælderrum|room|rum|bus|linje)[a-z.]*\s*(?:nr\.?|",
        r"no\.?|number|\#)?\s*$"
    ))
    .expect("cue pattern compiles")
});

/// Returns the sender's unit as written in `text`, or `None`.
pub fn extract(text: &str) -> Option<String> {
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    for caps in DANISH.captures_iter(text) {
        if let Some(m) = caps.get(1) {
            candidates.push((m.start(), m.end()));
        }
    }
    for caps in ENGLISH.captures_iter(text) {
        if let Some(m) = caps.get(1) {
            candidates.push((m.start(), m.end()));
        }
    }
    if candidates.is_empty() {
        for caps in BARE_CODE.captures_iter(text) {
            if let Some(m) = caps.get(1) {
                candidates.push((m.start(), m.end()));
            }
        }
    }
    candidates.sort();

    let mut fallback = None;
    for (start, end) in candidates {
        let before = &text[text.floor_char_boundary(start.saturating_sub(60))..start];
        if CASE_CUE.is_match(before) {
            continue;
        }
        let unit = text[start..end].trim().trim_end_matches(',').to_string();
        let neighbour = NEIGHBOUR_CUE.find(before);
        let own = SELF_CUE.find(before);
        match (neighbour, own) {
            // The nearer cue decides: "our neighbour in 3. th" is a neighbour's flat, "the
            // noise from above reaches my flat 2. th" is the sender's.
            (Some(n), Some(o)) if o.start() > n.start() => return Some(unit),
            (Some(_), _) => continue,
            (None, Some(_)) => return Some(unit),
            (None, None) => {
                if fallback.is_none() {
                    fallback = Some(unit);
                }
            }
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_danish_and_english_units() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Vasken er stoppet. 2. tv", Some("2. tv")),
            ("bor i st. th og toilettet løber", Some("st. th")),
            ("kælderlejligheden K.tv har fugt", Some("K.tv")),
            (
                "Nørregade 14, 3. sal til venstre",
                Some("3. sal til venstre"),
            ),
            ("the oven is dead, flat 12", Some("flat 12")),
            ("Apt 4B: no hot water", Some("Apt 4B")),
            ("We live in 4B and the fridge is off", Some("4B")),
        ];
        for (text, expected) in cases {
            assert_eq!(extract(text).as_deref(), *expected, "text: {text}");
        }
    }

    #[test]
    fn skips_neighbours_floors_and_cases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Naboen i 3. th spiller høj musik hver nat", None),
            (
                "The neighbour in flat 7 is loud. I live in flat 5",
                Some("flat 5"),
            ),
            ("Lyset på 2. sal i opgang B er gået", None),
            ("Nørregade 12, 2100 København", None),
            ("What happened to case 4471?", None),
            (
                "water from the flat above, 3. th, comes into my bathroom in 2. th",
                Some("2. th"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(extract(text).as_deref(), *expected, "text: {text}");
        }
    }
}
