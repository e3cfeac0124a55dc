//! Cues of the intent that the model can miss. A practical question only sounds like a repair:
//! the sender writes that nothing is broken, asks whether something is allowed, how to do
//! something or whom to call if a thing breaks, or asks when planned works will happen. A
//! follow-up chases something already sent: it asks whether a notice, an application, a
//! payment or a booking arrived or went through, or says that an answer is still awaited.

use std::sync::LazyLock;

use regex::Regex;

use super::{clauses, find_cues, regex, Fired};

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

static FOLLOWUP_CUES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let q = |rule, pattern: &str| (rule, regex(pattern));
    vec![
        q(
            "asks whether something sent has arrived or gone through",
            concat!(
                r"\b(?:(?:has|have|did|was|were) (?:my|our) (?:\w+ ){0,4}(?:gone through|",
                r"go through|been (?:received|approved|processed|registered|accepted|",
                r"refunded|returned|paid back|dealt with)|get approved|got approved|",
                r"arrived|come through)|(?:did|have) you (?:get|got|receive|received) ",
                r"(?:my|our)|any (?:news|update) (?:on|about) (?:my|our)|how far (?:along )?",
                r"(?:are you|have you got|has it got|is) (?:with )?(?:my|our)|confirm ",
                r"(?:that )?(?:you (?:got|received|have received|have got)|my (?:\w+ ){0,3}",
                r"(?:was|has been) (?:received|approved|registered|cancelled|canceled))|",
                r"tell me (?:if|whether) (?:you (?:got|received|have received)|(?:my|our) ",
                r"(?:\w+ ){0,3}(?:was|has been) (?:received|approved|registered))|",
                r"har (?:i|du) (?:\w+ )?(?:faaet|modtaget) (?:min|mit|mine|vores)|",
                r"(?:er|blev) (?:min|mit|mine|vores) (?:\w+ ){0,4}(?:gaaet igennem|modtaget|",
                r"godkendt|registreret|behandlet)|hvor langt er (?:i|du|sagen|i kommet)|",
                r"nyt (?:om|i|paa) (?:min|mit|mine|vores|sagen))\b"
            ),
        ),
        q(
            "still waits for an answer",
            concat!(
                r"\b(?:still waiting (?:for|on) (?:an? |your |the |my |our )?(?:answer|reply|",
                r"response|news|word|confirmation|refund|decision|call|callback|deposit|",
                r"application|contract)|still (?:havent|have not) (?:had|received|heard|got)|",
                r"still no (?:answer|reply|word|news)|venter stadig paa (?:et |jeres )?(?:svar|",
                r"besked|pengene|tilbagebetaling\w*|refusion\w*|afgoerelse\w*)|venter stadig ",
                r"paa (?:min|mit|mine|vores) (?:\w+ )?(?:svar|ansoegning|depositum|penge|",
                r"refusion|kontrakt|sag)|stadig ikke (?:faaet|modtaget|hoert)|",
                r"stadig intet (?:svar|nyt))\b"
            ),
        ),
    ]
});

/// Cues of a message that chases a repair already reported: the sender writes for the third
/// time, a craftsman came and the fault is still there, or the sender wants to know whether
/// someone still works on it.
static REPAIR_FOLLOWUP_CUES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let q = |rule, pattern: &str| (rule, regex(pattern));
    vec![
        q(
            "writes about the same fault again",
            concat!(
                r"\b(?:(?:second|third|fourth|fifth|0(?:nd|rd|th)) time (?:i|we)(?: \w+)? ",
                r"(?:write|ask|report|mail|contact|call|am writing|have written)|",
                r"(?:anden|tredje|fjerde|femte) gang (?:jeg|vi) (?:skriver|spoerger|melder|",
                r"ringer|henvender)|igen (?:\. )?ingen (?:har|er) (?:\w+ )?(?:vaeret|kommet)|",
                r"(?:i|we) (?:asked|told|reported|wrote to|mailed) (?:\w+ ){0,2}(?:last|a|two|",
                r"three|0) (?:week|weeks|month|days)|(?:spurgte|skrev til) ",
                r"(?:\w+ ){0,3}(?:i sidste uge|for \w+ (?:uger|dage) siden))\b"
            ),
        ),
        q(
            "the fault is still there after a visit",
            concat!(
                r"\b(?:(?:still|stadig)(?: \w+){0,4} (?:after|efter) (?:(?:his|her|their|the|",
                r"your) (?:\w+ )?(?:visit|repair|fix|plumber|electrician|technician|",
                r"handyman|caretaker)|besoeget|reparationen|haandvaerker\w*|montoer\w*|",
                r"vicevaert\w*|elektriker\w*|vvs\w*)|(?:came|was here|were here|var her|kom) ",
                r"(?:\w+ ){0,2}(?:to fix|to repair|and fixed|and repaired|for at (?:lave|",
                r"reparere|ordne|skifte)|og (?:lavede|reparerede|ordnede|skiftede))",
                r"(?: \w+){0,6} \. (?:\w+ ){0,6}(?:still|stadig)|(?:coming|come) back to ",
                r"(?:finish|fix|complete)|kommer (?:han|hun|de|i|haandvaerker\w*|maler\w*|",
                r"toemrer\w*|elektriker\w*|montoer\w*|vvs\w*) (?:\w+ )?tilbage (?:og|for at))\b"
            ),
        ),
        q(
            "asks whether the repair is under way",
            concat!(
                r"\b(?:(?:has|have) (?:it|this|that) been (?:put on|added|registered|logged)|",
                r"(?:is|are) (?:someone|anyone|somebody) (?:still )?(?:working on|looking at)|",
                r"kiggede (?:en|jeres|vicevaerten|haandvaerkeren) (?:\w+ )?paa)\b"
            ),
        ),
    ]
});

