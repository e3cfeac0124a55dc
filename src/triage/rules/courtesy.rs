//! Messages without a request: greetings, thanks and acknowledgements such as "hello",
//! "thank you", "tak for hjælpen" or "ok". The model has to give every message an intent, so
//! on these it guesses, and the classifier sends them to a human instead.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{clauses, regex};

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

/// A thank-you for a job that is done, in one clause: "tak for den hurtige hjælp med
/// hoveddøren i går", "thanks for fixing the heating". It names the thing, and only a time
/// may follow it, so "thanks for the help with the tap leaking" does not match.
static THANKS_FOR_DONE_WORK: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"^(?:(?:hej|hi|hello|dear|kaere) (?:\w+ )?)?(?:(?:mange|tusind|many) )?",
        r"(?:tak|thanks|thank you) (?:for|to) (?:\w+ ){0,3}?",
        r"(?:hjaelp\w*|help\w*|fix\w*|repair\w*|reparation\w*|service|visit\w*|besoeg\w*)",
        r"(?:(?: (?:med|with|on|of|paa|af|to))? (?:the |den |det |our |vores |my |min |mit )?",
        r"[a-z]\w*)?(?: (?:i gaar|yesterday|today|i dag|i morges|this morning|last week|",
        r"i sidste uge))?$"
    ))
});

/// Says why `text` contains no request, or returns `None` when it contains one. A message has
/// no request when it has no word, when every word is a greeting, thanks, acknowledgement,
/// given name or number, or when the whole message thanks for a job that is done.
pub fn no_request(text: &str) -> Option<&'static str> {
    let clauses = clauses(text);
    let mut words = clauses.iter().flat_map(|clause| clause.split_whitespace());
    if words.clone().next().is_none() {
        return Some("it has no words");
    }
    let names: HashSet<String> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|word| super::super::names::is_given_name(word))
        .map(super::super::text::normalise)
        .collect();
    if words.all(|word| word == "0" || COURTESY.contains(word) || names.contains(word)) {
        return Some("it has only greetings, thanks, acknowledgements or names");
    }
    let sentences: Vec<&String> = clauses.iter().filter(|c| !c.is_empty()).collect();
    if !text.contains('?') && sentences.len() == 1 && THANKS_FOR_DONE_WORK.is_match(sentences[0]) {
        return Some("it thanks for a job that is done");
    }
    None
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
            "Tak for den hurtige hjælp med hoveddøren i går.",
            "Thanks for fixing the heating yesterday!",
            "Thank you for the quick repair of the tap",
            "",
            "👍",
            "Have a nice weekend!",
        ];
        for text in cases {
            assert!(no_request(text).is_some(), "request found in: {text}");
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
            "Thanks for the help with the tap leaking",
            "Tak for hjælpen med døren. Nu driller vinduet.",
            "Thanks for fixing the heating, but it is cold again",
            "Tak for den fantastiske service: tredje vinter hvor vinduet ikke kan lukkes",
            "Tak for reparationen af døren?",
        ];
        for text in cases {
            assert!(no_request(text).is_none(), "no request found in: {text}");
        }
    }
}
