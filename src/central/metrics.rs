//! Prometheus metrics of the central office, served on its `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric of the central office; updates are atomic.
pub struct CentralMetrics {
    registry: Registry,
    /// API requests by route and HTTP status.
    pub requests: Family<RouteLabel, Counter>,
    /// Events stored for the first time, by kind.
    pub events_stored: Family<KindLabel, Counter>,
    /// Events acknowledged again because they were already stored.
    pub events_duplicate: Counter,
    /// Events rejected, by HTTP status (as the kind label).
    pub events_rejected: Family<KindLabel, Counter>,
    /// Office changes handed to gateways.
    pub changes_served: Counter,
    pub heartbeats: Counter,
    /// Relay entries handed to a channel, by kind.
    pub relayed: Family<KindLabel, Counter>,
    /// Seconds a batch spent in the store.
    pub batch_seconds: Histogram,
    /// Store operations that failed.
    pub store_errors: Counter,
}

impl CentralMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("caretaker_central");
        let metrics = CentralMetrics {
            registry: Registry::default(),
            requests: Family::default(),
            events_stored: Family::default(),
            events_duplicate: Counter::default(),
            events_rejected: Family::default(),
            changes_served: Counter::default(),
            heartbeats: Counter::default(),
            relayed: Family::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            store_errors: Counter::default(),
        };
        registry.register(
            "requests",
            "API requests by route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "events_stored",
            "Events stored for the first time, by kind",
            metrics.events_stored.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events acknowledged again because they were already stored",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected, by HTTP status",
            metrics.events_rejected.clone(),
        );
        registry.register(
            "changes_served",
            "Office changes handed to gateways",
            metrics.changes_served.clone(),
        );
        registry.register(
            "heartbeats",
            "Heartbeats received",
            metrics.heartbeats.clone(),
        );
        registry.register(
            "relayed",
            "Tenant updates and vendor dispatches handed to a channel",
            metrics.relayed.clone(),
        );
        registry.register(
            "batch_seconds",
            "Seconds an event batch spent in the store",
            metrics.batch_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Store operations that failed",
            metrics.store_errors.clone(),
        );
        CentralMetrics {
            registry,
            ..metrics
        }
    }

    /// Renders the metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Default for CentralMetrics {
    fn default() -> Self {
        Self::new()
    }
}
