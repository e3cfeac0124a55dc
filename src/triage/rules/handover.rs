//! Triggers that hand a message to a human whatever its intent: legal words and authorities,
//! harassment, discrimination, rent hardship and disputes, vulnerable people, behaviour of
//! neighbours and staff, lease actions and a named person asked to act.

use std::sync::LazyLock;

use regex::Regex;

use super::emergency::VULNERABLE;
use super::{clauses, regex, unicode_regex, Fired};

/// A trigger that hands a message to a human whatever its intent.
struct Handover {
    rule: &'static str,
    pattern: Regex,
}

static HANDOVER: LazyLock<Vec<Handover>> = LazyLock::new(|| {
    let h = |rule, pattern: &str| Handover {
        rule,
        pattern: regex(pattern),
    };
    vec![
        h(
            "people's behaviour",
            concat!(
                r"\b(?:roeget hash|ryger hash|smoking (?:weed|hash|cannabis)|",
                r"(?:smoking|smoked|ryger|roeget|ryget) (?:\w+ ){0,2}(?:on|in|i|paa) ",
                r"(?:\w+ ){0,2}(?:balcon\w*|altan\w*|stairwell|opgang\w*|my flat|",
                r"trappe\w*)|barking|goeer|gjammer|parties|(?:having|have|had|holding|",
                r"hold|holds|throwing|threw|throw|noisy|loud|wild|another) (?:a |their |",
                r"big )?party|party (?:next door|upstairs|downstairs|all night|until|",
                r"til|again|every)|fester|fest (?:\w+ ){0,3}",
                r"(?:hele natten|all night)|music (?:\w+ ){0,3}(?:loud|all night)|",
                r"musikken|argue|arguing|skaendes|ringing (?:\w+ ){0,2}doorbells|",
                r"ringer paa (?:\w+ ){0,2}doerklokker|hung up on me|lagde paa|",
                r"given the run around|taget mit|took my|throws? (?:\w+ ){0,2}out of|",
                r"smider (?:\w+ ){0,3}ud af)\b"
            ),
        ),
        h(
            "legal words or authorities",
            concat!(
                r"\b(?:advokat\w*|lawyer\w*|solicitor\w*|attorney|legal\w*|retssag\w*|",
                r"sagsoeg\w*|sue|suing|court|retten|huslejenaevn\w*|beboerklagenaevn\w*|",
                r"tenant board|tenants board|rent tribunal|tribunal|housing board|",
                r"lejernes lo|tenants union|lejerforening\w*|politi\w*|police|",
                r"ombudsman\w*|ombudsmand\w*|arbejdstilsyn\w*|environmental health|",
                r"klagenaevn\w*|naevnet|rights|rettigheder|lejeloven|boligretten|",
                r"fogedret\w*|bailiff)\b"
            ),
        ),
        h(
            "harassment or threats",
            concat!(
                r"\b(?:harass\w*|chikan\w*|threat\w*|trussel\w*|truer|truet|truede|",
                r"intimidat\w*|stalk\w*|afraid of (?:him|her|them|the)|bange for (?:ham|",
                r"hende|dem|naboen|manden)|feel unsafe|not safe|utryg\w*|",
                r"feel threatened|(?:don t|dont|do not) feel safe|ikke (?:\w+ )?tryg|",
                r"aggressive|aggressiv\w*|voldelig\w*|violent|violence|",
                r"vold|hit me|slog mig|assault\w*|overfald\w*|screamed at me|",
                r"shouted at me|raabte ad mig|spat|spyttede)\b"
            ),
        ),
        h(
            "discrimination",
            concat!(
                r"\b(?:discriminat\w*|diskrimin\w*|racist\w*|racism|racisme|",
                r"racistisk\w*|because of my (?:religion|skin|race|colour|color|",
                r"disability|gender|sexuality|origin|name|accent)|pga min (?:hudfarve|",
                r"religion|baggrund)|go back to (?:my|your|their|his|her) (?:own )?country|",
                r"rejs hjem til|skrid hjem til|because (?:i m|im|i am) (?:foreign|",
                r"muslim|black|gay|jewish|disabled))\b"
            ),
        ),
        h(
            "rent hardship or dispute",
            concat!(
                r"\b(?:cant afford|cannot afford|can not afford|unable to pay|cant pay|",
                r"cannot pay|can not pay|wont be able to pay|not able to pay|",
                r"kan ikke betale|kan ikke faa raad|har ikke raad|ikke raad til|",
                r"lost my job|mistet mit (?:job|arbejde)|fyret|laid off|unemployed|",
                r"arbejdsloes\w*|kontanthjaelp|hardship|betalingsaftale\w*|",
                r"afdragsordning\w*|payment plan|instalments?|rater|dispute\w*|",
                r"disputing|uenig\w*|disagree\w*|overcharg\w*|wrongly charged|",
                r"charged twice|forkert beloeb|unfair|urimelig\w*|refuse to pay|",
                r"refusing to pay|withhold\w*|tilbageholde\w*|naegter at betale|",
                r"betaler ikke|will not pay|wont pay|not paying|nedsaettelse|",
                r"reduction in rent|reduce the rent|rent reduction|kompensation|",
                r"compensation|erstatning|reimburse\w*|godtgoer\w*|refund for the|",
                r"huslejenedsaettelse|afslag i huslejen|contest\w*|bestrider|anfaegt\w*|",
                r"indsigelse\w*|object to|objection|kan foerst betale|can only pay|",
                r"pay (?:\w+ ){0,2}(?:later|late)|betale (?:\w+ ){0,2}(?:senere|",
                r"for sent)|(?:su|su en|loen\w*|salary|wages?|pay|pension\w*|",
                r"boligstoette\w*|ydelse\w*|udbetaling\w*|",
                r"benefits?) (?:\w+ ){0,3}(?:forsinket|delayed|late|kommer sent|",
                r"not arrived|ikke kommet)|(?:don t|dont|do not|not) accept|accepterer ikke|",
                r"want (?:\w+ ){0,2}(?:refund\w*|cancelled|canceled|removed|breakdown)|",
                r"vil have (?:\w+ ){0,3}(?:refunderet|tilbage|annulleret|fjernet)|",
                r"recalculat\w*|genberegn\w*|not allowed|ikke tilladt|ikke lovlig\w*|",
                r"ulovlig\w*|illegal|less than i paid|cant manage|can t manage|",
                r"cannot manage|kan ikke klare|between jobs|mellem to job\w*|",
                r"in two (?:parts|payments)|i to (?:rater|omgange|dele)|passed away|",
                r"husband died|wife died|sygemeld\w*|sick leave|",
                r"skilsmisse|divorce\w*|run around|no one can explain|ingen kan forklare|",
                r"why (?:\w+ ){0,4}(?:charged|a fee|this fee|the fee)|",
                r"hvorfor (?:\w+ ){0,4}(?:gebyr\w*|opkraev\w*))\b"
            ),
        ),
        h(
            "vulnerable person",
            concat!(
                r"\b(?:wheelchair\w*|koerestol\w*|disabled|disability|handicap\w*|",
                r"elderly|aeldre|oxygen|ilt|iltapparat|dialys\w*|insulin|medicine|",
                r"medication|medicin\w*|infant|baby|babies|newborn|nyfoedt\w*|",
                r"spaedbarn\w*|pregnant|gravid|dement\w*|cancer|kraeft|chemo\w*|kemo\w*|",
                r"hospital\w*|bedridden|sengeliggende|housebound|cant leave|",
                r"cannot leave|kan ikke komme ud|kan ikke gaa|seriously ill|",
                r"alvorligt syg|very ill|meget syg|blind|deaf|doev|heart condition|",
                r"hjerte\w*|respirator|rollator|crutches|krykker|frail|svagelig|illness|",
                r"syg|over 0 years|0 aar gammel|0 years old|aged 0)\b"
            ),
        ),
        h(
            "neighbour's behaviour",
            concat!(
                r"\b(?:neighbou?rs?|naboe\w*|nabo|next door|overbo\w*|underbo\w*|",
                r"genbo\w*|the (?:guy|man|woman|lady|people|family|tenant|kids|girl|",
                r"boy) (?:in|from|next|across|opposite|upstairs|downstairs|on)|",
                r"(?:manden|kvinden|damen|fyren|familien|folkene|beboeren|lejeren|",
                r"boernene) (?:i|fra|paa|ved|ovenpaa|nedenunder|overfor)|",
                r"someone (?:from|in) (?:the )?(?:0|flat|building|staircase|opgang)|",
                r"someone (?:in|from|on) (?:our |the )?(?:block|building|stairwell|staircase|",
                r"floor)|whoever lives (?:\w+ ){0,2}(?:above|below|upstairs|downstairs|",
                r"next door|in|on|under|over)|the (?:couple|teenagers|boys|girls) (?:in|from|",
                r"on|at|above|below|upstairs|downstairs|next door|across)|nogen (?:i|fra|paa) ",
                r"(?:blok|opgang\w*|nr|0|st)|(?:parret|de unge|drengene|pigerne) (?:i|paa|fra|",
                r"ovenpaa|nedenunder)|",
                r"same person)\b"
            ),
        ),
        h(
            "complaint about staff or service",
            concat!(
                r"\b(?:window cleaner\w*|vinduespudser\w*|cleaners?|cleaning company|",
                r"rengoering\w*|caretaker|vicevaert\w*|the office|kontoret|",
                r"administration\w*|customer service|kundeservice|handyman|",
                r"haandvaerker\w*|workm[ae]n|contractors?|the plumber|the electrician|",
                r"blikkenslager\w*|elektriker\w*|maler\w*|staff|personale\w*|",
                r"afdelingsformand\w*|bestyrelse\w*|board) (?:\w+ ){0,8}(?:rude\w*|",
                r"unhelpful|never|ignor\w*|streaks|striber|didnt|did not|kom ikke|",
                r"ikke svaret|uhoeflig\w*|sur|unprofessional|sloppy|daarligt|poor|bad|",
                r"treat\w*|behandl\w*|lovet|promised|no answers?|intet svar|ingen svar|",
                r"sjusk\w*|skaeldte|yelled|shouted|raabte|mess|rod|left)\b|",
                r"\b(?:painters?|builders?|gardeners?|gartner\w*|renovationen|",
                r"skraldemaend\w*|bin men|refuse collect\w*|cleaners?|cleaning company|",
                r"rengoeringsfirma\w*|vinduespudser\w*|window cleaners?|maler\w*) ",
                r"(?:\w+ ){0,6}(?:har ikke|hasnt|havent|has not|have not|play|plays|",
                r"larmer|efterlader)\b"
            ),
        ),
        h(
            "fear of another person",
            concat!(
                r"\b(?:(?:i m|im|i am|jeg er|we are|vi er) (?:really |so |very |meget |",
                r"virkelig )?(?:afraid|scared|frightened|bange|skraemt|utryg\w*)(?: \.|",
                r" of| for|$)|films? me|filming me|filmer mig|photograph\w* me|",
                r"fotograferer mig|watching me|watches me|follows me|followed me|",
                r"foelger efter mig|fulgte efter mig|peeping|kigger ind)"
            ),
        ),
        h(
            "dispute with a neighbour or staff",
            concat!(
                r"\b(?:conflict\w*|konflikt\w*|strid\w*|quarrel\w*|skaendes|",
                r"skaenderi\w*|neighbour refuses|neighbor refuses|naboen naegter|",
                r"naboen vil ikke|won t let|refuses to let|naegter at lukke|blame\w*|",
                r"beskyld\w*|ansvar for skaden|who pays|hvem betaler|liable|",
                r"erstatningsansvar\w*)\b"
            ),
        ),
        h(
            "lease action",
            concat!(
                r"\b(?:opsig\w*|sige (?:op|min lejlighed op|lejemaalet op)|siger op|",
                r"give notice|giving notice|gave notice|hand in (?:my|our) notice|",
                r"terminate\w*|termination|fremlej\w*|sublet\w*|sublease|sub let|",
                r"rent(?:ing)? out (?:\w+ ){0,2}(?:room|flat|apartment|place)|",
                r"udleje\w* (?:\w+ ){0,2}(?:vaerelse\w*|lejlighed\w*)|leje (?:\w+ ){1,3}ud|",
                r"intern\w* (?:\w+ ){0,2}(?:list|lists|venteliste\w*)|(?:swap|move|exchange|",
                r"transfer|skifte|flytte|bytte) (?:\w+ ){0,3}(?:bigger|larger|smaller|stoerre|",
                r"mindre) (?:flat|apartment|lejlighed|bolig)|",
                r"boligbytte|bytte (?:\w+ ){0,3}(?:lejlighed\w*|bolig\w*|\w*vaerelses\w*)|",
                r"swap (?:flats|apartments|",
                r"homes)|overdrag\w*|transfer (?:the|my|our) lease|take over the lease|",
                r"forlaeng\w* (?:min|vores|lejekontrakt\w*|kontrakt\w*|lejemaal\w*|",
                r"lejeaftale\w*)|forlaenges|renew\w*|extend (?:the|my|our) (?:lease|contract|",
                r"tenancy)|(?:time limited|tidsbegraenset) (?:\w+ ){0,2}(?:contract|lease|",
                r"kontrakt\w*|lejekontrakt\w*|lejemaal\w*)|forhandl\w* (?:\w+ ){0,3}(?:husleje\w*|",
                r"leje\w*|kontrakt\w*)|negotiat\w* (?:\w+ ){0,3}(?:rent|lease|contract)|",
                r"medlejer\w*|co tenant\w*|cotenant\w*|add (?:my|a) (?:partner|",
                r"girlfriend|boyfriend|wife|husband)|fortryd\w*|withdraw\w*|",
                r"traekke (?:min|vores) opsigelse|evict\w*|ophaev\w*|ospig\w*|",
                r"hereby (?:\w+ ){0,2}notice|(?:my|our) notice|notice on (?:my|our)|",
                r"end (?:the|my|our) (?:lease|contract|tenancy)|",
                r"(?:remove\w*|fjerne\w*|taken off|take (?:\w+ )?off) (?:\w+ ){0,4}(?:lease|",
                r"contract|kontrakt\w*|lejekontrakt\w*)|(?:lease|contract|kontrakt\w*) ",
                r"(?:\w+ ){0,4}(?:removed|fjernes|fjernet)|staar (?:stadig )?paa kontrakt\w*|",
                r"exception|undtagelse|dispensation)\b"
            ),
        ),
    ]
});

