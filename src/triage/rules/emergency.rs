//! The emergency lexicon: danger words in both languages, with negated, hypothetical and
//! resolved uses set aside, and the emergencies that span sentences (a person in a stopped
//! lift, no heat in freezing weather for a vulnerable person, a person who collapsed behind a
//! door that nobody can open, parts of the building falling where people walk).

use std::sync::LazyLock;

use regex::Regex;

use super::{clauses, regex, unicode_regex, Fired};

/// An emergency that the lexicon found, with the trade it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emergency {
    pub fired: Fired,
    pub category: &'static str,
}

/// Danger words that the lexicon saw but set aside as negated or hypothetical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dismissed {
    pub fired: Fired,
    pub reason: &'static str,
}

struct Trigger {
    rule: &'static str,
    pattern: Regex,
    category: &'static str,
    /// Phrases that make a match inside them harmless ("fire door", "smoke alarm").
    unless: Option<Regex>,
    /// Words anywhere in the clause that make every match harmless ("cigarette", "toast").
    not_in: Option<Regex>,
    /// Words that must also appear in the clause.
    requires: Option<Regex>,
    /// Only for messages in this language: Danish "fire" is the number four.
    language: Option<&'static str>,
}

/// Uses of fire words that describe no fire: fire safety equipment, a gas flame, candles,
/// "the problem burns" (det braender paa) and Danish "fire" in compounds.
const FIRE_HARMLESS: &str = concat!(
    r"\b(?:fire|brand) (?:doors?|alarms?|extinguishers?|escapes?|exits?|",
    r"drills?|safety|blankets?|hatch|inspection|code|regulations|station|",
    r"service|brigade|lane|lanes|route|hazard|risk)\b|\bfireplace|",
    r"\bfire (?:hose|pit|reel)|\bbraender (?:ikke|paa|for|ujaevnt|fint|",
    r"alt paa|maden paa|det hele paa|",
    r"normalt|sig)\b|\bburn (?:myself|yourself|oneself|my)\b|",
    r"\bbraender(?:e)? inde\b|\bpaa brand\b|",
    r"\b(?:flames?|flammer\w*|flammen) (?:\w+ ){0,4}(?:burns?|burning|braender) ",
    r"(?:\w+ )?(?:yellow|orange|blue|red|uneven\w*|gul\w*|blaa\w*|roed\w*)\b"
);

/// Words in a clause that put its fire words on a candle or a gas flame.
const FIRE_CONTEXT: &str = concat!(
    r"\b(?:lys|stearinlys|candles?|blus|gasblus\w*|gasbluss\w*|pilot|",
    r"burners?|hob|gaskomfur\w*|bonfire|baal|fireworks?|fyrvaerkeri)\b"
);

