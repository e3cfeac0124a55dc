//! Function words that decide the language of a message.

use std::sync::LazyLock;

use super::super::text;

const DANISH_WORDS: &str =
    "og i jeg det at en den til er som paa de med han af for ikke der var mig
sig men et har om vi min havde ham hun nu over da fra du ud sin dem os op man hans hvor eller
hvad skal selv her alle vil blev kunne ind naar vaere dog noget ville jo deres efter ned skulle
denne end dette mit ogsaa under have dig anden hende mine alt meget sit sine vor mod disse hvis
din nogle hos blive mange ad bliver hendes vaeret thi jer saadan kan ikk lige godt tak venlig
hilsen hej mvh vores jeres hvornaar hvordan hvorfor gerne stadig virker lejlighed badevaerelse
koekken vand varme hjaelp venligst igen uge dag allerede faa faar saa ogsa saadan nogen intet
ingen";
const ENGLISH_WORDS: &str = "the and to of a in is it you that he was for on are with as i his they
be at one have this from or had by not but what some we can out other were all there when up
use your how said an each she which do their time if will way about many then them would so
these her him has been my our me please thanks thank hi hello dear regards could since still
there s don t isn doesn just flat kitchen water heating week again already any no yes";

static DANISH_SET: LazyLock<std::collections::HashSet<&'static str>> =
    LazyLock::new(|| DANISH_WORDS.split_whitespace().collect());
static ENGLISH_SET: LazyLock<std::collections::HashSet<&'static str>> =
    LazyLock::new(|| ENGLISH_WORDS.split_whitespace().collect());

/// Counts the Danish and English function words of `text`, leaving out the first and last
/// clause when they are only a greeting or a sign-off.
pub fn language_votes(text: &str) -> (usize, usize) {
    let normalised = text::normalise(text);
    let mut danish = 0;
    let mut english = 0;
    for word in text::words(&normalised) {
        // A word in both lists, such as "i" (Danish "in", English "I"), counts for both.
        danish += usize::from(DANISH_SET.contains(word));
        english += usize::from(ENGLISH_SET.contains(word));
    }
    (danish, english)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_votes_count_function_words() {
        let (da, en) = language_votes("Hej, vandhanen i koekkenet drypper og det er irriterende");
        assert!(da > en, "da {da} en {en}");
        let (da, en) = language_votes("Hej, the tap in the kitchen has been dripping for a week");
        assert!(en > da, "da {da} en {en}");
    }
}