/// Finds the cues of a message that chases a repair already reported in `text`.
pub fn repair_followup_cues(text: &str) -> Vec<Fired> {
    find_cues(&REPAIR_FOLLOWUP_CUES, text)
}

/// Words that open another request in the same message: "also", "on another note",
/// "og så", "derudover", "og nu".
static ADDITION: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:also|on another note|another thing|one more thing|by the way|btw|and now|",
        r"in addition|additionally|and theres|and there is|and there are|plus|ps|oh and|",
        r"og saa|derudover|desuden|og nu|og btw|og vigtigere|forresten|en anden ting|",
        r"og der er|og saa er der|og ogsaa)\b"
    ))
});

/// Splits `text` into the requests that words of addition open, each as normalised clauses.
/// A message without such a word is one part.
pub fn request_parts(text: &str) -> Vec<String> {
    let normalised = clauses(text).join(" . ");
    let mut parts = Vec::new();
    let mut start = 0;
    for m in ADDITION.find_iter(&normalised) {
        let part = normalised[start..m.start()].trim_matches([' ', '.']);
        if !part.is_empty() {
            parts.push(part.to_string());
        }
        start = m.start();
    }
    let last = normalised[start..].trim_matches([' ', '.']);
    if !last.is_empty() {
        parts.push(last.to_string());
    }
    parts
}

/// Finds the cues of a follow-up in `text`: the sender chases something that was already sent
/// or promised.
pub fn followup_cues(text: &str) -> Vec<Fired> {
    find_cues(&FOLLOWUP_CUES, text)
}

/// Finds the cues of a practical question in `text`. A message with a cue and a question mark
/// requests information, so the classifier may read it as a general question.
pub fn practical_question_cues(text: &str) -> Vec<Fired> {
    if !text.contains('?') {
        return Vec::new();
    }
    find_cues(&QUESTION_CUES, text)
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
    fn repair_followups_have_cues() {
        let cases = [
            "Third time I write about the broken dryer. Does anyone read these?",
            "Fjerde gang jeg skriver om vandhanen i køkkenet.",
            "Igen: ingen har været her for at se på ventilationen.",
            "The radiator is still cold after his visit on Monday.",
            "The electrician came to fix the light, but the hall is still dark.",
            "Håndværkeren var her for at skifte låsen, men den klemmer stadig.",
            "When is the painter coming back to finish the ceiling?",
            "I reported the loose tile two weeks ago. Has it been put on the list?",
            "Is someone still working on the lift in B?",
        ];
        for text in cases {
            assert!(!repair_followup_cues(text).is_empty(), "no cue in: {text}");
        }
        let without = [
            "The lift has been out of order since Friday and nobody has come.",
            "The door handle came off. I can still close the door.",
            "En gren er faldet ned over stien. Ingen er kommet til skade.",
            "The tap still drips after I changed the washer myself.",
            "Please send someone to look at the radiator.",
            "My radiators are still cold even after the heating season started.",
            "Skimmelsvampen kommer altid tilbage og breder sig.",
            "Jeg meldte skaden til forsikringen i sidste uge. Terrassedøren kan ikke låses.",
        ];
        for text in without {
            assert!(
                repair_followup_cues(text).is_empty(),
                "cue in: {text}: {:?}",
                repair_followup_cues(text)
            );
        }
    }

    #[test]
    fn words_of_addition_split_requests() {
        let parts = request_parts(
            "Jeg vil gerne opsige min lejlighed. Derudover løber toilettet konstant, 3.th",
        );
        assert_eq!(
            parts,
            vec![
                "jeg vil gerne opsige min lejlighed",
                "derudover loeber toilettet konstant 0 th",
            ]
        );
        let parts = request_parts("Can I pay a week late? Also the landing light is out.");
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[1], "also the landing light is out");
        let single = request_parts("The tap drips and the drain is slow.");
        assert_eq!(single, vec!["the tap drips and the drain is slow"]);
        assert_eq!(request_parts("Also."), vec!["also"]);
        let parts = request_parts("May I sublet my room? And there's a draught at the window.");
        assert_eq!(parts.len(), 2, "{parts:?}");
    }

    #[test]
    fn followups_have_cues() {
        let cases = [
            "Has my sublet application gone through yet?",
            "Did you get my notice? I sent it on the 3rd.",
            "Please confirm that my laundry booking was cancelled.",
            "Any news on my parking permit?",
            "I'm still waiting for the refund of the double payment.",
            "Har I modtaget mit depositum? Jeg overførte det i fredags.",
            "Er min ansøgning om husdyr blevet godkendt?",
            "Hvor langt er I med min fremlejesag?",
            "Jeg venter stadig på svar om min opsigelse.",
            "Vi har stadig ikke fået pengene retur for vasketøjet.",
        ];
        for text in cases {
            assert!(!followup_cues(text).is_empty(), "no cue in: {text}");
        }
        let without = [
            "I'd like to give notice on my flat from 1 March.",
            "I'm still waiting for my salary, can I pay the rent on the 5th?",
            "Jeg venter på at min løn kommer ind, kan jeg betale senere?",
            "Can you confirm that my deposit is three months' rent?",
            "Any news about the planned rent increase?",
            "Please tell me if my rent was raised this year.",
            "Can I book the guest room for the 12th?",
            "Hvornår skal huslejen betales?",
            "Did you know the bike shed door is broken?",
        ];
        for text in without {
            assert!(followup_cues(text).is_empty(), "cue in: {text}");
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