static TRIGGERS: LazyLock<Vec<Trigger>> = LazyLock::new(|| {
    let t = |rule, pattern: &str, category, unless: Option<&str>, requires: Option<&str>| Trigger {
        rule,
        pattern: regex(pattern),
        category,
        unless: unless.map(regex),
        requires: requires.map(regex),
        not_in: None,
        language: None,
    };
    let not_in = |trigger: Trigger, pattern: &str| Trigger {
        not_in: Some(regex(pattern)),
        ..trigger
    };
    vec![
        Trigger {
            language: Some("en"),
            ..not_in(
                t(
                    "fire",
                    r"\b(?:fire|flames?|on fire|ablaze)\b",
                    "fire_safety",
                    Some(FIRE_HARMLESS),
                    None,
                ),
                FIRE_CONTEXT,
            )
        },
        not_in(
            t(
                "fire",
                r"\b(?:brand|ild|ilden|flammer|flammerne|braender|on fire|flames)\b",
                "fire_safety",
                Some(FIRE_HARMLESS),
                None,
            ),
            FIRE_CONTEXT,
        ),
        not_in(
            t(
                "smoke",
                concat!(
                    r"\b(?:smoke|smoky|smoking from|(?:is|are|started|began|keeps|",
                    r"begun) smoking|roeg|roegen|ryger ud|ryger fra|os fra|oser|",
                    r"begyndt at ryge|ryge fra|ryger fra|sod)\b"
                ),
                "fire_safety",
                Some(concat!(
                    r"\bsmoke (?:detectors?|alarms?|sensors?|free)\b|\broeg(?:en)? (?:alarm|",
                    r"melder|fri)\w*\b|\bno smoking\b"
                )),
                None,
            ),
            concat!(
                r"\b(?:cigaret\w*|cigarettes?|cigar\w*|cerut\w*|smokes|tobacco|tobak|",
                r"hash|weed|cannabis|grill(?:et|ede)|(?:kul|gas|el)grill\w*|",
                r"toast|food|cooking|breakfast|dinner|madlavning|mad|grill|grilling|",
                r"grillen|barbecue|bbq|incense|roegelse)\b|\bsmoking (?:on|in|outside|",
                r"inside|indoors|again|on the)\b|\b(?:nogen|naboen|naboerne|underboen|",
                r"overboen|de|han|hun|folk|beboere\w*) (?:\w+ )?(?:ryger|griller)\b|",
                r"\bryger paa|\brygning|\brygere|\bgriller|\bpopcorn|\bbranket|",
                r"\bfire pit|\bbaalfad|\bbaal\b|\bbonfire|\bparty|\bfest\b|",
                r"\bwood ?(?:stove|burner)s?\b|\bbraendeovn\w*|",
                r"\bset off the smoke alarm|\bsmoke is gone|\broegen er vaek|\b(?:they|",
                r"people|neighbou?rs?|who|he|she|tenants?) (?:\w+ )?smoke\b|",
                r"\bsmoke (?:on|in|outside|inside|out of|from) (?:their|his|her) "
            ),
        ),
        t(
            "gas smell",
            concat!(
                r"\b(?:smell\w* (?:\w+ ){0,3}gas|gas smell\w*|gas leak\w*|leaking gas|",
                r"gaslugt\w*|lugt\w* (?:\w+ ){0,3}gas|gasudslip|gaslaek\w*|gas laek\w*|",
                r"(?:stink\w*|reek\w*|stench|odou?r|stank) (?:\w+ ){0,3}gas|",
                r"gas (?:\w+ ){0,2}(?:lugt\w*|smell\w*|odou?r)|",
                r"udslip af gas|gass?lugt\w*|siver gas|gas\w* (?:\w+ ){0,2}(?:siver|",
                r"slipper ud|escaping|hissing|hisser))\b"
            ),
            "gas",
            None,
            None,
        ),
        // A drain that smells of rotten eggs usually has a dry trap or a sewer fault, not a gas leak.
        not_in(
            t(
                "gas smell",
                r"\b(?:rotten eggs?|raadne aeg)\b",
                "gas",
                None,
                None,
            ),
            concat!(
                r"\b(?:drain\w*|afloeb\w*|gulvafloeb\w*|kloak\w*|sewer\w*|sewage|",
                r"vandlaas\w*|trap|toilet\w*|wc)\b"
            ),
        ),
        not_in(
            t(
                "carbon monoxide",
                concat!(
                    r"\b(?:carbon monoxide (?:poisoning|leak\w*|",
                    r"alarm (?:\w+ ){0,2}(?:going off|went off|goes off|sounding|ringing))|",
                    r"co (?:alarm|detector|melder)\w* (?:\w+ ){0,3}(?:going off|went off|",
                    r"goes off|is sounding|sounding|ringing|hyler|hylede|gaar af|gik af|",
                    r"gaaet i gang|gaar i gang|gik i gang|alarmerer|is screaming|screaming|",
                    r"keeps going off|beeping continuously)|",
                    r"kulilte\w* (?:\w+ ){0,3}(?:hyler|hylede|gaar|gik|alarmerer|",
                    r"er gaaet i gang)|kulilteforgiftning\w*)\b"
                ),
                "gas",
                None,
                None,
            ),
            concat!(
                r"\b(?:battery|batteri|batteriet|chirp\w*|skift\w*|end of life|udloebet|",
                r"udskift\w*|test\w*|buy|koebe|install\w*|saette op)\b"
            ),
        ),
        t(
            "flooding",
            concat!(
                r"\b(?:flood\w*|burst|bursting|water (?:is )?(?:pouring|gushing|",
                r"spraying|everywhere|streaming|rushing)|pouring (?:out|in|down|up|",
                r"through)|gushing|oversvoem\w*|roer\w* (?:\w+ ){0,2}sprunget|",
                r"sprunget (?:et |en )?\w*roer\w*|fosser\w*|vandet vaelter|",
                r"vand (?:over det hele|overalt|staar|strommer|stroemmer)|",
                r"stroemmer (?:ud|ind|ned)|vaelter ud|vaelter ned|sprays? out|",
                r"sproejter (?:\w+ ){0,2}vand\w*|vandet sproejter|water spraying|",
                r"spraying water|\w*roersbrud|\w*roerbrud|",
                r"(?:staar|is|are|was|er) under (?:water|vand)|",
                r"\w*roer\w* (?:\w+ ){0,3}(?:spraengt|revnet|knaekket|braekket)|",
                r"spraengt\w* \w*roer\w*|",
                r"(?:stigestreng\w*|slange\w*|",
                r"hose|pipe|roer\w*|vandroer\w*) (?:\w+ ){0,6}(?:sprunget|spraengt|burst|blown|",
                r"split)|(?:water|vand(?:et)?) (?:(?:er|is|is now|staar) )?",
                r"(?:i hele|all over|over hele|",
                r"alle vegne))\b"
            ),
            "plumbing",
            Some(concat!(
                r"\b(?:fixed|repaired|repareret|lavet|ordnet|skiftet|",
                r"changed) (?:\w+ ){0,3}(?:burst|sprunget|flood\w*|",
                r"oversvoem\w*)\w*(?: \w+)?|\b(?:old|tidligere|last year|sidste aar|was|",
                r"var) (?:\w+ ){0,2}(?:flood|oversvoem)\w*|\bflood ?light\w*|",
                r"\bfosser? ned (?:af|fra) (?:himlen|regnen)|\b(?:bubble|boble|burst of|",
                r"bursting with)\b|\b(?:lukke\w*|lukker|shut\w*|turn\w*) (?:\w+ ){0,2}",
                r"(?:for vand\w*|off (?:\w+ )?water)\b"
            )),
            None,
        ),
        // A gutter that overflows in the rain wets a wall or a balcony from outside.
        not_in(
            t(
                "spreading water",
                concat!(
                    r"\b(?:overflowing|overflows|overflowed|loeber over|flyder over|",
                    r"water (?:\w+ ){0,4}(?:rising|everywhere|spreading|won t stop|",
                    r"wont stop|getting worse|running out of)|",
                    r"vand\w* (?:\w+ ){0,5}(?:mere og mere|vaerre|overalt|over det hele|",
                    r"breder sig)|(?:mere og mere|vaerre|getting worse|",
                    r"worse and worse) (?:\w+ ){0,4}(?:vand\w*|water)|",
                    r"staar (?:\w+ ){0,2}0 cm|0 cm (?:\w+ ){0,3}(?:vand|water)|",
                    r"loeber ned i stroemme|i stroemme|vand\w* stiger|",
                    r"(?:og|and) (?:det|it|the water|vandet) (?:stiger|is rising)|",
                    r"(?:keeps|keep|still|is still) rising|stiger og stiger|stiger stadig|",
                    r"stiger hele tiden|bliver ved med at stige)\b"
                ),
                "plumbing",
                Some(concat!(
                    r"\bvand(?:regning|forbrug|afgift|udgift|pris|maaler)\w*|",
                    r"\bwater (?:bills?|charges?|rates?|usage|consumption|meter)\b|",
                    r"\b(?:loeber over|flyder over|overflows|overflowing|keeps rising|",
                    r"stiger og stiger|stiger stadig|vand\w* (?:\w+ ){0,3}stiger) ",
                    r"(?:\w+ ){0,6}(?:naar|when|hver gang|every time)\b"
                )),
                Some(concat!(
                    r"\b(?:water|vand\w*|toilet\w*|wc|drain|afloeb\w*|kloak\w*|sink|bathtub|",
                    r"badekar\w*|sewage|spildevand\w*)\b"
                )),
            ),
            r"\b(?:gutters?|tagrende\w*|nedloebsroer\w*|downpipes?|drainpipes?)\b",
        ),
        t(
            "spreading water",
            concat!(
                r"\b(?:everywhere|overalt|spreading|breder sig|spreder sig|",
                r"all over the floor|across the (?:whole |entire )?(?:\w+ )?floor|",
                r"over hele (?:\w+ )?gulvet|i hele (?:\w+ )?(?:lejligheden|gangen|entreen|",
                r"koekkenet|stuen|kaelderen))\b"
            ),
            "plumbing",
            None,
            Some(r"\b(?:water|vand|vandet|sewage|spildevand\w*|kloakvand\w*)\b"),
        ),
        not_in(
            t(
                "sparks or burning smell",
                concat!(
                    r"\b(?:sparks?|sparking|sparked|gnist\w*|",
                    r"electric(?:al)? (?:burning )?smell|burning (?:\w+ ){0,2}smell|",
                    r"burnt (?:\w+ ){0,2}smell|smell\w* (?:\w+ ){0,2}(?:burning|burnt|",
                    r"burned|melting)|smells? burnt|braendt lugt|brandlugt|",
                    r"lugt\w* (?:\w+ ){0,3}(?:braendt|brandt|svien|sveden)|sveden lugt|",
                    r"svien|melted|melting|smeltet|smelter|electric shock|got a shock|",
                    r"stoed fra|elektrisk stoed|fik stoed)\b"
                ),
                "electrical",
                None,
                None,
            ),
            concat!(
                r"\b(?:toast|food|cooking|breakfast|dinner|madlavning|maden|mad|popcorn|",
                r"grill|grilling|grillen|barbecue|bbq|candle\w*|stearinlys|dust|stoev|",
                r"stoevet|gummi|rubber|ice|isterning\w*|isen|snow|sne|sneen|",
                r"freezer\w*|fryser\w*|frost\w*|thaw\w*|toeet|optoe\w*)\b"
            ),
        ),
        t(
            "electrical failure",
            concat!(
                r"\b(?:exploded|explosion|eksploder\w*|fizz\w*|crackl\w*|knitre\w*|",
                r"kortslut\w*|short circuit\w*|bang and a flash|flash)\b"
            ),
            "electrical",
            None,
            Some(concat!(
                r"\b(?:socket\w*|stikkontakt\w*|fuse\w*|sikring\w*|wires?|wiring|",
                r"ledning\w*|eltavle\w*|el tavle\w*|electrical|switch\w*|kontakt\w*|",
                r"lamp\w*|light\w*|plug|stik)\b"
            )),
        ),
        t(
            "fallen tree",
            concat!(
                r"\b(?:trae\w*|tree) (?:\w+ ){0,4}(?:vaeltet|fallen|fell|toppled|",
                r"blown over|knaekket)\b"
            ),
            "common_areas",
            None,
            None,
        ),
        t(
            "carbon monoxide symptoms",
            concat!(
                r"\b(?:headaches?|hovedpine|ondt i hovedet|kvalme|nausea|nauseous|dizzy|",
                r"svimmel|kastet op|kaster op|vomit\w*|threw up)\b"
            ),
            "gas",
            None,
            Some(r"\b(?:co|kulilte\w*|carbon monoxide|gas\w*)\b"),
        ),
        t(
            "trapped in lift",
            concat!(
                r"\b(?:(?:stuck|trapped|fanget|sidder fast|sad fast|spaerret inde|",
                r"indespaerret|locked in) (?:in|i|inside|inde i) (?:the |a |en |",
                r"et )?(?:lift|elevator\w*|liften)|(?:i am|im|we are|were|jeg|vi|my \w+|",
                r"min \w+|mit \w+|someone|somebody|nogen|a man|a woman|people|folk|",
                r"en mand|en kvinde|et barn|a child|kids|boern\w*|beboer\w*|neighbou?r|",
                r"nabo\w*|he|she|han|hun|they) (?:\w+ ){0,3}(?:stuck|trapped|fanget|",
                r"sidder fast|sad fast|spaerret inde|indespaerret|locked in)|(?:stuck|",
                r"fast|trapped|fanget) (?:\w+ ){0,4}(?:inde i|indeni|inside|",
                r"med (?:\w+ ){1,2}inde)|(?:boern|children|kids|people|folk|nogen|",
                r"someone|somebody|persons?|mennesker|personer|mand|kvinde|dame|baby|",
                r"child|barn) (?:\w+ ){0,2}(?:inde i|inside|in it|inden i)|(?:styrtet|",
                r"dropped|plunged|plummeted|fell|faldt) (?:\w+ ){0,3}(?:ned|down|",
                r"floors?|etager?))\b"
            ),
            "elevator",
            Some(r"\b(?:no ?one|nobody|ingen|no people|empty|tom)\b"),
            Some(r"\b(?:lift|lifts|elevator\w*|liften)\b"),
        ),
        not_in(
            t(
                "break-in",
                concat!(
                    r"\b(?:break in|broken in|broken into|broke in|broke into|breaking in|",
                    r"burglar\w*|burgled|indbrud\w*|brudt ind|brudt (?:\w+ ){1,2}op|",
                    r"kicked open|smashed open|(?:smashed|smadret|knust) (?:\w+ ){0,5}",
                    r"(?:(?:main|front|entrance) (?:entrance )?doors?|hoveddoer\w*|",
                    r"opgangsdoer\w*|indgangsdoer\w*|gadedoer\w*)|",
                    r"sparket op|sparket ind|kicked in|smashed in|bashed in|forced open|",
                    r"drilled out|boret ud|(?:entrance|front|main|hoveddoer\w*|",
                    r"opgangsdoer\w*|indgangsdoer\w*|gadedoer\w*|entredoer\w*|staaldoer\w*|",
                    r"kaelderdoer\w*|doeren|door) (?:\w+ ){0,5}(?:smashed|smadret|knust|",
                    r"sparket|kicked|brudt op|brudt|forced|torn off))\b"
                ),
                "doors_locks",
                // A key that broke in the lock is no break-in.
                Some(r"\b(?:key\w*|noegle\w*) (?:\w+ ){0,2}broke in\b"),
                None,
            ),
            concat!(
                r"\b(?:haft|had|have been) (?:\w+ ){0,2}(?:indbrud\w*|break ?ins?|burglar\w*)",
                r"(?: \w+){0,4} (?:foer|tidligere|before|in the past)\b|",
                r"\b(?:bil\w*|car|cars|cykel\w*|bike\w*|nothing (?:is |was )?missing|",
                r"nothing (?:was )?(?:taken|stolen)|intet (?:mangler|stjaalet)|",
                r"mangler ikke noget|ikke stjaalet noget)\b"
            ),
        ),
        t(
            "collapse",
            concat!(
                r"\b(?:ceiling|loft\w*|balcon\w*|altan\w*|roof|taget|beam|bjaelke\w*|",
                r"wall|vaeggen) (?:\w+ ){0,4}(?:collapsed?|collapsing|came down|",
                r"coming down|caved in|fell down|fell in|falling (?:down|in|on|onto)|",
                r"styrtet \w*|faldet ned|falder ned|braset \w*|kollaps\w*|",
                r"cracked open)\b|\b(?:bits|pieces?|chunks?|parts?|stykker?|",
                r"dele) of (?:the )?(?:\w+ )?ceiling (?:\w+ ){0,3}(?:fell|falling|",
                r"came down|coming down)\b|\bstykke? af loftet (?:\w+ ){0,3}(?:faldet|",
                r"falder|styrtet)\b|\b(?:ceiling|loft\w*) (?:\w+ ){0,4}(?:sagging|",
                r"bulging|bugner|buler|haenger ned|giving way|give way|tearing|",
                r"starting to tear)\b|\b(?:falde sammen|falder sammen|falling apart|",
                r"styrte sammen|separating from|give way)\b|",
                r"\b(?:come loose and|kommet loes og) (?:\w+ ){0,2}(?:fallen|fell|falling|",
                r"dropped|faldet|falder|styrtet)\b|\b(?:beton\w*|concrete|puds\w*|plaster|chunks?|",
                r"railing|raekvaerk\w*) (?:\w+ ){0,6}(?:fallen|fell|faldet|falder ned|",
                r"broke off|brudt af)\b|\b(?:glasstykker|glass|rude|ruden|window|",
                r"vindue\w*) (?:\w+ ){0,6}(?:fallen out|fell out|faldet ud|fallen|",
                r"fell) (?:\w+ ){0,10}(?:fortov\w*|pavement|courtyard|gaarden|street|",
                r"gaden|below|folk|people|kids|boern)\b|\b(?:faldet|",
                r"fallen) (?:\w+ ){0,3}(?:beton\w*|concrete|puds\w*|plaster|",
                r"glas\w*) (?:\w+ ){0,2}(?:ned|down)\b|\b(?:taget|roof|",
                r"tag) (?:\w+ ){0,3}(?:blaest af|revet af|blown off|torn off|",
                r"ripped off)\b|\brevet (?:\w+ ){0,4}(?:taget|tag) af\b"
            ),
            "structural",
            None,
            None,
        ),
        t(
            "water in electrics",
            concat!(
                r"\b(?:water|vand\w*|drip\w*|dryp\w*|leak\w*|laek\w*|",
                r"(?:running|pouring|streaming) (?:down|out|through)|",
                r"(?:loeber|fosser|stroemmer) (?:ned|ud|gennem))\b"
            ),
            "electrical",
            Some(r"\b(?:no|not|ingen|ikke) (?:water|vand)\b"),
            Some(concat!(
                r"\b(?:light fittings?|lamp\w*|ceiling light|fuse ?box\w*|fuse board|",
                r"eltavle\w*|el tavle\w*|socket\w*|stikkontakt\w*|loftslampe\w*|",
                r"sikringsskab\w*|wiring|wires|electrical (?:cupboard|cabinet|box|",
                r"installation\w*)|elskab\w*|maalerskab\w*|ledning\w*)\b"
            )),
        ),
        // Water streaming into rooms through a ceiling, wall or floor is flooding. A drip that
        // a bucket catches is an urgent leak, so those words keep the clause out.
        not_in(
            t(
                "flooding",
                concat!(
                    r"\b(?:water\w* (?:is |are |keeps )?(?:coming|running|pouring|",
                    r"flowing|streaming|leaking) (?:\w+ ){0,2}(?:through|down|into|",
                    r"in through|out of|under) (?:\w+ ){0,3}(?:ceiling|walls?|floors?|",
                    r"light\w*|lamp\w*|stairs|stairwell|flat|basement|cellar|doors?|",
                    r"hallway|rooms?)|vand\w* (?:\w+ ){0,2}(?:loeber|kommer|vaelter|",
                    r"fosser|stroemmer|pibler) (?:\w+ ){0,2}(?:gennem|ned|ind|ud|",
                    r"under) (?:\w+ ){0,3}(?:loft\w*|vaeg\w*|vaegge\w*|gulv\w*|lamp\w*|",
                    r"trapp\w*|lejlighed\w*|kaelder\w*|doer\w*|gang\w*|entre\w*|",
                    r"stue\w*|vaerelse\w*)|(?:loeber|kommer|vaelter|fosser|stroemmer|",
                    r"pibler) (?:der )?vand\w* (?:\w+ ){0,2}(?:gennem|ned|ind|ud|under) ",
                    r"(?:\w+ ){0,3}(?:loft\w*|vaeg\w*|gulv\w*|lamp\w*|trapp\w*|lejlighed\w*|",
                    r"kaelder\w*|doer\w*|gang\w*|entre\w*|stue\w*|vaerelse\w*)|waterfall|",
                    r"vandfald|like a river|som en flod)\b"
                ),
                "plumbing",
                None,
                None,
            ),
            concat!(
                r"\b(?:bucket\w*|spand\w*|towels?|haandklaed\w*|baljer?|skaal|",
                r"when it rains|naar det regner|every time|hver gang|sometimes|nogle gange|",
                r"naar (?:vi|jeg|man|de|naboen|overboen|underboen) (?:\w+ )?(?:bruger|tager|",
                r"taender|koerer|skyller|vasker|tapper|bader)|when (?:we|i|they|someone|",
                r"the neighbou?rs?) (?:\w+ )?(?:use|uses|take|takes|run|runs|flush|flushes|",
                r"shower|showers|drain|drains)|",
                r"vasker|washing|washes|mopping|mops|cleaning|cleaner|rengoering\w*|gulvvask\w*)\b"
            ),
        ),
        Trigger {
            language: Some("en"),
            ..t(
                "fire",
                concat!(
                    r"\b(?:(?:is|are|something|somethings|something s|its|it s) ",
                    r"(?:\w+ )?burning|caught fire|catching fire|caught alight|",
                    r"went up in flames|burst into flames)\b"
                ),
                "fire_safety",
                Some(FIRE_HARMLESS),
                None,
            )
        },
        not_in(
            t(
                "fire",
                concat!(
                    r"\b(?:gaaet ild i|gik ild i|er gaaet i brand|staar i brand|",
                    r"stod i brand|det braender)\b"
                ),
                "fire_safety",
                Some(FIRE_HARMLESS),
                None,
            ),
            FIRE_CONTEXT,
        ),
        not_in(
            t(
                "sparks or burning smell",
                concat!(
                    r"\b(?:smell\w* (?:\w+ ){0,2}(?:electric\w*|hot plastic|plastic)|",
                    r"lugt\w* (?:\w+ ){0,2}(?:elektrisk\w*|el|plastik|plastic)|",
                    r"(?:socket\w*|stikkontakt\w*|plug|stik|kontakt\w*|outlet) ",
                    r"(?:\w+ ){0,3}(?:blackened|scorched|sort\w*|black|svedet|sveden|",
                    r"gloeder|glowing)|(?:blackened|scorched|svedet|sveden) ",
                    r"(?:\w+ ){0,2}(?:socket\w*|stikkontakt\w*|plug|stik|kontakt\w*|outlet))\b"
                ),
                "electrical",
                None,
                None,
            ),
            r"\b(?:toast|food|cooking|madlavning|maden|mad|new|ny|nye|nyt|furniture|moebler)\b",
        ),
        t(
            "break-in",
            concat!(
                r"\b(?:braekket op|brukket op|opbrudt|dirket op|lirket op|pried open|",
                r"prised open|jemmied|jimmied|crowbar|koben|braekket ind|brukket ind|",
                r"ransacked|gennemrodet|",
                r"(?:brudt|braekket|brukket) (?:\w+ )?(?:\w*doer\w*|\w*laas\w*|ruden?|vindue\w*|",
                r"karm\w*) (?:\w+ ){0,3}op|(?:door|doer\w*|frame|karm\w*|lock|laas\w*) ",
                r"(?:\w+ ){0,4}(?:splintered|splintret|flaekket|ripped out|revet ud|",
                r"braekket|brudt op)|har vaeret (?:nogen|fremmede|tyve) inde|",
                r"(?:someone|somebody|nogen|tyve|thieves|burglars?|intruders?) ",
                r"(?:\w+ ){0,3}(?:broke in|got in|has been in|have been in|been inside|",
                r"got into (?:our|my|the) (?:flat|apartment|home|house)|",
                r"har vaeret inde|er kommet ind|kom ind|brudt ind))\b"
            ),
            "doors_locks",
            None,
            None,
        ),
    ]
});

