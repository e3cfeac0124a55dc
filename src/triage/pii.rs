//! Personal data in tenant messages: phone numbers, e-mail addresses, Danish CPR numbers, bank
//! accounts (IBAN and Danish reg./account numbers) and personal names, with their byte spans
//! so that [`redact`] can replace them.

use std::sync::LazyLock;

use regex::Regex;

/// A kind of personal data, named as in the triage label schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PiiKind {
    Phone,
    Email,
    Cpr,
    Iban,
    Name,
}

impl PiiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Phone => "phone",
            PiiKind::Email => "email",
            PiiKind::Cpr => "cpr",
            PiiKind::Iban => "iban",
            PiiKind::Name => "name",
        }
    }
}

/// One piece of personal data found in a message, as a byte range of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

fn regex(pattern: &str) -> Regex {
    // The patterns are literals of this file, covered by the tests below.
    Regex::new(pattern).expect("PII pattern compiles")
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}\b"));
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){10,30}\b"));
static DK_ACCOUNT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?ix)\breg(?:istrerings)?\.?\s*(?:nr\.?|nummer)?\s*[:.]?\s*[0-9]{4}
          (?:[\s,./-]*(?:og\s+|and\s+)?(?:konto|kto|account)[a-z.]*\s*(?:nr\.?|no\.?|number)?
          \s*[:.]?\s*|\s*[-/\ ]\s*)[0-9][0-9\ ]{5,12}[0-9]",
    )
});
static ACCOUNT_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?ix)\b(?:konto|kto|account)[a-z.]*\s*(?:nr\.?|no\.?|number|nummer)?\s*[:.]?\s*
          [0-9]{4}[\ -]?[0-9]{4,10}\b",
    )
});
static CPR: LazyLock<Regex> = LazyLock::new(|| regex(r"\b([0-9]{6})[ -]?([0-9]{4})\b"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?x)
        (?:\+|\b00)[0-9]{2}[\s.-]?(?:\(0\)\s?)?[0-9](?:[\s.-]?[0-9]){6,11}\b
        | \b0[0-9]{4}[\s.-]?[0-9]{3}[\s.-]?[0-9]{3}\b
        | \b[0-9]{2}[\s.-]?[0-9]{2}[\s.-]?[0-9]{2}[\s.-]?[0-9]{2}\b",
    )
});
static CASE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"(?i)(?:sag|sags|case|ticket|ref|reference|order|ordre|faktura|invoice|",
        r"kunde)[a-z.]*\s*(?:nr|no|number|nummer)?\.?\s*[:#]?\s*$"
    ))
});

/// Finds the personal data in `text`, without overlaps, in text order.
pub fn find(text: &str) -> Vec<PiiMatch> {
    let mut found: Vec<PiiMatch> = Vec::new();
    let push = |found: &mut Vec<PiiMatch>, kind, start, end| {
        if !found
            .iter()
            .any(|m: &PiiMatch| start < m.end && m.start < end)
        {
            found.push(PiiMatch { kind, start, end });
        }
    };

    for m in EMAIL.find_iter(text) {
        push(&mut found, PiiKind::Email, m.start(), m.end());
    }
    for m in IBAN.find_iter(text) {
        if iban_checksum_ok(m.as_str()) {
            push(&mut found, PiiKind::Iban, m.start(), m.end());
        }
    }
    for m in DK_ACCOUNT
        .find_iter(text)
        .chain(ACCOUNT_NUMBER.find_iter(text))
    {
        push(&mut found, PiiKind::Iban, m.start(), m.end());
    }
    for caps in CPR.captures_iter(text) {
        let whole = caps.get(0).map_or(0..0, |m| m.range());
        if cpr_date_valid(&caps[1], &caps[2]) && !is_case_number(text, whole.start) {
            push(&mut found, PiiKind::Cpr, whole.start, whole.end);
        }
    }
    for m in PHONE.find_iter(text) {
        if !is_case_number(text, m.start()) && !part_of_longer_number(text, m.start(), m.end()) {
            push(&mut found, PiiKind::Phone, m.start(), m.end());
        }
    }
    for (start, end) in super::names::find(text) {
        push(&mut found, PiiKind::Name, start, end);
    }
    found.sort_by_key(|m| m.start);
    found
}

