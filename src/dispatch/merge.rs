//! Incident merge: whether a new message or request belongs to a ticket that is already open,
//! and how the merge changes the ticket's confidence and urgency.
//!
//! Reports from different units join one ticket only when they name a supply fault of an asset
//! that serves them all (no hot water, no heat, no water pressure, power out, lift out of
//! service). A fault of a fixture in one flat (a leaking tap, a broken radiator valve, a
//! blocked toilet, a broken socket) joins only tickets of the same unit, and so does a
//! message whose text names neither kind.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// The origin of a new input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Message,
    Request,
}

/// A new message or request, with the fields merge compares.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub kind: InputKind,
    pub unit: Option<&'a str>,
    pub asset: Option<&'a str>,
    /// The category (trade) of the job.
    pub category: &'a str,
    /// The fault kind of a request, or for a message the kind that [`message_fault`] finds in
    /// its text, else its category.
    pub fault: &'a str,
    pub ts_ms: i64,
}

/// An open ticket, with the fields merge compares.
#[derive(Debug, Clone)]
pub struct OpenTicket {
    pub id: String,
    pub unit: Option<String>,
    pub asset: Option<String>,
    pub category: String,
    pub fault: String,
    pub opened_ms: i64,
    /// Units whose messages the ticket contains.
    pub units: Vec<String>,
    /// Whether a sensor request is among the ticket's sources.
    pub has_request: bool,
    /// Whether a tenant message is among the ticket's sources.
    pub has_message: bool,
}

/// The building's asset map: the units each asset serves and the trades its faults need.
#[derive(Debug, Clone, Default)]
pub struct AssetMap {
    pub units: HashMap<String, Vec<String>>,
    pub trades: HashMap<String, Vec<String>>,
}

/// Returns a unit name in the form dispatch compares: trimmed, lower-case and without
/// spaces after a dot, so that "1. TH" and " st. tv" read as "1.th" and "st.tv".
pub fn normalize_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    let mut after_dot = false;
    for c in unit.trim().chars() {
        if after_dot && c.is_whitespace() {
            continue;
        }
        after_dot = c == '.';
        out.extend(c.to_lowercase());
    }
    out
}

/// Returns whether two unit names name the same unit once normalised.
pub fn same_unit(first: &str, second: &str) -> bool {
    first == second || normalize_unit(first) == normalize_unit(second)
}

impl AssetMap {
    pub fn serves(&self, asset: &str, unit: &str) -> bool {
        self.units
            .get(asset)
            .is_some_and(|units| units.iter().any(|u| same_unit(u, unit)))
    }

    /// Returns whether a fault of `category` can come from `asset`. An asset without listed trades
    /// matches every category.
    pub fn trade_matches(&self, asset: &str, category: &str) -> bool {
        match self.trades.get(asset) {
            Some(trades) if !trades.is_empty() => trades.iter().any(|t| t == category),
            _ => true,
        }
    }

    /// Returns the assets that serve both units and whose trades include `category`.
    pub fn shared_assets(&self, first: &str, second: &str, category: &str) -> Vec<&str> {
        let mut shared: Vec<&str> = self
            .units
            .keys()
            .filter(|asset| {
                self.serves(asset, first)
                    && self.serves(asset, second)
                    && self.trade_matches(asset, category)
            })
            .map(String::as_str)
            .collect();
        shared.sort_unstable();
        shared
    }
}

/// How far a fault reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// The supply of a shared asset fails, so every unit it serves may report it.
    Supply,
    /// A fixture in one unit fails.
    Local,
    /// The report does not say which.
    Unknown,
}

/// One kind of the fault taxonomy, with the words of a tenant's message (Danish or English)
/// that name it.
struct FaultKind {
    name: &'static str,
    scope: FaultScope,
    pattern: &'static str,
}

