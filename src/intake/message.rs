//! The tenant message model: what MQTT and HTTP payloads decode into, the checks they pass,
//! and the store operations that write and triage them.

use serde_json::{Map, Value};

use crate::time::{epoch_number_to_ms, parse_rfc3339_ms, ReceiveTime, TimeKeeper};

/// Maximum length of a sender, in bytes. A phone number or e-mail address fits many times.
pub const MAX_SENDER_BYTES: usize = 256;

/// Maximum length of a unit, such as `2.tv`, `st. th` or `flat 12`, in bytes.
pub const MAX_UNIT_BYTES: usize = 64;

/// The protocol a message arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Mqtt,
    Http,
}

impl Transport {
    /// Label used in metrics and in the `transport` column of the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Http => "http",
        }
    }
}

/// A decoded message, ready to be committed. The id is assigned by the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: String,
    pub transport: Transport,
    /// Name of the HTTP bridge that delivered it; `None` on MQTT.
    pub bridge: Option<String>,
    /// The tenant-facing channel, such as `sms`, `email` or `app`, from the payload.
    pub channel: String,
    /// Phone number, e-mail address or app user of the tenant. Personal data: never logged.
    pub sender: String,
    /// The unit, from the MQTT topic or the HTTP body; `None` when the bridge does not know it.
    pub unit: Option<String>,
    pub text: String,
    /// The gateway's receive time in milliseconds since the epoch.
    pub received_ms: i64,
    /// Whether the gateway's clock was untrusted at `received_ms`.
    pub time_uncertain: bool,
    /// The payload's `received_at`, when given: when the bridge or app received the message.
    pub sent_ms: Option<i64>,
    /// Whether the broker flagged this MQTT delivery as a redelivery (DUP) or as retained.
    pub redelivery: bool,
}

/// The classifier's verdict on one message, written to its row.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub language: Option<String>,
    pub intent: Option<String>,
    pub category: Option<String>,
    pub urgency: Option<String>,
    pub needs_human: bool,
    /// The unit named in the text, which may differ from the unit the message came from.
    pub stated_unit: Option<String>,
    /// Kinds of personal data found in the text, such as `phone` or `email`.
    pub pii: Vec<String>,
    /// 0 to 1.
    pub confidence: f64,
    /// Rules that fired and the model's strongest features, as a JSON object.
    pub explanation: Value,
}

/// A change to the `messages` table, committed with the batch it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOp {
    /// Stores a message unless the same message is already stored (see the store's rules).
    Insert(NewMessage),
    /// Records the triage of a stored message that was not yet triaged.
    Triage {
        id: String,
        verdict: Verdict,
        triaged_ms: i64,
    },
    /// Deletes messages received before `before_ms`.
    Purge { before_ms: i64 },
}

/// The reason for rejecting a message: a metric label and a message for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectKind,
    /// Names the field and what to do. Never contains the text or the sender.
    pub reason: String,
    /// Seconds until the sender may send again, for a rate-limit rejection.
    pub retry_after_secs: Option<u64>,
}

/// Reasons a message is rejected, each a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// Missing or wrong bearer token (HTTP only).
    Unauthorized,
    /// The payload or the text is larger than the limit.
    TooLarge,
    /// Not JSON, a missing or invalid field, or an implausible `received_at`.
    Invalid,
    /// The sender is over its rate limit.
    RateLimited,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Unauthorized => "unauthorized",
            RejectKind::TooLarge => "too_large",
            RejectKind::Invalid => "invalid",
            RejectKind::RateLimited => "rate_limited",
        }
    }
}

impl Rejection {
    pub fn new(kind: RejectKind, reason: impl Into<String>) -> Self {
        Rejection {
            kind,
            reason: reason.into(),
            retry_after_secs: None,
        }
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Rejection::new(RejectKind::Invalid, reason)
    }
}

/// The fields of a payload, checked but not yet given an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    pub text: String,
    pub sender: String,
    pub channel: String,
    pub unit: Option<String>,
    pub sent_ms: Option<i64>,
}

/// The limits a payload is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    pub max_text_bytes: usize,
    pub channels: &'a [String],
    /// Whether the payload may carry `unit`: on HTTP yes, on MQTT the topic decides it.
    pub unit_in_body: bool,
}