/// Returns the kinds of personal data in `text`, each once, in schema order.
pub fn kinds(matches: &[PiiMatch]) -> Vec<PiiKind> {
    let mut kinds: Vec<PiiKind> = matches.iter().map(|m| m.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// Replaces every piece of personal data in `text` with its kind in brackets, such as
/// `[PHONE]`, so that the message can go to logs and to the central office.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in find(text) {
        out.push_str(&text[at..m.start]);
        out.push('[');
        out.push_str(&m.kind.as_str().to_ascii_uppercase());
        out.push(']');
        at = m.end;
    }
    out.push_str(&text[at..]);
    out
}

fn is_case_number(text: &str, start: usize) -> bool {
    let before = &text[text.floor_char_boundary(start.saturating_sub(24))..start];
    CASE_CUE.is_match(before)
}

fn part_of_longer_number(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    // "2. tv" and prices such as "1.250,00" sit next to punctuation and digits; a phone
    // number is never glued to another digit.
    matches!(before, Some(c) if c.is_ascii_digit() || c == ',')
        || matches!(after, Some(c) if c.is_ascii_digit())
        || text[end..].starts_with(",0")
        || text[end..].starts_with(" kr")
        || text[end..].starts_with(" DKK")
}

/// Checks the date of a CPR number: `ddmmyy`, with the century from the first digit of the
/// serial number as the CPR register assigns it.
pub fn cpr_date_valid(date: &str, serial: &str) -> bool {
    let digits: Vec<u32> = date.chars().filter_map(|c| c.to_digit(10)).collect();
    let Some(first_serial) = serial.chars().next().and_then(|c| c.to_digit(10)) else {
        return false;
    };
    if digits.len() != 6 {
        return false;
    }
    let day = digits[0] * 10 + digits[1];
    let month = digits[2] * 10 + digits[3];
    let yy = digits[4] * 10 + digits[5];
    let century = match first_serial {
        0..=3 => 1900,
        4 | 9 if yy <= 36 => 2000,
        4 | 9 => 1900,
        5..=8 if yy <= 57 => 2000,
        _ => 1800,
    };
    let year = century + yy;
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// Checks an IBAN's ISO 13616 check digits (mod 97 of the rearranged number equals 1).
fn iban_checksum_ok(candidate: &str) -> bool {
    let compact: Vec<char> = candidate.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder: u32 = 0;
    for c in rearranged {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_of(text: &str) -> Vec<&'static str> {
        kinds(&find(text))
            .into_iter()
            .map(PiiKind::as_str)
            .collect()
    }

    #[test]
    fn finds_each_kind() {
        let cases: &[(&str, &[&str])] = &[
            ("Ring på +45 20 40 60 80 efter kl. 16", &["phone"]),
            ("call me on 07700 900123 please", &["phone"]),
            ("mit nummer er 22334455", &["phone"]),
            ("skriv til lise.holm@example.com", &["email"]),
            ("mit cpr er 010190-1234", &["cpr"]),
            ("CPR 2902004234 til ansøgningen", &["cpr"]),
            ("IBAN DK50 0040 0440 1162 43", &["iban"]),
            ("GB82 WEST 1234 5698 7654 32 is my account", &["iban"]),
            ("reg. nr. 1234 kontonr. 0012345678", &["iban"]),
            ("The tap drips in 2. tv, case 4471", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(kinds_of(text), *expected, "text: {text}");
        }
    }

    #[test]
    fn cpr_with_invalid_date_is_rejected() {
        assert!(kinds_of("cpr 310290-1234").is_empty(), "31 February");
        assert!(kinds_of("cpr 011390-1234").is_empty(), "month 13");
        assert!(
            !cpr_date_valid("290200", "1234"),
            "1900 was not a leap year"
        );
        assert!(cpr_date_valid("290200", "4234"), "2000 was a leap year");
    }

    #[test]
    fn case_numbers_and_prices_are_not_phones() {
        assert!(kinds_of("sagsnr. 20231187 er stadig åben").is_empty());
        assert!(kinds_of("I paid 12.450,00 kr on Monday").is_empty());
    }

    #[test]
    fn redact_replaces_spans() {
        let text = "Mail anna@example.com or call +45 11 22 33 44.";
        assert_eq!(redact(text), "Mail [EMAIL] or call [PHONE].");
    }
}
