//! The vendor file: who dispatch may book, for which trades and when.

use std::collections::HashSet;
use std::path::Path;

use chrono_tz::Tz;
use serde::Deserialize;

use super::{check_trades, parse_windows, parse_zone, required, whole_number, EMERGENCY_TRADES};
use crate::config::{Diagnostics, TomlFile};
use crate::dispatch::hours::Window;
use crate::triage::CATEGORIES;

/// One vendor as written in the vendor file. Every key is optional here, so that an invalid
/// or missing one is reported without hiding the problems of the others.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RawVendor {
    name: Option<String>,
    trades: Option<Vec<String>>,
    time_zone: Option<String>,
    hours: Option<Vec<String>>,
    emergency: bool,
    on_call: Vec<String>,
    daily_capacity: Option<i64>,
    cost_cap: Option<i64>,
}

const DEFAULT_ZONE: &str = "Europe/Copenhagen";

/// A vendor with parsed hours.
#[derive(Debug, Clone)]
pub struct Vendor {
    pub name: String,
    pub trades: Vec<String>,
    pub time_zone: Tz,
    pub hours: Vec<Window>,
    /// Whether the vendor takes emergencies in its `on_call` hours.
    pub emergency: bool,
    pub on_call: Vec<Window>,
    pub daily_capacity: u32,
    /// Highest job cost the vendor may take without an office decision, in the currency of
    /// the SLA file's `job_cost`.
    pub cost_cap: u32,
}

/// Loads the vendor file, reporting every invalid vendor and key, and warns about trades
/// that no vendor takes.
pub(super) fn load(path: &Path, diags: &mut Diagnostics) -> Option<Vec<Vendor>> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["vendor"], diags);
    let raw: Vec<(usize, RawVendor)> = file.array_section_indexed(None, "vendor", "vendor", diags);
    if raw.is_empty() && diags.len() == before {
        file.report(
            diags,
            "vendor",
            None,
            "no [[vendor]]; add at least one vendor",
        );
    }
    let mut vendors = Vec::new();
    let mut names = HashSet::new();
    for (index, vendor) in raw {
        let index_text = index.to_string();
        if let Some(name) = &vendor.name {
            if name.trim().is_empty() {
                let at = ["vendor", index_text.as_str(), "name"];
                file.report_at(diags, &at, "empty name; give the vendor's name");
            } else if !names.insert(name.clone()) {
                let at = ["vendor", index_text.as_str(), "name"];
                file.report_at(
                    diags,
                    &at,
                    format!("duplicate vendor {name:?}; give each vendor its own name"),
                );
            }
        }
        if let Some(vendor) = check_vendor(&file, diags, &index_text, vendor) {
            vendors.push(vendor);
        }
    }
    if diags.len() != before {
        return None;
    }
    warn_uncovered_trades(&file, diags, &vendors);
    Some(vendors)
}

/// Checks one vendor's keys, reporting each problem. Returns the vendor when every required
/// key is present and valid.
fn check_vendor(
    file: &TomlFile,
    diags: &mut Diagnostics,
    index: &str,
    vendor: RawVendor,
) -> Option<Vendor> {
    let at = |key: &'static str| ["vendor", index, key];
    let name = required(
        file,
        diags,
        &at("name"),
        vendor.name,
        "name = \"Nordvarme VVS\"",
    );

    let trades = required(
        file,
        diags,
        &at("trades"),
        vendor.trades,
        "trades = [\"plumbing\", \"heating\"]",
    );
    if let Some(trades) = &trades {
        if trades.is_empty() {
            file.report_at(
                diags,
                &at("trades"),
                "no trades; list the triage categories the vendor takes",
            );
        }
        check_trades(file, diags, &at("trades"), trades);
    }

    let zone_text = vendor.time_zone.as_deref().unwrap_or(DEFAULT_ZONE);
    let time_zone = parse_zone(file, diags, &at("time_zone"), zone_text);

    let hour_texts = required(
        file,
        diags,
        &at("hours"),
        vendor.hours,
        "hours = [\"Mon-Fri 07:00-16:00\"]",
    );
    let hours = parse_windows(
        file,
        diags,
        &at("hours"),
        hour_texts.as_deref().unwrap_or(&[]),
    );
    if hour_texts.as_ref().is_some_and(Vec::is_empty) {
        file.report_at(
            diags,
            &at("hours"),
            "no working hours; add windows such as \"Mon-Fri 07:00-16:00\"",
        );
    }

    let on_call = parse_windows(file, diags, &at("on_call"), &vendor.on_call);
    if vendor.emergency && vendor.on_call.is_empty() {
        file.report_at(
            diags,
            &at("on_call"),
            "emergency = true needs on_call hours, such as \"Mon-Sun 00:00-24:00\"",
        );
    }
    if !vendor.emergency && !vendor.on_call.is_empty() {
        file.warn_at(
            diags,
            &at("on_call"),
            "on_call hours are not used because emergency is false; set emergency = true \
             or remove on_call",
        );
    }

    let daily_capacity = required(
        file,
        diags,
        &at("daily_capacity"),
        vendor.daily_capacity,
        "daily_capacity = 4",
    )
    .and_then(|value| {
        whole_number(
            file,
            diags,
            &at("daily_capacity"),
            value,
            1..=u32::MAX,
            "the number of jobs the vendor takes per day",
        )
    });

    let cost_cap = required(
        file,
        diags,
        &at("cost_cap"),
        vendor.cost_cap,
        "cost_cap = 5000",
    )
    .and_then(|value| {
        whole_number(
            file,
            diags,
            &at("cost_cap"),
            value,
            1..=u32::MAX,
            "the largest job cost the vendor takes, in the currency of job_cost",
        )
    });

    Some(Vendor {
        name: name?,
        trades: trades?,
        time_zone: time_zone?,
        hours,
        emergency: vendor.emergency,
        on_call,
        daily_capacity: daily_capacity?,
        cost_cap: cost_cap?,
    })
}

/// Warns about each triage category that no vendor takes, and each emergency trade that no
/// vendor with `emergency = true` takes: dispatch escalates such tickets to a human.
fn warn_uncovered_trades(file: &TomlFile, diags: &mut Diagnostics, vendors: &[Vendor]) {
    for category in CATEGORIES {
        let mut takers = vendors
            .iter()
            .filter(|vendor| vendor.trades.iter().any(|trade| trade == category))
            .peekable();
        if takers.peek().is_none() {
            file.warn_at(
                diags,
                &["vendor"],
                format!(
                    "no vendor takes category {category:?}, so its tickets escalate to a \
                     human; add {category:?} to the trades of a vendor"
                ),
            );
            continue;
        }
        let on_call = takers.any(|vendor| vendor.emergency);
        if EMERGENCY_TRADES.contains(category) && !on_call {
            file.warn_at(
                diags,
                &["vendor"],
                format!(
                    "no vendor with emergency = true takes category {category:?}, so its \
                     emergencies escalate to a human and no vendor is sent; add an on-call \
                     vendor for {category:?}"
                ),
            );
        }
    }
}
