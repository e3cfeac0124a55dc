//! Messages without a request: greetings, thanks and acknowledgements such as "hello",
//! "thank you", "tak for hjælpen" or "ok". The model has to give every message an intent, so
//! on these it guesses, and the classifier sends them to a human instead.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::clauses;

/// Normalised words that carry no request: greetings, thanks, sign-offs, acknowledgements,
/// emphasis and the function words that join them. A message made only of these words, of
/// given names and of digits has no request in it.
const COURTESY_WORDS: &str = "
hej hejsa hi hello hallo hey hiya dear kaere goddag godmorgen morning good god morgen
aften evening afternoon eftermiddag
tak takker thanks thank thx ty tusind mange many much so very meget rigtig really
lot lots nice kind kindly venligst venlig venlige venligt
hilsen hilsner mvh vh regards best kind cheers bye farvel vi ses see you later senere
ok okay oki okey k fint fine fin great super perfekt perfect lovely dejligt dejlig
godt good alright noted modtaget received understood forstaaet got it
ja yes yep yeah jo nej no nope
for the your you you re youre jer dig din jeres hjaelpen help helping hjaelp
med with and og a an all alle i in igen again today idag gaar yesterday
sender sending svar svaret reply answer quick hurtige hurtigt quickly fast
that s thats was it det er var sa saa well
have a en et dag day weekend week uge
";

static COURTESY: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COURTESY_WORDS.split_whitespace().collect());

/// Returns true when `text` contains no request: every word is a greeting, thanks,
/// acknowledgement, given name or number, or there is no word at all.
pub fn has_no_request(text: &str) -> bool {
    let names: HashSet<String> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|word| super::super::names::is_given_name(word))
        .map(super::super::text::normalise)
        .collect();
    clauses(text)
        .iter()
        .flat_map(|clause| clause.split_whitespace())
        .all(|word| word == "0" || COURTESY.contains(word) || names.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn courtesy_messages_have_no_request() {
        let cases = [
            "hello",
            "Thank you!",
            "Tak for hjælpen",
            "tak for hjaelpen :)",
            "ok",
            "Okay, noted. Thanks a lot",
            "Hej Mette, mange tak. Mvh Jens",
            "Mange tak for det hurtige svar",
            "",
            "👍",
            "Have a nice weekend!",
        ];
        for text in cases {
            assert!(has_no_request(text), "request found in: {text}");
        }
    }

    #[test]
    fn messages_with_content_have_a_request() {
        let cases = [
            "Thanks, but the tap still drips",
            "Tak. Hvornår kommer håndværkeren?",
            "ok the heating is off again",
            "Hello, my rent",
            "Hej, vaskemaskinen",
        ];
        for text in cases {
            assert!(!has_no_request(text), "no request found in: {text}");
        }
    }
}