// NOTE: the patterns cover common Danish and English wordings only. A report in any other
// wording has no kind, so it merges only within its unit.
const FAULT_KINDS: &[FaultKind] = &[
    FaultKind {
        name: "no_hot_water",
        scope: FaultScope::Supply,
        pattern: r"\b(no|not any|without|out of) hot water|hot water (is |has )?(gone|off|out|cold|not working|stopped)|\b(ingen|intet|uden) varmt? vand|ikke (noget |nogen |mere )?varmt? vand|varmt vand (er )?(væk|forsvundet)|varmtvandet (er væk|virker ikke)",
    },
    FaultKind {
        name: "no_heat",
        scope: FaultScope::Supply,
        pattern: r"\bno heat(ing)?\b|heating (is |has )?(off|out|not working|stopped|broken|gone)|radiators are (all )?cold|\bingen varme\b|ikke (noget |nogen )?varme\b|varmen (er væk|virker ikke|er gået)|radiatorerne er kolde|kolde radiatorer",
    },
    FaultKind {
        name: "no_water_pressure",
        scope: FaultScope::Supply,
        pattern: r"\b(no|low|weak) water pressure|\bno (running |cold )?water\b|\b(ingen|intet) (koldt )?vand\b|ikke (noget |nogen )?(koldt )?vand\b|(lavt|intet|svagt|dårligt) vandtryk|vandtrykket er (lavt|væk|forsvundet)",
    },
    FaultKind {
        name: "power_out",
        scope: FaultScope::Supply,
        pattern: r"\bpower (is |has )?(out|cut|off|gone|down)|power (cut|outage|failure)|\bno (power|electricity)\b|blackout|strømafbrydelse|strømsvigt|\bingen strøm|ikke (noget |nogen )?strøm|strømmen er (gået|væk)",
    },
    FaultKind {
        name: "lift_out",
        scope: FaultScope::Supply,
        pattern: r"\b(lift|elevator) (is |has )?(out of (service|order)|not working|broken|stopped|down)|elevatoren (virker ikke|er i stykker|står stille|er gået i stå)|elevator(en)? (er )?ude af drift",
    },
    FaultKind {
        name: "leaking_tap",
        scope: FaultScope::Local,
        pattern: r"\b(tap|faucet|mixer|shower|vandhane|hane|bruser|brusehoved|blandingsbatteri)\w*\b.{0,40}\b(drip|leak|dryp|lækker|løber)|\b(drip|leak)\w*\b.{0,20}\b(tap|faucet|shower)",
    },
    FaultKind {
        name: "radiator_valve",
        scope: FaultScope::Local,
        pattern: r"radiator ?valve|radiatorventil|termostatventil|thermostat(ic)? valve|\bradiator\b.{0,30}\b(leak|drip|stuck|broken)|\bradiator(en)?\b.{0,30}\b(lækker|drypper|sidder fast|i stykker)",
    },
    FaultKind {
        name: "blocked_toilet",
        scope: FaultScope::Local,
        pattern: r"\b(toilet|loo|wc|toilettet)\b.{0,30}\b(blocked|clogged|overflow\w*|won't flush|stoppet|tilstoppet)|\b(blocked|clogged) (toilet|loo)|(stoppet|tilstoppet) toilet",
    },
    FaultKind {
        name: "broken_socket",
        scope: FaultScope::Local,
        pattern: r"\bsocket|\boutlet|power point|stikkontakt",
    },
];

static FAULT_PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    FAULT_KINDS
        .iter()
        .map(|kind| Regex::new(&format!("(?i){}", kind.pattern)).expect("valid fault pattern"))
        .collect()
});

/// Finds the fault kind a tenant's message names. A fixture fault wins over a supply fault
/// in the same text, because a fixture can explain both ("the tap gives no hot water"), so
/// that such a message merges only within its unit. Returns `None` when the text names no
/// kind of the taxonomy.
pub fn message_fault(text: &str) -> Option<&'static str> {
    let found: Vec<&FaultKind> = FAULT_KINDS
        .iter()
        .zip(FAULT_PATTERNS.iter())
        .filter(|(_, pattern)| pattern.is_match(text))
        .map(|(kind, _)| kind)
        .collect();
    found
        .iter()
        .find(|kind| kind.scope == FaultScope::Local)
        .or_else(|| found.first())
        .map(|kind| kind.name)
}

