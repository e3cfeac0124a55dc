//! The project's plant simulation: a variable-speed circulation pump and a district-heating
//! substation whose points carry the names of the shipped device maps
//! (`firmware-config/devices/circulation-pump.toml` and `district-heating-substation.toml`).
//!
//! The demo, the end-to-end tests and `caretaker train --simulate-hours` replay it. It is
//! deterministic: the same seed and the same sequence of `step` times give the same values.
//! The physics is simple but keeps the relations a multivariate model learns:
//!
//! - the pump's operating point is where its curve `Δp = a s² - b Q²` (speed fraction `s`,
//!   flow `Q`) meets the system curve `Δp = k Q²`. So flow is proportional to speed and
//!   pressure to its square, and shaft power `Q Δp / η` grows about as the cube of the speed;
//! - the speed follows a daily schedule (lower at night), the medium temperature a daily cycle;
//! - bearing temperatures lag behind the frictional heat, which grows with speed;
//! - the substation's secondary supply follows a heating curve of the outdoor temperature, its
//!   valve opens with the heat demand, and its heat power is `1.163 kW·h/(m³·K) × flow × ΔT`.
//!
//! Faults are injected with [`Pump::inject`] and [`Substation::inject`] and start at a given
//! time: bearing wear (bearing temperature and vibration drift upward), a closing valve (flow
//! falls, pressure rises) and a failing sensor (stuck or noisy).

use std::f64::consts::TAU;

const DAY_MS: f64 = 86_400_000.0;
const HOUR_MS: f64 = 3_600_000.0;

/// An injectable fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Bearing wear: over `ramp_ms`, the drive-end bearing warms by up to 18 °C (the other end
    /// by a third of that) and vibration grows to 3.5 times its normal level. The substation
    /// has no bearings and ignores it.
    BearingWear { ramp_ms: i64 },
    /// A valve closing over `ramp_ms`. In the pump's circuit it multiplies the system
    /// resistance by up to 5, so flow falls and differential pressure rises. In the substation
    /// it sticks the control valve, closing it to a fifth of its demanded opening.
    ClosingValve { ramp_ms: i64 },
    /// A sensor that keeps reporting the value it had when the fault started.
    StuckSensor { point: String },
    /// A sensor whose noise grows by `noise` in the point's unit (standard deviation).
    NoisySensor { point: String, noise: f64 },
}

#[derive(Debug, Clone)]
struct ActiveFault {
    fault: Fault,
    start_ms: i64,
    stuck_value: Option<f64>,
}

impl ActiveFault {
    /// Progress of a ramped fault in [0, 1] at `t_ms` (0 before its start).
    fn progress(&self, t_ms: i64, ramp_ms: i64) -> f64 {
        if t_ms < self.start_ms {
            0.0
        } else {
            ((t_ms - self.start_ms) as f64 / ramp_ms.max(1) as f64).min(1.0)
        }
    }
}

/// Faults of one device, applied to its physics and to its sensor readings.
#[derive(Debug, Clone, Default)]
struct Faults {
    active: Vec<ActiveFault>,
}

impl Faults {
    fn inject(&mut self, fault: Fault, start_ms: i64) {
        self.active.push(ActiveFault {
            fault,
            start_ms,
            stuck_value: None,
        });
    }

    fn bearing_wear(&self, t_ms: i64) -> f64 {
        self.ramp(t_ms, |fault| match fault {
            Fault::BearingWear { ramp_ms } => Some(*ramp_ms),
            _ => None,
        })
    }

    fn closing_valve(&self, t_ms: i64) -> f64 {
        self.ramp(t_ms, |fault| match fault {
            Fault::ClosingValve { ramp_ms } => Some(*ramp_ms),
            _ => None,
        })
    }

    fn ramp(&self, t_ms: i64, ramp_of: impl Fn(&Fault) -> Option<i64>) -> f64 {
        self.active
            .iter()
            .filter_map(|active| ramp_of(&active.fault).map(|ramp| active.progress(t_ms, ramp)))
            .fold(0.0, f64::max)
    }