static NAMED_STAFF: LazyLock<Regex> = LazyLock::new(|| {
    unicode_regex(concat!(
        r"(?:\b(?:[Cc]an|[Cc]ould|[Ww]ould|[Pp]lease|[Aa]sk|[Hh]ave|[Ll]et|",
        r"[Tt]ell|[Kk]an|[Vv]il|[Bb]ed|[Ll]ad|[Gg]erne|[Mm]å|[Mm]aa|[Ww]ant|",
        r"[Hh]ave|",
        r"[Aa]t)\s+(\p{Lu}\p{Ll}+)(?:\s+\p{Lu}\p{Ll}+)?,?\s+",
        r"(?:(?:fra|from)\s+(?:\p{Ll}+\s+){1,2})?",
        r"(?:(?:please|lige|",
        r"venligst|gerne|personally|selv|to|om at|om)\s+)?(?:call|ring\w*|",
        r"contact|kontakt\w*|come|komme\w*|meet|mødes|moedes|reply|respond|",
        r"svar\w*|email|e-mail|mail|skrive|write|get back|vende tilbage|give|",
        r"look|kigge|se på|handle|sort|tage\w*|tager|take|deal|help|hjælpe|",
        r"hjaelpe|check|tjekke|visit|besøge|besoege|fix|finish|confirm|bekræfte|",
        r"bekraefte|follow|følge|foelge|look into|undersøge|undersoege)\b)|",
        r"(?:\b(?:speak|talk|tale|snakke|meet|meeting|møde|moede|samtale|a word|",
        r"contact|kontakt\w*|ringe til|call|hear from|høre fra|hoere fra)\s+(?:to|with|med|",
        r"personally)?\s*(\p{Lu}\p{Ll}+)\b)|(?:\b(\p{Lu}\p{Ll}+),?\s+(?:can|",
        r"could|would|will|kan|vil|må|maa)\s+(?:you|du)\s+(?:please\s+|",
        r"venligst\s+|godt\s+|lige\s+)?(?:call|ring\w*|contact|kontakt\w*|come|",
        r"komme|reply|svar\w*|look|kigge|help|hjælpe|hjaelpe|check|tjekke|sort|",
        r"handle|fix))"
    ))
});