static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:no|not|never|without|nothing|none|neither|nor|isnt|arent|wasnt|",
        r"werent|dont|doesnt|didnt|cant|havent|hasnt|ikke|ingen|intet|uden|",
        r"aldrig|hverken|eller ingen|no longer|ikke laengere)\b(?: \w+){0,3} ?$"
    ))
});

/// A negation right after a danger word that is about finding its source, as in "smoke, can't
/// see where it comes from". The danger is there, so this does not negate it.
static UNKNOWN_SOURCE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"^ ?(?:\w+ )?(?:cant|can not|cannot|dont|doesnt|ikke|kan ikke|ved ikke) ",
        r"(?:\w+ )?(?:see|find|tell|know|locate|work out|se|finde|vide|sige)\b"
    ))
});

/// "No longer" followed by a new subject, as in "det drypper ikke længere, det løber ned". The
/// negation there is about a milder state, so the danger word after it is real.
static WORSENED: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:ikke (?:\w+ )?(?:laengere|mere)|no longer|not (?:\w+ )?any ?more)",
        r"(?: \w+)? (?:det|den|nu|it s|its|it is|now)(?: \w+){0,2} ?$"
    ))
});

/// A negation inside a matched phrase, as in "lugter ikke af gas".
static NEGATED_MATCH: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(?:not|no|never|ikke|ingen|aldrig|dont|doesnt|isnt|cant)\b"));

static HYPOTHETICAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:if|in case|in the event|should there|what happens|what do i do|",
        r"what should|hvis|i tilfaelde|hvad goer|hvad skal|hvad gør|",
        r"tilfaelde af|ved brand|when there is a|how do i|hvordan|drill|drills|",
        r"test\w*|oevelse\w*|practice|prevent|avoid|undgaa|forebyg\w*|risk|",
        r"risiko|plan|planlagt|planned|instructions|instruks\w*|procedure|",
        r"regler|rules|information|info)\b"
    ))
});

/// Words after a danger word that make it a drill or a test.
static EXERCISE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:drills?|test\w*|oevelse\w*|practice|instructions|instruks\w*|procedure\w*)\b")
});

/// Words saying that a danger has passed or was never there.
static RESOLVED: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:false alarm|falsk alarm|everything is fine|all fine now|",
        r"alt er fint|alt er i orden|er blevet slukket|was put out|is out now|",
        r"checked and (?:it s|its|everything is) (?:fine|ok|safe))\b"
    ))
});

static DENIAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:not (?:an? )?(?:emergency|urgent|dangerous|acute)|no emergency|",
        r"nothing urgent|no rush|no hurry|ikke (?:en )?(?:noedsituation|akut|",
        r"farligt|haster|hastesag)|ingen hast|intet akut|ikke noget akut|",
        r"haster ikke|ikke akut)\b"
    ))
});

/// Finds the emergencies that `text`, written in `language`, describes, and the danger words
/// it set aside.
pub fn emergencies(text: &str, language: &str) -> (Vec<Emergency>, Vec<Dismissed>) {
    let mut found = Vec::new();
    let mut dismissed = Vec::new();
    let resolved = clauses(text).iter().any(|c| RESOLVED.is_match(c));
    for clause in clauses(text) {
        for trigger in TRIGGERS.iter() {
            if trigger.language.is_some_and(|l| l != language)
                || trigger
                    .requires
                    .as_ref()
                    .is_some_and(|r| !r.is_match(&clause))
                || trigger.not_in.as_ref().is_some_and(|n| n.is_match(&clause))
            {
                continue;
            }
            let harmless: Vec<std::ops::Range<usize>> = trigger
                .unless
                .as_ref()
                .map(|u| u.find_iter(&clause).map(|m| m.range()).collect())
                .unwrap_or_default();
            for m in trigger.pattern.find_iter(&clause) {
                if harmless
                    .iter()
                    .any(|h| m.start() < h.end && h.start < m.end())
                {
                    continue;
                }
                let fired = Fired {
                    rule: trigger.rule,
                    matched: m.as_str().to_string(),
                };
                let before = after_last_conjunction(&clause[..m.start()]);
                let after = &clause[m.end()..];
                let negated_after = NEGATED_MATCH.find(after).is_some_and(|n| n.start() <= 1)
                    && !UNKNOWN_SOURCE.is_match(after);
                let reason = if (NEGATION.is_match(before) && !WORSENED.is_match(before))
                    || NEGATED_MATCH.is_match(m.as_str())
                    || negated_after
                {
                    Some("negated")
                } else if HYPOTHETICAL.is_match(before) || EXERCISE.is_match(&clause[m.end()..]) {
                    Some("hypothetical")
                } else if resolved {
                    Some("resolved")
                } else {
                    None
                };
                match reason {
                    Some(reason) => dismissed.push(Dismissed { fired, reason }),
                    None => {
                        let category = refine_category(trigger.category, &clause);
                        found.push(Emergency { fired, category });
                        break;
                    }
                }
            }
        }
    }
    if found.is_empty() && !resolved {
        found.extend(person_in_stopped_lift(text));
    }
    if found.is_empty() && !resolved {
        found.extend(cold_with_vulnerable_person(text));
    }
    if found.is_empty() && !resolved {
        found.extend(break_in_across_sentences(text));
    }
    if found.is_empty() && !resolved {
        found.extend(gas_smelled_in_later_clause(text));
    }
    if found.is_empty() && !resolved {
        found.extend(water_that_cannot_be_stopped(text));
    }
    if found.is_empty() && !resolved {
        found.extend(open_lift_shaft(text));
    }
    if found.is_empty() && !resolved {
        found.extend(child_locked_in_alone(text));
    }
    if found.is_empty() && !resolved {
        found.extend(person_down_out_of_reach(text));
    }
    if found.is_empty() && !resolved {
        found.extend(building_part_falling_on_people(text));
    }
    (found, dismissed)
}

