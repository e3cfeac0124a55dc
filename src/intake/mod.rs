//! Tenant message intake over MQTT and HTTP.
//!
//! A message is acknowledged only once it is committed to the store: on MQTT the PUBACK of
//! its QoS 1 delivery waits for the batch commit like a reading's, and on HTTP the `202`
//! response waits for it. It is triaged right after the commit ([`triage`]).
//!
//! - MQTT: one topic per unit from `intake.mqtt_topic`, such as `tenants/{unit}/messages`.
//!   The unit comes from the topic, which the broker's access control ties to the unit's
//!   credentials, and never from the payload.
//! - HTTP: `POST /v1/messages` from SMS or e-mail bridges, each with its own bearer token.
//!
//! The message text and the sender are personal data. They are stored in the local database
//! only (deleted after `intake.retention_days`) and never logged; quarantined payloads are
//! stored redacted.

pub mod config;
pub mod http;
pub mod limit;
pub mod message;
pub mod triage;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{load, Bridge, IntakeConfig, TopicPattern};
pub use message::{MessageOp, NewMessage, RejectKind, Rejection, Transport, Verdict};
pub use triage::{redact, Untriaged};

use crate::logging::RateLimit;
use crate::metrics::{Metrics, RejectLabel};
use crate::reading::{QuarantineEntry, Source};
use crate::store::{Batch, StoreHandle};
use crate::time::{ReceiveTime, TimeKeeper};
use limit::SenderLimiter;
use message::{parse_fields, Checks, Fields};

/// Committed messages waiting for the triage task before new ones are left to its sweep.
const TRIAGE_QUEUE: usize = 1024;

/// The intake shared by the MQTT batcher and the HTTP handler.
pub struct Intake {
    config: IntakeConfig,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    limiter: SenderLimiter,
    triage: mpsc::Sender<Untriaged>,
    database: PathBuf,
    /// One log line per minute for rejected messages, with the count held back.
    rejection_log: Mutex<RateLimit>,
}

/// The outcome of one MQTT message on the intake topic.
#[derive(Debug, Clone)]
pub enum MqttOutcome {
    /// Added to the batch; hand it to [`Intake::committed`] once the batch is committed.
    Accepted(Untriaged),
    /// Quarantined with the reason.
    Rejected(Rejection),
}

impl Intake {
    /// Creates the intake and starts its triage and retention task, which runs until
    /// `cancel` fires.
    pub fn spawn(
        config: IntakeConfig,
        store: StoreHandle,
        keeper: Arc<TimeKeeper>,
        metrics: Arc<Metrics>,
        database: PathBuf,
        cancel: CancellationToken,
    ) -> (Arc<Intake>, JoinHandle<()>) {
        let (queue_tx, queue_rx) = mpsc::channel(TRIAGE_QUEUE);
        let triager = triage::Triager {
            queue: queue_rx,
            store,
            keeper: keeper.clone(),
            database: database.clone(),
            retention_days: config.retention_days,
        };
        let task = tokio::spawn(triager.run(cancel));
        let intake = Intake::new(config, keeper, metrics, queue_tx, database);
        (Arc::new(intake), task)
    }

    fn new(
        config: IntakeConfig,
        keeper: Arc<TimeKeeper>,
        metrics: Arc<Metrics>,
        triage: mpsc::Sender<Untriaged>,
        database: PathBuf,
    ) -> Intake {
        for transport in [Transport::Mqtt, Transport::Http] {
            for kind in [
                RejectKind::Unauthorized,
                RejectKind::TooLarge,
                RejectKind::Invalid,
                RejectKind::RateLimited,
            ] {
                let _ = metrics.messages_rejected.get_or_create(&RejectLabel {
                    transport: transport.as_str(),
                    reason: kind.as_str(),
                });
            }
        }
        Intake {
            limiter: SenderLimiter::new(config.rate_limit, keeper.clock().clone()),
            config,
            keeper,
            metrics,
            triage,
            database,
            rejection_log: Mutex::new(RateLimit::new(Duration::from_secs(60))),
        }
    }

    pub fn config(&self) -> &IntakeConfig {
        &self.config
    }

    /// Returns the MQTT filter to subscribe to, when messages come over MQTT.
    pub fn mqtt_filter(&self) -> Option<String> {
        self.config.mqtt_topic.as_ref().map(TopicPattern::filter)
    }