/// Decodes and checks a JSON payload `{"text", "sender", "channel", "unit"?,
/// "received_at"?}`. Error messages name the field and never repeat its value, because the
/// value may be personal data and rejections are logged.
pub fn parse_fields(
    payload: &[u8],
    checks: Checks<'_>,
    keeper: &TimeKeeper,
    received: &ReceiveTime,
) -> Result<Fields, Rejection> {
    let value: Value = serde_json::from_slice(payload).map_err(|err| {
        Rejection::invalid(format!(
            "invalid JSON at line {} column {}: {}; expected an object with text, sender and \
             channel",
            err.line(),
            err.column(),
            describe_json_error(&err)
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(Rejection::invalid(
            "expected a JSON object with text, sender and channel",
        ));
    };
    let allowed: &[&str] = if checks.unit_in_body {
        &["text", "sender", "channel", "unit", "received_at"]
    } else {
        &["text", "sender", "channel", "received_at"]
    };
    if let Some(unknown) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        let hint = if unknown == "unit" {
            "; on MQTT the unit comes from the topic".to_string()
        } else {
            format!("; expected only {}", allowed.join(", "))
        };
        return Err(Rejection::invalid(format!(
            "unknown field `{}`{hint}",
            printable_key(unknown)
        )));
    }

    let text = required_string(&object, "text")?;
    if text.trim().is_empty() {
        return Err(Rejection::invalid("field `text` is empty"));
    }
    if text.len() > checks.max_text_bytes {
        return Err(Rejection::new(
            RejectKind::TooLarge,
            format!(
                "field `text` has {} bytes, more than the limit of {} (intake.max_text_bytes)",
                text.len(),
                checks.max_text_bytes
            ),
        ));
    }
    let sender = required_string(&object, "sender")?;
    check_label("sender", sender, MAX_SENDER_BYTES)?;
    let channel = required_string(&object, "channel")?;
    if !checks.channels.iter().any(|known| known == channel) {
        return Err(Rejection::invalid(format!(
            "field `channel` must be one of {} (intake.channels)",
            checks.channels.join(", ")
        )));
    }
    let unit = match object.get("unit") {
        None | Some(Value::Null) => None,
        Some(Value::String(unit)) => {
            check_unit(unit)
                .map_err(|reason| Rejection::invalid(format!("field `unit` {reason}")))?;
            Some(unit.trim().to_string())
        }
        Some(other) => {
            return Err(Rejection::invalid(format!(
                "field `unit` must be a string, not {}",
                json_type(other)
            )))
        }
    };
    let sent_ms = match object.get("received_at") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_received_at(value, keeper, received)?),
    };
    Ok(Fields {
        text: text.to_string(),
        sender: sender.trim().to_string(),
        channel: channel.to_string(),
        unit,
        sent_ms,
    })
}

