//! Text normalisation and hashed n-gram features shared by training and classification.
//!
//! Messages are lowercased and folded to ASCII so that "køkken", "koekken" and "kokken" share
//! most of their character n-grams: æ, ø and å become "ae", "oe" and "aa", and accents are
//! dropped. Features are word unigrams, word bigrams, character 3- to 5-grams of each padded
//! word and the question mark, hashed with 64-bit FNV-1a into `2^HASH_BITS` buckets.

/// Number of hash bits; buckets are `0..1 << HASH_BITS`.
pub const HASH_BITS: u32 = 20;
/// Shortest and longest character n-gram, in characters of the padded word.
pub const CHAR_NGRAM_MIN: usize = 3;
pub const CHAR_NGRAM_MAX: usize = 5;

/// Lowercases `text` and folds Danish letters and accents to ASCII. Characters that are not
/// letters or digits become spaces, and every run of digits becomes a single `0`, because
/// numbers (units, dates, amounts) carry little
/// information about intent.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_digit = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('0');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        match fold_char(c) {
            Some(folded) => out.push_str(folded),
            None if c.is_alphabetic() => out.push(c),
            None => out.push(' '),
        }
    }
    out
}

/// Folds a lowercase letter to ASCII, or returns `None` when it is not a letter to fold.
pub fn fold_char(c: char) -> Option<&'static str> {
    let folded = match c {
        'a'..='z' => return None,
        'æ' | 'ä' => "ae",
        'ø' | 'ö' => "oe",
        'å' => "aa",
        'ü' => "ue",
        'à' | 'á' | 'â' | 'ã' => "a",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ò' | 'ó' | 'ô' | 'õ' => "o",
        'ù' | 'ú' | 'û' => "u",
        'ç' => "c",
        'ñ' => "n",
        'ß' => "ss",
        '\'' | '’' => "",
        _ => return None,
    };
    Some(folded)
}

/// Splits normalised text into its words.
pub fn words(normalised: &str) -> impl Iterator<Item = &str> {
    normalised.split_whitespace()
}

/// FNV-1a, 64 bits: stable across platforms and Rust versions, unlike `DefaultHasher`, so a
/// model trained on one machine hashes the same way on the gateway.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn bucket(hash: u64) -> u32 {
    (hash & ((1u64 << HASH_BITS) - 1)) as u32
}

/// One feature of a message: its hash bucket, its weight and, for explanations, its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub bucket: u32,
    pub value: f32,
    pub name: String,
}

/// Weight of a word or word-bigram occurrence, against 1 for a character n-gram. A word has
/// about a dozen character n-grams, so without this the words themselves would carry little
/// of the vector's norm.
pub const WORD_WEIGHT: f32 = 2.0;

/// Extracts the hashed features of `text`. Values are `weight × (1 + ln(count))`, scaled so
/// that the vector has unit L2 norm, which keeps long e-mails and one-line SMS on the same
/// scale.
pub fn features(text: &str) -> Vec<Feature> {
    let normalised = normalise(text);
    let tokens: Vec<&str> = words(&normalised).collect();
    // Per bucket: occurrences, the weight of the feature kind and a name for explanations.
    let mut counts: std::collections::HashMap<u32, (f32, f32, String)> =
        std::collections::HashMap::new();
    let mut add = |hash: u64, weight: f32, name: &dyn Fn() -> String| {
        let entry = counts
            .entry(bucket(hash))
            .or_insert_with(|| (0.0, weight, name()));
        entry.0 += 1.0;
        entry.1 = entry.1.max(weight);
    };

    // The normalised text has no punctuation, so the question mark, a cue of a question rather
    // than a fault report, is a feature of its own.
    for _ in text.matches('?') {
        add(fnv1a(&[b"p:?"]), WORD_WEIGHT, &|| {
            "question mark".to_string()
        });
    }
    for token in &tokens {
        add(fnv1a(&[b"w:", token.as_bytes()]), WORD_WEIGHT, &|| {
            format!("word '{token}'")
        });
    }
    for pair in tokens.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        add(
            fnv1a(&[b"b:", first.as_bytes(), b" ", second.as_bytes()]),
            WORD_WEIGHT,
            &|| format!("words '{first} {second}'"),
        );
    }
    for token in &tokens {
        let padded: Vec<char> = std::iter::once('<')
            .chain(token.chars())
            .chain(std::iter::once('>'))
            .collect();
        for n in CHAR_NGRAM_MIN..=CHAR_NGRAM_MAX {
            for window in padded.windows(n) {
                let gram: String = window.iter().collect();
                add(fnv1a(&[b"c:", gram.as_bytes()]), 1.0, &|| {
                    format!("chars '{gram}'")
                });
            }
        }
    }

    let mut out: Vec<Feature> = counts
        .into_iter()
        .map(|(bucket, (count, weight, name))| Feature {
            bucket,
            value: weight * (1.0 + count.ln()),
            name,
        })
        .collect();
    // The map's order changes from run to run, and so would the rounding of the norm. In bucket
    // order, the same text always gives the same values, so training gives the same model.
    out.sort_unstable_by_key(|f| f.bucket);
    let norm = out.iter().map(|f| f.value * f.value).sum::<f32>().sqrt();
    if norm > 0.0 {
        for feature in &mut out {
            feature.value /= norm;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_folds_danish_letters() {
        assert_eq!(
            normalise("Køkken-vasken ÅBNER ikke!"),
            "koekken vasken aabner ikke "
        );
        assert_eq!(normalise("café 2. tv 1234"), "cafe 0  tv 0");
    }

    #[test]
    fn folded_spellings_share_features() {
        let with = features("køkken");
        let without = features("koekken");
        let shared = with
            .iter()
            .filter(|a| without.iter().any(|b| b.bucket == a.bucket));
        assert_eq!(shared.count(), with.len());
    }

    #[test]
    fn same_text_gives_same_bits() {
        let text = "Hej, radiatoren i stuen er kold igen og vandet drypper fra loftet i badet. \
                    The heating has been off since Monday, please send someone.";
        let first = features(text);
        for _ in 0..20 {
            let again = features(text);
            assert_eq!(again.len(), first.len());
            for (a, b) in first.iter().zip(&again) {
                assert_eq!(a.bucket, b.bucket);
                assert_eq!(a.value.to_bits(), b.value.to_bits(), "{}", a.name);
            }
        }
    }

    #[test]
    fn question_mark_is_a_feature() {
        let has_mark = |text: &str| features(text).iter().any(|f| f.name == "question mark");
        assert!(has_mark("When is the office open?"));
        assert!(!has_mark("The office is open"));
    }

    #[test]
    fn words_weigh_more_than_character_ngrams() {
        let all = features("tap");
        let word = all.iter().find(|f| f.name == "word 'tap'").unwrap();
        let gram = all.iter().find(|f| f.name == "chars '<ta'").unwrap();
        assert!((word.value / gram.value - WORD_WEIGHT).abs() < 1e-4);
    }

    #[test]
    fn features_have_unit_norm() {
        let norm: f32 = features("the tap drips, the tap drips")
            .iter()
            .map(|f| f.value.powi(2))
            .sum();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert!(features("").is_empty());
    }
}
