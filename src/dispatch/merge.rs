//! Incident merge: whether a new message or request belongs to a ticket that is already open,
//! and how the merge changes the ticket's confidence and urgency.

use std::collections::HashMap;

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
    /// The fault kind of a request, or the category of a message.
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

impl AssetMap {
    pub fn serves(&self, asset: &str, unit: &str) -> bool {
        self.units
            .get(asset)
            .is_some_and(|units| units.iter().any(|u| u == unit))
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
/// - `asset_serves_unit`: a message and a request, either first, within `window_ms`, where
///   the request's asset serves the message's unit and the trades match;
/// - `shared_asset`: messages of the same category from different units within `window_ms`,
///   where one asset serves both units and can cause a fault of that category.
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
    let same_unit = ticket.unit.as_deref() == Some(unit) || ticket.units.iter().any(|u| u == unit);
    if same_unit && ticket.category == input.category {
        return Some(("same_unit_fault", None));
    }
    if !in_window {
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
    if !in_window || ticket.asset.is_some() {
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
            fault: category.into(),
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
            fault: category,
            ts_ms,
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
