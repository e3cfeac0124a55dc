//! Tenant update templates, one TOML file per language (`da.toml`, `en.toml`) with one string
//! per template name. Placeholders are `{name}`; an unknown placeholder or a missing template
//! is a config error, found at load.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{Diagnostics, TomlFile};

/// The languages updates are written in.
pub const LANGUAGES: [&str; 2] = ["da", "en"];

/// Every template each language must define: one per state change a tenant hears about, and
/// `page`, the text that pages a human.
pub const NAMES: [&str; 7] = [
    "received",
    "booked",
    "on_the_way",
    "done",
    "escalated",
    "cancelled",
    "page",
];

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 8] = [
    "ticket",
    "category",
    "vendor",
    "slot_start",
    "slot_end",
    "unit",
    "reason",
    "urgency",
];

/// The loaded templates: language to name to text.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    texts: HashMap<String, HashMap<String, String>>,
}

impl Templates {
    /// Loads `da.toml` and `en.toml` from `dir`, reporting every problem in `diags`.
    pub fn load(dir: &Path, diags: &mut Diagnostics) -> Option<Templates> {
        let before = diags.len();
        let mut texts = HashMap::new();
        for language in LANGUAGES {
            let path = dir.join(format!("{language}.toml"));
            let Some(file) = TomlFile::load(&path, diags) else {
                continue;
            };
            let mut map = HashMap::new();
            for name in NAMES {
                let Some(item) = file.get(name) else {
                    file.report(diags, name, None, format!("missing template {name:?}"));
                    continue;
                };
                let Some(text) = item.as_str() else {
                    file.report_at(diags, &[name], "expected a string");
                    continue;
                };
                if let Err(message) = check(text) {
                    file.report_at(diags, &[name], message);
                    continue;
                }
                map.insert(name.to_string(), text.to_string());
            }
            let known: Vec<&str> = NAMES.to_vec();
            file.reject_unknown_top_level(&known, diags);
            texts.insert(language.to_string(), map);
        }
        (diags.len() == before).then_some(Templates { texts })
    }

    /// Builds templates from texts in memory, checking them as [`Templates::load`] does.
    pub fn from_texts(texts: &[(&str, &str, &str)]) -> Result<Templates, String> {
        let mut out = Templates::default();
        for (language, name, text) in texts {
            check(text).map_err(|message| format!("{language}.{name}: {message}"))?;
            out.texts
                .entry(language.to_string())
                .or_default()
                .insert(name.to_string(), text.to_string());
        }
        Ok(out)
    }

    /// Fills template `name` in `language` (falling back to `da`). Returns `None` when
    /// neither has the template.
    pub fn render(
        &self,
        language: &str,
        name: &str,
        values: &HashMap<&str, String>,
    ) -> Option<String> {
        let text = self
            .texts
            .get(language)
            .and_then(|map| map.get(name))
            .or_else(|| self.texts.get("da").and_then(|map| map.get(name)))?;
        Some(fill(text, values))
    }
}

/// Checks that every `{name}` in `text` is a known placeholder and every brace is closed.
pub fn check(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in template {text:?}"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}}; expected one of {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Replaces each `{name}` with its value; a placeholder without a value becomes `-`.
pub fn fill(text: &str, values: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                out.push_str(values.get(name).map(String::as_str).unwrap_or("-"));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rejects_unknown_placeholder() {
        assert!(check("Sag {ticket} er modtaget").is_ok());
        let err = check("Hej {name}").unwrap_err();
        assert!(err.contains("{name}"), "{err}");
        assert!(check("open { brace").is_err());
    }

    #[test]
    fn fill_replaces_values() {
        let mut values = HashMap::new();
        values.insert("ticket", "gw-000001".to_string());
        assert_eq!(fill("Sag {ticket}: {vendor}", &values), "Sag gw-000001: -");
    }
}
