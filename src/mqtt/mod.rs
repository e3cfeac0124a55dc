//! MQTT ingest: subscribes to the building's broker, decodes payloads into readings and
//! acknowledges QoS 1 and 2 messages only after their batch is committed to the store.
//!
//! - [`config`]: the `[mqtt]` section and its subscriptions.
//! - [`payload`]: pure decoders for JSON, SenML and bare numbers.
//! - [`Ingest`]: one message to readings or a quarantine entry, with time checks.
//! - [`spawn`]: the connection, batching and acknowledgements.

mod client;
pub mod config;
mod connection;
mod ingest;
mod receiver;
pub mod tls;
mod topic;

pub use caretaker_wire::payload;
pub use client::{spawn, spawn_with_intake};
pub use config::{load, MqttConfig, RetainedPolicy, Subscription, TlsFiles};
pub use ingest::{Ingest, Outcome};
pub use topic::{filter_matches, validate_filter, Template};