    /// Applies the sensor faults to the readings.
    fn apply_to_readings(
        &mut self,
        t_ms: i64,
        readings: &mut [(&'static str, f64)],
        rng: &mut fastrand::Rng,
    ) {
        for active in &mut self.active {
            if t_ms < active.start_ms {
                continue;
            }
            match &active.fault {
                Fault::StuckSensor { point } => {
                    if let Some(reading) = readings.iter_mut().find(|(name, _)| name == point) {
                        let stuck = *active.stuck_value.get_or_insert(reading.1);
                        reading.1 = stuck;
                    }
                }
                Fault::NoisySensor { point, noise } => {
                    if let Some(reading) = readings.iter_mut().find(|(name, _)| name == point) {
                        reading.1 += gaussian(rng) * noise;
                    }
                }
                Fault::BearingWear { .. } | Fault::ClosingValve { .. } => {}
            }
        }
    }
}

/// Draws a standard normal sample (Box-Muller).
fn gaussian(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// Hour of the day in [0, 24) of a Unix time in milliseconds (UTC).
fn hour_of_day(t_ms: i64) -> f64 {
    (t_ms as f64).rem_euclid(DAY_MS) / HOUR_MS
}

/// Moves `state` toward `target` as a first-order lag with time constant `tau_ms`.
fn lag(state: f64, target: f64, dt_ms: f64, tau_ms: f64) -> f64 {
    state + (target - state) * (1.0 - (-dt_ms / tau_ms).exp())
}

/// Points of the circulation pump that carry analog measurements: the features of its asset
/// model. The others are counters, status bits and setpoints.
pub const PUMP_MODEL_POINTS: [&str; 11] = [
    "suction_pressure",
    "discharge_pressure",
    "differential_pressure",
    "flow",
    "motor_current",
    "motor_power",
    "speed",
    "vibration_velocity",
    "bearing_temperature_drive_end",
    "bearing_temperature_non_drive_end",
    "medium_temperature",
];

/// A variable-speed heating-circuit pump.
#[derive(Debug, Clone)]
pub struct Pump {
    rng: fastrand::Rng,
    faults: Faults,
    last_ms: Option<i64>,
    speed_fraction: f64,
    bearing_drive_end: f64,
    bearing_non_drive_end: f64,
    operating_hours: f64,
    /// Slowly wandering part of the speed demand (a random walk pulled back to 0).
    demand_walk: f64,
}

/// Rated speed in rpm.
const RATED_RPM: f64 = 2900.0;
/// Pump curve `Δp = a s² - b Q²` in kPa with Q in m³/h: 120 kPa at zero flow, 80 kPa at
/// 30 m³/h, at rated speed.
const PUMP_A: f64 = 120.0;
const PUMP_B: f64 = 40.0 / 900.0;
/// System curve `Δp = k Q²` of the healthy circuit.
const SYSTEM_K: f64 = 80.0 / 900.0;

impl Pump {
    pub fn new(seed: u64) -> Self {
        Pump {
            rng: fastrand::Rng::with_seed(seed),
            faults: Faults::default(),
            last_ms: None,
            speed_fraction: 0.8,
            bearing_drive_end: 45.0,
            bearing_non_drive_end: 42.0,
            operating_hours: 12_000.0,
            demand_walk: 0.0,
        }
    }

    /// Injects a fault that starts at `start_ms` (Unix milliseconds).
    pub fn inject(&mut self, fault: Fault, start_ms: i64) {
        self.faults.inject(fault, start_ms);
    }

    /// Advances the pump to `t_ms` (Unix milliseconds) and returns every point of its device
    /// map with its value in the map's unit.
    pub fn step(&mut self, t_ms: i64) -> Vec<(&'static str, f64)> {
        let dt_ms = self.last_ms.map_or(0.0, |last| (t_ms - last).max(0) as f64);
        self.last_ms = Some(t_ms);
        let hour = hour_of_day(t_ms);
        let rng = &mut self.rng;

        // Speed: higher during the day, with a slow random wander and a 1-minute lag.
        let schedule = 0.78 + 0.14 * (TAU * (hour - 9.0) / 24.0).cos();
        self.demand_walk += gaussian(rng) * 0.002 * (dt_ms / 10_000.0).sqrt();
        self.demand_walk *= (-dt_ms / (2.0 * HOUR_MS)).exp();
        let target = (schedule + self.demand_walk).clamp(0.5, 1.0);
        self.speed_fraction = if dt_ms == 0.0 {
            target
        } else {
            lag(self.speed_fraction, target, dt_ms, 60_000.0)
        };
        let s = self.speed_fraction;

        // Hydraulics: operating point of pump curve and system curve.
        let valve = self.faults.closing_valve(t_ms);
        let k = SYSTEM_K * (1.0 + 4.0 * valve);
        let flow = s * (PUMP_A / (PUMP_B + k)).sqrt();
        let differential = k * flow * flow;
        let hydraulic_w = flow / 3600.0 * differential * 1000.0;
        let efficiency = 0.62 - 0.25 * (flow / (30.0 * s) - 1.0).powi(2);
        let power = hydraulic_w / efficiency.max(0.2) + 45.0 * s;
        let current = power / (3f64.sqrt() * 400.0 * 0.86) + 0.35;

        // Condition: vibration grows with speed; bearing wear adds heat and vibration.
        let wear = self.faults.bearing_wear(t_ms);
        let vibration = (1.1 * s * s + 0.15) * (1.0 + 2.5 * wear);
        let medium = 62.0 + 6.0 * (TAU * (hour - 7.0) / 24.0).cos();
        let bearing_target = 24.0 + 0.22 * (medium - 20.0) + 14.0 * s * s + 18.0 * wear;
        let bearing_nde_target = 23.0 + 0.2 * (medium - 20.0) + 11.0 * s * s + 6.0 * wear;
        if dt_ms == 0.0 {
            self.bearing_drive_end = bearing_target;
            self.bearing_non_drive_end = bearing_nde_target;
        } else {
            self.bearing_drive_end = lag(self.bearing_drive_end, bearing_target, dt_ms, 900_000.0);
            self.bearing_non_drive_end = lag(
                self.bearing_non_drive_end,
                bearing_nde_target,
                dt_ms,
                900_000.0,
            );
        }
        self.operating_hours += dt_ms / HOUR_MS;

        let suction = 1.8 + 0.02 * (medium - 62.0) / 6.0;
        let noisy_suction = suction + gaussian(rng) * 0.01;
        let noisy_differential = differential + gaussian(rng) * 0.6;
        let mut readings = vec![
            ("suction_pressure", noisy_suction),
            (
                "discharge_pressure",
                suction + differential / 100.0 + gaussian(rng) * 0.01,
            ),
            ("differential_pressure", noisy_differential),
            ("flow", flow + gaussian(rng) * 0.15),
            ("motor_current", current + gaussian(rng) * 0.02),
            ("motor_power", power + gaussian(rng) * 8.0),
            ("speed", s * RATED_RPM + gaussian(rng) * 4.0),
            (
                "vibration_velocity",
                (vibration + gaussian(rng) * 0.05).max(0.0),
            ),
            (
                "bearing_temperature_drive_end",
                self.bearing_drive_end + gaussian(rng) * 0.15,
            ),
            (
                "bearing_temperature_non_drive_end",
                self.bearing_non_drive_end + gaussian(rng) * 0.15,
            ),
            ("medium_temperature", medium + gaussian(rng) * 0.1),
            ("operating_hours", self.operating_hours.floor()),
            ("fault_code", 0.0),
            ("alarm_active", 0.0),
            ("warning_active", 0.0),
            ("control_mode", 1.0),
            ("running", 1.0),
            ("fault", 0.0),
            ("speed_setpoint", (target * 100.0 * 10.0).round() / 10.0),
            ("run_command", 1.0),
            ("fault_reset", 0.0),
        ];
        self.faults
            .apply_to_readings(t_ms, &mut readings, &mut self.rng);
        readings
    }
}

/// A district-heating substation with a weather-compensated secondary circuit.
#[derive(Debug, Clone)]
pub struct Substation {
    rng: fastrand::Rng,
    faults: Faults,
    last_ms: Option<i64>,
    heat_energy_kwh: f64,
    hot_water: f64,
}

/// Heating curve: secondary supply = 20 °C + slope × (20 °C - outdoor), for outdoor below the
/// summer cut-off.
const CURVE_SLOPE: f64 = 1.2;
const SUMMER_CUTOFF: f64 = 18.0;

impl Substation {
    pub fn new(seed: u64) -> Self {
        Substation {
            rng: fastrand::Rng::with_seed(seed),
            faults: Faults::default(),
            last_ms: None,
            heat_energy_kwh: 250_000.0,
            hot_water: 55.0,
        }
    }

    /// Injects a fault that starts at `start_ms` (Unix milliseconds).
    pub fn inject(&mut self, fault: Fault, start_ms: i64) {
        self.faults.inject(fault, start_ms);
    }

    /// Advances the substation to `t_ms` and returns every point of its device map.
    pub fn step(&mut self, t_ms: i64) -> Vec<(&'static str, f64)> {
        let dt_ms = self.last_ms.map_or(0.0, |last| (t_ms - last).max(0) as f64);
        self.last_ms = Some(t_ms);
        let hour = hour_of_day(t_ms);
        let rng = &mut self.rng;

        let outdoor = 4.0 + 5.0 * (TAU * (hour - 15.0) / 24.0).cos();
        let setpoint = (20.0 + CURVE_SLOPE * (20.0 - outdoor)).clamp(25.0, 75.0);
        let heating = outdoor < SUMMER_CUTOFF;
        let primary_supply = (95.0 - 1.0 * outdoor).clamp(70.0, 110.0);

        // Heat demand in kW, roughly proportional to the indoor-outdoor difference.
        let demand = if heating {
            18.0 * (20.0 - outdoor)
        } else {
            15.0
        };
        let demanded_opening = (demand / 450.0).clamp(0.05, 1.0);
        let stuck = self.faults.closing_valve(t_ms);
        let opening = demanded_opening * (1.0 - 0.8 * stuck);
        let primary_flow = 12.0 * opening;
        // The delivered heat is capped by what the primary flow can carry.
        let primary_return_target = 35.0 + 0.3 * (setpoint - 40.0);
        let deliverable = 1.163 * primary_flow * (primary_supply - primary_return_target);
        let delivered = demand.min(deliverable);
        let shortfall = (demand - delivered) / demand.max(1.0);
        let secondary_supply = setpoint - 25.0 * shortfall;
        let secondary_return =
            secondary_supply - (8.0 + 0.1 * (20.0 - outdoor)) * (1.0 - shortfall);
        let primary_return = primary_supply - delivered / (1.163 * primary_flow.max(0.05));
        self.heat_energy_kwh += delivered * dt_ms / HOUR_MS;

        // Hot water: draws in the morning and evening pull it down, reheating restores it.
        let draw = ((hour - 7.0).abs() < 1.0 || (hour - 19.5).abs() < 1.5) as u8 as f64;
        let hot_target = 56.0 - 4.0 * draw;
        self.hot_water = if dt_ms == 0.0 {
            hot_target
        } else {
            lag(self.hot_water, hot_target, dt_ms, 600_000.0)
        };

        let mut readings = vec![
            (
                "primary_supply_temperature",
                primary_supply + gaussian(rng) * 0.2,
            ),
            (
                "primary_return_temperature",
                primary_return + gaussian(rng) * 0.2,
            ),
            (
                "secondary_supply_temperature",
                secondary_supply + gaussian(rng) * 0.15,
            ),
            (
                "secondary_return_temperature",
                secondary_return + gaussian(rng) * 0.15,
            ),
            ("outdoor_temperature", outdoor + gaussian(rng) * 0.1),
            (
                "valve_position",
                (opening * 100.0 + gaussian(rng) * 0.3).clamp(0.0, 100.0),
            ),
            (
                "primary_flow",
                (primary_flow + gaussian(rng) * 0.05).max(0.0),
            ),
            ("heat_power", (delivered + gaussian(rng) * 1.5).max(0.0)),
            (
                "domestic_hot_water_temperature",
                self.hot_water + gaussian(rng) * 0.2,
            ),
            ("heat_energy", self.heat_energy_kwh.floor()),
            ("heat_energy_total", self.heat_energy_kwh),
            ("pump_running", 1.0),
            ("operating_mode", if heating { 1.0 } else { 2.0 }),
            (
                "secondary_supply_setpoint",
                (setpoint * 10.0).round() / 10.0,
            ),
            ("heating_curve_slope", CURVE_SLOPE),
            ("summer_cutoff_temperature", SUMMER_CUTOFF),
            ("circulation_pump_enable", 1.0),
        ];
        self.faults
            .apply_to_readings(t_ms, &mut readings, &mut self.rng);
        readings
    }
}

/// A plant room with one circulation pump and one substation.
#[derive(Debug, Clone)]
pub struct Plant {
    pub pump: Pump,
    pub substation: Substation,
}

impl Plant {
    /// Creates a plant whose two devices draw from random streams derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Plant {
            pump: Pump::new(seed),
            substation: Substation::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1)),
        }
    }

    /// Advances both devices to `t_ms`; each value comes with its device kind
    /// (`circulation-pump`, `district-heating-substation`) and point name.
    pub fn step(&mut self, t_ms: i64) -> Vec<(&'static str, &'static str, f64)> {
        let mut out: Vec<(&'static str, &'static str, f64)> = self
            .pump
            .step(t_ms)
            .into_iter()
            .map(|(point, value)| ("circulation-pump", point, value))
            .collect();
        out.extend(
            self.substation
                .step(t_ms)
                .into_iter()
                .map(|(point, value)| ("district-heating-substation", point, value)),
        );
        out
    }
}

