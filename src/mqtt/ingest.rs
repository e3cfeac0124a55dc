//! Turns one delivered MQTT message into readings or a quarantine entry.

use super::config::{MqttConfig, RetainedPolicy, Subscription};
use super::payload::{decode, DecodeOptions, SampleTime, SampleValue};
use super::topic::{filter_matches, Fields};
use crate::reading::{Quality, QuarantineEntry, Reading, Source, Value};
use crate::store::Batch;
use crate::time::{ReceiveTime, TimeKeeper};

/// How many reasons a quarantine entry lists before summing up the rest.
const MAX_LISTED_REASONS: usize = 3;

/// The decoding rules of every subscription, shared by all messages.
#[derive(Debug, Clone)]
pub struct Ingest {
    subscriptions: Vec<Subscription>,
    max_payload_bytes: usize,
    retained: RetainedPolicy,
    options: DecodeOptions,
}

/// Result of decoding one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Readings were added to the batch; `missing` of them have no value (quality `bad`).
    Stored {
        readings: usize,
        missing: usize,
        /// The reasons of the missing values, for the log.
        missing_reasons: Option<String>,
    },
    /// A quarantine entry was added to the batch.
    Quarantined { reason: String },
    /// A retained message dropped because `retained = "ignore"`.
    Ignored,
}

impl Ingest {
    pub fn new(config: &MqttConfig) -> Self {
        Ingest {
            subscriptions: config.subscriptions.clone(),
            max_payload_bytes: config.max_payload_bytes,
            retained: config.retained,
            options: DecodeOptions {
                lenient_nan: config.lenient_nan,
            },
        }
    }

    /// Decodes one message and adds its readings, or one quarantine entry, to `batch`.
    ///
    /// A message is quarantined when its topic matches no subscription, it is larger than
    /// `max_payload_bytes`, it cannot be decoded, a timestamp is outside the time window, a
    /// sensor id comes out empty, or none of its values is usable. Retained messages are
    /// stored with quality `stale` (or dropped with `retained = "ignore"`).
    pub fn message(
        &self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        received: ReceiveTime,
        keeper: &TimeKeeper,
        batch: &mut Batch,
    ) -> Outcome {
        let quarantine = |batch: &mut Batch, reason: String| {
            batch.quarantine.push(QuarantineEntry::new(
                Source::Mqtt,
                topic,
                reason.clone(),
                payload,
                received.ts_ms,
            ));
            Outcome::Quarantined { reason }
        };

        let Some(subscription) = self
            .subscriptions
            .iter()
            .find(|subscription| filter_matches(&subscription.filter, topic))
        else {
            return quarantine(
                batch,
                "topic matches no configured subscription filter".into(),
            );
        };
        if payload.len() > self.max_payload_bytes {
            return quarantine(
                batch,
                format!(
                    "payload of {} bytes is larger than max_payload_bytes ({})",
                    payload.len(),
                    self.max_payload_bytes
                ),
            );
        }
        if retain && self.retained == RetainedPolicy::Ignore {
            return Outcome::Ignored;
        }
        let samples = match decode(&subscription.format, payload, self.options) {
            Ok(samples) => samples,
            Err(rejection) => return quarantine(batch, rejection.to_string()),
        };

        let last_level = topic.rsplit('/').next().unwrap_or(topic);
        let mut readings = Vec::with_capacity(samples.len());
        let mut missing = Vec::new();
        for sample in &samples {
            // NOTE: a relative SenML time taken while the clock is untrusted is not re-based
            // with its receive time. Only a source time equal to the receive time is.
            let source_ts_ms = match sample.time {
                SampleTime::Absent => received.ts_ms,
                SampleTime::Epoch(ms) => ms,
                SampleTime::Relative(offset_ms) => received.ts_ms.saturating_add(offset_ms),
            };
            if sample.time != SampleTime::Absent {
                if let Err(reason) = keeper.check_source_ts(source_ts_ms, &received) {
                    return quarantine(batch, reason);
                }
            }

            let fields = Fields {
                topic,
                path: &sample.path,
                key: if sample.key.is_empty() {
                    last_level
                } else {
                    &sample.key
                },
                id: sample.sensor_id.as_deref(),
                unit: sample.unit.as_deref(),
            };
            let sensor_id = subscription.sensor_id.render(&fields);
            if sensor_id.is_empty() {
                return quarantine(
                    batch,
                    format!(
                        "sensor_id template `{}` gave an empty id",
                        subscription.sensor_id
                    ),
                );
            }

            let (value, mut quality, mut detail) = match &sample.value {
                SampleValue::Number(number) => (Some(Value::Number(*number)), Quality::Good, None),
                SampleValue::Text(text) => (Some(Value::Text(text.clone())), Quality::Good, None),
                SampleValue::Missing(reason) => {
                    missing.push(reason.clone());
                    (None, Quality::Bad, Some(reason.clone()))
                }
            };
            if quality == Quality::Good {
                if retain {
                    quality = Quality::Stale;
                    detail = Some(if sample.time == SampleTime::Absent {
                        "retained message without a timestamp; stamped with the receive time".into()
                    } else {
                        "retained message".into()
                    });
                } else if received.uncertain {
                    // Flagged even with a source timestamp of its own, so that the store
                    // re-bases the receive time once the clock is set.
                    quality = Quality::UncertainTime;
                }
            }
            readings.push(Reading {
                sensor_id,
                asset: subscription.asset.render(&fields),
                metric: subscription.metric.render(&fields),
                unit: subscription.unit.render(&fields),
                value,
                quality,
                source: Source::Mqtt,
                source_ts_ms,
                receive_ts_ms: received.ts_ms,
                detail,
            });
        }

        let missing_reasons = (!missing.is_empty()).then(|| list_reasons(&missing));
        if missing.len() == readings.len() {
            let reason = missing_reasons.unwrap_or_else(|| "payload has no value".into());
            return quarantine(batch, format!("no usable value: {reason}"));
        }
        let outcome = Outcome::Stored {
            readings: readings.len(),
            missing: missing.len(),
            missing_reasons,
        };
        batch.readings.extend(readings);
        outcome
    }
}

/// Joins the first few reasons and counts the rest.
fn list_reasons(reasons: &[String]) -> String {
    let mut text = reasons
        .iter()
        .take(MAX_LISTED_REASONS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if reasons.len() > MAX_LISTED_REASONS {
        text.push_str(&format!(
            "; and {} more",
            reasons.len() - MAX_LISTED_REASONS
        ));
    }
    text
}

#[cfg(test)]
mod tests;