/// A greeting to a person at the start of a message, such as "Hej Jens" or "Dear Lone".
static GREETING: LazyLock<Regex> = LazyLock::new(|| {
    unicode_regex(concat!(
        r"^\s*(?:[Hh]ej|[Hh]i|[Hh]ello|[Hh]allo|[Dd]ear|[Kk]ære|[Kk]aere|[Gg]od morgen)",
        r"\s+(\p{Lu}\p{Ll}+)\b"
    ))
});

/// A request to the person addressed: "kan du", "could you", "vil du komme".
static REQUEST_TO_YOU: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:kan|kunne|vil|gider|could|can|would|will) (?:du|you)\b|",
        r"\b(?:ring|call|kom|come) (?:mig|me|forbi|by|over)\b|\bpersonally\b"
    ))
});

/// Finds the handover triggers in `text`: legal words, harassment, discrimination, hardship,
/// vulnerable people, disputes, lease actions and a named person asked to act.
pub fn handover(text: &str) -> Vec<Fired> {
    let mut fired = Vec::new();
    let normalised = clauses(text).join(" . ");
    for trigger in HANDOVER.iter() {
        if let Some(m) = trigger.pattern.find(&normalised) {
            fired.push(Fired {
                rule: trigger.rule,
                matched: m.as_str().to_string(),
            });
        }
    }
    if let Some(m) = VULNERABLE.find(text) {
        fired.push(Fired {
            rule: "vulnerable person",
            matched: m.as_str().to_string(),
        });
    }
    let greeted = GREETING
        .captures(text)
        .and_then(|caps| caps.get(1))
        .filter(|name| super::super::names::is_given_name(name.as_str()));
    if let Some(name) = greeted {
        if REQUEST_TO_YOU.is_match(&normalised) {
            fired.push(Fired {
                rule: "named person asked to act",
                matched: name.as_str().to_string(),
            });
            return fired;
        }
    }
    for caps in NAMED_STAFF.captures_iter(text) {
        let name = caps.get(1).or(caps.get(2)).or(caps.get(3));
        if let Some(name) = name.filter(|n| super::super::names::is_given_name(n.as_str())) {
            fired.push(Fired {
                rule: "named person asked to act",
                matched: name.as_str().to_string(),
            });
            break;
        }
    }
    fired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handover_triggers() {
        let cases: &[(&str, &str)] = &[
            (
                "Jeg har talt med min advokat om huslejen",
                "legal words or authorities",
            ),
            (
                "I will take this to the tenant board",
                "legal words or authorities",
            ),
            (
                "My neighbour keeps harassing me on the stairs",
                "harassment or threats",
            ),
            (
                "Jeg kan ikke betale huslejen i denne måned",
                "rent hardship or dispute",
            ),
            ("My mother is 91 and uses a wheelchair", "vulnerable person"),
            (
                "Can Henrik call me about the radiator?",
                "named person asked to act",
            ),
            (
                "Could we have a meeting with Lene about the new bike shed?",
                "named person asked to act",
            ),
            (
                "Jeg vil gerne have en samtale med Jonas om vores lejekontrakt",
                "named person asked to act",
            ),
            ("Jeg vil gerne opsige min lejlighed", "lease action"),
            (
                "Vi vil gerne ospige vores lejlighed pr. 1. maj",
                "lease action",
            ),
            (
                "Hereby my notice for flat 3, last day 30 April",
                "lease action",
            ),
            ("Please remove my ex from the lease", "lease action"),
            (
                "Vi ønsker at bytte vores treværelses til en toværelses",
                "lease action",
            ),
            (
                "I have a time-limited contract that ends in August and want one more year",
                "lease action",
            ),
            (
                "Jeg vil gerne forhandle en lavere husleje mod at passe haven",
                "lease action",
            ),
            (
                "Could I rent out our spare room to a student this spring?",
                "lease action",
            ),
            ("Må vi udleje et værelse til en ven?", "lease action"),
            (
                "Vi vil gerne leje værelset ud til en studerende",
                "lease action",
            ),
            (
                "Kontrakten udløber i januar. Kan den forlænges?",
                "lease action",
            ),
            (
                "Can we go on the internal list for a bigger flat?",
                "lease action",
            ),
            (
                "Vi vil gerne skifte til en større lejlighed",
                "lease action",
            ),
            (
                "Hej Mette. Kan du kigge på radiatoren, næste gang du er her?",
                "named person asked to act",
            ),
            (
                "Kan Sofie fra administrationen ringe mig op?",
                "named person asked to act",
            ),
            (
                "The fee you took is wrong and I want it cancelled",
                "rent hardship or dispute",
            ),
            ("Jeg accepterer ikke det beløb", "rent hardship or dispute"),
            (
                "Someone left a note telling me to go back to my country",
                "discrimination",
            ),
            (
                "The people upstairs have parties every weekend",
                "people's behaviour",
            ),
            (
                "The flat below had a party until 4 am",
                "people's behaviour",
            ),
            (
                "Whoever lives below us burns incense all evening",
                "neighbour's behaviour",
            ),
            (
                "The couple in 3. th slam their door",
                "neighbour's behaviour",
            ),
            (
                "Nogen i blok 3 stiller cykler foran døren",
                "neighbour's behaviour",
            ),
            (
                "Parret ovenpå slår døre i hele natten",
                "neighbour's behaviour",
            ),
            (
                "Renovationen har ikke tømt containerne i to uger",
                "complaint about staff or service",
            ),
            (
                "The painters play loud music from 7 am",
                "complaint about staff or service",
            ),
        ];
        for (text, rule) in cases {
            let rules: Vec<_> = handover(text).iter().map(|f| f.rule).collect();
            assert!(
                rules.contains(rule),
                "{rule} missing for: {text} (got {rules:?})"
            );
        }
        assert!(handover("The kitchen tap drips").is_empty());
        // A greeting with a name is not a request on its own.
        assert!(handover("Hej Mette, tak for hjælpen i går.").is_empty());
        assert!(handover("Hi, the fridge is dead").is_empty());
        // The sender, staff and the property are not a neighbour.
        assert!(handover("I'm one of the tenants in 3B, the oven doesn't heat up").is_empty());
        assert!(handover("Kan der komme nogen fra ejendommen og se på det?").is_empty());
        assert!(handover("Please send whoever is on call tonight").is_empty());
        assert!(handover("When will the painters leave the stairwell?").is_empty());
        // Renting a common room is a booking, not a sublet.
        assert!(handover("Can we rent the common room on Saturday?").is_empty());
        assert!(handover("Can I book the party room for the 8th?").is_empty());
        // A duration is no age.
        assert!(handover("The tap has dripped for 2 weeks now").is_empty());
        assert!(handover("Det er seks uger siden, jeg skrev om vinduet").is_empty());
        let rules: Vec<_> = handover("Our 8-month-old twins sleep in the cold room")
            .iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, ["vulnerable person"]);
        let rules: Vec<_> = handover("Vi har en søn på 5 uger")
            .iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, ["vulnerable person"]);
    }
}
