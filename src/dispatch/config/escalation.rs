//! The escalation file: who takes over a ticket, and the handover rules after which
//! automation stops.

use std::path::Path;

use serde::Deserialize;

use super::{parse_windows, required, validate_topic, HANDOVER_RULES};
use crate::config::{Diagnostics, TomlFile};
use crate::dispatch::hours::Window;

/// A person or desk that takes escalations, as written. Every key is optional here, so that
/// each missing or invalid one is reported on its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RawContact {
    name: Option<String>,
    topic: Option<String>,
    on_call: Option<Vec<String>>,
}

/// A person or desk that takes escalations.
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

/// Handover rules that stop automation when `[handover]` is absent.
const DEFAULT_STOP_AUTOMATION: [&str; 5] =
    ["dispute", "legal", "low_confidence", "complaint", "model"];

/// Loads the escalation file, reporting every invalid contact and rule.
pub(super) fn load(path: &Path, diags: &mut Diagnostics) -> Option<(Vec<Contact>, Vec<String>)> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["contact", "handover"], diags);
    let raw: Vec<(usize, RawContact)> =
        file.array_section_indexed(None, "contact", "contact", diags);
    if raw.is_empty() && diags.len() == before {
        file.report(
            diags,
            "contact",
            None,
            "no [[contact]]; add who takes escalations",
        );
    }
    let mut contacts = Vec::new();
    for (index, contact) in raw {
        let index_text = index.to_string();
        if let Some(contact) = check_contact(&file, diags, &index_text, contact) {
            contacts.push(contact);
        }
    }
    let handover: Option<RawHandover> = file.section("handover", diags);
    let stop = handover
        .map(|h| h.stop_automation)
        .unwrap_or_else(|| DEFAULT_STOP_AUTOMATION.map(String::from).to_vec());
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

fn check_contact(
    file: &TomlFile,
    diags: &mut Diagnostics,
    index: &str,
    contact: RawContact,
) -> Option<Contact> {
    let at = |key: &'static str| ["contact", index, key];
    let name = required(
        file,
        diags,
        &at("name"),
        contact.name,
        "name = \"Driftsvagt\"",
    );
    if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
        file.report_at(diags, &at("name"), "empty name; give the contact's name");
    }
    let topic = required(
        file,
        diags,
        &at("topic"),
        contact.topic,
        "topic = \"caretaker/building-7/page/duty\"",
    );
    if let Some(Err(message)) = topic.as_deref().map(validate_topic) {
        file.report_at(diags, &at("topic"), message);
    }
    let on_call_texts = required(
        file,
        diags,
        &at("on_call"),
        contact.on_call,
        "on_call = [\"Mon-Sun 00:00-24:00\"]",
    );
    let on_call = parse_windows(
        file,
        diags,
        &at("on_call"),
        on_call_texts.as_deref().unwrap_or(&[]),
    );
    Some(Contact {
        name: name?,
        topic: topic?,
        on_call,
    })
}
