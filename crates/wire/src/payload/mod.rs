//! Payload decoders: JSON with configured paths, SenML (RFC 8428) and a bare number.
//!
//! Decoding is pure: the same bytes and format always give the same samples or the same
//! rejection. Times that are relative to the receive time and the checks against the time
//! window are applied later, when the samples become readings.
//!
//! Non-finite numbers: JSON has no NaN or infinity, yet devices write `nan`, `NaN`, `-nan` or
//! `Infinity` where a sensor failed. With `lenient_nan` such a value becomes a missing sample
//! and the other values of the message are kept; without it the whole message is rejected.
//! A NaN or infinity is never returned as a number.

mod json;
pub mod nonfinite;
mod senml;

use std::fmt;

pub use json::{JsonPaths, ValuePath};

use crate::timestamp::epoch_number_to_ms;

/// Encoding of the payloads of one subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadFormat {
    /// A JSON object with values, timestamp and sensor id at configured paths.
    Json(JsonPaths),
    /// SenML records in JSON (RFC 8428).
    Senml,
    /// A bare decimal number such as `21.5`.
    Number,
}

/// Decoder settings that apply to every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Read a non-finite number as a missing value instead of rejecting the message.
    pub lenient_nan: bool,
}

/// One value found in a payload, before receive time, quality and names are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Location of the value: the concrete JSON path (`S0.Temperature`), the SenML
    /// resolved name, or empty for a bare number.
    pub path: String,
    /// The last segment of `path`, or the SenML resolved name; empty for a bare number.
    pub key: String,
    /// The sensor id read from the payload (`sensor_id_path`), if configured.
    pub sensor_id: Option<String>,
    /// The unit given in the payload (SenML `u` or `bu`).
    pub unit: Option<String>,
    pub value: SampleValue,
    pub time: SampleTime,
}

/// The value of a sample. Numbers are always finite.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Number(f64),
    Text(String),
    /// No usable value, with the reason (a NaN, a null, a path not in the payload).
    Missing(String),
}

/// The time a payload gives for a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleTime {
    /// No time in the payload: the receive time applies.
    Absent,
    /// Milliseconds since the Unix epoch.
    Epoch(i64),
    /// Milliseconds relative to the receive time (SenML times below 2^28 s).
    Relative(i64),
}

/// Reason a payload was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    /// Byte offset in the payload where the problem was found, when known.
    pub offset: Option<usize>,
}

impl Rejection {
    pub fn new(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            offset: None,
        }
    }

    pub fn at(reason: impl Into<String>, offset: usize) -> Self {
        Rejection {
            reason: reason.into(),
            offset: Some(offset),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{} (at byte {offset})", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Decodes one payload into its samples.
///
/// Returns a rejection for invalid UTF-8, invalid JSON or SenML, a payload that is not a
/// number, an invalid timestamp, and (unless `lenient_nan`) a non-finite number.
pub fn decode(
    format: &PayloadFormat,
    payload: &[u8],
    options: DecodeOptions,
) -> Result<Vec<Sample>, Rejection> {
    let text = std::str::from_utf8(payload)
        .map_err(|err| Rejection::at("payload is not valid UTF-8", err.valid_up_to()))?;
    match format {
        PayloadFormat::Json(paths) => json::decode(paths, text, options),
        PayloadFormat::Senml => senml::decode(text, options),
        PayloadFormat::Number => decode_number(text, options),
    }
}

/// Decodes a bare number. `nan` or `inf` is a missing value with `lenient_nan`.
fn decode_number(text: &str, options: DecodeOptions) -> Result<Vec<Sample>, Rejection> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Rejection::new("payload is empty, expected a number"));
    }
    let offset = text.len() - text.trim_start().len();
    let value = if nonfinite::is_non_finite_word(trimmed) {
        if !options.lenient_nan {
            return Err(Rejection::at(
                format!("`{trimmed}` is not a finite number (lenient_nan is off)"),
                offset,
            ));
        }
        SampleValue::Missing(format!("payload `{trimmed}` is not a finite number"))
    } else {
        match parse_decimal(trimmed) {
            Some(number) => SampleValue::Number(number),
            None => {
                return Err(Rejection::at(
                    format!("payload `{}` is not a number", excerpt(trimmed)),
                    offset,
                ))
            }
        }
    };
    Ok(vec![Sample {
        path: String::new(),
        key: String::new(),
        sensor_id: None,
        unit: None,
        value,
        time: SampleTime::Absent,
    }])
}

/// Parses a finite decimal number as JSON writes it, also allowing a leading `+`.
fn parse_decimal(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let valid = digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !valid {
        return None;
    }
    text.parse::<f64>().ok().filter(|number| number.is_finite())
}

/// Converts a numeric timestamp by magnitude (seconds, milliseconds or microseconds).
fn epoch_timestamp(number: f64, what: &str) -> Result<SampleTime, Rejection> {
    epoch_number_to_ms(number)
        .map(SampleTime::Epoch)
        .map_err(|reason| Rejection::new(format!("{what}: {reason}")))
}

/// Returns the first characters of a text for a message, so that a long payload does not
/// flood it.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX_CHARS).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests;
