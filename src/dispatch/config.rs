//! The `[dispatch]` section and the files it references: vendors, SLA policy, escalation
//! contacts and handover rules, update templates and the building's asset map.
//!
//! ```toml
//! [dispatch]
//! vendors = "vendors.toml"
//! sla = "sla.toml"
//! escalation = "escalation.toml"
//! templates = "templates"
//! building = "building.toml"
//! update_topic = "tenants/{unit}/updates"
//! operator_topic = "caretaker/building-7/operator"
//! ```

mod building;
mod escalation;
mod sla;
mod vendors;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use super::hours::Window;
use super::merge::AssetMap;
use super::templates::Templates;
use crate::config::{Diagnostics, TomlFile};
use crate::triage::CATEGORIES;

pub use escalation::Contact;
pub use sla::Sla;
pub use vendors::Vendor;

/// The urgencies of triage that have an SLA.
pub const URGENCIES: [&str; 3] = ["emergency", "urgent", "routine"];

/// Trades whose emergencies need a vendor at once, so that check-config warns when no vendor
/// with `emergency = true` takes them.
pub const EMERGENCY_TRADES: [&str; 7] = [
    "gas",
    "fire_safety",
    "plumbing",
    "electrical",
    "heating",
    "elevator",
    "doors_locks",
];

/// The handover rules of triage.
pub const HANDOVER_RULES: [&str; 6] = [
    "emergency",
    "dispute",
    "legal",
    "low_confidence",
    "complaint",
    "model",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawDispatch {
    /// Vendor list (default `vendors.toml`).
    vendors: PathBuf,
    /// SLA policy (default `sla.toml`).
    sla: PathBuf,
    /// Escalation contacts and handover rules (default `escalation.toml`).
    escalation: PathBuf,
    /// Folder with `da.toml` and `en.toml` (default `templates`).
    templates: PathBuf,
    /// Time zone and which units each asset serves (default `building.toml`).
    building: PathBuf,
    /// Topic of a unit's updates, with `{unit}` as one level (default
    /// `tenants/{unit}/updates`).
    update_topic: String,
    /// Topic of updates for the operator: those of unknown senders, pages and copies.
    operator_topic: String,
    /// Language of the operator's updates and of sensor tickets, `da` or `en` (default `da`).
    operator_language: String,
    /// Minutes within which a message and an anomaly on a serving asset merge (default 120).
    merge_window_mins: u32,
    /// Units reporting one incident that raise it to urgent (default 3).
    many_units: u32,
    /// Milliseconds between dispatch passes (default 1000).
    interval_ms: u64,
    /// Days ahead that scheduling looks for a slot (default 14).
    horizon_days: u32,
    /// Days closed and cancelled tickets, their history and updates are kept (default 365).
    ticket_retention_days: u32,
    /// Days published tenant updates are kept (default 90).
    update_retention_days: u32,
}

impl Default for RawDispatch {
    fn default() -> Self {
        RawDispatch {
            vendors: "vendors.toml".into(),
            sla: "sla.toml".into(),
            escalation: "escalation.toml".into(),
            templates: "templates".into(),
            building: "building.toml".into(),
            update_topic: "tenants/{unit}/updates".into(),
            operator_topic: "caretaker/operator/updates".into(),
            operator_language: "da".into(),
            merge_window_mins: 120,
            many_units: 3,
            interval_ms: 1000,
            horizon_days: 14,
            ticket_retention_days: 365,
            update_retention_days: 90,
        }
    }
}

/// The validated `[dispatch]` section with every file it references.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub vendors: Vec<Vendor>,
    pub sla: HashMap<String, Sla>,
    pub warn_percent: u32,
    pub job_cost: HashMap<String, u32>,
    pub contacts: Vec<Contact>,
    pub stop_automation: Vec<String>,
    pub templates: Templates,
    pub time_zone: Tz,
    pub assets: AssetMap,
    pub update_topic: String,
    pub operator_topic: String,
    pub operator_language: String,
    pub merge_window_ms: i64,
    pub many_units: usize,
    pub interval_ms: u64,
    pub horizon_days: u32,
    pub ticket_retention_days: u32,
    pub update_retention_days: u32,
}

impl DispatchConfig {
    /// The topic of a unit's updates.
    pub fn unit_topic(&self, unit: &str) -> String {
        self.update_topic.replace("{unit}", unit)
    }

    /// The SLA for an urgency; `none` and unknown urgencies use `routine`.
    pub fn sla_for(&self, urgency: &str) -> Sla {
        self.sla
            .get(urgency)
            .or_else(|| self.sla.get("routine"))
            .copied()
            .unwrap_or(Sla {
                acknowledge_mins: 24 * 60,
                on_site_mins: 7 * 24 * 60,
                resolve_mins: 14 * 24 * 60,
                job_mins: 120,
            })
    }
}

