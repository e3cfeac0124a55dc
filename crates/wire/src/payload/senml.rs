//! SenML packs in JSON (RFC 8428): an array of records whose base fields (`bn`, `bt`, `bu`,
//! `bv`, `bs`) apply to the records after them, resolved into one sample per record.

use serde_json::{Map, Value};

use super::json::parse;
use super::nonfinite::Rewritten;
use super::{DecodeOptions, Rejection, Sample, SampleTime, SampleValue};

/// SenML times below this many seconds (2^28) are relative to the receive time.
const RELATIVE_TIME_LIMIT_SECS: f64 = 268_435_456.0;

/// SenML times above this many seconds (year 33658) are rejected rather than converted.
const MAX_TIME_SECS: f64 = 1e12;

/// Base values carried from one record to the next.
#[derive(Debug, Default)]
struct Base {
    name: String,
    time: f64,
    unit: Option<String>,
    value: f64,
    sum: f64,
    /// A reason when the base value is a non-finite token; values based on it are missing.
    value_missing: Option<String>,
}

pub(super) fn decode(text: &str, options: DecodeOptions) -> Result<Vec<Sample>, Rejection> {
    let (rewritten, root) = parse(text, options)?;
    let Value::Array(records) = root else {
        return Err(Rejection::new(
            "SenML payload must be a JSON array of records",
        ));
    };

    let mut base = Base::default();
    let mut samples = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let Value::Object(record) = record else {
            return Err(Rejection::new(format!(
                "SenML record {index} is not an object"
            )));
        };
        let reader = RecordReader {
            index,
            record,
            rewritten: &rewritten,
        };
        if let Some(sample) = reader.resolve(&mut base)? {
            samples.push(sample);
        }
    }
    if samples.is_empty() {
        return Err(Rejection::new("SenML pack has no record with a value"));
    }
    Ok(samples)
}

/// Reads the fields of one record, naming the record in every rejection.
struct RecordReader<'a> {
    index: usize,
    record: &'a Map<String, Value>,
    rewritten: &'a Rewritten<'a>,
}

/// A numeric field: finite, or missing because it was a non-finite token.
enum Number {
    Finite(f64),
    NonFinite(String),
}

