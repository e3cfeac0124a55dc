//! MQTT topic filters (MQTT 3.1.1 section 4.7) and the name templates that use topic levels.

use std::fmt;

/// Maximum length of a topic or filter in bytes, fixed by the protocol's 16-bit length prefix.
const MAX_TOPIC_BYTES: usize = 65_535;

/// Checks a subscription filter. Returns the reason it is invalid.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("filter is empty".to_string());
    }
    if filter.len() > MAX_TOPIC_BYTES {
        return Err(format!("filter is longer than {MAX_TOPIC_BYTES} bytes"));
    }
    if filter.contains('\0') {
        return Err("filter contains a NUL character".to_string());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || index + 1 != levels.len()) {
            return Err(format!(
                "`#` must be a whole level at the end of the filter, as in `sensors/#`; got `{filter}`"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "`+` must be a whole level, as in `sensors/+/temp`; got `{filter}`"
            ));
        }
    }
    Ok(())
}

/// Returns whether `topic` matches `filter`. Filters starting with a wildcard do not match topics
/// starting with `$`, such as `$SYS/...`.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// Number of fixed levels in a filter, or `None` when `#` allows any number.
pub fn filter_level_count(filter: &str) -> Option<usize> {
    if filter.ends_with('#') {
        None
    } else {
        Some(filter.split('/').count())
    }
}

/// A name built from the topic and the payload, such as `{1}.{key}`.
///
/// Placeholders:
/// - `{topic}`: the whole topic.
/// - `{0}`, `{1}`, …: a topic level, counted from 0.
/// - `{path}`: the location of the value (JSON path or SenML name).
/// - `{key}`: the last segment of that path, or the last topic level for a bare number.
/// - `{id}`: the sensor id read from the payload.
/// - `{unit}`: the unit given in the payload.
///
/// `{{` and `}}` write a brace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Level(usize),
    Topic,
    Path,
    Key,
    Id,
    Unit,
}

/// The values a template can refer to.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub topic: &'a str,
    pub path: &'a str,
    pub key: &'a str,
    pub id: Option<&'a str>,
    pub unit: Option<&'a str>,
}

impl Template {
    /// Parses a template. Returns the reason when a brace is unbalanced or a placeholder is
    /// unknown.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "unmatched `{{` in `{text}`; write `{{{{` for a brace"
                        ));
                    }
                    let part = placeholder(&name).ok_or_else(|| {
                        format!(
                            "unknown placeholder `{{{name}}}` in `{text}`; use {{topic}}, {{0}}, {{1}}, …, {{path}}, {{key}}, {{id}} or {{unit}}"
                        )
                    })?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                '}' => {
                    return Err(format!(
                        "unmatched `}}` in `{text}`; write `}}}}` for a brace"
                    ))
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Returns whether the template gives each value of a message its own name (`{path}` or
    /// `{key}`).
    pub fn names_each_value(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Path | Part::Key))
    }

    pub fn uses_id(&self) -> bool {
        self.parts.contains(&Part::Id)
    }

    /// Returns the highest topic level the template refers to.
    pub fn max_level(&self) -> Option<usize> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Level(level) => Some(*level),
                _ => None,
            })
            .max()
    }

    /// Fills in the placeholders. A topic level that the topic does not have is empty.
    pub fn render(&self, fields: &Fields<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Level(level) => {
                    out.push_str(fields.topic.split('/').nth(*level).unwrap_or(""))
                }
                Part::Topic => out.push_str(fields.topic),
                Part::Path => out.push_str(fields.path),
                Part::Key => out.push_str(fields.key),
                Part::Id => out.push_str(fields.id.unwrap_or("")),
                Part::Unit => out.push_str(fields.unit.unwrap_or("")),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn placeholder(name: &str) -> Option<Part> {
    match name {
        "topic" => Some(Part::Topic),
        "path" => Some(Part::Path),
        "key" => Some(Part::Key),
        "id" => Some(Part::Id),
        "unit" => Some(Part::Unit),
        digits => digits.parse::<usize>().ok().map(Part::Level),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_validation() {
        for good in ["sensors/#", "#", "+/+/temp", "a/b", "/", "sensors/+"] {
            assert_eq!(validate_filter(good), Ok(()), "{good}");
        }
        for bad in ["", "sensors/#/x", "sensors#", "a/b+/c", "a\0b"] {
            assert!(validate_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filter_matching() {
        let cases = [
            ("sensors/#", "sensors/ahu1/temp", true),
            ("sensors/#", "sensors", true),
            ("sensors/+/temp", "sensors/ahu1/temp", true),
            ("sensors/+/temp", "sensors/ahu1/rh", false),
            ("sensors/+", "sensors/ahu1/temp", false),
            ("#", "$SYS/broker/uptime", false),
            ("+/broker/uptime", "$SYS/broker/uptime", false),
            ("$SYS/#", "$SYS/broker/uptime", true),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(filter_matches(filter, topic), expected, "{filter} {topic}");
        }
    }

    #[test]
    fn template_renders_levels_and_fields() {
        let template = Template::parse("{1}.{key}{{x}}").unwrap();
        let fields = Fields {
            topic: "tele/plant/SENSOR",
            path: "S0.Temperature",
            key: "Temperature",
            id: None,
            unit: None,
        };
        assert_eq!(template.render(&fields), "plant.Temperature{x}");
        assert!(template.names_each_value());
        assert_eq!(template.max_level(), Some(1));
        let beyond = Template::parse("{7}").unwrap();
        assert_eq!(beyond.render(&fields), "");
    }

    #[test]
    fn template_rejects_unknown_placeholders() {
        assert!(Template::parse("{sensor}").is_err());
        assert!(Template::parse("a}b").is_err());
    }
}