/// Returns the scope of a fault kind of the taxonomy, and `Unknown` for any other name (such
/// as a category).
pub fn fault_scope(fault: &str) -> FaultScope {
    FAULT_KINDS
        .iter()
        .find(|kind| kind.name == fault)
        .map_or(FaultScope::Unknown, |kind| kind.scope)
}

impl OpenTicket {
    /// Returns the scope of the ticket's fault. A sensor request always reports an asset, so a
    /// ticket with one is a supply fault.
    fn scope(&self) -> FaultScope {
        if self.has_request {
            FaultScope::Supply
        } else {
            fault_scope(&self.fault)
        }
    }
}

/// The decision to add an input to an open ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub ticket: String,
    /// The rule that matched: `same_unit_fault`, `same_asset`, `asset_serves_unit` or
    /// `shared_asset`.
    pub rule: &'static str,
    /// An asset the merge attributes the incident to, when the ticket had none.
    pub asset: Option<String>,
}

/// Finds the open ticket that `input` belongs to. Rules, in order:
/// - `same_unit_fault`: a message about the same fault from the same unit;
/// - `same_asset`: a request on an asset that has an open ticket;
/// - `asset_serves_unit`: a message about a supply fault and a request, either first, within
///   `window_ms`, where the request's asset serves the message's unit and the trades match;
/// - `shared_asset`: messages about supply faults of the same category from different units
///   within `window_ms`, where one asset serves both units and can cause a fault of that
///   category.
///
/// The oldest matching ticket wins, so that every later input joins the same incident.
pub fn find(
    input: &Input<'_>,
    open: &[OpenTicket],
    map: &AssetMap,
    window_ms: i64,
) -> Option<Merge> {
    let mut candidates: Vec<&OpenTicket> = open.iter().collect();
    candidates.sort_by_key(|ticket| (ticket.opened_ms, ticket.id.clone()));
    let within = |ticket: &OpenTicket| (input.ts_ms - ticket.opened_ms).abs() <= window_ms;

    for ticket in &candidates {
        let found = match input.kind {
            InputKind::Message => message_rule(input, ticket, map, within(ticket)),
            InputKind::Request => request_rule(input, ticket, map, within(ticket)),
        };
        if let Some((rule, asset)) = found {
            return Some(Merge {
                ticket: ticket.id.clone(),
                rule,
                asset,
            });
        }
    }
    None
}

fn message_rule(
    input: &Input<'_>,
    ticket: &OpenTicket,
    map: &AssetMap,
    in_window: bool,
) -> Option<(&'static str, Option<String>)> {
    let unit = input.unit?;
    let same_unit = ticket
        .unit
        .iter()
        .chain(ticket.units.iter())
        .any(|u| same_unit(u, unit));
    if same_unit && ticket.category == input.category {
        return Some(("same_unit_fault", None));
    }
    // Across units only supply faults merge, and only with a ticket about a supply fault.
    let supply = fault_scope(input.fault) == FaultScope::Supply;
    if !in_window || !supply || ticket.scope() != FaultScope::Supply {
        return None;
    }
    if let Some(asset) = &ticket.asset {
        if map.serves(asset, unit)
            && map.trade_matches(asset, input.category)
            && map.trade_matches(asset, &ticket.category)
        {
            return Some(("asset_serves_unit", None));
        }
    }
    if ticket.category != input.category {
        return None;
    }
    for other in ticket.unit.iter().chain(ticket.units.iter()) {
        // The incident is pinned to an asset only when one asset alone can explain it. With
        // several candidates it stays unpinned, so a later anomaly on any of them may join.
        if let [asset, rest @ ..] = map.shared_assets(unit, other, input.category).as_slice() {
            return Some(("shared_asset", rest.is_empty().then(|| asset.to_string())));
        }
    }
    None
}