impl RecordReader<'_> {
    fn reject(&self, message: impl AsRef<str>) -> Rejection {
        Rejection::new(format!("SenML record {}: {}", self.index, message.as_ref()))
    }

    fn text(&self, field: &str) -> Result<Option<String>, Rejection> {
        match self.record.get(field) {
            None => Ok(None),
            Some(Value::String(text)) if self.rewritten.token_for(text).is_none() => {
                Ok(Some(text.clone()))
            }
            Some(_) => Err(self.reject(format!("`{field}` must be text"))),
        }
    }

    fn number(&self, field: &str) -> Result<Option<Number>, Rejection> {
        match self.record.get(field) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_f64().filter(|n| n.is_finite()) {
                Some(n) => Ok(Some(Number::Finite(n))),
                None => Err(self.reject(format!("`{field}` is out of range"))),
            },
            Some(Value::String(text)) => match self.rewritten.token_for(text) {
                Some(token) => Ok(Some(Number::NonFinite(format!(
                    "`{field}` of SenML record {} is `{}`, not a finite number (at byte {})",
                    self.index, token.token, token.offset
                )))),
                None => Err(self.reject(format!("`{field}` must be a number"))),
            },
            Some(_) => Err(self.reject(format!("`{field}` must be a number"))),
        }
    }

    /// A number that must be finite, such as a time.
    fn finite(&self, field: &str) -> Result<Option<f64>, Rejection> {
        match self.number(field)? {
            None => Ok(None),
            Some(Number::Finite(n)) => Ok(Some(n)),
            Some(Number::NonFinite(reason)) => Err(Rejection::new(reason)),
        }
    }

    /// Applies the record's base fields, then resolves it into a sample. Returns `None` for a
    /// record that carries only base fields.
    fn resolve(&self, base: &mut Base) -> Result<Option<Sample>, Rejection> {
        if let Some(field) = self.record.keys().find(|key| key.ends_with('_')) {
            return Err(self.reject(format!(
                "field `{field}` must be understood but is not supported"
            )));
        }
        if let Some(name) = self.text("bn")? {
            base.name = name;
        }
        if let Some(time) = self.finite("bt")? {
            base.time = time;
        }
        if let Some(unit) = self.text("bu")? {
            base.unit = Some(unit);
        }
        match self.number("bv")? {
            Some(Number::Finite(value)) => {
                base.value = value;
                base.value_missing = None;
            }
            Some(Number::NonFinite(reason)) => base.value_missing = Some(reason),
            None => {}
        }
        if let Some(sum) = self.finite("bs")? {
            base.sum = sum;
        }

        let value = self.value(base)?;
        let Some(value) = value else {
            let regular = ["n", "u", "t", "ut"];
            if regular.iter().any(|field| self.record.contains_key(*field)) {
                return Err(self.reject("has no value (`v`, `vs`, `vb`, `vd` or `s`)"));
            }
            return Ok(None);
        };

        let name = format!("{}{}", base.name, self.text("n")?.unwrap_or_default());
        if name.is_empty() {
            return Err(self.reject("has no name (`bn` and `n` are both missing)"));
        }
        let time = self.time(base)?;
        let unit = self.text("u")?.or_else(|| base.unit.clone());
        Ok(Some(Sample {
            path: name.clone(),
            key: name,
            sensor_id: None,
            unit,
            value,
            time,
        }))
    }

    fn value(&self, base: &Base) -> Result<Option<SampleValue>, Rejection> {
        let present: Vec<&str> = ["v", "vs", "vb", "vd"]
            .into_iter()
            .filter(|field| self.record.contains_key(*field))
            .collect();
        if present.len() > 1 {
            return Err(self.reject(format!(
                "has more than one value field: {}",
                present.join(", ")
            )));
        }
        let value = match present.first().copied() {
            Some("v") => Some(match (self.number("v")?, &base.value_missing) {
                (Some(Number::NonFinite(reason)), _) => SampleValue::Missing(reason),
                (_, Some(reason)) => SampleValue::Missing(reason.clone()),
                (Some(Number::Finite(v)), None) => finite_or_missing(base.value + v, self.index),
                (None, None) => {
                    SampleValue::Missing(format!("SenML record {} has no `v`", self.index))
                }
            }),
            Some("vs") | Some("vd") => {
                let field = present[0];
                Some(SampleValue::Text(self.text(field)?.unwrap_or_default()))
            }
            Some(_) => match self.record.get("vb") {
                Some(Value::Bool(flag)) => Some(SampleValue::Number(if *flag { 1.0 } else { 0.0 })),
                _ => return Err(self.reject("`vb` must be true or false")),
            },
            None => match self.number("s")? {
                Some(Number::Finite(sum)) => Some(finite_or_missing(base.sum + sum, self.index)),
                Some(Number::NonFinite(reason)) => Some(SampleValue::Missing(reason)),
                None => None,
            },
        };
        Ok(value)
    }

    /// Resolves `bt + t` in seconds: zero means "now" (the receive time), below 2^28 it is
    /// relative to the receive time, otherwise seconds since the Unix epoch.
    fn time(&self, base: &Base) -> Result<SampleTime, Rejection> {
        let seconds = base.time + self.finite("t")?.unwrap_or(0.0);
        if seconds == 0.0 {
            return Ok(SampleTime::Absent);
        }
        if seconds.abs() < RELATIVE_TIME_LIMIT_SECS {
            return Ok(SampleTime::Relative((seconds * 1000.0).round() as i64));
        }
        if !(0.0..=MAX_TIME_SECS).contains(&seconds) {
            return Err(self.reject(format!("time {seconds} s is out of range")));
        }
        Ok(SampleTime::Epoch((seconds * 1000.0).round() as i64))
    }
}

/// Returns the value, or a missing value when the sum of base and record values overflows to
/// infinity.
fn finite_or_missing(value: f64, index: usize) -> SampleValue {
    if value.is_finite() {
        SampleValue::Number(value)
    } else {
        SampleValue::Missing(format!("value of SenML record {index} overflows"))
    }
}
