//! The SLA file: service levels per urgency, the escalation threshold and job costs.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{check_trade, required, whole_number, URGENCIES};
use crate::config::{Diagnostics, TomlFile};

/// Service levels of one urgency, in minutes from the ticket's opening.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Sla {
    pub acknowledge_mins: u32,
    pub on_site_mins: u32,
    pub resolve_mins: u32,
    /// Length of the vendor's visit.
    pub job_mins: u32,
}

/// One `[urgency.NAME]` table as written. Every key is optional here, so that each missing
/// or invalid one is reported on its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RawSla {
    acknowledge_mins: Option<i64>,
    on_site_mins: Option<i64>,
    resolve_mins: Option<i64>,
    job_mins: Option<i64>,
}

const DEFAULT_WARN_PERCENT: u32 = 80;

/// The longest job slot: one day.
const MAX_JOB_MINS: u32 = 24 * 60;

pub(super) type SlaParts = (HashMap<String, Sla>, u32, HashMap<String, u32>);

/// Loads the SLA file, reporting every missing, zero or inverted limit.
pub(super) fn load(path: &Path, diags: &mut Diagnostics) -> Option<SlaParts> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["warn_percent", "urgency", "job_cost"], diags);
    let warn_percent = load_warn_percent(&file, diags);
    let raw: HashMap<String, RawSla> = file.section("urgency", diags).unwrap_or_default();
    let mut urgencies = HashMap::new();
    for urgency in URGENCIES {
        let at = ["urgency", urgency];
        match raw.get(urgency) {
            // A table that is present but invalid was reported while deserializing.
            None if file.span_of(&at).is_some() => {}
            None => file.report_at(
                diags,
                &["urgency"],
                format!(
                    "missing [urgency.{urgency}]; every urgency needs acknowledge_mins, \
                     on_site_mins, resolve_mins and job_mins"
                ),
            ),
            Some(sla) => {
                if let Some(sla) = check_sla(&file, diags, urgency, sla) {
                    urgencies.insert(urgency.to_string(), sla);
                }
            }
        }
    }
    for key in raw.keys() {
        if !URGENCIES.contains(&key.as_str()) {
            file.report_at(
                diags,
                &["urgency", key],
                format!(
                    "unknown urgency {key:?}; expected one of {}",
                    URGENCIES.join(", ")
                ),
            );
        }
    }
    let job_cost = load_job_cost(&file, diags);
    (diags.len() == before).then_some((urgencies, warn_percent, job_cost))
}

fn load_warn_percent(file: &TomlFile, diags: &mut Diagnostics) -> u32 {
    let Some(item) = file.get("warn_percent") else {
        return DEFAULT_WARN_PERCENT;
    };
    let meaning = "the percent of a limit after which the ticket escalates";
    match item.as_integer() {
        Some(value) => whole_number(file, diags, &["warn_percent"], value, 1..=99, meaning)
            .unwrap_or(DEFAULT_WARN_PERCENT),
        None => {
            file.report_at(
                diags,
                &["warn_percent"],
                format!("invalid warn_percent; expected {meaning}, a whole number from 1 to 99"),
            );
            DEFAULT_WARN_PERCENT
        }
    }
}

/// Checks one urgency's limits: each present and greater than 0, on site no earlier than
/// acknowledged, resolved no earlier than on site, and a job of at most one day.
fn check_sla(file: &TomlFile, diags: &mut Diagnostics, urgency: &str, raw: &RawSla) -> Option<Sla> {
    let mut limit = |key: &str, value: Option<i64>, example: &str, max: u32| {
        let at = ["urgency", urgency, key];
        let value = required(file, diags, &at, value, example)?;
        whole_number(file, diags, &at, value, 1..=max, "minutes")
    };
    let acknowledge = limit(
        "acknowledge_mins",
        raw.acknowledge_mins,
        "acknowledge_mins = 120",
        u32::MAX,
    );
    let on_site = limit(
        "on_site_mins",
        raw.on_site_mins,
        "on_site_mins = 1440",
        u32::MAX,
    );
    let resolve = limit(
        "resolve_mins",
        raw.resolve_mins,
        "resolve_mins = 4320",
        u32::MAX,
    );
    let job = limit("job_mins", raw.job_mins, "job_mins = 120", MAX_JOB_MINS);
    let order = [
        (
            "acknowledge_mins",
            acknowledge,
            "on_site_mins",
            on_site,
            "a vendor is on site only after the ticket is acknowledged",
        ),
        (
            "on_site_mins",
            on_site,
            "resolve_mins",
            resolve,
            "a ticket is resolved only after the vendor is on site",
        ),
    ];
    for (earlier_key, earlier, later_key, later, reason) in order {
        let (Some(earlier), Some(later)) = (earlier, later) else {
            continue;
        };
        if later < earlier {
            file.report_at(
                diags,
                &["urgency", urgency, later_key],
                format!(
                    "{later_key} {later} is before {earlier_key} {earlier}; {reason}, so raise \
                     {later_key} or lower {earlier_key}"
                ),
            );
        }
    }

    Some(Sla {
        acknowledge_mins: acknowledge?,
        on_site_mins: on_site?,
        resolve_mins: resolve?,
        job_mins: job?,
    })
}

/// Loads `[job_cost]`: a job's estimated cost per trade, compared with each vendor's cost cap.
fn load_job_cost(file: &TomlFile, diags: &mut Diagnostics) -> HashMap<String, u32> {
    let raw: HashMap<String, i64> = file.section("job_cost", diags).unwrap_or_default();
    let mut costs = HashMap::new();
    for (trade, value) in raw {
        let at = ["job_cost", trade.as_str()];
        if !check_trade(file, diags, &at, &trade) {
            continue;
        }
        let meaning = "the estimated cost of a job, in the currency of the vendors' cost_cap";
        if let Some(cost) = whole_number(file, diags, &at, value, 0..=u32::MAX, meaning) {
            costs.insert(trade, cost);
        }
    }
    costs
}