    /// Decodes a message published on the intake topic into `batch`, or quarantines it.
    /// Returns `None` when `topic` is not an intake topic, so that sensor ingest takes it.
    ///
    /// The rate limit applies per unit, because the broker authenticates the unit. The sender
    /// field of an MQTT payload is whatever the tenant's app writes.
    pub fn mqtt_message(
        &self,
        topic: &str,
        payload: &[u8],
        redelivery: bool,
        received: ReceiveTime,
        batch: &mut Batch,
    ) -> Option<MqttOutcome> {
        let unit = self.config.mqtt_topic.as_ref()?.unit_of(topic)?;
        let result = self.check_mqtt(unit, payload, &received);
        let fields = match result {
            Ok(fields) => fields,
            Err(rejection) => {
                let raw = redact(&String::from_utf8_lossy(payload));
                batch.quarantine.push(QuarantineEntry::new(
                    Source::Mqtt,
                    topic,
                    rejection.reason.clone(),
                    raw.as_bytes(),
                    received.ts_ms,
                ));
                self.rejected(Transport::Mqtt, &rejection, topic);
                return Some(MqttOutcome::Rejected(rejection));
            }
        };
        let message = self.new_message(Transport::Mqtt, None, fields, received, redelivery);
        let untriaged = Untriaged {
            id: message.id.clone(),
            text: message.text.clone(),
        };
        batch.messages.push(MessageOp::Insert(message));
        Some(MqttOutcome::Accepted(untriaged))
    }

    fn check_mqtt(
        &self,
        unit: &str,
        payload: &[u8],
        received: &ReceiveTime,
    ) -> Result<Fields, Rejection> {
        if let Err(reason) = message::check_unit(unit) {
            return Err(Rejection::new(
                RejectKind::Invalid,
                format!("the unit level of the topic {reason}"),
            ));
        }
        if payload.len() > self.config.max_payload_bytes() {
            return Err(Rejection::new(
                RejectKind::TooLarge,
                format!(
                    "payload of {} bytes is larger than {} bytes, the limit derived from \
                     intake.max_text_bytes",
                    payload.len(),
                    self.config.max_payload_bytes()
                ),
            ));
        }
        let checks = Checks {
            max_text_bytes: self.config.max_text_bytes,
            channels: &self.config.channels,
            unit_in_body: false,
        };
        let mut fields = parse_fields(payload, checks, &self.keeper, received)?;
        self.take_token(&format!("unit:{unit}"))?;
        fields.unit = Some(unit.to_string());
        Ok(fields)
    }

    /// Checks an HTTP body from `bridge` and builds the message to commit.
    pub fn http_message(&self, bridge: &str, body: &[u8]) -> Result<NewMessage, Rejection> {
        let received = self.keeper.receive_time();
        let checks = Checks {
            max_text_bytes: self.config.max_text_bytes,
            channels: &self.config.channels,
            unit_in_body: true,
        };
        let fields = parse_fields(body, checks, &self.keeper, &received)?;
        self.take_token(&format!("{}:{}", fields.channel, fields.sender))?;
        Ok(self.new_message(
            Transport::Http,
            Some(bridge.to_string()),
            fields,
            received,
            false,
        ))
    }

    fn take_token(&self, key: &str) -> Result<(), Rejection> {
        self.limiter.try_acquire(key).map_err(|wait| {
            let wait_secs = wait.as_secs_f64().ceil().min(86_400.0) as u64;
            let mut rejection = Rejection::new(
                RejectKind::RateLimited,
                format!(
                    "the sender is over its rate limit of {} messages at once and {} per hour; \
                     retry in {wait_secs} s",
                    self.config.rate_limit.burst,
                    (self.config.rate_limit.per_minute * 60.0).round()
                ),
            );
            rejection.retry_after_secs = Some(wait_secs);
            rejection
        })
    }

    fn new_message(
        &self,
        transport: Transport,
        bridge: Option<String>,
        fields: Fields,
        received: ReceiveTime,
        redelivery: bool,
    ) -> NewMessage {
        NewMessage {
            id: message::new_id(received.ts_ms),
            transport,
            bridge,
            channel: fields.channel,
            sender: fields.sender,
            unit: fields.unit,
            text: fields.text,
            received_ms: received.ts_ms,
            time_uncertain: received.uncertain,
            sent_ms: fields.sent_ms,
            redelivery,
        }
    }

    /// Counts and logs a rejection. `origin` is the topic or the bridge. The reason contains
    /// neither the text nor the sender, and is redacted once more in case it quotes a key.
    pub fn rejected(&self, transport: Transport, rejection: &Rejection, origin: &str) {
        self.metrics
            .messages_rejected
            .get_or_create(&RejectLabel {
                transport: transport.as_str(),
                reason: rejection.kind.as_str(),
            })
            .inc();
        let allowed = self
            .rejection_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(Instant::now());
        if let Some(held_back) = allowed {
            tracing::warn!(
                transport = transport.as_str(),
                origin,
                reason = %redact(&rejection.reason),
                kind = rejection.kind.as_str(),
                repeats_not_logged = held_back,
                "tenant message rejected"
            );
        }
    }

    /// Hands committed messages to triage. When its queue is full they stay in state
    /// `received` until the next sweep.
    pub fn committed(&self, messages: impl IntoIterator<Item = Untriaged>) {
        for message in messages {
            if self.triage.try_send(message).is_err() {
                tracing::debug!("triage queue full or stopped; the sweep takes the message");
            }
        }
    }

    pub(crate) fn database(&self) -> &std::path::Path {
        &self.database
    }
}
