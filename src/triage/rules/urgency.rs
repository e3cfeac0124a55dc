//! Cues of a repair that is due within 24 hours, which tip a close call of the model towards
//! `urgent`.

use std::sync::LazyLock;

use regex::Regex;

use super::{find_cues, regex, Fired};

/// Cues of a repair that is due within 24 hours.
static URGENT: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let u = |rule, pattern: &str| (rule, regex(pattern));
    vec![
        u(
            "no hot water",
            concat!(
                r"\b(?:no (?:hot|warm) water|ingen (?:varmt|varme) vand|",
                r"intet varmt vand|(?:only|kun) (?:cold|koldt|lunkent) vand|",
                r"only cold water|lukewarm|lunkent|not (?:getting )?(?:any )?hot water|",
                r"varmt vand (?:virker|kommer) ikke|hot water (?:is )?(?:not|isnt|",
                r"doesnt|has stopped|stopped|gone|off|out))\b"
            ),
        ),
        u(
            "no heating",
            concat!(
                r"\b(?:no heat\w*|ingen varme|radiators? (?:are |is )?(?:stone )?cold|",
                r"kolde radiatorer|radiator\w* (?:er )?(?:helt )?kold\w*|",
                r"heating (?:is )?(?:off|not working|doesnt work|has stopped|stopped|",
                r"broken|gone)|varmen (?:er gaaet|virker ikke|er slaaet fra|er vaek|",
                r"er doed))\b"
            ),
        ),
        u(
            "fridge or freezer dead",
            concat!(
                r"\b(?:fridge|koeleskab\w*|freezer|fryser\w*|",
                r"koele fryseskab\w*)\b(?: \w+){0,5} (?:dead|died|not working|stopped|",
                r"doesnt work|isnt working|not cooling|warm|varm\w*|virker ikke|er doed|",
                r"doed|gaaet i stykker|koeler ikke|fryser ikke|off|has stopped)\b"
            ),
        ),
        u(
            "locked out or lock broken",
            concat!(
                r"\b(?:locked (?:myself )?out|laast ude|laaset (?:mig|os) ude|",
                r"lukket ude|cant lock|cannot lock|wont lock|will not lock|doesnt lock|",
                r"kan ikke laase\w*|kan ikke laases|lock (?:is )?(?:broken|jammed|",
                r"stuck)|laasen (?:er )?(?:i stykker|gaaet|sidder fast|klemmer)|",
                r"wont close|will not close|doesnt close|cant close|kan ikke lukke\w*|",
                r"vil ikke lukke|lukker ikke|still (?:has|have) a key|",
                r"stadig (?:har )?(?:en )?noegle)\b"
            ),
        ),
        u(
            "lift out of service",
            concat!(
                r"\b(?:lift|elevator\w*|liften)\b(?: \w+){0,4} (?:out of (?:order|",
                r"service)|not working|doesnt work|isnt working|dead|stopped|",
                r"ude af drift|virker ikke|staar stille|er i stykker|broken|is down)\b"
            ),
        ),
        u(
            "power out",
            concat!(
                r"\b(?:no (?:power|electricity)|power (?:is )?(?:out|gone|cut)|",
                r"ingen stroem|stroemmen er (?:gaaet|vaek)|strømmen er gået|",
                r"hele lejligheden|whole flat|whole apartment|entire flat|main fuse|",
                r"hovedsikring\w*|hfi\w*|rcd|ingen el)\b"
            ),
        ),
        u(
            "waste water backing up",
            concat!(
                r"\b(?:backing up|backs up|coming back up|coming up (?:through|in|from)|",
                r"kommer op (?:i|gennem|af)|loeber tilbage|stiger op|sewage|kloakvand|",
                r"spildevand)\b"
            ),
        ),
        u(
            "toilet blocked, the only one",
            concat!(
                r"\b(?:only|eneste|kun et|one) (?:\w+ ){0,2}(?:toilet|wc)|(?:toilet|wc|",
                r"toilettet)\b(?: \w+){0,3} (?:blocked|clogged|stoppet|tilstoppet|",
                r"overflow\w*|loeber over)\b"
            ),
        ),
        u(
            "window open to weather",
            concat!(
                r"\b(?:window\w*|vindue\w*|rude\w*|glass|",
                r"glas)\b(?: \w+){0,5} (?:smashed|shattered|knust|smadret|broken|",
                r"cracked|revnet|falling out|falde ud|wont close|kan ikke lukkes|",
                r"kan ikke lukke)\b"
            ),
        ),
        u(
            "fire door not closing",
            concat!(
                r"\b(?:fire door\w*|branddoer\w*)\b(?: \w+){0,5} (?:not|doesnt|wont|",
                r"ikke|stays open|staar aaben)\b"
            ),
        ),
        u(
            "leak caught in a bucket",
            r"\b(?:bucket|spand|spande|towels?|haandklaed\w*|baljer?|skaal)\b",
        ),
    ]
});

/// Finds cues of an urgent repair in `text`.
pub fn urgent_cues(text: &str) -> Vec<Fired> {
    find_cues(&URGENT, text)
}