fn request_rule(
    input: &Input<'_>,
    ticket: &OpenTicket,
    map: &AssetMap,
    in_window: bool,
) -> Option<(&'static str, Option<String>)> {
    let asset = input.asset?;
    if ticket.asset.as_deref() == Some(asset) && (ticket.has_request || in_window) {
        return Some(("same_asset", None));
    }
    if !in_window || ticket.asset.is_some() || ticket.scope() != FaultScope::Supply {
        return None;
    }
    let units: Vec<&String> = ticket.unit.iter().chain(ticket.units.iter()).collect();
    let served = units.iter().any(|unit| map.serves(asset, unit));
    if served && map.trade_matches(asset, &ticket.category) {
        return Some(("asset_serves_unit", Some(asset.to_string())));
    }
    None
}

/// Combines two independent confidences: the incident is in doubt only when both sources
/// could be wrong.
pub fn combined_confidence(ticket: f64, input: f64) -> f64 {
    let ticket = ticket.clamp(0.0, 1.0);
    let input = input.clamp(0.0, 1.0);
    1.0 - (1.0 - ticket) * (1.0 - input)
}

const URGENCY_ORDER: [&str; 4] = ["none", "routine", "urgent", "emergency"];

fn rank(urgency: &str) -> usize {
    URGENCY_ORDER
        .iter()
        .position(|u| *u == urgency)
        .unwrap_or(1)
}