static LIFT: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(?:lift|lifts|elevator\w*|liften)\b"));
static LIFT_STOPPED: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:stopped|stuck|jammed|stalled|broke down|stoppet|gaaet i staa|",
        r"fast|doors? (?:won t|wont|will not) open|doeren vil ikke (?:aabne|",
        r"gaa op)|between (?:\w+ )?floors|mellem (?:\w+ ){0,2}etage\w*|mellem to sal|",
        r"halfway|halvvejs)\b"
    ))
});
static PERSON_INSIDE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:inside|inde i|indeni|in it|i den|ringer fra|writing from|derinde|",
        r"der inde|in there|still in|stadig inde|alarm ?button|alarmknap\w*|noedknap\w*|",
        r"med (?:min|mit|mine|vores|hans|hendes|en|et|to|tre|0) (?:\w+ ){0,2}i den|",
        r"(?:personer|mennesker|passagerer|passengers) (?:i|in)|",
        r"calling from|skriver fra|with (?:me|us|her|him|a|an|my|the|two|",
        r"0) [a-z0 ]{0,30}(?:inside|in it)|med (?:\w+ ){0,3}inde|(?:i m|im|i am|",
        r"we are|were|jeg er|vi er|jeg sidder|vi sidder) (?:\w+ ){0,2}(?:inside|",
        r"in the lift|in the elevator|i elevatoren|i liften|fast)|(?:sidder|",
        r"sad) (?:\w+ ){1,3}fast|kan ikke faa doeren op|(?:weve|we have|ive|i have|has|",
        r"have) been (?:stuck |trapped )?in (?:the|this|a) (?:lift|elevator)|",
        r"med (?:min|mit|mine|vores|hans|hendes|en|et|to|tre|0) \w+ i(?: \. \w+|$))\b"
    ))
});
/// Matches "nobody in the lift". "Nobody answers the alarm" tells nothing about who is inside,
/// so the word needs a place or a state after it.
static NOBODY: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:no ?one|nobody|ingen|no people) (?:\w+ ){0,2}(?:inside|in it|in there|",
        r"in the lift|in the elevator|stuck|trapped|fast|inde|derinde|i den|i elevatoren|",
        r"i liften)|(?:is|er|was|var) (?:\w+ )?(?:empty|tom))\b"
    ))
});

/// A person who cannot get out of a lift. The negation is the danger here, so this cannot be
/// a trigger of the lexicon, which sets negated matches aside.
static CANT_GET_OUT: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:cant|can t|cannot|kan ikke|kommer ikke) (?:\w+ ){0,1}(?:get out|komme ud|ud) ",
        r"(?:of |af )?(?:the |a )?(?:lift|elevator\w*|liften)\b|\b(?:lift|elevator\w*|liften) ",
        r"(?:\w+ ){0,4}(?:cant|can t|cannot|kan ikke|kommer ikke) (?:\w+ ){0,1}(?:get out|",
        r"komme ud)\b"
    ))
});

/// Finds a person inside a lift that stopped, described in one or more sentences.
fn person_in_stopped_lift(text: &str) -> Option<Emergency> {
    let normalised = clauses(text).join(" . ");
    if let Some(m) = CANT_GET_OUT.find(&normalised) {
        if !NOBODY.is_match(&normalised) && !HYPOTHETICAL.is_match(&normalised[..m.start()]) {
            return Some(Emergency {
                fired: Fired {
                    rule: "trapped in lift",
                    matched: m.as_str().to_string(),
                },
                category: "elevator",
            });
        }
    }
    let lift = LIFT.find(&normalised)?;
    let stopped = LIFT_STOPPED.find(&normalised)?;
    let inside = PERSON_INSIDE.find(&normalised)?;
    if NOBODY.is_match(&normalised) || HYPOTHETICAL.is_match(&normalised[..stopped.start()]) {
        return None;
    }
    Some(Emergency {
        fired: Fired {
            rule: "trapped in lift",
            matched: format!(
                "{}; {}; {}",
                lift.as_str(),
                stopped.as_str(),
                inside.as_str()
            ),
        },
        category: "elevator",
    })
}

/// Water that the tenant cannot stop. Like a person who cannot get out of a lift, the
/// negation is the danger, so the lexicon's negation handling must not see it.
static WATER_CANNOT_STOP: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:cant|can t|cannot|unable to|kan ikke|kunne ikke) (?:\w+ ){0,4}(?:stop|",
        r"turn (?:\w+ )?off|shut (?:\w+ )?off|be (?:turned|shut) off|lukkes|close|",
        r"find the stopcock|find the main valve|stoppe|lukke for|slukke for|",
        r"finde (?:hovedhanen|stophanen))|(?:wont|won t|will not|doesnt|does not) stop|",
        r"(?:stopper|stoppede) ikke|vil ikke stoppe)\b"
    ))
});
/// Words of a slow leak. Drops that do not stop are a contained leak, not a flood.
///
/// NOTE: they are looked for in the whole message, so a drip in one sentence and a leak that
/// cannot be stopped in another read as one slow leak.
static DRIPS: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:draabe\w*|drops?|drips?|dripping|drypper|dryp|siver|seeps?|seeping|trickl\w*)\b")
});
/// Words of water that runs fast. With them, a leak that cannot be stopped stays an emergency.
static HEAVY_FLOW: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:fosser|gushing|gushes|pouring|pours|spraying|sprays|sproejter|stroemmer|",
        r"streaming|floods?|flooding|oversvoem\w*|loeber ud|running out|everywhere|overalt)\b"
    ))
});
static WATER: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:water|vand\w*|leak\w*|laek\w*|pipe|roer\w*|tap|hane\w*|toilet\w*)\b")
});

/// Finds water that runs and that the tenant cannot stop, in one or more sentences.
fn water_that_cannot_be_stopped(text: &str) -> Option<Emergency> {
    let normalised = clauses(text).join(" . ");
    let water = WATER.find(&normalised)?;
    let cannot_stop = WATER_CANNOT_STOP.find(&normalised)?;
    if HYPOTHETICAL.is_match(&normalised[..cannot_stop.start()])
        || (DRIPS.is_match(&normalised) && !HEAVY_FLOW.is_match(&normalised))
    {
        return None;
    }
    Some(Emergency {
        fired: Fired {
            rule: "flooding",
            matched: format!("{}; {}", water.as_str(), cannot_stop.as_str()),
        },
        category: refine_category("plumbing", &normalised),
    })
}

/// A door, lock or window of an entrance that was forced or broken.
static ENTRANCE_BROKEN: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:doors?|doer\w*|lock|locks|laas\w*|window\w*|vindue\w*|rude\w*|",
        r"frame|karm\w*|entrance|indgang\w*) (?:\w+ ){0,5}(?:broken|forced|smashed|",
        r"kicked|damaged|knust|smadret|braekket|brudt|sparket|oedelagt|flaekket|",
        r"splintered|i stykker|ripped|revet)\b|\b(?:broken|forced|smashed|knust|",
        r"smadret|braekket|oedelagt|damaged) (?:\w+ ){0,3}(?:doors?|doer\w*|lock|",
        r"laas\w*|window\w*|vindue\w*|rude\w*|entrance)\b"
    ))
});
/// Someone who got in, or things that were taken.
static INTRUSION: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:stolen|stole|stjaalet|stjal|robbed|theft|tyveri\w*|tyve|thieves|",
        r"thief|tyv|burglar\w*|intruders?|ransacked|gennemrodet|been inside|",
        r"been in (?:my|our|the) (?:flat|apartment|home)|vaeret inde)\b"
    ))
});
static NOTHING_TAKEN: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:nothing (?:is |was )?(?:missing|taken|stolen)|intet (?:mangler|stjaalet)|",
        r"mangler ikke noget|ikke stjaalet noget)\b"
    ))
});
static VEHICLE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(?:bil\w*|car|cars|cykel\w*|bike\w*|bicycles?)\b"));

/// Finds a break-in described over several sentences: an entrance that was forced and someone who
/// got in or took something. A stolen bike or a car window is no entrance of the building.
fn break_in_across_sentences(text: &str) -> Option<Emergency> {
    let parts = clauses(text);
    let entrance = parts
        .iter()
        .filter(|c| !NEGATED_MATCH.is_match(c) && !VEHICLE.is_match(c))
        .find_map(|c| ENTRANCE_BROKEN.find(c).map(|m| m.as_str().to_string()))?;
    let normalised = parts.join(" . ");
    if HYPOTHETICAL.is_match(&normalised)
        || VEHICLE.is_match(&normalised)
        || NOTHING_TAKEN.is_match(&normalised)
    {
        return None;
    }
    let intrusion = INTRUSION.find(&normalised)?;
    Some(Emergency {
        fired: Fired {
            rule: "break-in",
            matched: format!("{entrance}; {}", intrusion.as_str()),
        },
        category: "doors_locks",
    })
}

static GAS: LazyLock<Regex> = LazyLock::new(|| regex(r"\bgas\w*\b"));
/// A smell whose source is only a pronoun: "we smell it again", "vi kan lugte den igen".
static SMELL_IT: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:smell|smelling|smelt|smelled) it\b|\b(?:kan lugte|lugte|lugter) ",
        r"(?:den|det) (?:igen|stadig|nu|tydeligt|kraftigt)\b"
    ))
});

/// Finds a gas smell whose clause names the gas only by a pronoun, after an earlier clause that
/// names it: "they said the gas was safe, but we smell it again".
fn gas_smelled_in_later_clause(text: &str) -> Option<Emergency> {
    let parts = clauses(text);
    let (first_gas, gas) = parts
        .iter()
        .enumerate()
        .find_map(|(i, c)| GAS.find(c).map(|m| (i, m.as_str())))?;
    let smell = parts[first_gas + 1..].iter().find_map(|c| {
        let m = SMELL_IT.find(c)?;
        let before = after_last_conjunction(&c[..m.start()]);
        (!NEGATED_MATCH.is_match(before) && !HYPOTHETICAL.is_match(c)).then(|| m.as_str())
    })?;
    Some(Emergency {
        fired: Fired {
            rule: "gas smell",
            matched: format!("{gas}; {smell}"),
        },
        category: "gas",
    })
}

/// A lift shaft that people can see or fall into.
static SHAFT_EXPOSED: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:see|look|looking|fall|falls|fell|step|stepped|walk|walked|falde|faldt|",
        r"traede|traadte|se|kigge|kigger|kan se) (?:\w+ ){0,3}(?:into|down|in|ned|ind) ",
        r"(?:\w+ ){0,2}(?:(?:lift |elevator )?shaft|skakt\w*|elevatorskakt\w*)|",
        r"(?:open|exposed|unprotected|aaben|aabne|blottet|ubeskyttet) ",
        r"(?:lift |elevator )?(?:shaft|skakt\w*|elevatorskakt\w*)|(?:shaft|skakt\w*) ",
        r"(?:\w+ ){0,3}(?:is open|wide open|staar aaben|er aaben|ligger aaben))\b"
    ))
});
/// A lift's landing door that opens while the car is elsewhere. The negation ("the lift is not
/// there") is the danger, so the lexicon's negation handling must not see it.
static LIFT_DOOR_WITHOUT_CAR: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:\w*doors?|\w*doer\w*|\w*dor(?:en|ene)?) (?:\w+ ){0,8}(?:opens?|opened|",
        r"opening|aabner|aabnede|gaar op|gik op|gaar aaben|slides open|staar aaben|",
        r"stands open|is open|er aaben|wont stay shut|won t stay shut|wont close|",
        r"vil ikke lukke)\b(?: (?:\w+|\.)){0,6} (?:(?:lift|elevator\w*|",
        r"liften|car|cabin|kabine\w*) (?:\w+ ){0,2}(?:isnt|is not|wasnt|was not|ikke er|",
        r"er ikke|ikke var|var ikke) (?:there|here|der|her)|(?:lift|elevator\w*|liften|",
        r"car|cabin|kabine\w*) (?:is|er|var|was) (?:there|der) (?:ikke|not)|",
        r"(?:no|ingen) (?:lift|car|",
        r"cabin|elevator|kabine)\w* (?:there|behind|bag|der)|without (?:the )?(?:lift|",
        r"car|cabin|elevator)|uden (?:at )?(?:elevatoren|kabinen|liften))\b"
    ))
});

