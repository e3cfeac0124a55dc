//! The replay task: at every simulation step it writes each device's values into its register
//! bank and publishes the room sensors on MQTT, on the accelerated clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use tokio_util::sync::CancellationToken;

use super::clock::AcceleratedClock;
use super::device::SharedBank;
use super::recorded::Series;
use crate::modbus::DeviceMap;
use crate::sim::{Fault, Plant};

/// What a served device replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The simulated circulation pump.
    Pump,
    /// The simulated district-heating substation.
    Substation,
    /// The recorded series of that index.
    Recorded(usize),
}

/// A Modbus device of the demo: its map, its register bank and what it replays.
pub struct ServedDevice {
    pub name: String,
    pub map: Arc<DeviceMap>,
    pub bank: SharedBank,
    pub source: Source,
}

/// Rooms whose temperature sensors publish on `sensors/<room>/temperature`.
const ROOMS: [(&str, f64); 3] = [
    ("flat-1-tv", 21.5),
    ("flat-3-th", 22.0),
    ("stairwell", 17.0),
];

/// Simulation steps between two room sensor readings.
const ROOM_EVERY_STEPS: u64 = 6;

/// The faults the simulation injects, at shares of the simulated span: bearing wear on the
/// pump, then a sticking valve and a stuck outdoor sensor at the substation.
pub fn inject_faults(plant: &mut Plant, start_ms: i64, span_ms: i64) {
    let at = |share: f64| start_ms + (span_ms as f64 * share) as i64;
    let ramp = |share: f64| (span_ms as f64 * share) as i64;
    plant
        .pump
        .inject(Fault::BearingWear { ramp_ms: ramp(0.2) }, at(0.25));
    plant.substation.inject(
        Fault::ClosingValve {
            ramp_ms: ramp(0.05),
        },
        at(0.55),
    );
    plant.substation.inject(
        Fault::StuckSensor {
            point: "outdoor_temperature".to_string(),
        },
        at(0.7),
    );
}

/// The replay's state: the plant, the recorded series, the devices and the room sensors.
pub struct Replay {
    pub plant: Plant,
    pub series: Vec<Series>,
    pub devices: Vec<ServedDevice>,
    /// Simulated time of step 0, in milliseconds since the epoch.
    pub start_ms: i64,
    pub step_ms: i64,
    /// How far, in kelvin, the substation's secondary supply was below its setpoint at the
    /// last step.
    pub supply_shortfall: f64,
    /// Room sensor noise, seeded like the plant.
    pub rng: fastrand::Rng,
    /// Set when a row or a value could not be served, with the device and point.
    pub rejected: Vec<String>,
}

impl Replay {
    /// Writes every device's values of step `index` into its bank.
    pub fn step_devices(&mut self, index: u64) {
        let t_ms = self.start_ms_of(index);
        for device in &self.devices {
            let values: Vec<(&str, f64)> = match device.source {
                Source::Pump => self.plant.pump.step(t_ms),
                Source::Substation => {
                    let values = self.plant.substation.step(t_ms);
                    self.supply_shortfall = shortfall(&values);
                    values
                }
                // NOTE: the gateway polls on its own timer at the step's real length, so a late
                // poll can miss a row or read one twice; nothing aligns polls with steps.
                Source::Recorded(series) => {
                    let series = &self.series[series];
                    let row = &series.rows[(index as usize) % series.rows.len()];
                    series
                        .points
                        .iter()
                        .zip(row)
                        .filter_map(|(point, value)| Some((*point, (*value)?)))
                        .collect()
                }
            };
            let mut bank = device.bank.write().unwrap_or_else(|e| e.into_inner());
            for point in bank.set_points(&device.map, &values) {
                let label = format!("{}.{point}", device.name);
                if !self.rejected.contains(&label) {
                    tracing::warn!(point = %label, "a replayed value does not fit its register");
                    self.rejected.push(label);
                }
            }
        }
    }

    fn start_ms_of(&self, index: u64) -> i64 {
        self.start_ms + self.step_ms * index as i64
    }

    /// Returns the room temperatures: a set value and noise, pulled down while the
    /// substation's secondary supply is below its setpoint.
    fn room_values(&mut self) -> Vec<(&'static str, f64)> {
        let shortfall = self.supply_shortfall;
        ROOMS
            .iter()
            .map(|(room, base)| {
                let noise = (self.rng.f64() - 0.5) * 0.2;
                (*room, base - 0.15 * shortfall + noise)
            })
            .collect()
    }
}

/// Runs the replay from step 1 (step 0 is written before the devices start) until `cancel`.
/// It goes on past the demo's span, so that the gateway sees live devices while the demo
/// waits for the pipeline to drain. `progress` receives the number of completed steps.
pub async fn run(
    mut replay: Replay,
    clock: Arc<AcceleratedClock>,
    mqtt: AsyncClient,
    progress: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let mut index = 1;
    loop {
        let due = clock.instant_at(replay.step_ms * index as i64);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        replay.step_devices(index);
        if index % ROOM_EVERY_STEPS == 0 {
            let t_ms = replay.start_ms_of(index);
            for (room, value) in replay.room_values() {
                let topic = format!("sensors/{room}/temperature");
                let payload = format!("{{\"ts\": {t_ms}, \"v\": {value:.2}}}");
                if let Err(err) = mqtt.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                    tracing::warn!(error = %err, room, "cannot publish a room reading");
                }
            }
        }
        progress.store(index, Ordering::Relaxed);
        index += 1;
    }
}

/// Returns how far the secondary supply is below its setpoint, 0 when it is not.
fn shortfall(values: &[(&str, f64)]) -> f64 {
    let value = |name: &str| {
        values
            .iter()
            .find(|(point, _)| *point == name)
            .map(|(_, v)| *v)
    };
    match (
        value("secondary_supply_setpoint"),
        value("secondary_supply_temperature"),
    ) {
        (Some(setpoint), Some(supply)) => (setpoint - supply).max(0.0),
        _ => 0.0,
    }
}