/// Loads `[dispatch]` and its files. Returns `None` when the section is absent or invalid;
/// problems go to `diags`.
pub fn load(file: &TomlFile, base_dir: &Path, diags: &mut Diagnostics) -> Option<DispatchConfig> {
    let item = file.get("dispatch")?;
    let before = diags.len();
    let raw: RawDispatch = file.deserialize(item, "dispatch", diags)?;

    if !raw.update_topic.split('/').any(|level| level == "{unit}") {
        file.report_at(
            diags,
            &["dispatch", "update_topic"],
            format!(
                "invalid topic {:?}; it needs {{unit}} as one whole level, such as \
                 tenants/{{unit}}/updates",
                raw.update_topic
            ),
        );
    }
    let operator_topic = validate_topic(&raw.operator_topic).and_then(|()| {
        if raw.operator_topic.contains('{') {
            Err(format!(
                "invalid topic {:?}: it contains a placeholder; give one topic for all \
                 operator updates, such as caretaker/building-7/operator",
                raw.operator_topic
            ))
        } else {
            Ok(())
        }
    });
    if let Err(message) = operator_topic {
        file.report_at(diags, &["dispatch", "operator_topic"], message);
    }
    if !super::templates::LANGUAGES.contains(&raw.operator_language.as_str()) {
        file.report_at(
            diags,
            &["dispatch", "operator_language"],
            format!(
                "invalid language {:?}; expected \"da\" or \"en\"",
                raw.operator_language
            ),
        );
    }
    for (key, value) in [
        ("merge_window_mins", raw.merge_window_mins),
        ("many_units", raw.many_units),
        ("horizon_days", raw.horizon_days),
        ("ticket_retention_days", raw.ticket_retention_days),
        ("update_retention_days", raw.update_retention_days),
    ] {
        if value == 0 {
            file.report_at(diags, &["dispatch", key], "must be greater than 0");
        }
    }
    if raw.interval_ms == 0 {
        file.report_at(
            diags,
            &["dispatch", "interval_ms"],
            "must be greater than 0",
        );
    }

    let vendors = vendors::load(&base_dir.join(&raw.vendors), diags);
    let sla = sla::load(&base_dir.join(&raw.sla), diags);
    let escalation = escalation::load(&base_dir.join(&raw.escalation), diags);
    let templates = Templates::load(&base_dir.join(&raw.templates), diags);
    let building = building::load(&base_dir.join(&raw.building), diags);

    if diags.len() != before {
        return None;
    }
    if let (Some(vendors), Some((_, _, job_cost))) = (&vendors, &sla) {
        warn_costs_over_caps(&base_dir.join(&raw.sla), vendors, job_cost, diags);
    }
    let (sla, warn_percent, job_cost) = sla?;
    let (contacts, stop_automation) = escalation?;
    let (time_zone, assets) = building?;
    Some(DispatchConfig {
        vendors: vendors?,
        sla,
        warn_percent,
        job_cost,
        contacts,
        stop_automation,
        templates: templates?,
        time_zone,
        assets,
        update_topic: raw.update_topic,
        operator_topic: raw.operator_topic,
        operator_language: raw.operator_language,
        merge_window_ms: i64::from(raw.merge_window_mins) * 60_000,
        many_units: raw.many_units as usize,
        interval_ms: raw.interval_ms,
        horizon_days: raw.horizon_days,
        ticket_retention_days: raw.ticket_retention_days,
        update_retention_days: raw.update_retention_days,
    })
}

/// Warns about each trade whose job cost is above the cost cap of every vendor that takes
/// it: dispatch finds no vendor for such a job and escalates it to a human, emergencies too.
fn warn_costs_over_caps(
    sla_file: &Path,
    vendors: &[Vendor],
    job_cost: &HashMap<String, u32>,
    diags: &mut Diagnostics,
) {
    // The SLA file is read again for the line of each key. It loaded a moment ago, so this
    // read fails only in a race, and then the check is skipped.
    let Some(file) = TomlFile::load(sla_file, &mut Diagnostics::default()) else {
        return;
    };
    let mut trades: Vec<(&String, &u32)> = job_cost.iter().collect();
    trades.sort();
    for (trade, cost) in trades {
        let caps: Vec<u32> = vendors
            .iter()
            .filter(|vendor| vendor.trades.iter().any(|t| t == trade))
            .map(|vendor| vendor.cost_cap)
            .collect();
        let Some(highest) = caps.iter().copied().max() else {
            continue;
        };
        if highest < *cost {
            file.warn_at(
                diags,
                &["job_cost", trade.as_str()],
                format!(
                    "job cost {cost} for {trade:?} is above the cost cap of every vendor that \
                     takes it (highest {highest}), so its tickets escalate to a human with no \
                     vendor sent; raise a vendor's cost_cap or lower the job cost"
                ),
            );
        }
    }
}