/// Finds a lift shaft open to the landing: a landing door that opens with no car behind it,
/// or a shaft that people can see or fall into. Nobody is trapped, but anyone can fall.
fn open_lift_shaft(text: &str) -> Option<Emergency> {
    static SHAFT: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(?:shaft|\w*skakt\w*)\b"));
    let normalised = clauses(text).join(" . ");
    // Both patterns below are long, so they only run on a message about a lift or a shaft.
    let found = if SHAFT.is_match(&normalised) {
        SHAFT_EXPOSED
            .find(&normalised)
            .or_else(|| LIFT_DOOR_WITHOUT_CAR.find(&normalised))?
    } else if LIFT.is_match(&normalised) || normalised.contains("elevator") {
        LIFT_DOOR_WITHOUT_CAR.find(&normalised)?
    } else {
        return None;
    };
    if HYPOTHETICAL.is_match(&normalised[..found.start()]) || NOBODY_AT_RISK.is_match(&normalised) {
        return None;
    }
    Some(Emergency {
        fired: Fired {
            rule: "open lift shaft",
            matched: found.as_str().to_string(),
        },
        category: "elevator",
    })
}

/// Words saying that the danger is contained: the lift was shut down or the door is blocked
/// off by the service company.
static NOBODY_AT_RISK: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:technicians? (?:is|are) (?:here|on site)|montoer\w* er (?:her|kommet)|",
        r"cordoned off|spaerret af (?:af )?(?:montoer\w*|firmaet|serviceteknik\w*))\b"
    ))
});

/// A young child in a flat that nobody can get into.
static CHILD: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:child|children|kid|kids|toddler|baby|infant|little (?:boy|girl|one)|",
        r"son|daughter|barn|barnet|boern|boernene|lille (?:dreng|pige)|soen|soenn\w*|",
        r"datter|datteren|spaedbarn\w*|nyfoedt\w*|0 years? old|0 aarig\w*|0 aar gammel)\b"
    ))
});
/// The child is shut in, or the adults are shut out with the child inside.
static SHUT_IN: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:locked (?:in|inside)|shut (?:in|inside)|trapped (?:in|inside)|",
        r"lock(?:ed|s)? (?:himself|herself|themselves) in|",
        r"(?:laas|laase)(?:t|r|et)? sig inde|lukket sig inde|",
        r"laast inde|laaset inde|lukket inde|spaerret inde|",
        r"locked (?:myself|ourselves|me|us) out|laast (?:mig|os) ude|laaset (?:mig|os) ude|",
        r"lukket (?:mig|os) ude|smaekket (?:mig|os) ude|(?:door|doer\w*) (?:\w+ ){0,3}",
        r"(?:slammed|smaekket|smaekkede|gaaet i baas|swung shut|locked behind))\b"
    ))
});
/// The child is alone or asleep inside, or something dangerous is on inside.
static ALONE_OR_HAZARD: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:alone|alene|by (?:her|him)self|on (?:her|his) own|asleep|sleeping|sover|",
        r"(?:stove|hob|oven|cooker|komfur\w*|ovn\w*|kogeplade\w*|gryde\w*|pot|pan|",
        r"pande\w*|bath|badekar\w*|candles?|stearinlys|iron|strygejern)\b)"
    ))
});

/// Finds a young child shut alone in a flat, or shut in with a stove or a bath running, which
/// is a danger to a person until someone opens the door.
fn child_locked_in_alone(text: &str) -> Option<Emergency> {
    let normalised = clauses(text).join(" . ");
    let child = CHILD.find(&normalised)?;
    let shut_in = SHUT_IN.find(&normalised)?;
    let alone_or_hazard = ALONE_OR_HAZARD.find(&normalised)?;
    let first = child.start().min(shut_in.start());
    if HYPOTHETICAL.is_match(&normalised[..first]) || NEGATED_MATCH.is_match(shut_in.as_str()) {
        return None;
    }
    Some(Emergency {
        fired: Fired {
            rule: "child locked in alone",
            matched: format!(
                "{}; {}; {}",
                child.as_str(),
                shut_in.as_str(),
                alone_or_hazard.as_str()
            ),
        },
        category: "doors_locks",
    })
}

/// A person, named by a pronoun, a relation or a word for someone.
const PERSON: &str = concat!(
    r"\b(?:i|we|he|she|they|someone|somebody|wife|husband|partner|son|daughter|child|kid|",
    r"mother|father|mum|mom|dad|grand(?:ma|pa|mother|father)|gran|aunt|uncle|brother|",
    r"sister|friend|neighbou?r|flatmate|roommate|boyfriend|girlfriend|man|woman|lady|",
    r"tenant|resident|person|jeg|vi|han|hun|nogen|kone|mand|kaereste|soen|datter|barn|",
    r"mor|far|mormor|morfar|farmor|farfar|bedstemor|bedstefar|moster|faster|onkel|bror|",
    r"soester|ven|veninde|nabo|naboen|beboer|beboeren|dame|damen|herre|manden|kvinden)"
);

/// A person who has collapsed or been hurt and cannot help themselves. Words that only
/// describe a person ("fainted", "bevidstløs") stand alone. A fall, not responding or not
/// getting up needs a person before it.
static PERSON_DOWN: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        concat!(
            r"\b(?:fainted|blacked out|unconscious|unresponsive|not breathing|",
            r"besvim(?:et|ede|er)|bevidstloes|faldet om|faldt om|segnet om|",
            r"traekker ikke vejret|{person}(?: \w+){{0,3}} (?:collapsed|passed out|fell|",
            r"has fallen|had a fall|took a fall|slipped|is not responding|isn ?t responding|not moving|",
            r"doesn ?t respond|does not respond|can ?t get up|cannot get up|",
            r"is lying on the (?:\w+ )?floor|er faldet|faldt|gled|reagerer ikke|",
            r"svarer ikke|roerer sig ikke|kan ikke rejse sig|kan ikke komme op|",
            r"ligger paa (?:\w+ )?gulvet))\b"
        ),
        person = PERSON
    ))
});

/// Words after "fell" or "faldt" that make it no fall indoors: asleep, behind on rent, in love,
/// off a bike.
static NOT_A_FALL: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"^ (?:asleep|behind|for|in love|i soevn|bagud|",
        r"(?:off|af) (?:\w+ )?(?:bike|bicycle|scooter|cykl\w*|cykel\w*|loebehjul\w*))\b"
    ))
});

/// Words saying that the door to the person is locked from inside, jammed or blocked.
static OUT_OF_REACH: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:locked (?:from )?(?:the )?inside|laas(?:t|et) indefra|laas(?:t|et) inde|",
        r"(?:door|lock) (?:\w+ ){0,3}(?:jammed|stuck|won ?t open|will not open|",
        r"cannot be opened|can ?t be opened|is locked|blocked)|",
        r"(?:doer\w*|laas\w*) (?:\w+ ){0,3}(?:sidder fast|klemmer|er laas(?:t|et)|",
        r"kan ikke (?:\w+ )?(?:aabnes|aabne|lukkes op)|vil ikke (?:gaa op|aabne)|",
        r"blokeret|spaerret)|(?:can ?t|cannot|kan ikke|kommer ikke) (?:\w+ ){0,2}",
        r"(?:get in|get into|get to (?:him|her|them)|reach (?:him|her|them)|open the door|",
        r"get the door open|komme ind|komme til|faa doeren op|aabne doeren)|",
        r"kommer ikke (?:\w+ )?ind|blocking the door|blokerer doeren|(?:against|op ad|mod) (?:the )?doer(?:en)?|",
        r"against the door)\b"
    ))
});

/// Words saying that the person who fell is well or already out.
static PERSON_SAFE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:is|are|er) (?:ok|okay|fine|alright|all right|uskadt|unhurt)(?: now| nu)?",
        r"(?: \.|$)|har det (?:fint|godt)|feels? (?:\w+ )?(?:fine|better)|",
        r"(?:got|kom|er kommet) (?:\w+ )?(?:out|ud))\b"
    ))
});

/// Finds a person who collapsed or fell behind a door that nobody can open, which is a danger
/// to that person until someone gets in.
fn person_down_out_of_reach(text: &str) -> Option<Emergency> {
    let normalised = clauses(text).join(" . ");
    let down = PERSON_DOWN.find(&normalised)?;
    if NOT_A_FALL.is_match(&normalised[down.end()..]) {
        return None;
    }
    let reach = OUT_OF_REACH.find(&normalised)?;
    let first = down.start().min(reach.start());
    let before_down = after_last_conjunction(&normalised[..down.start()]);
    if HYPOTHETICAL.is_match(&normalised[..first])
        || NEGATION.is_match(before_down)
        || PERSON_SAFE.is_match(&normalised)
        || LONG_AGO.is_match(&normalised)
    {
        return None;
    }
    Some(Emergency {
        fired: Fired {
            rule: "person down out of reach",
            matched: format!("{}; {}", down.as_str(), reach.as_str()),
        },
        category: "doors_locks",
    })
}

/// A part of the building that breaks off: balcony, roof, facade, gutter, railing, glass.
static BUILDING_PART: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:balcon(?:y|ies)|altan(?:en|er|erne)?|roof tiles?|slates?|tagsten\w*|teglsten\w*|",
        r"skifer\w*|bricks?|mursten\w*|facade\w*|facadeplade\w*|cladding|plaster|puds\w*|",
        r"concrete|beton\w*|gutters?|tagrende\w*|nedloebsroer\w*|drainpipe|railings?|",
        r"raekvaerk\w*|gelaender\w*|chimney|skorsten\w*|window ?panes?|ruder?|ruden|",
        r"glass|glas|glasset|sheets? of metal|tagplade\w*|eaves|",
        r"sternbraedt\w*|vindskede\w*)\b"
    ))
});

/// Verbs of a part that is breaking off or falling now.
static FALLING: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:falling|falls (?:off|down|out)|dropping|drops|coming off|breaking off|",
        r"crashing down|blowing off|falder|drysser ned|styrter|braekker af|blaeser af|",
        r"rives af|flaekker af|ved at falde)\b"
    ))
});

