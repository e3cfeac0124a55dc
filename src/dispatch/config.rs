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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use super::hours::{self, Window};
use super::merge::AssetMap;
use super::templates::Templates;
use crate::config::{Diagnostics, TomlFile};

/// The urgencies of triage that have an SLA.
pub const URGENCIES: [&str; 3] = ["emergency", "urgent", "routine"];

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

/// One vendor as written in the vendor file.
#[derive(Debug, Clone, Deserialize)]
struct RawVendor {
    name: String,
    trades: Vec<String>,
    #[serde(default = "default_zone")]
    time_zone: String,
    hours: Vec<String>,
    #[serde(default)]
    emergency: bool,
    #[serde(default)]
    on_call: Vec<String>,
    daily_capacity: u32,
    cost_cap: u32,
}

fn default_zone() -> String {
    "Europe/Copenhagen".into()
}

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

/// Service levels of one urgency.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Sla {
    pub acknowledge_mins: u32,
    pub on_site_mins: u32,
    pub resolve_mins: u32,
    /// Length of the vendor's visit.
    pub job_mins: u32,
}

struct RawSlaFile {
    warn_percent: u32,
    urgency: HashMap<String, Sla>,
    job_cost: HashMap<String, u32>,
}

fn default_warn() -> u32 {
    80
}

/// A person or desk that takes escalations.
#[derive(Debug, Clone, Deserialize)]
struct RawContact {
    name: String,
    topic: String,
    on_call: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub name: String,
    /// MQTT topic where the contact's pager listens.
    pub topic: String,
    pub on_call: Vec<Window>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawHandover {
    /// Handover rules after which automation stops and only a human moves the ticket.
    stop_automation: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawAsset {
    name: String,
    #[serde(default)]
    trades: Vec<String>,
    units: Vec<String>,
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
    if raw.operator_topic.is_empty() || raw.operator_topic.contains(['+', '#', '{']) {
        file.report_at(
            diags,
            &["dispatch", "operator_topic"],
            format!(
                "invalid topic {:?}; expected a topic without wildcards or placeholders",
                raw.operator_topic
            ),
        );
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

    let vendors = load_vendors(&base_dir.join(&raw.vendors), diags);
    let sla = load_sla(&base_dir.join(&raw.sla), diags);
    let escalation = load_escalation(&base_dir.join(&raw.escalation), diags);
    let templates = Templates::load(&base_dir.join(&raw.templates), diags);
    let building = load_building(&base_dir.join(&raw.building), diags);

    if diags.len() != before {
        return None;
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

fn parse_zone(
    file: &TomlFile,
    diags: &mut Diagnostics,
    segments: &[&str],
    text: &str,
) -> Option<Tz> {
    match text.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            file.report_at(
                diags,
                segments,
                format!(
                    "unknown time zone {text:?}; expected an IANA name such as Europe/Copenhagen"
                ),
            );
            None
        }
    }
}

fn parse_windows(
    file: &TomlFile,
    diags: &mut Diagnostics,
    segments: &[&str],
    texts: &[String],
) -> Vec<Window> {
    match hours::parse_all(texts) {
        Ok(windows) => windows,
        Err(message) => {
            file.report_at(diags, segments, message);
            Vec::new()
        }
    }
}

fn load_vendors(path: &Path, diags: &mut Diagnostics) -> Option<Vec<Vendor>> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["vendor"], diags);
    let raw: Vec<RawVendor> = file.array_section(None, "vendor", "vendor", diags);
    if raw.is_empty() && diags.len() == before {
        file.report(
            diags,
            "vendor",
            None,
            "no [[vendor]]; add at least one vendor",
        );
    }
    let mut vendors = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, vendor) in raw.into_iter().enumerate() {
        let index_text = index.to_string();
        let at = |key: &'static str| ["vendor", index_text.as_str(), key];
        if !names.insert(vendor.name.clone()) {
            file.report_at(
                diags,
                &at("name"),
                format!("duplicate vendor {:?}", vendor.name),
            );
        }
        if vendor.trades.is_empty() {
            file.report_at(diags, &at("trades"), "no trades; list what the vendor does");
        }
        let time_zone = parse_zone(&file, diags, &at("time_zone"), &vendor.time_zone);
        let hours = parse_windows(&file, diags, &at("hours"), &vendor.hours);
        if vendor.hours.is_empty() {
            file.report_at(
                diags,
                &at("hours"),
                "no working hours, such as \"Mon-Fri 07:00-16:00\"",
            );
        }
        let on_call = parse_windows(&file, diags, &at("on_call"), &vendor.on_call);
        if vendor.emergency && vendor.on_call.is_empty() {
            file.report_at(
                diags,
                &at("on_call"),
                "emergency = true needs on_call hours, such as \"Mon-Sun 00:00-24:00\"",
            );
        }
        if vendor.daily_capacity == 0 {
            file.report_at(diags, &at("daily_capacity"), "must be greater than 0");
        }
        if let Some(time_zone) = time_zone {
            vendors.push(Vendor {
                name: vendor.name,
                trades: vendor.trades,
                time_zone,
                hours,
                emergency: vendor.emergency,
                on_call,
                daily_capacity: vendor.daily_capacity,
                cost_cap: vendor.cost_cap,
            });
        }
    }
    (diags.len() == before).then_some(vendors)
}