/// Appends `index` to the key path `at`, for a value inside an array.
fn indexed<'a>(at: &[&'a str], index: &'a str) -> Vec<&'a str> {
    let mut segments = at.to_vec();
    segments.push(index);
    segments
}

/// Returns a required value, reporting an absent key with `example`. A key that is present
/// but invalid was reported while deserializing, so it is not reported again.
fn required<T>(
    file: &TomlFile,
    diags: &mut Diagnostics,
    at: &[&str],
    value: Option<T>,
    example: &str,
) -> Option<T> {
    if value.is_none() && file.span_of(at).is_none() {
        let key = at.last().copied().unwrap_or("-");
        file.report_at(
            diags,
            at,
            format!("missing {key}; add it, such as {example}"),
        );
    }
    value
}

/// Converts a whole number, reporting it when it is outside `range`. `meaning` names what the
/// number counts, such as "jobs per day".
fn whole_number(
    file: &TomlFile,
    diags: &mut Diagnostics,
    at: &[&str],
    value: i64,
    range: RangeInclusive<u32>,
    meaning: &str,
) -> Option<u32> {
    let number = u32::try_from(value).ok().filter(|n| range.contains(n));
    if number.is_none() {
        let key = at.last().copied().unwrap_or("-");
        let expected = if *range.end() == u32::MAX {
            format!("at least {}", range.start())
        } else {
            format!("from {} to {}", range.start(), range.end())
        };
        file.report_at(
            diags,
            at,
            format!("invalid {key} {value}; expected {meaning}, {expected}"),
        );
    }
    number
}

fn parse_zone(file: &TomlFile, diags: &mut Diagnostics, at: &[&str], text: &str) -> Option<Tz> {
    if let Ok(tz) = text.parse::<Tz>() {
        return Some(tz);
    }
    let same_but_case = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(text));
    let message = match same_but_case {
        Some(tz) => format!("unknown time zone {text:?}; did you mean {:?}?", tz.name()),
        None => {
            format!("unknown time zone {text:?}; expected an IANA name such as Europe/Copenhagen")
        }
    };
    file.report_at(diags, at, message);
    None
}

/// Parses weekly windows, reporting each invalid one at its index under `at`.
fn parse_windows(
    file: &TomlFile,
    diags: &mut Diagnostics,
    at: &[&str],
    texts: &[String],
) -> Vec<Window> {
    let mut windows = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        match Window::parse(text) {
            Ok(window) => windows.push(window),
            Err(message) => {
                let index_text = index.to_string();
                file.report_at(diags, &indexed(at, &index_text), message);
            }
        }
    }
    windows
}

/// Reports a trade that is not a category of the triage schema. Returns whether it is one.
fn check_trade(file: &TomlFile, diags: &mut Diagnostics, at: &[&str], trade: &str) -> bool {
    let known = CATEGORIES.contains(&trade);
    if !known {
        file.report_at(
            diags,
            at,
            format!(
                "unknown trade {trade:?}; expected a triage category: {}",
                CATEGORIES.join(", ")
            ),
        );
    }
    known
}

/// Reports each trade that is not a category of the triage schema, at its index under `at`.
fn check_trades(file: &TomlFile, diags: &mut Diagnostics, at: &[&str], trades: &[String]) {
    for (index, trade) in trades.iter().enumerate() {
        let index_text = index.to_string();
        check_trade(file, diags, &indexed(at, &index_text), trade);
    }
}

/// Checks an MQTT topic name that the gateway publishes to or matches senders against: not
/// empty, no wildcard, no NUL character and at most 65,535 bytes, as MQTT 3.1.1 requires.
/// Returns the reason it is invalid.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    const MAX_TOPIC_BYTES: usize = 65_535;
    if topic.is_empty() {
        return Err("invalid topic \"\": a topic must not be empty".to_string());
    }
    if topic.contains(['+', '#']) {
        return Err(format!(
            "invalid topic {topic:?}: '+' and '#' are wildcards of subscriptions; give one \
             topic such as caretaker/building-7/page/duty"
        ));
    }
    if topic.contains('\0') {
        return Err(format!(
            "invalid topic {topic:?}: it contains a NUL character"
        ));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "invalid topic of {} bytes: the limit is {MAX_TOPIC_BYTES}",
            topic.len()
        ));
    }
    Ok(())
}

/// Loads templates from `dir` and panics with the problems; for tests.
pub fn templates_for_tests(dir: &Path) -> Templates {
    let mut diags = Diagnostics::default();
    Templates::load(dir, &mut diags).unwrap_or_else(|| panic!("templates invalid:\n{diags}"))
}
