//! The gateway's own health as alarms: Modbus devices offline, sensors gone stale, the store
//! near its size cap, and a clock that cannot be trusted. Each check feeds the same alarm
//! handling as the detectors, on the gateway's receive time, so each condition gives one
//! request to the operator, closed when it recovers.

use std::time::{Duration, Instant};

use serde_json::json;

use super::report::{health_key, Finding};
use super::Engine;
use crate::detect::request::Severity;
use crate::metrics::{DeviceLabel, Metrics};
use crate::store::DetectWrite;
use crate::time::TimeKeeper;

/// When the next health check is due. The first one waits one interval, so that every
/// device has had its first poll.
pub(super) struct HealthChecks {
    next: Instant,
}

impl HealthChecks {
    pub(super) fn new(first: Instant) -> Self {
        HealthChecks { next: first }
    }

    /// Returns true, and schedules the next check, when a check is due at `now`.
    pub(super) fn due(&mut self, now: Instant, interval: Duration) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + interval;
        true
    }
}

impl Engine {
    /// Runs every health check at `now_ms` (receive time) and adds what changed to `out`.
    pub(super) fn check_health(
        &mut self,
        keeper: &TimeKeeper,
        metrics: &Metrics,
        now_ms: i64,
        out: &mut DetectWrite,
    ) {
        let offline = self.check_devices(metrics, now_ms, out);
        self.check_stale_sensors(&offline, metrics, now_ms, out);
        self.check_store(metrics, now_ms, out);
        self.check_clock(keeper, metrics, now_ms, out);
    }

    /// Returns the names of the devices that are offline.
    fn check_devices(
        &mut self,
        metrics: &Metrics,
        now_ms: i64,
        out: &mut DetectWrite,
    ) -> Vec<String> {
        let mut offline = Vec::new();
        let devices = self.setup.devices.clone();
        for device in devices {
            let online = metrics
                .modbus_device_online
                .get_or_create(&DeviceLabel {
                    device: device.name.clone(),
                })
                .get();
            let ratio = if online == 0 { 1.0 } else { 0.0 };
            if online == 0 {
                offline.push(device.name.clone());
            }
            let key = health_key(&device.name, "device_offline");
            let subject = format!("modbus:{}", device.name);
            self.drive(&key, &subject, ratio, ratio, now_ms, metrics, out, |slot| {
                Finding::health(
                    &device.asset,
                    "device_offline",
                    Severity::Critical,
                    format!(
                        "Modbus device {} of {} does not answer; its readings are missing",
                        device.name, device.asset
                    ),
                    json!({"device": device.name}),
                    slot,
                )
            });
        }
        offline
    }

    /// Marks a sensor stale when its detector reports a silence (`missing_intervals` of its
    /// learned reporting interval), or at the latest when its last good reading is older than
    /// `stale_after_secs`. Sensors of an offline device are left to the device's own request.
    fn check_stale_sensors(
        &mut self,
        offline: &[String],
        metrics: &Metrics,
        now_ms: i64,
        out: &mut DetectWrite,
    ) {
        let stale_after_ms = self.setup.settings.stale_after_ms;
        let mut checks = Vec::new();
        for state in self.sensors.values_mut() {
            if state.last_good_receive_ms == 0 {
                continue;
            }
            // The detector reports a silence once, measured on source time against the
            // sensor's learned reporting interval. The flag stays set until the next good
            // reading.
            if let Some(verdict) = state.detector.check_silence(now_ms) {
                state.silent |= verdict.is_anomaly;
            }
            let device_offline = state
                .info
                .point
                .as_ref()
                .is_some_and(|point| offline.contains(&point.device));
            let silent_ms = now_ms - state.last_good_receive_ms;
            let silent = silent_ms >= stale_after_ms || state.silent;
            let ratio = if silent && !device_offline { 1.0 } else { 0.0 };
            checks.push((state.info.clone(), ratio, silent_ms));
        }
        for (info, ratio, silent_ms) in checks {
            let key = health_key(&info.sensor_id, "sensor_stale");
            let seconds = silent_ms as f64 / 1000.0;
            self.drive(
                &key,
                &info.sensor_id,
                ratio,
                seconds,
                now_ms,
                metrics,
                out,
                |slot| {
                    Finding::health(
                        &info.asset,
                        "sensor_stale",
                        Severity::Warning,
                        format!(
                            "no good reading from {} of {} for {:.0} s",
                            info.sensor_id, info.asset, seconds
                        ),
                        json!({"sensor": info.sensor_id, "silent_secs": seconds}),
                        slot,
                    )
                },
            );
        }
    }

    fn check_store(&mut self, metrics: &Metrics, now_ms: i64, out: &mut DetectWrite) {
        let cap = self.setup.store_max_bytes;
        if cap == 0 {
            return;
        }
        let size = metrics.store_size_bytes.get().max(0) as f64;
        let share = size / cap as f64;
        let ratio = share / self.setup.settings.store_full_ratio;
        let key = health_key("gateway", "store_full");
        self.drive(&key, "store", ratio, size, now_ms, metrics, out, |slot| {
            Finding::health(
                "gateway",
                "store_full",
                if share >= 1.0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                format!(
                    "the store uses {:.0}% of its size cap; the oldest raw readings are evicted \
                     at 100%",
                    share * 100.0
                ),
                json!({"size_bytes": size, "cap_bytes": cap}),
                slot,
            )
        });
    }

    fn check_clock(
        &mut self,
        keeper: &TimeKeeper,
        metrics: &Metrics,
        now_ms: i64,
        out: &mut DetectWrite,
    ) {
        let ratio = if keeper.is_trusted() { 0.0 } else { 1.0 };
        let key = health_key("gateway", "clock_untrusted");
        self.drive(&key, "clock", ratio, ratio, now_ms, metrics, out, |slot| {
            Finding::health(
                "gateway",
                "clock_untrusted",
                Severity::Warning,
                "the gateway's wall clock is before its trusted floor; readings are stamped \
                 from its uptime until the clock is set"
                    .to_string(),
                json!({"wall_ms": keeper.clock().wall_ms()}),
                slot,
            )
        });
    }
}