/// Verbs of a part that broke off or fell before the message was written.
static FELL: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:fell|fallen|dropped|came off|broke off|crashed down|blew off|blown off|",
        r"faldet|faldt|styrtede|braekket af|knaekket af|revet af|blaest af)\b"
    ))
});

/// Places outside the building where people walk or play.
static PLACE_BELOW: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:pavement|sidewalk|footpath|street|road|playground|sandpit|sandbox|",
        r"courtyard|walkway|car park|parking|fortov\w*|gaden|vejen|legeplads\w*|",
        r"sandkass\w*|gaarden|gaardhaven|gangsti\w*|parkeringsplads\w*)\b"
    ))
});

/// People who play or pass below, or who were nearly hit.
static PEOPLE_BELOW: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:children|kids|people|passers ?by|pedestrians|residents|tenants|boern\w*|",
        r"folk|forbipasserende|beboerne) (?:\w+ ){0,2}(?:play|plays|playing|walk|walks|",
        r"walking|pass|passes|passing|sit|sits|sitting|leger|gaar|sidder|passerer|",
        r"faerdes|cykler)|where (?:\w+ ){0,2}(?:play|walk)|hvor (?:\w+ ){0,2}(?:leger|gaar)|",
        r"(?:hit|hitting|struck|landed on) (?:someone|somebody|a person|people|a child|",
        r"kids|children)|(?:ramme|rammer|ramt|ramte) (?:\w+ )?(?:nogen|et barn|boern|folk))\b"
    ))
});

/// Things that fall from the sky or from trees onto a part of the building: snow, rain, leaves.
static WEATHER: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:snow|sne|sneen|rain|regn|regnen|water|vand|vandet|leaves|blade|bladene|hail)\b")
});

/// Words that put an event weeks, months or years back.
static LONG_AGO: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:weeks?|months?|uger?|maaneder?|aar|years?) (?:ago|siden)|",
        r"last (?:week|month|year)|sidste (?:uge|maaned|aar))\b"
    ))
});

/// Finds a part of the building breaking off over a place where people walk or play, or one
/// that has fallen and nearly hit someone.
fn building_part_falling_on_people(text: &str) -> Option<Emergency> {
    let normalised = clauses(text).join(" . ");
    let people = PEOPLE_BELOW.find(&normalised);
    let place = PLACE_BELOW.find(&normalised);
    if LONG_AGO.is_match(&normalised) || (people.is_none() && place.is_none()) {
        return None;
    }
    for clause in clauses(text) {
        let Some(part) = BUILDING_PART.find(&clause) else {
            continue;
        };
        if WEATHER.is_match(&clause) {
            continue;
        }
        // A fall that is over counts only when it nearly hit someone. A part that keeps falling
        // is a danger to anyone who walks below.
        let (falling, below) = match (FALLING.find(&clause), FELL.find(&clause), people) {
            (Some(falling), _, _) => (falling, people.or(place)),
            (None, Some(fell), Some(people)) => (fell, Some(people)),
            _ => continue,
        };
        let Some(below) = below else { continue };
        let first = part.start().min(falling.start());
        let before_falling = after_last_conjunction(&clause[..falling.start()]);
        if HYPOTHETICAL.is_match(&clause[..first]) || NEGATION.is_match(before_falling) {
            continue;
        }
        return Some(Emergency {
            fired: Fired {
                rule: "building part falling on people",
                matched: format!(
                    "{}; {}; {}",
                    part.as_str(),
                    falling.as_str(),
                    below.as_str()
                ),
            },
            category: "structural",
        });
    }
    None
}

static NO_HEAT: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:no heat\w*|without heat\w*|ingen varme|uden varme|",
        r"radiators? (?:\w+ ){0,2}(?:stone )?cold|kolde radiatorer|",
        r"radiator\w* (?:\w+ ){0,3}kold\w*|heating (?:\w+ ){0,5}(?:off|out|",
        r"not working|doesnt work|not worked|hasnt worked|stopped|broken|gone|dead|failed)|",
        r"varmen (?:\w+ ){0,2}(?:gaaet|virker ikke|slaaet fra|vaek|doed|ude)|",
        r"varme\w* (?:\w+ ){0,2}(?:gaaet|vaek)|ikke (?:\w+ ){0,2}varme|",
        r"iskold\w*|ice cold|heating (?:\w+ ){0,3}failed|can t get warm|",
        r"heating (?:\w+ ){0,2}(?:isnt|is not|not) (?:working|on)|",
        r"radiators? (?:\w+ ){0,2}(?:isnt|arent|not) (?:working|warm|heating)|",
        r"freezing (?:cold )?(?:inside|in here|in the flat|indoors)|koldt i lejligheden|",
        r"cant get warm|kan ikke blive varm\w*|0 degrees (?:inside|in the flat|",
        r"indoors)|0 grader (?:inde|i lejligheden|i stuen))\b"
    ))
});
static FREEZING: LazyLock<Regex> = LazyLock::new(|| {
    unicode_regex(concat!(
        r"(?i)\bminus\s*\d|(?:^|[\s(])[-\u{2212}]\s?\d+\s*(?:°|grader|degrees|",
        r"c\b|ude|outside|udenfor)|(?:it'?s|is|er det|det er|",
        r"er)\s+[-\u{2212}]\s?\d|\bfreezing|\bfrost|\bfrys\w*|\bbelow zero|",
        r"\bunder nul|\bsub-zero|\bisnende|\bfrozen|(?:^|[\s(])[-\u{2212}]\d+\b|",
        r"\bsnow|\bsne\b|\bvinter|\bwinter|\bkuldegrad\w*|\bminusgrad\w*|",
        r"\bkoldt udenfor|\bcold outside"
    ))
});
/// A negation right before a word, with at most a degree word between them.
static NOT_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    unicode_regex(concat!(
        r"(?i)\b(?:not|no|never|isn'?t|ikke|ingen|aldrig)\s+(?:(?:yet|quite|really|that|",
        r"so|very|endnu|helt|rigtig|så|saa|særlig|saerlig)\s+)?$"
    ))
});
pub(super) static VULNERABLE: LazyLock<Regex> = LazyLock::new(|| {
    unicode_regex(concat!(
        r"(?i)\b(?:baby|babies|infant|newborn|spædbarn|spaedbarn|nyfødt|nyfoedt|",
        r"wheelchair|kørestol|koerestol|disabled|handicap\w*|pneumonia|",
        r"lungebetændelse|seriously ill|alvorligt syg|very ill|meget syg|cancer|",
        r"kræft|oxygen|iltapparat|heart condition|hjertesyg\w*|elderly|ældre|",
        r"bedridden|sengeliggende|dement\w*|frail|copd|kol|emphysema|",
        r"lungesyg\w*)\b|\b(?:\d+|en|to|tre|fire|fem|seks|syv|otte|one|two|",
        r"three|four|five|six|seven|eight)[ -](?:uger|weeks?|måneder|maaneder|",
        r"months?)[ -](?:old|gammel)\b|\b(?:baby|søn|soen|datter|barn|dreng|pige|",
        r"tvillinger|twins|son|daughter|boy|girl) (?:på|paa|of|aged) (?:\d+|en|to|tre|",
        r"fire|fem|seks|syv|otte|one|two|three|four|five|six|seven|eight)[ -](?:uger|",
        r"weeks?|måneder|maaneder|months?)\b|\b\d+[ -](?:dage|days?)[ -](?:old|",
        r"gammel)|\b(?:7[5-9]|[89]\d|10\d)[ -]?(?:years?|år\w*|aar\w*|årig\w*|",
        r"aarig\w*|yrs|yo)\b|\b(?:pensioner|pensionist|old age pensioner|toddler|",
        r"småbørn|smaaboern|små børn|smaa boern|småbarn|smaabarn|sick child|",
        r"syg\w* barn|syge børn|syge boern|gammel dame|gammel mand|old lady|old man)\b|",
        r"\b(?:she|he|",
        r"mum|mom|mother|father|dad|mor|far|mormor|farmor|morfar|farfar|hun|",
        r"han)(?:'s| is| er)?(?: \w+)? (?:7[5-9]|[89]\d|10\d)\b|\bpå (?:7[5-9]|",
        r"[89]\d|10\d)\b|\((?:7[5-9]|[89]\d|10\d)\b|\b(?:is|er|aged|",
        r"age) (?:7[5-9]|[89]\d|10\d)\b|\b(?:kemo|chemo)\w*"
    ))
});

/// Finds no heat in freezing weather that affects a very old, very young, disabled or
/// seriously ill person, which is an emergency (and only urgent for anyone else).
fn cold_with_vulnerable_person(text: &str) -> Option<Emergency> {
    let no_heat = heating_outage(text)?;
    // "It's not freezing" and "ikke frost" mean the weather is mild.
    let freezing = FREEZING
        .find_iter(text)
        .find(|m| !NOT_BEFORE.is_match(&text[..m.start()]))?;
    let vulnerable = VULNERABLE.find(text)?;
    Some(Emergency {
        fired: Fired {
            rule: "no heat in freezing weather with a vulnerable person",
            matched: format!(
                "{no_heat}; {}; {}",
                freezing.as_str().trim(),
                vulnerable.as_str()
            ),
        },
        category: "heating",
    })
}

/// Returns the words of a heating outage in `text`, unless a negation comes before them in
/// their clause.
fn heating_outage(text: &str) -> Option<String> {
    let normalised = clauses(text).join(" . ");
    let no_heat = NO_HEAT.find(&normalised)?;
    let clause_before = normalised[..no_heat.start()]
        .rsplit(" . ")
        .next()
        .unwrap_or("");
    // Some outage wordings contain a negation ("virker ikke"), so only "not cold" inside the
    // match negates it.
    static NOT_COLD: LazyLock<Regex> = LazyLock::new(|| {
        regex(r"\b(?:ikke|not|isnt|arent|never|aldrig) (?:\w+ )?(?:kold\w*|cold)\b")
    });
    if NEGATED_MATCH.is_match(clause_before) || NOT_COLD.is_match(no_heat.as_str()) {
        return None;
    }
    Some(no_heat.as_str().to_string())
}

/// Finds a heating outage in a message that names no very old, very young, disabled or
/// seriously ill person. Such an outage is urgent, not an emergency, in any weather.
pub fn heating_outage_without_vulnerable_person(text: &str) -> Option<Fired> {
    let no_heat = heating_outage(text)?;
    if VULNERABLE.is_match(text) {
        return None;
    }
    Some(Fired {
        rule: "no heat and nobody vulnerable",
        matched: no_heat,
    })
}

/// Returns the part of `before` after its last conjunction or contrast word, so that the negation
/// in "the light does not work and it smells of gas" or "no fire just smoke" stays in the first
/// half. "Or" is not one of them, because "no smoke or fire" negates both words.
fn after_last_conjunction(before: &str) -> &str {
    const CONJUNCTIONS: &[&str] = &[
        " og ",
        " and ",
        " saa ",
        " so ",
        " men ",
        " but ",
        " then ",
        " da ",
        " just ",
        " only ",
        " instead ",
        " rather ",
        " however ",
        " bare ",
        " kun ",
        " derimod ",
        " i stedet ",
    ];
    let padded_start = CONJUNCTIONS
        .iter()
        .filter_map(|c| before.rfind(c).map(|i| i + c.len() - 1))
        .max()
        .unwrap_or(0);
    &before[padded_start..]
}

