//! JSON payloads with values, timestamp and sensor id at configured dotted paths.

use std::fmt;

use chrono::NaiveDateTime;
use serde_json::Value;

use super::nonfinite::{self, Rewritten};
use super::{
    epoch_timestamp, excerpt, parse_decimal, DecodeOptions, Rejection, Sample, SampleTime,
    SampleValue,
};
use crate::timestamp::parse_rfc3339_ms;

/// A dotted path into a JSON document, such as `S0.Temperature` or `data.2.v`.
///
/// A numeric segment also indexes an array. The segment `*` matches every member of an
/// object or array. A wildcard path keeps only the matches where the rest of the path exists
/// and ends on a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    text: String,
    segments: Vec<String>,
}

/// Locations of the values, the timestamp and the sensor id in a JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPaths {
    /// One sample is made per path match; at least one path.
    pub values: Vec<ValuePath>,
    /// Seconds, milliseconds or microseconds by magnitude, or RFC 3339 text. When the path is
    /// absent from a payload, the receive time applies.
    pub timestamp: Option<ValuePath>,
    /// Text or a number naming the sensor; a payload without it is rejected.
    pub sensor_id: Option<ValuePath>,
}

impl ValuePath {
    /// Parses a dotted path. Returns the reason when it is empty or has an empty segment.
    pub fn parse(text: &str) -> Result<ValuePath, String> {
        if text.is_empty() {
            return Err("path is empty".to_string());
        }
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("path `{text}` has an empty segment"));
        }
        Ok(ValuePath {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn has_wildcard(&self) -> bool {
        self.segments.iter().any(|segment| segment == "*")
    }

    /// Finds the value at this path, reading `*` as a literal key.
    pub fn lookup<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(root, |value, segment| child(value, segment))
    }

    /// Finds every value this path matches, each with its concrete path.
    fn resolve<'a>(&self, root: &'a Value) -> Vec<(String, &'a Value)> {
        let mut found = Vec::new();
        let mut prefix = Vec::new();
        resolve_into(root, &self.segments, &mut prefix, &mut found);
        found
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn child<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

fn resolve_into<'a>(
    value: &'a Value,
    segments: &[String],
    prefix: &mut Vec<String>,
    found: &mut Vec<(String, &'a Value)>,
) {
    let Some((segment, rest)) = segments.split_first() else {
        found.push((prefix.join("."), value));
        return;
    };
    if segment != "*" {
        if let Some(next) = child(value, segment) {
            prefix.push(segment.clone());
            resolve_into(next, rest, prefix, found);
            prefix.pop();
        }
        return;
    }
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, next) in children {
        // Below a wildcard only scalars count as values; containers are skipped.
        if rest.is_empty() && (next.is_object() || next.is_array()) {
            continue;
        }
        prefix.push(key);
        resolve_into(next, rest, prefix, found);
        prefix.pop();
    }
}

pub(super) fn decode(
    paths: &JsonPaths,
    text: &str,
    options: DecodeOptions,
) -> Result<Vec<Sample>, Rejection> {
    let (rewritten, root) = parse(text, options)?;

    let time = match &paths.timestamp {
        Some(path) => match path.lookup(&root) {
            Some(value) => timestamp(value, path, &rewritten)?,
            None => SampleTime::Absent,
        },
        None => SampleTime::Absent,
    };
    let sensor_id = match &paths.sensor_id {
        Some(path) => Some(sensor_id(path.lookup(&root), path, &rewritten)?),
        None => None,
    };

    let mut samples = Vec::new();
    for path in &paths.values {
        if !path.has_wildcard() && path.lookup(&root).is_none() {
            samples.push(Sample {
                key: last_segment(path.as_str()).to_string(),
                path: path.as_str().to_string(),
                sensor_id: sensor_id.clone(),
                unit: None,
                value: SampleValue::Missing(format!("no value at `{path}`")),
                time,
            });
            continue;
        }
        for (concrete, value) in path.resolve(&root) {
            let is_metadata = [&paths.timestamp, &paths.sensor_id]
                .into_iter()
                .flatten()
                .any(|other| other.as_str() == concrete);
            if path.has_wildcard() && is_metadata {
                continue;
            }
            samples.push(Sample {
                key: last_segment(&concrete).to_string(),
                value: sample_value(value, &concrete, &rewritten),
                path: concrete,
                sensor_id: sensor_id.clone(),
                unit: None,
                time,
            });
        }
    }
    if samples.is_empty() {
        let wanted: Vec<&str> = paths.values.iter().map(ValuePath::as_str).collect();
        return Err(Rejection::new(format!(
            "no value matches value_path `{}`",
            wanted.join("`, `")
        )));
    }
    Ok(samples)
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Turns a `serde_json` error into a rejection with the byte offset in the original payload.
/// Parses JSON that may contain NaN and infinity tokens, which strict mode rejects and lenient
/// mode rewrites into markers that the decoders recognise.
pub(super) fn parse(
    text: &str,
    options: DecodeOptions,
) -> Result<(Rewritten<'_>, Value), Rejection> {
    let rewritten = nonfinite::rewrite(text);
    if !options.lenient_nan {
        if let Some(first) = rewritten.tokens.first() {
            return Err(Rejection::at(
                format!(
                    "`{}` is not a finite number (lenient_nan is off)",
                    first.token
                ),
                first.offset,
            ));
        }
    }
    let root: Value =
        serde_json::from_str(&rewritten.text).map_err(|err| syntax_rejection(&err, &rewritten))?;
    Ok((rewritten, root))
}

pub(super) fn syntax_rejection(err: &serde_json::Error, rewritten: &Rewritten) -> Rejection {
    let message = err.to_string();
    let message = match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    };
    let text = rewritten.text.as_ref();
    let line_start: usize = text
        .split_inclusive('\n')
        .take(err.line().saturating_sub(1))
        .map(str::len)
        .sum();
    // serde_json counts the column in bytes, ending just past the offending byte.
    let offset = (line_start + err.column().saturating_sub(1)).min(text.len());
    Rejection::at(
        format!("invalid JSON: {message}"),
        rewritten.original_offset(offset),
    )
}