type SlaParts = (HashMap<String, Sla>, u32, HashMap<String, u32>);

fn load_sla(path: &Path, diags: &mut Diagnostics) -> Option<SlaParts> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["warn_percent", "urgency", "job_cost"], diags);
    let warn_percent = match file.get("warn_percent") {
        None => default_warn(),
        Some(item) => match item.as_integer().and_then(|v| u32::try_from(v).ok()) {
            Some(value) => value,
            None => {
                file.report_at(
                    diags,
                    &["warn_percent"],
                    "expected a whole number of percent",
                );
                default_warn()
            }
        },
    };
    let raw = RawSlaFile {
        warn_percent,
        urgency: file.section("urgency", diags).unwrap_or_default(),
        job_cost: file.section("job_cost", diags).unwrap_or_default(),
    };
    for urgency in URGENCIES {
        match raw.urgency.get(urgency) {
            None => file.report_at(
                diags,
                &["urgency"],
                format!("missing [urgency.{urgency}]; every urgency needs an SLA"),
            ),
            Some(sla) => {
                let ordered = sla.acknowledge_mins <= sla.on_site_mins
                    && sla.on_site_mins <= sla.resolve_mins;
                if !ordered {
                    file.report_at(
                        diags,
                        &["urgency", urgency],
                        "expected acknowledge_mins <= on_site_mins <= resolve_mins",
                    );
                }
                if sla.job_mins == 0 || sla.job_mins > 24 * 60 {
                    file.report_at(
                        diags,
                        &["urgency", urgency, "job_mins"],
                        format!("job_mins {} is outside 1..=1440", sla.job_mins),
                    );
                }
            }
        }
    }
    for key in raw.urgency.keys() {
        if !URGENCIES.contains(&key.as_str()) {
            file.report_at(
                diags,
                &["urgency", key],
                format!("unknown urgency; expected one of {}", URGENCIES.join(", ")),
            );
        }
    }
    if raw.warn_percent == 0 || raw.warn_percent >= 100 {
        file.report_at(diags, &["warn_percent"], "must be between 1 and 99");
    }
    (diags.len() == before).then_some((raw.urgency, raw.warn_percent, raw.job_cost))
}

fn load_escalation(path: &Path, diags: &mut Diagnostics) -> Option<(Vec<Contact>, Vec<String>)> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["contact", "handover"], diags);
    let raw: Vec<RawContact> = file.array_section(None, "contact", "contact", diags);
    if raw.is_empty() && diags.len() == before {
        file.report(
            diags,
            "contact",
            None,
            "no [[contact]]; add who takes escalations",
        );
    }
    let mut contacts = Vec::new();
    for (index, contact) in raw.into_iter().enumerate() {
        let index_text = index.to_string();
        let on_call = parse_windows(
            &file,
            diags,
            &["contact", &index_text, "on_call"],
            &contact.on_call,
        );
        if contact.topic.is_empty() || contact.topic.contains(['+', '#']) {
            file.report_at(
                diags,
                &["contact", &index_text, "topic"],
                format!(
                    "invalid topic {:?}; expected a topic without wildcards",
                    contact.topic
                ),
            );
        }
        contacts.push(Contact {
            name: contact.name,
            topic: contact.topic,
            on_call,
        });
    }
    let handover: Option<RawHandover> = file.section("handover", diags);
    let stop = handover.map(|h| h.stop_automation).unwrap_or_else(|| {
        ["dispute", "legal", "low_confidence", "complaint", "model"]
            .map(String::from)
            .to_vec()
    });
    for (index, rule) in stop.iter().enumerate() {
        if !HANDOVER_RULES.contains(&rule.as_str()) {
            file.report_at(
                diags,
                &["handover", "stop_automation", &index.to_string()],
                format!(
                    "unknown rule {rule:?}; expected one of {}",
                    HANDOVER_RULES.join(", ")
                ),
            );
        }
    }
    (diags.len() == before).then_some((contacts, stop))
}

fn load_building(path: &Path, diags: &mut Diagnostics) -> Option<(Tz, AssetMap)> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["time_zone", "asset"], diags);
    let zone_text = file
        .get("time_zone")
        .and_then(|item| item.as_str())
        .map(str::to_string);
    let time_zone = match zone_text {
        Some(text) => parse_zone(&file, diags, &["time_zone"], &text),
        None => {
            file.report(
                diags,
                "time_zone",
                None,
                "missing time_zone, such as \"Europe/Copenhagen\"",
            );
            None
        }
    };
    let raw: Vec<RawAsset> = file.array_section(None, "asset", "asset", diags);
    let mut map = AssetMap::default();
    for (index, asset) in raw.into_iter().enumerate() {
        if asset.units.is_empty() {
            file.report_at(
                diags,
                &["asset", &index.to_string(), "units"],
                "no units; list the units the asset serves",
            );
        }
        map.units.insert(asset.name.clone(), asset.units);
        map.trades.insert(asset.name, asset.trades);
    }
    if diags.len() != before {
        return None;
    }
    Some((time_zone?, map))
}

/// Loads templates from `dir` and panics with the problems; for tests.
pub fn templates_for_tests(dir: &Path) -> Templates {
    let mut diags = Diagnostics::default();
    Templates::load(dir, &mut diags).unwrap_or_else(|| panic!("templates invalid:\n{diags}"))
}