/// Writes `rows` rows of the pump's model points, one every `interval_ms` from `start_ms`, as a
/// CSV in the `caretaker detect` layout (`timestamp` in RFC 3339, then one column per point).
pub fn write_pump_csv(
    writer: impl std::io::Write,
    pump: &mut Pump,
    start_ms: i64,
    interval_ms: i64,
    rows: usize,
) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(writer);
    let mut header = vec!["timestamp"];
    header.extend(PUMP_MODEL_POINTS);
    csv.write_record(&header)?;
    for index in 0..rows {
        let t_ms = start_ms + index as i64 * interval_ms;
        let readings = pump.step(t_ms);
        let time = chrono::DateTime::from_timestamp_millis(t_ms)
            .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| t_ms.to_string());
        let mut record = vec![time];
        for point in PUMP_MODEL_POINTS {
            let value = readings
                .iter()
                .find(|(name, _)| *name == point)
                .map_or(f64::NAN, |(_, value)| *value);
            record.push(format!("{value:.4}"));
        }
        csv.write_record(&record)?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_MS: i64 = 1_767_571_200_000;
    const STEP_MS: i64 = 10_000;

    fn value(readings: &[(&'static str, f64)], point: &str) -> f64 {
        readings
            .iter()
            .find(|(name, _)| *name == point)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no point {point}"))
    }

    /// Mean of `point` over `rows` steps starting at `from_ms`.
    fn mean_of(pump: &mut Pump, point: &str, from_ms: i64, rows: usize) -> f64 {
        let sum: f64 = (0..rows)
            .map(|i| value(&pump.step(from_ms + i as i64 * STEP_MS), point))
            .sum();
        sum / rows as f64
    }

    fn map_points(file: &str) -> Vec<String> {
        let path = format!(
            "{}/firmware-config/devices/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let document: toml_edit::DocumentMut = text.parse().unwrap();
        document["point"]
            .as_array_of_tables()
            .unwrap()
            .iter()
            .map(|point| point["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn points_match_device_maps() {
        let mut pump = Pump::new(1);
        let names: Vec<String> = pump
            .step(START_MS)
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, map_points("circulation-pump.toml"));
        let mut substation = Substation::new(1);
        let names: Vec<String> = substation
            .step(START_MS)
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, map_points("district-heating-substation.toml"));
        for point in PUMP_MODEL_POINTS {
            assert!(map_points("circulation-pump.toml")
                .iter()
                .any(|n| n == point));
        }
    }

    #[test]
    fn same_seed_same_values() {
        let mut first = Plant::new(42);
        let mut second = Plant::new(42);
        let mut other = Plant::new(43);
        let mut differs = false;
        for i in 0..500 {
            let t = START_MS + i * STEP_MS;
            let a = first.step(t);
            assert_eq!(a, second.step(t));
            differs |= a != other.step(t);
        }
        assert!(differs, "another seed gave the same values");
    }

    /// Reads each point's `min` and `max` from a device map.
    fn map_ranges(file: &str) -> Vec<(String, f64, f64)> {
        let path = format!(
            "{}/firmware-config/devices/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let document: toml_edit::DocumentMut = text.parse().unwrap();
        let bound = |point: &toml_edit::Table, key: &str, default: f64| {
            point
                .get(key)
                .and_then(|item| item.as_float().or(item.as_integer().map(|i| i as f64)))
                .unwrap_or(default)
        };
        document["point"]
            .as_array_of_tables()
            .unwrap()
            .iter()
            .map(|point| {
                let name = point["name"].as_str().unwrap().to_string();
                (
                    name,
                    bound(point, "min", f64::MIN),
                    bound(point, "max", f64::MAX),
                )
            })
            .collect()
    }

    #[test]
    fn values_stay_in_map_ranges() {
        let ranges = [
            ("circulation-pump", map_ranges("circulation-pump.toml")),
            (
                "district-heating-substation",
                map_ranges("district-heating-substation.toml"),
            ),
        ];
        let mut plant = Plant::new(9);
        for i in 0..(2 * 8640) {
            for (device, point, value) in plant.step(START_MS + i * STEP_MS) {
                let map = &ranges.iter().find(|(name, _)| *name == device).unwrap().1;
                let (_, min, max) = map.iter().find(|(name, _, _)| name == point).unwrap();
                assert!(value.is_finite(), "{device}.{point} = {value}");
                assert!(value >= *min, "{device}.{point} = {value} below {min}");
                assert!(value <= *max, "{device}.{point} = {value} above {max}");
            }
        }
    }

    #[test]
    fn flow_follows_speed_and_power_its_cube() {
        let mut pump = Pump::new(3);
        let mut samples = Vec::new();
        for i in 0..8640 {
            let readings = pump.step(START_MS + i * STEP_MS);
            samples.push((
                value(&readings, "speed"),
                value(&readings, "flow"),
                value(&readings, "motor_power"),
            ));
        }
        let low = samples.iter().min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
        let high = samples.iter().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
        let speed_ratio = high.0 / low.0;
        assert!(
            speed_ratio > 1.2,
            "the daily cycle barely moves the speed: {speed_ratio}"
        );
        let flow_ratio = high.1 / low.1;
        assert!(
            (flow_ratio / speed_ratio - 1.0).abs() < 0.1,
            "{flow_ratio} vs {speed_ratio}"
        );
        let power_ratio = high.2 / low.2;
        let cube = speed_ratio.powi(3);
        assert!(
            (power_ratio / cube - 1.0).abs() < 0.25,
            "{power_ratio} vs {cube}"
        );
    }

    #[test]
    fn bearing_wear_heats_and_shakes() {
        let fault_ms = START_MS + 6 * 3_600_000;
        let healthy = Pump::new(4);
        let mut worn = Pump::new(4);
        worn.inject(Fault::BearingWear { ramp_ms: 3_600_000 }, fault_ms);
        let after = fault_ms + 2 * 3_600_000;
        for point in ["bearing_temperature_drive_end", "vibration_velocity"] {
            let mut a = healthy.clone();
            let mut b = worn.clone();
            let base = mean_of(&mut a, point, after, 60);
            let faulty = mean_of(&mut b, point, after, 60);
            assert!(faulty > base * 1.3, "{point}: {faulty} vs {base}");
        }
        let mut a = healthy.clone();
        let mut b = worn.clone();
        let base = mean_of(&mut a, "flow", after, 60);
        let faulty = mean_of(&mut b, "flow", after, 60);
        assert!(
            (faulty - base).abs() < 0.2,
            "bearing wear moved the flow: {faulty} vs {base}"
        );
    }

    #[test]
    fn closing_valve_cuts_flow_and_raises_pressure() {
        let fault_ms = START_MS + 3_600_000;
        let mut healthy = Pump::new(5);
        let mut throttled = Pump::new(5);
        throttled.inject(Fault::ClosingValve { ramp_ms: 600_000 }, fault_ms);
        let after = fault_ms + 1_800_000;
        let flow = mean_of(&mut healthy.clone(), "flow", after, 60);
        let throttled_flow = mean_of(&mut throttled.clone(), "flow", after, 60);
        assert!(throttled_flow < flow * 0.8, "{throttled_flow} vs {flow}");
        let pressure = mean_of(&mut healthy, "differential_pressure", after, 60);
        let throttled_pressure = mean_of(&mut throttled, "differential_pressure", after, 60);
        assert!(
            throttled_pressure > pressure * 1.1,
            "{throttled_pressure} vs {pressure}"
        );

        let mut substation = Substation::new(5);
        let mut stuck = Substation::new(5);
        stuck.inject(Fault::ClosingValve { ramp_ms: 600_000 }, fault_ms);
        let normal: f64 = value(&substation.step(after), "primary_flow");
        let closed: f64 = value(&stuck.step(after), "primary_flow");
        assert!(closed < normal * 0.5, "{closed} vs {normal}");
    }

    #[test]
    fn failing_sensors_stick_or_get_noisy() {
        let fault_ms = START_MS + 600_000;
        let mut pump = Pump::new(6);
        pump.inject(
            Fault::StuckSensor {
                point: "flow".into(),
            },
            fault_ms,
        );
        pump.inject(
            Fault::NoisySensor {
                point: "motor_current".into(),
                noise: 0.5,
            },
            fault_ms,
        );
        let before: Vec<f64> = (0..60)
            .map(|i| value(&pump.step(START_MS + i * STEP_MS), "motor_current"))
            .collect();
        let mut flows = Vec::new();
        let mut currents = Vec::new();
        for i in 0..60 {
            let readings = pump.step(fault_ms + i * STEP_MS);
            flows.push(value(&readings, "flow"));
            currents.push(value(&readings, "motor_current"));
        }
        assert!(flows.iter().all(|f| *f == flows[0]), "{flows:?}");
        let spread = |values: &[f64]| {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
        };
        assert!(spread(&currents) > 5.0 * spread(&before), "{currents:?}");
    }

    #[test]
    fn shipped_model_accepts_normal_and_flags_faults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/circulation-pump.json");
        let model = crate::detect::multivariate::AssetModel::load(&path).unwrap();
        let names: Vec<String> = PUMP_MODEL_POINTS.iter().map(|p| p.to_string()).collect();
        assert_eq!(model.check_features(&names), Ok(()));

        // Returns the number of alarm rows after `fault` starts two hours in, over six hours.
        let alarms = |fault: Option<Fault>| {
            let mut pump = Pump::new(77);
            let fault_ms = START_MS + 2 * 3_600_000;
            if let Some(fault) = fault {
                pump.inject(fault, fault_ms);
            }
            let mut scorer = crate::detect::multivariate::StreamingAssetScorer::new(model.clone());
            let mut flagged = 0;
            for i in 0..(6 * 360) {
                let readings = pump.step(START_MS + i * STEP_MS);
                let row: Vec<Option<f64>> = model
                    .features()
                    .iter()
                    .map(|f| Some(value(&readings, f)))
                    .collect();
                let verdict = scorer.update(&row);
                if verdict.is_anomaly {
                    assert!(START_MS + i * STEP_MS >= fault_ms, "alarm before the fault");
                    flagged += 1;
                }
            }
            flagged
        };
        assert_eq!(alarms(None), 0);
        let wear = alarms(Some(Fault::BearingWear { ramp_ms: 3_600_000 }));
        assert!(wear > 360, "bearing wear flagged on {wear} rows");
        let valve = alarms(Some(Fault::ClosingValve { ramp_ms: 600_000 }));
        assert!(valve > 360, "closing valve flagged on {valve} rows");
        let stuck = alarms(Some(Fault::StuckSensor {
            point: "flow".into(),
        }));
        assert!(stuck > 360, "stuck flow flagged on {stuck} rows");
    }
}