/// Returns true when the message states that it is not an emergency.
pub fn denies_emergency(text: &str) -> bool {
    clauses(text).iter().any(|c| DENIAL.is_match(c))
}

/// Smoke, fire and sparks from an identified appliance or installation take its trade; water
/// from a radiator is heating, through a roof structural.
fn refine_category(category: &'static str, clause: &str) -> &'static str {
    static APPLIANCE: LazyLock<Regex> = LazyLock::new(|| {
        regex(concat!(
            r"\b(?:oven|ovn\w*|komfur\w*|hob|cooker|stove|kogeplade\w*|dryer|",
            r"toerretumbler\w*|tumble|washing machine|vaskemaskine\w*|fridge|",
            r"koeleskab\w*|freezer|fryser\w*|dishwasher|opvaskemaskine\w*|microwave|",
            r"mikroovn\w*|kettle)\b"
        ))
    });
    static ELECTRICAL: LazyLock<Regex> = LazyLock::new(|| {
        regex(concat!(
            r"\b(?:socket\w*|stikkontakt\w*|outlet|wiring|wires?|ledning\w*|fuse\w*|",
            r"sikring\w*|eltavle\w*|el tavle\w*|switch\w*|kontakt\w*|lamp\w*|",
            r"light fitting\w*|plug|stik|cable|kabel\w*|meter cabinet|maalerskab)\b"
        ))
    });
    static HEATING: LazyLock<Regex> = LazyLock::new(|| {
        regex(concat!(
            r"\b(?:radiator\w*|fjernvarme\w*|district heating|varmtvandsbeholder\w*|",
            r"hot water tank|boiler|unit heater|varmeveksler\w*)\b"
        ))
    });
    static ROOF: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(?:roof|tag\w*|loft\w*|ceiling)\b"));
    match category {
        "fire_safety" | "electrical" if APPLIANCE.is_match(clause) => "appliance",
        "fire_safety" if ELECTRICAL.is_match(clause) => "electrical",
        "plumbing" if HEATING.is_match(clause) => "heating",
        "plumbing"
            if ROOF.is_match(clause) && !clause.contains("pipe") && !clause.contains("roer") =>
        {
            "structural"
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::language_votes;
    use super::*;

    fn emergency_rules(text: &str) -> Vec<&'static str> {
        emergencies(text, "en")
            .0
            .iter()
            .map(|e| e.fired.rule)
            .collect()
    }

    #[test]
    fn supply_faults_across_flat_not_flooding() {
        let cases = [
            ("Vandtrykket er lavt i hele lejligheden.", "da"),
            ("Low water pressure all over the building", "en"),
            ("Der er ikke noget varmt vand i hele opgangen", "da"),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            let rules: Vec<&str> = found.iter().map(|e| e.fired.rule).collect();
            assert!(
                !rules.contains(&"flooding"),
                "flooding in {text:?}: {rules:?}"
            );
        }
        let (found, _) = emergencies("Der er vand i hele lejligheden!", "da");
        assert!(
            found.iter().any(|e| e.fired.rule == "flooding"),
            "no flooding in a flat under water"
        );
    }

    #[test]
    fn emergencies_in_both_languages() {
        let cases: &[(&str, &str, &str)] = &[
            ("Der kommer røg ud af stikkontakten!", "smoke", "electrical"),
            ("Det lugter kraftigt af gas i opgangen", "gas smell", "gas"),
            ("det lugter af gas i koekkenet", "gas smell", "gas"),
            (
                "Water pouring through the ceiling from a burst pipe",
                "flooding",
                "plumbing",
            ),
            (
                "We are stuck in the lift between floors 3 and 4",
                "trapped in lift",
                "elevator",
            ),
            ("Vi sidder fast i elevatoren", "trapped in lift", "elevator"),
            ("The oven is on fire", "fire", "appliance"),
            (
                "sparks from the fuse box",
                "sparks or burning smell",
                "electrical",
            ),
        ];
        for (text, rule, category) in cases {
            let language = if language_votes(text).0 > language_votes(text).1 {
                "da"
            } else {
                "en"
            };
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].fired.rule, *rule, "text: {text}");
            assert_eq!(found[0].category, *category, "text: {text}");
        }
    }

    #[test]
    fn emergencies_in_more_wordings() {
        let cases: &[(&str, &str, &str)] = &[
            ("Kaelderen staar under vand", "da", "plumbing"),
            ("Roeret under vasken er spraengt", "da", "plumbing"),
            (
                "Water is pouring out under the bathroom door",
                "en",
                "plumbing",
            ),
            ("Vandet loeber ned ad vaeggen i stuen", "da", "plumbing"),
            (
                "Det drypper ikke længere, det løber ned gennem loftslampen, og lyset blinker",
                "da",
                "electrical",
            ),
            (
                "flat full of smoke, cant see where it comes from, we got out",
                "en",
                "fire_safety",
            ),
            (
                "Nogen har brudt hoveddøren til opgangen op i nat, ruden er smadret",
                "da",
                "doors_locks",
            ),
            ("It stinks of gas on the landing", "en", "gas"),
            (
                "It smells of rotten eggs in the kitchen by the cooker",
                "en",
                "gas",
            ),
            (
                "Varmen er gået, og det er frost. Min mor på 90 bor hos os",
                "da",
                "heating",
            ),
            (
                "Toilettet er løbet over, og vi kan ikke få det til at stoppe",
                "da",
                "plumbing",
            ),
            (
                "Sewage is pouring up through the shower drain",
                "en",
                "plumbing",
            ),
            (
                "Der står kloakvand i kælderen, og det stiger",
                "da",
                "plumbing",
            ),
            (
                "My mother is 91 and her heating has not worked since Friday. Minus 6 tonight",
                "en",
                "heating",
            ),
            (
                "They said the gas was safe but we smell it again in the kitchen",
                "en",
                "gas",
            ),
            (
                "Gasmanden var her i går. Men vi kan lugte den igen i køkkenet",
                "da",
                "gas",
            ),
            (
                "Our baby is 3 weeks old and the heating in the flat has been out since \
                 last night, it is below zero outside",
                "en",
                "heating",
            ),
            (
                "Someone has smashed the glass in the main entrance door and it is hanging open",
                "en",
                "doors_locks",
            ),
            (
                "Nogen har smadret ruden i hoveddøren i nat",
                "da",
                "doors_locks",
            ),
            ("Der er en kraftig gas lugt i koekkenet", "da", "gas"),
            ("Something is burning in the basement", "en", "fire_safety"),
            ("Det braender i kaelderrummet", "da", "fire_safety"),
            (
                "The socket in the hall is blackened and smells of hot plastic",
                "en",
                "electrical",
            ),
            (
                "The lift stopped between floors and my son is still in there",
                "en",
                "elevator",
            ),
            (
                "Elevatoren staar stille mellem to etager, min mor er derinde",
                "da",
                "elevator",
            ),
            (
                "I can't get out of the lift, the doors are shut",
                "en",
                "elevator",
            ),
            (
                "Hoveddoeren er braekket op og der er gennemrodet",
                "da",
                "doors_locks",
            ),
            (
                "Our front door has been forced. Our laptops were stolen.",
                "en",
                "doors_locks",
            ),
            (
                "No heating. It is minus 8 outside and my 84-year-old father lives here.",
                "en",
                "heating",
            ),
            (
                "Der loeber vand ud under doeren fra lejligheden ovenpaa",
                "da",
                "plumbing",
            ),
            ("Vores doer er blevet brudt op", "da", "doors_locks"),
            (
                "Der har vaeret nogen inde i lejligheden, mens vi var vaek",
                "da",
                "doors_locks",
            ),
            (
                "We got home and found we had been burgled",
                "en",
                "doors_locks",
            ),
            (
                "Someone got into our flat while we were out, the door frame is splintered",
                "en",
                "doors_locks",
            ),
            (
                "We've been in the lift for 20 minutes and the doors won't open",
                "en",
                "elevator",
            ),
            (
                "Elevatoren sidder fast mellem to etager med min datter i",
                "da",
                "elevator",
            ),
        ];
        for (text, language, category) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].category, *category, "text: {text}");
        }
    }

    #[test]
    fn contrast_word_ends_negation() {
        let cases = [
            ("no fire just smoke pouring out of the socket", "smoke"),
            ("Not a fire only smoke from the fuse box", "smoke"),
            ("ingen ild bare røg fra stikkontakten", "smoke"),
            ("ikke gas derimod røg fra emhætten", "smoke"),
        ];
        for (text, rule) in cases {
            assert!(
                emergency_rules(text).contains(&rule),
                "no {rule} in: {text}"
            );
        }
        for text in [
            "no smoke or fire, the alarm beeps",
            "ingen røg eller ild, bare en bip",
        ] {
            assert!(emergency_rules(text).is_empty(), "emergency in: {text}");
        }
    }

    #[test]
    fn emergencies_whose_negation_is_the_danger() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "The lift is stuck between floors with my dad inside. Nobody answers the alarm.",
                "en",
                "elevator",
            ),
            (
                "Elevatoren sidder fast med to personer i. Ingen svarer på alarmen.",
                "da",
                "elevator",
            ),
            (
                "Water is leaking from the pipe under the sink and I can't turn it off",
                "en",
                "plumbing",
            ),
            ("Vandet stopper ikke, hanen er knækket", "da", "plumbing"),
            (
                "Smoke comes out of the ventilation grille in the stairwell",
                "en",
                "fire_safety",
            ),
            (
                "Water is pouring from the tap, only a few drops came at first, and it won't stop",
                "en",
                "plumbing",
            ),
            (
                "Der har været indbrud i nat, og døren er brudt op",
                "da",
                "doors_locks",
            ),
            (
                "Someone has broken in to our flat while we were away",
                "en",
                "doors_locks",
            ),
        ];
        for (text, language, category) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].category, *category, "text: {text}");
        }
        let (found, _) = emergencies("The lift stopped, but nobody was inside", "en");
        assert!(found.is_empty());
        let (found, _) = emergencies("What do I do if I can't turn off the water?", "en");
        assert!(found.is_empty());
    }

    #[test]
    fn rising_sewage_is_emergency() {
        let cases: &[(&str, &str)] = &[
            (
                "Waste water is coming out of the shower drain and keeps rising",
                "en",
            ),
            (
                "Kloakvandet kommer op af afløbet i kælderen og stiger og stiger",
                "da",
            ),
            (
                "The toilet is overflowing with sewage and it is still rising",
                "en",
            ),
            (
                "Spildevand løber op af gulvafløbet, det stiger hele tiden",
                "da",
            ),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].category, "plumbing", "text: {text}");
        }
        let harmless: &[(&str, &str)] = &[
            (
                "Water in the floor drain keeps rising when it rains hard",
                "en",
            ),
            (
                "The sewage smell from the drain is not rising anymore",
                "en",
            ),
        ];
        for (text, language) in harmless {
            let (found, _) = emergencies(text, language);
            assert!(found.is_empty(), "emergency in: {text}: {found:?}");
        }
    }

    #[test]
    fn open_lift_shaft_is_emergency() {
        let cases: &[(&str, &str)] = &[
            (
                "The lift door on the 2nd floor slid open but the lift wasn't there, just a drop",
                "en",
            ),
            (
                "Elevatordøren i stuen åbner, selv om kabinen ikke er der!",
                "da",
            ),
            (
                "You can look straight down into the lift shaft from the landing",
                "en",
            ),
            ("Man kan falde ned i skakten, døren står åben", "da"),
            ("The elevator doors opened with no car behind them", "en"),
            (
                "Skaktdøren på 4. sal går op uden elevatoren. Vi har sat en kasse foran",
                "da",
            ),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].category, "elevator", "text: {text}");
        }
        let harmless: &[(&str, &str)] = &[
            (
                "There is a rattling noise from the lift shaft at night",
                "en",
            ),
            (
                "Hvad gør vi, hvis elevatordøren åbner uden at kabinen er der?",
                "da",
            ),
            (
                "The lift doors open slowly and the lift is there but it is very slow",
                "en",
            ),
            ("Der er en fugl i ventilationsskakten", "da"),
        ];
        for (text, language) in harmless {
            let (found, _) = emergencies(text, language);
            assert!(found.is_empty(), "emergency in: {text}: {found:?}");
        }
    }

    #[test]
    fn child_locked_in_is_emergency() {
        let cases: &[(&str, &str)] = &[
            (
                "My son (3) locked himself in alone, the door is locked and we are outside",
                "en",
            ),
            (
                "Døren smækkede i, og vores lille pige på 2 er alene derinde",
                "da",
            ),
            (
                "We locked ourselves out and the baby is asleep inside",
                "en",
            ),
            (
                "Jeg har låst mig ude, og min søn er derinde med en gryde på kogepladen",
                "da",
            ),
            (
                "The door swung shut behind me, my toddler is inside and the bath is running",
                "en",
            ),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].category, "doors_locks", "text: {text}");
        }
        let harmless: &[(&str, &str)] = &[
            (
                "I locked myself out, my kids are with me and the keys are inside",
                "en",
            ),
            (
                "The handyman walked in while my daughter was home alone",
                "en",
            ),
            ("Jeg har låst mig ude. Kan nogen komme med en nøgle?", "da"),
            (
                "What should I do if my child locks himself in the bathroom alone?",
                "en",
            ),
        ];
        for (text, language) in harmless {
            let (found, _) = emergencies(text, language);
            assert!(found.is_empty(), "emergency in: {text}: {found:?}");
        }
    }

    #[test]
    fn person_down_behind_a_door_is_emergency() {
        let cases: &[(&str, &str)] = &[
            (
                "My wife fainted in the laundry room, the door is jammed",
                "en",
            ),
            (
                "Min far på 85 er faldet i badet, døren er låst indefra",
                "da",
            ),
            (
                "My elderly neighbour has collapsed in his hall. He is lying against the door \
                 and we can't get in",
                "en",
            ),
            ("Naboen er besvimet derinde og døren sidder fast", "da"),
            (
                "My mother fell off a chair and the bathroom door is locked from the inside",
                "en",
            ),
            (
                "Min mor er faldet og har det ikke godt, vi kommer ikke ind",
                "da",
            ),
            (
                "mor faldt i entreen og ligger op ad døren, jeg kan ikke komme ind",
                "da",
            ),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(
                found[0].fired.rule, "person down out of reach",
                "text: {text}"
            );
            assert_eq!(found[0].category, "doors_locks", "text: {text}");
        }
        let harmless: &[(&str, &str)] = &[
            ("The bathroom door is jammed, can someone come by?", "en"),
            ("I fell on the icy steps yesterday, please salt them", "en"),
            (
                "What should we do if my mother fell and the door was locked from inside?",
                "en",
            ),
            ("Lampen er faldet ned, og skabsdøren klemmer", "da"),
            (
                "Min mand er faldet, han har det fint nu. Døren klemmer lidt",
                "da",
            ),
            (
                "My son fell off his bike yesterday, and the bike shed door is jammed",
                "en",
            ),
            (
                "I fell asleep on the train and now the lock is jammed",
                "en",
            ),
            ("We fell behind on rent and now we can't get in", "en"),
            (
                "Last month my husband collapsed in the hall. Can you fit a lock we can open \
                 from outside?",
                "en",
            ),
        ];
        for (text, language) in harmless {
            let (found, _) = emergencies(text, language);
            assert!(found.is_empty(), "emergency in: {text}: {found:?}");
        }
    }

    #[test]
    fn building_part_falling_on_people_is_emergency() {
        let cases: &[(&str, &str)] = &[
            (
                "Pieces of the balcony above us are falling off where the children play",
                "en",
            ),
            (
                "Roof tiles keep falling onto the pavement in this wind",
                "en",
            ),
            (
                "Der falder stykker af altanen ned i gården, hvor børnene leger",
                "da",
            ),
            ("Tagsten blæser af taget og ned på fortovet", "da"),
            ("Altanen er ved at falde ned på fortovet", "da"),
            (
                "A chunk of the facade came off this morning. It nearly hit someone.",
                "en",
            ),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            assert!(!found.is_empty(), "no emergency in: {text}");
            assert_eq!(found[0].category, "structural", "text: {text}: {found:?}");
        }
        let harmless: &[(&str, &str)] = &[
            ("Tiles are falling off the bathroom wall", "en"),
            (
                "Det er seks uger siden, tagrenden ud mod gården faldt ned",
                "da",
            ),
            ("A slate fell off the roof onto the road last night", "en"),
            (
                "The gutter over the pavement has come loose, but nothing has fallen yet",
                "en",
            ),
            ("Tagrenden hænger og drypper ned på min altan", "da"),
            (
                "Blade falder ned i tagrenden ud mod gaden, den skal renses",
                "da",
            ),
            (
                "Snow is falling and the gutter above the pavement is blocked",
                "en",
            ),
            (
                "Altandøren falder i med et brag, børnene leger ved den",
                "da",
            ),
            (
                "Tagrenden faldt ned sidste måned, lige hvor børnene leger",
                "da",
            ),
            (
                "What happens if a roof tile falls down onto the street? Who is liable?",
                "en",
            ),
            (
                "The street lamp outside is broken, kids play there at night",
                "en",
            ),
        ];
        for (text, language) in harmless {
            let (found, _) = emergencies(text, language);
            assert!(found.is_empty(), "emergency in: {text}: {found:?}");
        }
    }

    #[test]
    fn harmless_uses_of_new_wordings() {
        let cases: &[(&str, &str)] = &[
            ("Water comes in under the balcony door when it rains", "en"),
            (
                "Vand drypper gennem loftet, vi har sat en spand under",
                "da",
            ),
            ("If a pipe bursts, who do we call?", "en"),
            (
                "The lift is out of order and my mum can't get out of the flat",
                "en",
            ),
            ("My bike was stolen, the lock was broken", "en"),
            ("Someone got into the bike shed and took two bikes", "en"),
            ("Vand loeber ned under doeren naar det regner", "da"),
            ("The new sofa smells of plastic", "en"),
            (
                "The lift stops between floors and jumps, nobody was inside",
                "en",
            ),
            ("Ovnen brænder alt på, selv ved 150 grader", "da"),
            (
                "The gas fitter checked the hob. But we can't smell it any more",
                "en",
            ),
            (
                "Skal der lukkes for vandet i hele opgangen, når opvaskemaskinen monteres?",
                "da",
            ),
            (
                "The tile next to the bath has come loose and I don't want to pay for it",
                "en",
            ),
            (
                "Vandet stiger op i toilettet hver gang vaskemaskinen tømmer ud",
                "da",
            ),
            (
                "The bathroom drain has smelt of rotten eggs since the holiday",
                "en",
            ),
            ("Afløbet i køkkenet lugter af rådne æg om morgenen", "da"),
            (
                "Smoke from the wood stove next door drifts into our living room at night",
                "en",
            ),
            ("Isen i fryseren er smeltet, og fryseren larmer", "da"),
            (
                "Toilettet løber hele tiden, og vandregningen stiger og stiger",
                "da",
            ),
            (
                "Naboen står i døren og ryger cerutter, og røgen siver ind hos os",
                "da",
            ),
            (
                "Naboen har grillet på kulgrill, og røgen fylder hele lejligheden",
                "da",
            ),
            (
                "Rengøringen lader kælderdøren stå åben. Vi har haft indbrud i kælderen før",
                "da",
            ),
            (
                "Det siver vand fra ventilen, nogle dråber i timen, men det stopper ikke",
                "da",
            ),
            (
                "The valve drips into a bowl, a few drops an hour, and it won't stop",
                "en",
            ),
            (
                "Tagrenden ved køkkenvinduet løber over og vandet plasker ned på ruden",
                "da",
            ),
            (
                "The gutter overflows and water splashes onto the terrace",
                "en",
            ),
            (
                "Når vi tager bad, kommer vandet op gennem afløbet i gangen",
                "da",
            ),
            ("The flames of the old cooker burn yellow and flicker", "en"),
            (
                "Varmen er gået, men det er ikke frost. Min mor på 90 bor hos os",
                "da",
            ),
            (
                "The heating is off. It's not freezing out, though my dad is 88",
                "en",
            ),
        ];
        for (text, language) in cases {
            let (found, _) = emergencies(text, language);
            assert!(found.is_empty(), "emergency in: {text}: {found:?}");
        }
    }

    #[test]
    fn heating_outage_vulnerable_or_not() {
        let nobody_vulnerable = [
            "Heating is off in the whole flat and it's minus 4 outside",
            "Varmen er gået i nat, og det fryser. Vi har tæpper nok",
            "The radiators are stone cold since Sunday",
        ];
        for text in nobody_vulnerable {
            assert!(
                heating_outage_without_vulnerable_person(text).is_some(),
                "no outage found in: {text}"
            );
        }
        let other = [
            "Heating is off and it's minus 4, my mum is 90 and lives here",
            "Ingen varme, og vi har en baby på 3 uger",
            "The heating works fine, the radiator just ticks",
            "Radiatoren er ikke kold, men den larmer",
        ];
        for text in other {
            assert!(
                heating_outage_without_vulnerable_person(text).is_none(),
                "outage without a vulnerable person in: {text}"
            );
        }
    }

    #[test]
    fn negated_and_hypothetical_danger_is_dismissed() {
        let cases = [
            "There is no smoke, the alarm just beeps for a new battery",
            "Det lugter ikke af gas, men komfuret tænder ikke",
            "What should we do in case of fire in the stairwell?",
            "Hvad gør man hvis der er brand i kælderen?",
            "The smoke detector battery needs changing",
            "Not an emergency, but the fire door closes slowly",
            "The lift is not stuck, it is just slow",
            "Loftslampen drypper ikke længere, den er tør nu",
            "There is no smoke now, I cant see any",
        ];
        for text in cases {
            assert!(emergency_rules(text).is_empty(), "emergency in: {text}");
        }
        assert!(denies_emergency("It's not an emergency, just a slow drain"));
        assert!(denies_emergency("ikke akut, men vasken er langsom"));
    }
}