fn non_finite_reason(path: &str, token: &str, offset: usize) -> String {
    format!("value at `{path}` is `{token}`, not a finite number (at byte {offset})")
}

fn sample_value(value: &Value, path: &str, rewritten: &Rewritten) -> SampleValue {
    match value {
        Value::Number(number) => match number.as_f64().filter(|n| n.is_finite()) {
            Some(n) => SampleValue::Number(n),
            None => SampleValue::Missing(format!("value at `{path}` is out of range")),
        },
        Value::Bool(flag) => SampleValue::Number(if *flag { 1.0 } else { 0.0 }),
        Value::String(text) => {
            if let Some(token) = rewritten.token_for(text) {
                return SampleValue::Missing(non_finite_reason(path, &token.token, token.offset));
            }
            if nonfinite::is_non_finite_word(text) {
                return SampleValue::Missing(format!(
                    "value at `{path}` is the text `{}`, not a finite number",
                    excerpt(text)
                ));
            }
            match parse_decimal(text.trim()) {
                Some(number) => SampleValue::Number(number),
                None => SampleValue::Text(text.clone()),
            }
        }
        Value::Null => SampleValue::Missing(format!("value at `{path}` is null")),
        Value::Object(_) => SampleValue::Missing(format!(
            "value at `{path}` is an object, not a number or text"
        )),
        Value::Array(_) => SampleValue::Missing(format!(
            "value at `{path}` is an array, not a number or text"
        )),
    }
}

/// Reads a timestamp: a number by magnitude, numeric text the same way, or RFC 3339 text.
/// Text without a UTC offset is rejected, because the device's time zone is unknown.
fn timestamp(
    value: &Value,
    path: &ValuePath,
    rewritten: &Rewritten,
) -> Result<SampleTime, Rejection> {
    let what = format!("timestamp at `{path}`");
    match value {
        Value::Number(number) => epoch_timestamp(number.as_f64().unwrap_or(f64::NAN), &what),
        Value::Null => Ok(SampleTime::Absent),
        Value::String(text) => {
            if let Some(token) = rewritten.token_for(text) {
                return Err(Rejection::at(
                    format!("{what} is `{}`, not a finite number", token.token),
                    token.offset,
                ));
            }
            if let Some(number) = parse_decimal(text.trim()) {
                return epoch_timestamp(number, &what);
            }
            if let Some(ms) = parse_rfc3339_ms(text) {
                return Ok(SampleTime::Epoch(ms));
            }
            let reason = if is_naive_date_time(text.trim()) {
                format!(
                    "{what} `{}` has no UTC offset; send RFC 3339 with `Z` or `+hh:mm`",
                    excerpt(text)
                )
            } else {
                format!(
                    "{what} `{}` is neither RFC 3339 nor a number",
                    excerpt(text)
                )
            };
            Err(Rejection::new(reason))
        }
        _ => Err(Rejection::new(format!(
            "{what} must be a number or RFC 3339 text"
        ))),
    }
}

fn is_naive_date_time(text: &str) -> bool {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok())
}

fn sensor_id(
    value: Option<&Value>,
    path: &ValuePath,
    rewritten: &Rewritten,
) -> Result<String, Rejection> {
    match value {
        Some(Value::String(text)) if rewritten.token_for(text).is_some() => Err(Rejection::new(
            format!("sensor id at `{path}` is not a finite number"),
        )),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(_) => Err(Rejection::new(format!(
            "sensor id at `{path}` must be non-empty text or a number"
        ))),
        None => Err(Rejection::new(format!("no sensor id at `{path}`"))),
    }
}
