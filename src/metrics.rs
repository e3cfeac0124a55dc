//! Prometheus metrics of the gateway, served on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::reading::Source;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SensorLabel {
    pub sensor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    pub transport: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabel {
    pub device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceOutcomeLabel {
    pub device: String,
    pub outcome: &'static str,
}

/// Every metric the gateway exposes. Cheap to share behind an `Arc`; all updates are atomic.
pub struct Metrics {
    registry: Registry,
    pub readings_stored: Family<SourceLabel, Counter>,
    pub readings_quarantined: Family<SourceLabel, Counter>,
    pub readings_duplicate: Family<SourceLabel, Counter>,
    /// Rows removed by retention or the size cap, by `raw`, `minute` or `hour`.
    pub store_evictions: Family<KindLabel, Counter>,
    pub store_commits: Counter,
    pub store_commit_errors: Counter,
    /// Seconds from a batch being queued to its commit.
    pub store_commit_latency: Histogram,
    pub store_size_bytes: Gauge,
    pub mqtt_connected: Gauge,
    pub mqtt_connection_errors: Counter,
    pub modbus_polls: Family<DeviceOutcomeLabel, Counter>,
    pub modbus_device_online: Family<DeviceLabel, Gauge>,
    pub modbus_writes: Family<DeviceOutcomeLabel, Counter>,
    pub clock_trusted: Gauge,
    /// Anomaly events opened, by fault kind.
    pub anomaly_events: Family<KindLabel, Counter>,
    /// Requests from detectors and health checks that are open now.
    pub requests_open: Gauge,
    /// Stored readings the detectors scored.
    pub detect_readings_scored: Counter,
    /// Stored readings the detectors passed over: stale, bad, uncertain time or text.
    pub detect_readings_skipped: Counter,
    /// Highest `readings.id` the detectors have processed.
    pub detect_cursor: Gauge,
    /// Detection steps that failed to read or commit and were retried.
    pub detect_errors: Counter,
    /// Seconds until a trend is predicted to cross its limit, per sensor with a forecast.
    pub forecast_seconds_to_limit: Family<SensorLabel, Gauge<f64, AtomicU64>>,
    /// Tenant messages committed, by channel.
    pub messages_received: Family<ChannelLabel, Counter>,
    /// Tenant messages rejected, by transport and reason.
    pub messages_rejected: Family<RejectLabel, Counter>,
    /// Tenant messages not stored because the same message was stored already.
    pub messages_duplicate: Family<ChannelLabel, Counter>,
    /// Events waiting in the outbox for the central office.
    pub outbox_events: Gauge,
    /// Events the central office acknowledged.
    pub sync_events_sent: Counter,
    /// Events the office rejected for good or that exceed its request limit alone.
    pub sync_events_rejected: Counter,
    /// Tickets in an open state (neither closed nor cancelled).
    pub tickets_open: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("caretaker");
        let metrics = Metrics {
            readings_stored: Family::default(),
            readings_quarantined: Family::default(),
            readings_duplicate: Family::default(),
            store_evictions: Family::default(),
            store_commits: Counter::default(),
            store_commit_errors: Counter::default(),
            store_commit_latency: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            store_size_bytes: Gauge::default(),
            mqtt_connected: Gauge::default(),
            mqtt_connection_errors: Counter::default(),
            modbus_polls: Family::default(),
            modbus_device_online: Family::default(),
            modbus_writes: Family::default(),
            clock_trusted: Gauge::default(),
            anomaly_events: Family::default(),
            requests_open: Gauge::default(),
            detect_readings_scored: Counter::default(),
            detect_readings_skipped: Counter::default(),
            detect_cursor: Gauge::default(),
            detect_errors: Counter::default(),
            forecast_seconds_to_limit: Family::default(),
            messages_received: Family::default(),
            messages_rejected: Family::default(),
            messages_duplicate: Family::default(),
            outbox_events: Gauge::default(),
            sync_events_sent: Counter::default(),
            sync_events_rejected: Counter::default(),
            tickets_open: Gauge::default(),
            registry: Registry::default(),
        };
        for source in Source::ALL {
            let label = SourceLabel {
                source: source.as_str(),
            };
            let _ = metrics.readings_stored.get_or_create(&label);
            let _ = metrics.readings_quarantined.get_or_create(&label);
            let _ = metrics.readings_duplicate.get_or_create(&label);
        }
        registry.register(
            "readings_stored",
            "Readings committed to the store",
            metrics.readings_stored.clone(),
        );
        registry.register(
            "readings_quarantined",
            "Payloads or values that could not be decoded and went to quarantine",
            metrics.readings_quarantined.clone(),
        );
        registry.register(
            "readings_duplicate",
            "Readings already stored with the same sensor and source timestamp",
            metrics.readings_duplicate.clone(),
        );
        registry.register(
            "store_evictions",
            "Rows removed by retention or the size cap, by kind of row",
            metrics.store_evictions.clone(),
        );
        registry.register(
            "store_commits",
            "Write transactions committed",
            metrics.store_commits.clone(),
        );
        registry.register(
            "store_commit_errors",
            "Write transactions that failed and were retried",
            metrics.store_commit_errors.clone(),
        );
        registry.register(
            "store_commit_latency_seconds",
            "Time from a batch being queued to its commit",
            metrics.store_commit_latency.clone(),
        );
        registry.register(
            "store_size_bytes",
            "Size of the database file and its write-ahead log",
            metrics.store_size_bytes.clone(),
        );
        registry.register(
            "mqtt_connected",
            "1 while connected to the MQTT broker",
            metrics.mqtt_connected.clone(),
        );
        registry.register(
            "mqtt_connection_errors",
            "Failed connection attempts and dropped connections to the broker",
            metrics.mqtt_connection_errors.clone(),
        );
        registry.register(
            "modbus_polls",
            "Modbus poll cycles by device and outcome",
            metrics.modbus_polls.clone(),
        );
        registry.register(
            "modbus_device_online",
            "1 while a Modbus device answers",
            metrics.modbus_device_online.clone(),
        );
        registry.register(
            "modbus_writes",
            "Modbus writes by device and outcome",
            metrics.modbus_writes.clone(),
        );
        registry.register(
            "clock_trusted",
            "1 once the wall clock is past the trusted floor",
            metrics.clock_trusted.clone(),
        );
        registry.register(
            "anomaly_events",
            "Anomaly events opened by detectors and health checks, by fault kind",
            metrics.anomaly_events.clone(),
        );
        registry.register(
            "requests_open",
            "Maintenance requests from detectors and health checks that are open",
            metrics.requests_open.clone(),
        );
        registry.register(
            "detect_readings_scored",
            "Stored readings scored by the detectors",
            metrics.detect_readings_scored.clone(),
        );
        registry.register(
            "detect_readings_skipped",
            "Stored readings not scored because of their quality or type",
            metrics.detect_readings_skipped.clone(),
        );
        registry.register(
            "detect_cursor",
            "Highest reading id the detectors have processed",
            metrics.detect_cursor.clone(),
        );
        registry.register(
            "detect_errors",
            "Detection steps that failed to read or commit and were retried",
            metrics.detect_errors.clone(),
        );
        registry.register(
            "forecast_seconds_to_limit",
            "Seconds until a sensor's trend is predicted to cross its alarm limit",
            metrics.forecast_seconds_to_limit.clone(),
        );
        registry.register(
            "messages_received",
            "Tenant messages committed to the store, by channel",
            metrics.messages_received.clone(),
        );
        registry.register(
            "messages_rejected",
            "Tenant messages rejected, by transport and reason",
            metrics.messages_rejected.clone(),
        );
        registry.register(
            "messages_duplicate",
            "Tenant messages not stored again because they were stored already, by channel",
            metrics.messages_duplicate.clone(),
        );
        registry.register(
            "outbox_events",
            "Events waiting in the outbox for the central office",
            metrics.outbox_events.clone(),
        );
        registry.register(
            "sync_events_sent",
            "Events acknowledged by the central office",
            metrics.sync_events_sent.clone(),
        );
        registry.register(
            "sync_events_rejected",
            "Events rejected by the central office or too large for its request limit",
            metrics.sync_events_rejected.clone(),
        );
        registry.register(
            "tickets_open",
            "Tickets in an open state, neither closed nor cancelled",
            metrics.tickets_open.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // `fmt::Write` for `String` never returns an error.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn source(source: Source) -> SourceLabel {
        SourceLabel {
            source: source.as_str(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_reading_counters_per_source() {
        let metrics = Metrics::new();
        metrics
            .readings_stored
            .get_or_create(&Metrics::source(Source::Mqtt))
            .inc_by(3);
        let text = metrics.render();
        assert!(
            text.contains("caretaker_readings_stored_total{source=\"mqtt\"} 3"),
            "{text}"
        );
        assert!(text.contains("caretaker_readings_quarantined_total{source=\"modbus\"} 0"));
        assert!(text.contains("caretaker_readings_duplicate_total{source=\"mqtt\"} 0"));
    }
}