/// Returns the higher of two urgencies.
pub fn max_urgency<'a>(a: &'a str, b: &'a str) -> &'a str {
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Returns the urgency after a merge, with the rule that raised it, if any:
/// - `confirmed_by_sensor`: a tenant's report and a sensor agree, which raises routine to
///   urgent;
/// - `many_units`: `many_units` or more units report it, which raises it to urgent.
///
/// Neither rule raises a ticket to emergency; only triage does.
pub fn raised_urgency(
    current: &str,
    incoming: &str,
    confirmed: bool,
    units: usize,
    many_units: usize,
) -> (String, Option<&'static str>) {
    let base = max_urgency(current, incoming);
    if rank(base) >= rank("urgent") {
        return (base.to_string(), None);
    }
    if confirmed {
        return ("urgent".to_string(), Some("confirmed_by_sensor"));
    }
    if units >= many_units {
        return ("urgent".to_string(), Some("many_units"));
    }
    (base.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> AssetMap {
        let mut map = AssetMap::default();
        map.units.insert(
            "substation".into(),
            vec!["1.tv".into(), "1.th".into(), "2.tv".into()],
        );
        map.trades.insert(
            "substation".into(),
            vec!["heating".into(), "plumbing".into()],
        );
        map
    }

    fn ticket(id: &str, unit: Option<&str>, asset: Option<&str>, category: &str) -> OpenTicket {
        OpenTicket {
            id: id.into(),
            unit: unit.map(String::from),
            asset: asset.map(String::from),
            category: category.into(),
            fault: supply_fault(category).into(),
            opened_ms: 1_000,
            units: unit.map(String::from).into_iter().collect(),
            has_request: asset.is_some(),
            has_message: unit.is_some(),
        }
    }

    fn message<'a>(unit: &'a str, category: &'a str, ts_ms: i64) -> Input<'a> {
        Input {
            kind: InputKind::Message,
            unit: Some(unit),
            asset: None,
            category,
            fault: supply_fault(category),
            ts_ms,
        }
    }

    /// Returns a supply fault of the category, so that the helpers build inputs that may
    /// merge across units.
    fn supply_fault(category: &str) -> &str {
        match category {
            "heating" => "no_heat",
            "plumbing" => "no_hot_water",
            other => other,
        }
    }

    fn local_message<'a>(unit: &'a str, category: &'a str, fault: &'a str) -> Input<'a> {
        Input {
            fault,
            ..message(unit, category, 2_000)
        }
    }

    #[test]
    fn same_unit_same_fault_merges() {
        let open = vec![ticket("t1", Some("1.tv"), None, "plumbing")];
        let merge = find(
            &message("1.tv", "plumbing", 9_999_999),
            &open,
            &map(),
            60_000,
        )
        .unwrap();
        assert_eq!(merge.rule, "same_unit_fault");
        assert!(find(&message("1.tv", "electrical", 2_000), &open, &map(), 60_000).is_none());
    }

    #[test]
    fn message_joins_sensor_ticket_of_serving_asset() {
        let open = vec![ticket("t1", None, Some("substation"), "heating")];
        let merge = find(&message("2.tv", "heating", 2_000), &open, &map(), 60_000).unwrap();
        assert_eq!(merge.rule, "asset_serves_unit");
        // Outside the window it stays apart.
        assert!(find(&message("2.tv", "heating", 500_000), &open, &map(), 60_000).is_none());
        // A unit the asset does not serve stays apart.
        assert!(find(&message("5.th", "heating", 2_000), &open, &map(), 60_000).is_none());
    }

    #[test]
    fn shared_asset_two_candidates_unpinned() {
        let mut two = map();
        two.units
            .insert("boiler".into(), vec!["1.tv".into(), "1.th".into()]);
        two.trades.insert("boiler".into(), vec!["heating".into()]);
        let open = vec![ticket("t1", Some("1.tv"), None, "heating")];
        let merge = find(&message("1.th", "heating", 2_000), &open, &two, 60_000).unwrap();
        assert_eq!(merge.rule, "shared_asset");
        assert_eq!(
            merge.asset, None,
            "two assets could explain it; neither is chosen"
        );
        // With one serving asset the incident is pinned to it.
        let merge = find(&message("1.th", "heating", 2_000), &open, &map(), 60_000).unwrap();
        assert_eq!(merge.asset.as_deref(), Some("substation"));
    }

    #[test]
    fn request_joins_message_ticket_of_served_unit() {
        let open = vec![ticket("t1", Some("1.th"), None, "heating")];
        let input = Input {
            kind: InputKind::Request,
            unit: None,
            asset: Some("substation"),
            category: "heating",
            fault: "supply_temperature_low",
            ts_ms: 2_000,
        };
        let merge = find(&input, &open, &map(), 60_000).unwrap();
        assert_eq!(merge.rule, "asset_serves_unit");
        assert_eq!(merge.asset.as_deref(), Some("substation"));
    }

    #[test]
    fn units_sharing_an_asset_merge() {
        let open = vec![ticket("t1", Some("1.tv"), None, "heating")];
        let merge = find(&message("1.th", "heating", 2_000), &open, &map(), 60_000).unwrap();
        assert_eq!(merge.rule, "shared_asset");
        assert_eq!(merge.asset.as_deref(), Some("substation"));
        assert!(find(&message("1.th", "electrical", 2_000), &open, &map(), 60_000).is_none());
    }

    #[test]
    fn unit_names_normalise_spaces_case() {
        assert_eq!(normalize_unit(" 1. TH "), "1.th");
        assert_eq!(normalize_unit("st.  tv"), "st.tv");
        assert_eq!(normalize_unit("2.th"), "2.th");
        assert!(same_unit("St. Tv", "st.tv"));
        assert!(!same_unit("1.th", "1.tv"));
        let map = map();
        assert!(map.serves("substation", "1. th"));
    }

    #[test]
    fn local_faults_stay_in_unit() {
        let mut open = vec![ticket("t1", Some("1.tv"), None, "plumbing")];
        open[0].fault = "leaking_tap".into();
        // A dripping shower in a flat that the same substation serves is another job.
        let shower = local_message("1.th", "plumbing", "leaking_tap");
        assert_eq!(find(&shower, &open, &map(), 60_000), None);
        // A message whose text names no kind cannot tell, so it stays apart as well.
        let unclear = local_message("1.th", "plumbing", "plumbing");
        assert_eq!(find(&unclear, &open, &map(), 60_000), None);
        // A supply fault does not join the tap either.
        let supply = local_message("1.th", "plumbing", "no_hot_water");
        assert_eq!(find(&supply, &open, &map(), 60_000), None);
        // The same unit still merges.
        let again = local_message("1.tv", "plumbing", "leaking_tap");
        let merge = find(&again, &open, &map(), 60_000).unwrap();
        assert_eq!(merge.rule, "same_unit_fault");
    }

    #[test]
    fn local_fault_skips_sensor_ticket() {
        let open = vec![ticket("t1", None, Some("substation"), "heating")];
        let valve = local_message("2.tv", "heating", "radiator_valve");
        assert_eq!(find(&valve, &open, &map(), 60_000), None);
        let cold = local_message("2.tv", "heating", "no_heat");
        let merge = find(&cold, &open, &map(), 60_000).unwrap();
        assert_eq!(merge.rule, "asset_serves_unit");
    }

    #[test]
    fn request_skips_local_fault_ticket() {
        let mut open = vec![ticket("t1", Some("1.th"), None, "plumbing")];
        open[0].fault = "leaking_tap".into();
        let input = Input {
            kind: InputKind::Request,
            unit: None,
            asset: Some("substation"),
            category: "plumbing",
            fault: "supply_temperature_low",
            ts_ms: 2_000,
        };
        assert_eq!(find(&input, &open, &map(), 60_000), None);
    }

    #[test]
    fn message_fault_taxonomy() {
        let cases = [
            (
                "We have no hot water since this morning",
                Some("no_hot_water"),
            ),
            (
                "Der er ikke noget varmt vand i min lejlighed",
                Some("no_hot_water"),
            ),
            (
                "The heating is not working and the flat is freezing",
                Some("no_heat"),
            ),
            ("Alle radiatorerne er kolde, ingen varme", Some("no_heat")),
            (
                "There is no water pressure in the shower",
                Some("no_water_pressure"),
            ),
            ("Strømmen er gået i hele opgangen", Some("power_out")),
            ("The lift is out of service again", Some("lift_out")),
            ("Elevatoren virker ikke", Some("lift_out")),
            (
                "The kitchen tap is dripping all the time",
                Some("leaking_tap"),
            ),
            (
                "There is a dripping shower in the bathroom",
                Some("leaking_tap"),
            ),
            (
                "Vandhanen i køkkenet drypper hele tiden",
                Some("leaking_tap"),
            ),
            (
                "The radiator valve in the bedroom is broken",
                Some("radiator_valve"),
            ),
            ("Toilettet er stoppet", Some("blocked_toilet")),
            ("The socket in the hall is broken", Some("broken_socket")),
            // A fixture explains both, so the local kind wins.
            (
                "The kitchen tap is leaking and gives no hot water",
                Some("leaking_tap"),
            ),
            ("Something is wrong with the plumbing", None),
        ];
        for (text, expected) in cases {
            assert_eq!(message_fault(text), expected, "fault of: {text}");
        }
        assert_eq!(fault_scope("no_hot_water"), FaultScope::Supply);
        assert_eq!(fault_scope("leaking_tap"), FaultScope::Local);
        assert_eq!(fault_scope("plumbing"), FaultScope::Unknown);
    }

    #[test]
    fn oldest_ticket_wins() {
        let mut newer = ticket("t2", Some("1.tv"), None, "plumbing");
        newer.opened_ms = 5_000;
        let open = vec![newer, ticket("t1", Some("1.tv"), None, "plumbing")];
        let merge = find(&message("1.tv", "plumbing", 6_000), &open, &map(), 60_000).unwrap();
        assert_eq!(merge.ticket, "t1");
    }

    #[test]
    fn urgency_rules() {
        assert_eq!(
            raised_urgency("routine", "routine", true, 1, 3),
            ("urgent".to_string(), Some("confirmed_by_sensor"))
        );
        assert_eq!(
            raised_urgency("routine", "routine", false, 3, 3),
            ("urgent".to_string(), Some("many_units"))
        );
        assert_eq!(
            raised_urgency("routine", "routine", false, 2, 3),
            ("routine".to_string(), None)
        );
        assert_eq!(
            raised_urgency("urgent", "emergency", true, 1, 3),
            ("emergency".to_string(), None)
        );
        assert!((combined_confidence(0.6, 0.5) - 0.8).abs() < 1e-9);
    }
}
