//! The one reading model shared by every ingest source.

use std::fmt;

/// The protocol a reading or a quarantined payload came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Mqtt,
    Modbus,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Mqtt, Source::Modbus];

    /// Label used in metrics and in the `source` column of the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Modbus => "modbus",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a reading can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// A fresh value read from the device or broker.
    Good,
    /// A value that is not current, such as a retained MQTT message.
    Stale,
    /// No usable value: a Modbus exception, a timeout or a value the device flagged as invalid.
    Bad,
    /// The value is fine but the gateway's wall clock was not trusted when it arrived.
    UncertainTime,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Stale => "stale",
            Quality::Bad => "bad",
            Quality::UncertainTime => "uncertain-time",
        }
    }

    pub fn parse(text: &str) -> Option<Quality> {
        match text {
            "good" => Some(Quality::Good),
            "stale" => Some(Quality::Stale),
            "bad" => Some(Quality::Bad),
            "uncertain-time" => Some(Quality::UncertainTime),
            _ => None,
        }
    }
}

/// A decoded value. Numbers are always finite; decoders turn NaN and infinities into
/// a missing value with bad quality or a quarantine entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
}

/// One sample of one sensor, from either source.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Stable id of the sensor, unique within the gateway (for Modbus `device.point`).
    pub sensor_id: String,
    /// The asset the sensor belongs to, such as `pump-1`; empty when unknown.
    pub asset: String,
    /// The measured quantity, such as `supply_temperature`.
    pub metric: String,
    /// Unit of `value`, such as `degC`; empty when the value has no unit.
    pub unit: String,
    /// `None` when the quality is bad and no value could be read.
    pub value: Option<Value>,
    pub quality: Quality,
    pub source: Source,
    /// Time the value was measured, in milliseconds since the Unix epoch. When the payload
    /// carries no timestamp this is the receive time.
    pub source_ts_ms: i64,
    /// Time the gateway received the value, in milliseconds since the Unix epoch.
    pub receive_ts_ms: i64,
    /// The reason for a quality other than good, such as `exception 2 (illegal data address)`.
    pub detail: Option<String>,
}

/// Input that could not be decoded into readings, kept for an operator to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineEntry {
    pub source: Source,
    /// Topic for MQTT, `device` or `device.point` for Modbus.
    pub origin: String,
    pub reason: String,
    /// The first bytes of the raw payload (at most [`QuarantineEntry::MAX_RAW_BYTES`]).
    pub raw: Vec<u8>,
    pub receive_ts_ms: i64,
}

impl QuarantineEntry {
    pub const MAX_RAW_BYTES: usize = 256;

    pub fn new(
        source: Source,
        origin: impl Into<String>,
        reason: impl Into<String>,
        raw: &[u8],
        receive_ts_ms: i64,
    ) -> Self {
        let kept = raw.len().min(Self::MAX_RAW_BYTES);
        QuarantineEntry {
            source,
            origin: origin.into(),
            reason: reason.into(),
            raw: raw[..kept].to_vec(),
            receive_ts_ms,
        }
    }
}
