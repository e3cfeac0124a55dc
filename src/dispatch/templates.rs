//! Tenant update templates, one TOML file per language (`da.toml`, `en.toml`) with one string
//! per template name. Placeholders are `{name}`; an unknown placeholder, an unclosed `{`, a
//! stray `}` or a missing template is a config error, found at load.

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
                if text.trim().is_empty() {
                    file.report_at(diags, &[name], "empty template; write the update's text");
                    continue;
                }
                let problems = problems(text);
                if !problems.is_empty() {
                    for message in problems {
                        file.report_at(diags, &[name], message);
                    }
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
/// Returns every problem, joined by "; ".
pub fn check(text: &str) -> Result<(), String> {
    let problems = problems(text);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Lists every problem of the placeholders in `text`: a `{` without its `}`, a `}` without
/// its `{`, and each unknown placeholder once.
pub fn problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(brace) = rest.find(['{', '}']) {
        // 1-based, in characters, as an editor counts them.
        let position = text[..offset + brace].chars().count() + 1;
        if rest[brace..].starts_with('}') {
            problems.push(format!(
                "'}}' without '{{' at character {position}; remove it or open the placeholder"
            ));
            offset += brace + 1;
            rest = &rest[brace + 1..];
            continue;
        }
        let after = &rest[brace + 1..];
        // A placeholder ends at the first '}', unless a '{' or the end of the text comes first.
        match after.find(['{', '}']) {
            Some(end) if after[end..].starts_with('}') => {
                let name = &after[..end];
                if !PLACEHOLDERS.contains(&name) && !unknown.contains(&name) {
                    unknown.push(name);
                }
                offset += brace + 1 + end + 1;
                rest = &after[end + 1..];
            }
            next => {
                let start: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                problems.push(format!(
                    "unclosed placeholder \"{{{start}\" at character {position}; close it with '}}'"
                ));
                let end = next.unwrap_or(after.len());
                offset += brace + 1 + end;
                rest = &after[end..];
            }
        }
    }
    for name in unknown {
        problems.push(format!(
            "unknown placeholder {{{name}}}; expected one of {}",
            PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
        ));
    }
    problems
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
        assert!(err.contains("unknown placeholder {name}"), "{err}");
        assert!(err.contains("{ticket}, {category}"), "{err}");
        assert!(check("open { brace").is_err());
    }

    #[test]
    fn problems_finds_unclosed_placeholders() {
        assert_eq!(
            problems("Sag {ticket"),
            ["unclosed placeholder \"{ticket\" at character 5; close it with '}'"]
        );
        // The '{' of {vendor} comes before a '}', so {ticket is unclosed and {vendor} is fine.
        assert_eq!(
            problems("Sag {ticket. {vendor} kommer"),
            ["unclosed placeholder \"{ticket\" at character 5; close it with '}'"]
        );
        assert_eq!(
            problems("{ticket} }"),
            ["'}' without '{' at character 10; remove it or open the placeholder"]
        );
    }

    #[test]
    fn problems_lists_each_unknown_once() {
        let found = problems("{flat} {ticket} {flat} {tiket} {");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("unclosed placeholder \"{\" at character 32"));
        assert!(
            found[1].starts_with("unknown placeholder {flat};"),
            "{found:?}"
        );
        assert!(
            found[2].starts_with("unknown placeholder {tiket};"),
            "{found:?}"
        );
    }

    #[test]
    fn problems_accepts_every_placeholder() {
        for name in PLACEHOLDERS {
            assert!(problems(&format!("x {{{name}}} y")).is_empty(), "{name}");
        }
        assert!(problems("no placeholders").is_empty());
    }

    #[test]
    fn fill_replaces_values() {
        let mut values = HashMap::new();
        values.insert("ticket", "gw-000001".to_string());
        assert_eq!(fill("Sag {ticket}: {vendor}", &values), "Sag gw-000001: -");
    }
}