/// Checks a unit taken from a topic or a body. Returns what is wrong with it.
pub fn check_unit(unit: &str) -> Result<(), String> {
    let trimmed = unit.trim();
    if trimmed.is_empty() {
        return Err("is empty".to_string());
    }
    if trimmed.len() > MAX_UNIT_BYTES {
        return Err(format!("is longer than {MAX_UNIT_BYTES} bytes"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("contains a control character".to_string());
    }
    if let Some(bad) = trimmed
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ')))
    {
        return Err(format!(
            "contains {bad:?}; a unit has only letters, digits, '.', '-', '_' and spaces, \
             such as 2.tv, st. th or 12B"
        ));
    }
    if !trimmed.chars().any(char::is_alphanumeric) {
        return Err("has no letter or digit; a unit is named like 2.tv, st. th or 12B".to_string());
    }
    Ok(())
}

fn required_string<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, Rejection> {
    match object.get(field) {
        None | Some(Value::Null) => Err(Rejection::invalid(format!("missing field `{field}`"))),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(Rejection::invalid(format!(
            "field `{field}` must be a string, not {}",
            json_type(other)
        ))),
    }
}

fn check_label(field: &str, value: &str, max_bytes: usize) -> Result<(), Rejection> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Rejection::invalid(format!("field `{field}` is empty")));
    }
    if trimmed.len() > max_bytes {
        return Err(Rejection::invalid(format!(
            "field `{field}` is longer than {max_bytes} bytes"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Rejection::invalid(format!(
            "field `{field}` contains a control character"
        )));
    }
    Ok(())
}

/// Reads `received_at` as RFC 3339 text or an epoch number (seconds, milliseconds or
/// microseconds by magnitude) and checks it against the gateway's time window.
fn parse_received_at(
    value: &Value,
    keeper: &TimeKeeper,
    received: &ReceiveTime,
) -> Result<i64, Rejection> {
    let ms = match value {
        Value::String(text) => parse_rfc3339_ms(text).ok_or_else(|| {
            Rejection::invalid(
                "field `received_at` is not an RFC 3339 time with a zone, such as \
                 2026-03-01T08:15:00Z, nor an epoch number",
            )
        })?,
        Value::Number(number) => {
            let number = number.as_f64().unwrap_or(f64::NAN);
            epoch_number_to_ms(number)
                .map_err(|reason| Rejection::invalid(format!("field `received_at`: {reason}")))?
        }
        other => {
            return Err(Rejection::invalid(format!(
                "field `received_at` must be RFC 3339 text or an epoch number, not {}",
                json_type(other)
            )))
        }
    };
    keeper
        .check_source_ts(ms, received)
        .map_err(|reason| Rejection::invalid(format!("field `received_at`: {reason}")))?;
    Ok(ms)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Describes a syntax error by its category. serde_json's own message is not used because a
/// type error would quote part of the payload.
fn describe_json_error(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}

/// Shortens an unknown key for a message, because a key is sender-controlled text too.
fn printable_key(key: &str) -> String {
    let cleaned: String = key.chars().filter(|c| !c.is_control()).take(32).collect();
    cleaned
}

/// Crockford's base32 alphabet, as ULIDs use it: no I, L, O or U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Returns a new message id: a ULID, 26 characters of a 48-bit millisecond timestamp and 80
/// random bits, so that ids sort by receive time and need no coordination with the central
/// office.
pub fn new_id(received_ms: i64) -> String {
    let time = (received_ms.max(0) as u128) & ((1u128 << 48) - 1);
    let random = fastrand::u128(..) & ((1u128 << 80) - 1);
    let value = (time << 80) | random;
    // 26 characters of 5 bits hold 130 bits; the top two are always zero.
    (0..26)
        .rev()
        .map(|index| CROCKFORD[((value >> (index * 5)) & 0x1f) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::time::{ManualClock, TimePolicy};

    const NOW_MS: i64 = 1_780_000_000_000;

    fn keeper() -> TimeKeeper {
        let clock = Arc::new(ManualClock::new(NOW_MS));
        TimeKeeper::new(
            clock,
            TimePolicy {
                earliest_valid_ms: 1_700_000_000_000,
                max_future_ms: 300_000,
            },
        )
    }

    fn channels() -> Vec<String> {
        vec!["sms".to_string(), "email".to_string(), "app".to_string()]
    }

    fn parse(payload: &str, unit_in_body: bool) -> Result<Fields, Rejection> {
        let keeper = keeper();
        let received = keeper.receive_time();
        let channels = channels();
        let checks = Checks {
            max_text_bytes: 64,
            channels: &channels,
            unit_in_body,
        };
        parse_fields(payload.as_bytes(), checks, &keeper, &received)
    }

    #[test]
    fn parse_fields_accepts_complete_body() {
        let fields = parse(
            r#"{"text": "The tap drips", "sender": " +4512345678 ", "channel": "sms",
                "unit": "2.tv", "received_at": "2026-05-28T20:26:40Z"}"#,
            true,
        )
        .unwrap();
        assert_eq!(fields.text, "The tap drips");
        assert_eq!(fields.sender, "+4512345678");
        assert_eq!(fields.channel, "sms");
        assert_eq!(fields.unit.as_deref(), Some("2.tv"));
        assert_eq!(fields.sent_ms, Some(1_780_000_000_000));
    }

    #[test]
    fn received_at_accepts_epoch_units() {
        for value in ["1780000000", "1780000000000", "1780000000000000"] {
            let body = format!(
                r#"{{"text": "hi", "sender": "a", "channel": "app", "received_at": {value}}}"#
            );
            let fields = parse(&body, false).unwrap();
            assert_eq!(fields.sent_ms, Some(NOW_MS), "{value}");
        }
    }

    #[test]
    fn parse_fields_rejections_name_field() {
        let cases = [
            ("not json", RejectKind::Invalid, "invalid JSON"),
            ("[1]", RejectKind::Invalid, "JSON object"),
            (
                r#"{"sender": "a", "channel": "sms"}"#,
                RejectKind::Invalid,
                "missing field `text`",
            ),
            (
                r#"{"text": 5, "sender": "a", "channel": "sms"}"#,
                RejectKind::Invalid,
                "`text` must be a string",
            ),
            (
                r#"{"text": "  ", "sender": "a", "channel": "sms"}"#,
                RejectKind::Invalid,
                "`text` is empty",
            ),
            (
                r#"{"text": "hi", "channel": "sms"}"#,
                RejectKind::Invalid,
                "missing field `sender`",
            ),
            (
                r#"{"text": "hi", "sender": "a"}"#,
                RejectKind::Invalid,
                "missing field `channel`",
            ),
            (
                r#"{"text": "hi", "sender": "a", "channel": "fax"}"#,
                RejectKind::Invalid,
                "`channel` must be one of sms, email, app",
            ),
            (
                r#"{"text": "hi", "sender": "a", "channel": "sms", "txt": 1}"#,
                RejectKind::Invalid,
                "unknown field `txt`",
            ),
            (
                r#"{"text": "hi", "sender": "a", "channel": "sms", "received_at": "yesterday"}"#,
                RejectKind::Invalid,
                "`received_at` is not an RFC 3339",
            ),
            (
                r#"{"text": "hi", "sender": "a", "channel": "sms", "received_at": 1000000000}"#,
                RejectKind::Invalid,
                "before the earliest valid time",
            ),
            (
                r#"{"text": "hi", "sender": "a", "channel": "sms", "received_at": 1790000000}"#,
                RejectKind::Invalid,
                "ahead of the receive time",
            ),
        ];
        for (payload, kind, expected) in cases {
            let rejection = parse(payload, true).unwrap_err();
            assert_eq!(rejection.kind, kind, "{payload}");
            assert!(
                rejection.reason.contains(expected),
                "{payload}: {:?} lacks {expected:?}",
                rejection.reason
            );
        }
    }

    #[test]
    fn oversized_text_is_too_large() {
        let body = format!(
            r#"{{"text": "{}", "sender": "a", "channel": "sms"}}"#,
            "x".repeat(65)
        );
        let rejection = parse(&body, true).unwrap_err();
        assert_eq!(rejection.kind, RejectKind::TooLarge);
        assert!(
            rejection.reason.contains("65 bytes"),
            "{}",
            rejection.reason
        );
    }

    #[test]
    fn check_unit_rejects_odd_units() {
        for unit in ["2.tv", "st. th", "12B", "1.th", "kælder-3"] {
            assert_eq!(check_unit(unit), Ok(()), "{unit}");
        }
        for (unit, named) in [("..", "no letter"), (".", "no letter"), ("2.tv;x", "';'")] {
            let reason = check_unit(unit).unwrap_err();
            assert!(reason.contains(named), "{unit}: {reason}");
        }
    }

    #[test]
    fn unit_in_mqtt_payload_is_rejected() {
        let rejection = parse(
            r#"{"text": "hi", "sender": "a", "channel": "app", "unit": "1.th"}"#,
            false,
        )
        .unwrap_err();
        assert!(
            rejection.reason.contains("comes from the topic"),
            "{}",
            rejection.reason
        );
    }

    #[test]
    fn rejection_never_repeats_values() {
        let secret = "jens@example.com";
        let payloads = [
            format!(r#"{{"text": "hi", "sender": ["{secret}"], "channel": "sms"}}"#),
            format!(r#"{{"text": "hi", "sender": "a", "channel": "{secret}"}}"#),
            format!(
                r#"{{"text": "hi", "sender": "a", "channel": "sms", "received_at": "{secret}"}}"#
            ),
            format!(r#"{{"text": "{secret}", "sender": "a", "channel": "sms", "x": 1}}"#),
            format!(r#"{{"text": "{secret}" "#),
        ];
        for payload in &payloads {
            let rejection = parse(payload, true).unwrap_err();
            assert!(!rejection.reason.contains(secret), "{}", rejection.reason);
        }
    }

    #[test]
    fn new_id_is_ulid_sorted_by_time() {
        let first = new_id(NOW_MS);
        let second = new_id(NOW_MS + 1);
        assert_eq!(first.len(), 26);
        assert!(first.bytes().all(|b| CROCKFORD.contains(&b)), "{first}");
        assert!(first < second, "{first} !< {second}");
        assert_ne!(new_id(NOW_MS), new_id(NOW_MS));
        // The first 10 characters encode the time: 48 bits in 50, so it starts with 0 or 1.
        assert!(first.starts_with('0') || first.starts_with('1'), "{first}");
    }
}
