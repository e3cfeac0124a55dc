//! Detection in the running gateway: stored readings in, anomaly events and maintenance
//! requests out.
//!
//! The engine follows the `readings` table by its AUTOINCREMENT id on its own read-only
//! connection (WAL lets it read while the writer commits). The single writer assigns ids in
//! commit order, so a reader never sees a higher id committed before a lower one. The
//! table's dedup on (sensor, source time) keeps a duplicate out, so it never reaches the
//! detectors. A duplicate may use up an id, which leaves a harmless gap. The id of
//! the last reading processed is committed in the same transaction as the events and
//! requests it produced, so after a crash or restart the engine resumes right after it:
//! every stored reading reaches the detectors once.
//!
//! Per reading, the engine feeds the sensor's streaming detector, checks the point's alarm
//! limits, updates its trend forecast and, for assets with a model, the multivariate row.
//! Every score goes through [`Alarm`] handling keyed by condition (detector, asset, fault
//! kind), so one fault gives one event and one open request, closed when the signal
//! recovers. Health checks of the gateway itself (devices offline, stale sensors, the store's
//! size, the clock) run on the wall clock through the same alarms.

mod health;
mod report;
mod settings;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use settings::{
    asset_points, load as load_settings, AssetModelSetup, DetectSection, DetectSettings, ModelEntry,
};

use super::alarm::{Alarm, AlarmPolicy, Transition};
use super::forecast::{Forecast, LimitSide, TrendForecaster};
use super::multivariate::StreamingAssetScorer;
use super::stream::{SensorDetector, StreamConfig, StreamVerdict};
use crate::metrics::{Metrics, SensorLabel};
use crate::store::{DetectWrite, StoreHandle, DETECT_CURSOR_KEY};
use crate::time::TimeKeeper;
use report::Finding;

/// Readings read and processed per step; a backlog is worked off in steps of this size, each
/// committed with its cursor.
const STEP_ROWS: usize = 2_000;

/// Settings of one Modbus point, from its device map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointMeta {
    pub device: String,
    pub point: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub alarm_high: Option<f64>,
    pub alarm_low: Option<f64>,
    /// A state or command rather than a measurement: a coil, a discrete input, a bool or
    /// bitfield value, or a point the operator writes. Its readings keep the sensor alive but
    /// are not scored, because a switch that stays in its position or flips on command is not a
    /// fault.
    pub state: bool,
}

/// A Modbus device, for the offline check.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMeta {
    pub name: String,
    pub asset: String,
}

/// Everything the engine takes from the gateway config.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    pub gateway_id: String,
    pub database: PathBuf,
    pub store_max_bytes: u64,
    pub settings: DetectSettings,
    /// Modbus points by sensor id (`DEVICE.POINT`).
    pub points: HashMap<String, PointMeta>,
    pub devices: Vec<DeviceMeta>,
    /// The device map's `asset_kind` of each asset, which decides the trade of a request.
    pub asset_kinds: HashMap<String, String>,
}

impl EngineSetup {
    /// Collects the engine's view of a validated config. Call it before the Modbus setup is
    /// handed to the pollers.
    pub fn from_config(config: &crate::config::GatewayConfig) -> Self {
        let mut points = HashMap::new();
        let mut devices = Vec::new();
        let mut asset_kinds = HashMap::new();
        if let Some(modbus) = &config.modbus {
            for device in &modbus.devices {
                devices.push(DeviceMeta {
                    name: device.name.clone(),
                    asset: device.asset.clone(),
                });
                asset_kinds
                    .entry(device.asset.clone())
                    .or_insert_with(|| device.map.device.asset_kind.clone());
                for point in &device.map.points {
                    points.insert(
                        format!("{}.{}", device.name, point.name),
                        PointMeta {
                            device: device.name.clone(),
                            point: point.name.clone(),
                            min: point.min,
                            max: point.max,
                            alarm_high: point.alarm_high,
                            alarm_low: point.alarm_low,
                            state: point.table.is_bits()
                                || point.writable
                                || matches!(
                                    point.encoding.value_type,
                                    crate::modbus::codec::ValueType::Bool
                                        | crate::modbus::codec::ValueType::Bitfield { .. }
                                ),
                        },
                    );
                }
            }
        }
        EngineSetup {
            gateway_id: config.gateway.id.clone(),
            database: config.store.path.clone(),
            store_max_bytes: config.store.max_size_bytes,
            settings: config.detect.clone(),
            points,
            devices,
            asset_kinds,
        }
    }
}

/// A row of `readings` with its sensor's names.
#[derive(Debug, Clone)]
struct SensorInfo {
    sensor_id: String,
    asset: String,
    metric: String,
    unit: String,
    point: Option<PointMeta>,
}

/// Per-sensor state: its detector, its trend and when it last had a good reading.
struct SensorState {
    info: Arc<SensorInfo>,
    detector: SensorDetector,
    forecaster: Option<TrendForecaster>,
    forecast: Option<Forecast>,
    /// Receive time of the last good reading, for the stale check.
    last_good_receive_ms: i64,
    /// Set when the detector reported a silence; cleared by the next good reading.
    silent: bool,
    last_value: Option<f64>,
    /// The last statistical fault the detector reported (spike, level shift, ...), its ratio
    /// to the threshold, and until when it keeps feeding its alarm. The detector reports such
    /// a fault on its first reading only, so without this hold no alarm with a minimum
    /// duration could ever be raised by one.
    latched: Option<(&'static str, f64, i64)>,
}

/// One alarm and the latest score of each sensor that feeds it. The alarm is fed the highest
/// of them, so that a quiet sensor of an asset cannot clear a fault another one shows.
struct AlarmSlot {
    alarm: Alarm,
    scores: BTreeMap<String, (f64, f64)>,
}

impl AlarmSlot {
    /// Returns the highest ratio and the sensor with it.
    fn top(&self) -> (f64, Option<&str>) {
        self.scores
            .iter()
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            .map(|(sensor, (ratio, _))| (*ratio, Some(sensor.as_str())))
            .unwrap_or((0.0, None))
    }
}

/// The detection engine: state of every sensor and alarm, and the read connection.
pub struct Engine {
    setup: EngineSetup,
    conn: Connection,
    cursor: i64,
    sensor_rows: HashMap<i64, Arc<SensorInfo>>,
    sensors: HashMap<String, SensorState>,
    alarms: HashMap<String, AlarmSlot>,
    /// Stream alarm keys per asset, so that every reading of an asset updates them all.
    stream_keys: HashMap<String, BTreeSet<String>>,
    /// Multivariate rows being gathered and their scorer, per asset with a model.
    asset_rows: HashMap<String, (report::AssetRow, StreamingAssetScorer)>,
}

impl Engine {
    /// Opens a read-only connection to the store and restores the cursor and the alarms
    /// whose requests are still open.
    pub fn open(setup: EngineSetup) -> rusqlite::Result<Engine> {
        let conn = Connection::open_with_flags(
            &setup.database,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let cursor: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [DETECT_CURSOR_KEY],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut engine = Engine {
            setup,
            conn,
            cursor,
            sensor_rows: HashMap::new(),
            sensors: HashMap::new(),
            alarms: HashMap::new(),
            stream_keys: HashMap::new(),
            asset_rows: HashMap::new(),
        };
        engine.restore_open_alarms()?;
        engine.warm_up()?;
        Ok(engine)
    }

    /// Rebuilds what a restart would otherwise lose from readings already processed: each
    /// forecast's window of readings, and the time of each sensor's last good reading for the
    /// stale check. The streaming detectors are not fed again, so that no reading reaches
    /// them twice; they learn anew from the readings after the cursor.
    fn warm_up(&mut self) -> rusqlite::Result<()> {
        let newest: Option<i64> = self
            .conn
            .query_row(
                "SELECT source_ts_ms FROM readings WHERE id <= ?1 ORDER BY id DESC LIMIT 1",
                [self.cursor],
                |row| row.get(0),
            )
            .optional()?;
        let Some(newest) = newest else {
            return Ok(());
        };
        let settings = &self.setup.settings;
        let span_ms = settings
            .trend
            .window_ms
            .max(settings.stale_after_ms.saturating_mul(2));
        let rows: Vec<(i64, i64, i64, Option<f64>)> = self
            .conn
            .prepare(
                "SELECT sensor, source_ts_ms, receive_ts_ms, value FROM readings
                 WHERE source_ts_ms >= ?1 AND id <= ?2 AND quality = 0
                 ORDER BY source_ts_ms, id",
            )?
            .query_map([newest.saturating_sub(span_ms), self.cursor], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let window_start = newest.saturating_sub(settings.trend.window_ms);
        let mut warmed = 0usize;
        for (sensor, source_ts, receive_ts, value) in rows {
            let Some(info) = self.sensor_info(sensor)? else {
                continue;
            };
            let state = self.sensor_state(&info);
            state.last_good_receive_ms = state.last_good_receive_ms.max(receive_ts);
            if let (Some(forecaster), Some(value)) = (state.forecaster.as_mut(), value) {
                if source_ts >= window_start && forecaster.push(source_ts, value) {
                    warmed += 1;
                }
            }
        }
        for state in self.sensors.values_mut() {
            if let Some(forecaster) = &state.forecaster {
                state.forecast = forecaster.forecast(newest);
            }
        }
        if warmed > 0 {
            tracing::info!(readings = warmed, "trend windows restored from the store");
        }
        Ok(())
    }

    /// Marks every condition with an open event or request as raised, so that it is not
    /// raised a second time and closes when its signal recovers.
    fn restore_open_alarms(&mut self) -> rusqlite::Result<()> {
        let keys: Vec<String> = self
            .conn
            .prepare(
                "SELECT alarm_key FROM requests WHERE state = 'open'
                 UNION SELECT alarm_key FROM anomaly_events WHERE closed_ms IS NULL",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for key in keys {
            if let Some(asset) = report::stream_key_asset(&key) {
                self.stream_keys
                    .entry(asset.to_string())
                    .or_default()
                    .insert(key.clone());
            }
            self.alarms.insert(
                key,
                AlarmSlot {
                    alarm: Alarm::raised(self.setup.settings.alarm),
                    scores: BTreeMap::new(),
                },
            );
        }
        if !self.alarms.is_empty() {
            tracing::info!(
                open = self.alarms.len(),
                "restored open alarms; each closes when its signal recovers"
            );
        }
        Ok(())
    }

    /// Returns the id of the last reading processed.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Counts the open requests in the store.
    pub fn open_requests(&self) -> rusqlite::Result<i64> {
        self.conn.query_row(
            "SELECT count(*) FROM requests WHERE state = 'open'",
            [],
            |row| row.get(0),
        )
    }

    /// Processes up to [`STEP_ROWS`] new readings. Returns what to commit and whether more
    /// readings are waiting.
    pub fn step(&mut self, metrics: &Metrics) -> rusqlite::Result<(DetectWrite, bool)> {
        let rows = self.read_rows()?;
        let more = rows.len() == STEP_ROWS;
        let mut out = DetectWrite::default();
        for row in rows {
            self.cursor = row.id;
            let Some(info) = self.sensor_info(row.sensor)? else {
                metrics.detect_readings_skipped.inc();
                continue;
            };
            self.process(info, &row, metrics, &mut out);
        }
        out.cursor = Some(self.cursor);
        Ok((out, more))
    }

    fn read_rows(&self) -> rusqlite::Result<Vec<StoredRow>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, sensor, source_ts_ms, receive_ts_ms, value, quality FROM readings
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement
            .query_map(rusqlite::params![self.cursor, STEP_ROWS as i64], |row| {
                Ok(StoredRow {
                    id: row.get(0)?,
                    sensor: row.get(1)?,
                    source_ts_ms: row.get(2)?,
                    receive_ts_ms: row.get(3)?,
                    value: row.get(4)?,
                    quality: row.get(5)?,
                })
            })?
            .collect();
        rows
    }

    fn sensor_info(&mut self, sensor: i64) -> rusqlite::Result<Option<Arc<SensorInfo>>> {
        if let Some(info) = self.sensor_rows.get(&sensor) {
            return Ok(Some(info.clone()));
        }
        let found = self
            .conn
            .query_row(
                "SELECT sensor_id, asset, metric, unit FROM sensors WHERE id = ?1",
                [sensor],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((sensor_id, asset, metric, unit)) = found else {
            return Ok(None);
        };
        let point = self.setup.points.get(&sensor_id).cloned();
        // A sensor without an asset is its own asset, so that its alarms have a subject.
        let asset = if asset.is_empty() {
            sensor_id.clone()
        } else {
            asset
        };
        let info = Arc::new(SensorInfo {
            sensor_id,
            asset,
            metric,
            unit,
            point,
        });
        self.sensor_rows.insert(sensor, info.clone());
        Ok(Some(info))
    }

    fn sensor_state(&mut self, info: &Arc<SensorInfo>) -> &mut SensorState {
        let settings = &self.setup.settings;
        self.sensors
            .entry(info.sensor_id.clone())
            .or_insert_with(|| {
                let point = info.point.as_ref();
                let config = StreamConfig {
                    min: point.and_then(|p| p.min),
                    max: point.and_then(|p| p.max),
                    missing_intervals: settings.missing_intervals,
                    ..StreamConfig::default()
                };
                let high = point.and_then(|p| p.alarm_high);
                let low = point.and_then(|p| p.alarm_low);
                let forecaster = (high.is_some() || low.is_some())
                    .then(|| TrendForecaster::new(settings.trend, high, low));
                SensorState {
                    info: info.clone(),
                    detector: SensorDetector::new(config),
                    forecaster,
                    forecast: None,
                    last_good_receive_ms: 0,
                    silent: false,
                    last_value: None,
                    latched: None,
                }
            })
    }

    fn process(
        &mut self,
        info: Arc<SensorInfo>,
        row: &StoredRow,
        metrics: &Metrics,
        out: &mut DetectWrite,
    ) {
        // Only fresh, good readings are scored: stale (retained) values repeat old news, bad
        // ones carry no value, and uncertain-time ones may still be re-based.
        if row.quality != 0 {
            metrics.detect_readings_skipped.inc();
            return;
        }
        let hold_ms = event_hold_ms(&self.setup.settings.alarm);
        let state = self.sensor_state(&info);
        state.last_good_receive_ms = state.last_good_receive_ms.max(row.receive_ts_ms);
        state.silent = false;
        let Some(value) = row.value else {
            // A text value: the sensor is alive, but there is nothing to score.
            metrics.detect_readings_skipped.inc();
            return;
        };
        if info.point.as_ref().is_some_and(|point| point.state) {
            metrics.detect_readings_skipped.inc();
            return;
        }
        metrics.detect_readings_scored.inc();
        let ts = row.source_ts_ms;
        state.last_value = Some(value);
        let verdict = state.detector.update(ts, Some(value));
        let mut forecast_changed = None;
        if let Some(forecaster) = state.forecaster.as_mut() {
            if forecaster.push(ts, value) {
                state.forecast = forecaster.forecast(ts);
                forecast_changed = Some(forecaster.score(state.forecast.as_ref(), ts));
            }
        }
        let forecast = state.forecast;
        if let Some(forecast) = &forecast {
            let seconds = (forecast.crossing_ms - ts).max(0) as f64 / 1000.0;
            metrics
                .forecast_seconds_to_limit
                .get_or_create(&SensorLabel {
                    sensor: info.sensor_id.clone(),
                })
                .set(seconds);
        }

        let faults = stream_faults(state, &verdict, ts, hold_ms);
        self.drive_stream(&info, ts, value, &verdict, &faults, metrics, out);
        self.drive_limits(&info, ts, value, metrics, out);
        if let Some(score) = forecast_changed {
            self.drive_forecast(&info, ts, value, score, forecast, metrics, out);
        }
        self.feed_asset_row(&info, ts, value, metrics, out);
    }

    /// Updates every stream alarm of the sensor's asset with the sensor's current faults. For
    /// the asset's other fault kinds this sensor now scores 0.
    #[allow(clippy::too_many_arguments)]
    fn drive_stream(
        &mut self,
        info: &Arc<SensorInfo>,
        ts: i64,
        value: f64,
        verdict: &StreamVerdict,
        faults: &[(&'static str, f64)],
        metrics: &Metrics,
        out: &mut DetectWrite,
    ) {
        let keys = self.stream_keys.entry(info.asset.clone()).or_default();
        for (kind, _) in faults {
            keys.insert(report::stream_key(&info.asset, kind));
        }
        let keys: Vec<String> = keys.iter().cloned().collect();
        for key in keys {
            let kind = report::stream_key_kind(&key).unwrap_or("anomaly");
            let sensor_ratio = faults
                .iter()
                .find(|(fault, _)| *fault == kind)
                .map_or(0.0, |(_, ratio)| *ratio);
            let expected = verdict.expected;
            self.drive(
                &key,
                &info.sensor_id,
                sensor_ratio,
                value,
                ts,
                metrics,
                out,
                |slot| Finding::stream(info, kind, verdict, expected, slot),
            );
        }
    }

    /// Raises `limit_high` or `limit_low` while a reading is beyond the point's alarm limit.
    fn drive_limits(
        &mut self,
        info: &Arc<SensorInfo>,
        ts: i64,
        value: f64,
        metrics: &Metrics,
        out: &mut DetectWrite,
    ) {
        let Some(point) = info.point.clone() else {
            return;
        };
        let limits = [
            (LimitSide::High, point.alarm_high),
            (LimitSide::Low, point.alarm_low),
        ];
        for (side, limit) in limits {
            let Some(limit) = limit else { continue };
            let beyond = match side {
                LimitSide::High => value >= limit,
                LimitSide::Low => value <= limit,
            };
            let key = report::limit_key(&info.asset, &info.metric, side);
            let ratio = if beyond { 1.0 } else { 0.0 };
            self.drive(
                &key,
                &info.sensor_id,
                ratio,
                value,
                ts,
                metrics,
                out,
                |slot| Finding::limit(info, side, limit, slot),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn drive_forecast(
        &mut self,
        info: &Arc<SensorInfo>,
        ts: i64,
        value: f64,
        score: f64,
        forecast: Option<Forecast>,
        metrics: &Metrics,
        out: &mut DetectWrite,
    ) {
        let key = report::forecast_key(&info.asset, &info.metric);
        let mut forecasts: BTreeMap<String, Forecast> = self
            .sensors
            .values()
            .filter(|state| state.info.asset == info.asset && state.info.metric == info.metric)
            .filter_map(|state| Some((state.info.sensor_id.clone(), state.forecast?)))
            .collect();
        if let Some(forecast) = forecast {
            forecasts.insert(info.sensor_id.clone(), forecast);
        }
        self.drive(
            &key,
            &info.sensor_id,
            score,
            value,
            ts,
            metrics,
            out,
            |slot| Finding::forecast(info, &forecasts, ts, slot),
        );
    }

    fn feed_asset_row(
        &mut self,
        info: &Arc<SensorInfo>,
        ts: i64,
        value: f64,
        metrics: &Metrics,
        out: &mut DetectWrite,
    ) {
        let Some(point) = info.point.as_ref() else {
            return;
        };
        let Some(model) = self
            .setup
            .settings
            .models
            .iter()
            .find(|model| model.asset == info.asset)
        else {
            return;
        };

        let model = model.model.clone();
        let (row, scorer) = self
            .asset_rows
            .entry(info.asset.clone())
            .or_insert_with(|| {
                let scorer = StreamingAssetScorer::new(model.as_ref().clone());
                (report::AssetRow::new(&model), scorer)
            });
        // Readings of one poll share a source time; a new time completes the previous row.
        let Some(done) = row.push(ts, &point.point, value) else {
            return;
        };
        // The streaming scorer smooths the model's ratio and maps it onto [0, 1] with 0.5 at
        // the threshold. The alarm adds the gateway's minimum duration and cooldown.
        let score = scorer.update(&done.values);

        let key = report::multivariate_key(&info.asset);
        let ratio = report::ratio(score.score, 0.5, score.is_anomaly);
        let asset = info.asset.clone();
        self.drive(
            &key,
            &asset,
            ratio,
            score.value,
            done.ts_ms,
            metrics,
            out,
            |slot| Finding::multivariate(&asset, &score, slot),
        );
    }

    /// Feeds one sensor's ratio (score over threshold) into the alarm `key` and turns a raise
    /// or a clear into store operations. A key is created only when a ratio reaches 1, so
    /// quiet conditions cost no memory.
    #[allow(clippy::too_many_arguments)]
    fn drive(
        &mut self,
        key: &str,
        sensor: &str,
        ratio: f64,
        value: f64,
        now_ms: i64,
        metrics: &Metrics,
        out: &mut DetectWrite,
        finding: impl FnOnce(&report::SlotView<'_>) -> Finding,
    ) {
        if !self.alarms.contains_key(key) {
            if ratio < 1.0 {
                return;
            }
            self.alarms.insert(
                key.to_string(),
                AlarmSlot {
                    alarm: Alarm::new(self.setup.settings.alarm),
                    scores: BTreeMap::new(),
                },
            );
        }
        let Some(slot) = self.alarms.get_mut(key) else {
            return;
        };
        slot.scores.insert(sensor.to_string(), (ratio, value));
        let (top, _) = slot.top();
        let Some(transition) = slot.alarm.update(now_ms, top, 1.0) else {
            return;
        };
        let view = report::SlotView {
            key,
            scores: &slot.scores,
        };
        match transition {
            Transition::Raised {
                since_ms,
                at_ms,
                peak,
            } => {
                let finding = finding(&view);
                metrics
                    .anomaly_events
                    .get_or_create(&crate::metrics::KindLabel {
                        kind: finding.fault_kind,
                    })
                    .inc();
                report::open(&self.setup, key, finding, since_ms, at_ms, peak, out);
            }
            Transition::Cleared { at_ms, peak } => {
                report::close(key, at_ms, peak, &slot.scores, out);
            }
        }
    }
}

/// One row of `readings` as the engine reads it.
#[derive(Debug, Clone)]
struct StoredRow {
    id: i64,
    sensor: i64,
    source_ts_ms: i64,
    receive_ts_ms: i64,
    value: Option<f64>,
    quality: i64,
}

/// Starts the detection task: it follows the store, runs health checks and commits events
/// and requests until `cancel` fires.
/// How long a statistical fault keeps feeding its alarm after the detector reported it:
/// long enough for the alarm's minimum duration to pass on readings that arrive every few
/// seconds or minutes.
fn event_hold_ms(policy: &AlarmPolicy) -> i64 {
    policy
        .min_duration_ms
        .saturating_mul(2)
        .saturating_add(60_000)
}

/// Returns the sensor's faults after `verdict`, each with its ratio to the threshold.
///
/// Faults that last (out of range, stuck, missing) hold their alarm for as long as the
/// detector reports them, so the alarm clears when the sensor recovers. A statistical fault
/// is reported on its first reading only and is then held for `hold_ms`.
fn stream_faults(
    state: &mut SensorState,
    verdict: &StreamVerdict,
    ts: i64,
    hold_ms: i64,
) -> Vec<(&'static str, f64)> {
    let mut faults = Vec::new();
    let ratio = report::ratio(verdict.score, verdict.threshold, verdict.is_anomaly);
    let active = state.detector.active_fault();
    if verdict.is_anomaly {
        let kind = verdict.kind.map_or("anomaly", |kind| kind.as_str());
        faults.push((kind, ratio.max(1.0)));
        if verdict.kind.is_none() || verdict.kind != active {
            state.latched = Some((kind, ratio.max(1.0), ts.saturating_add(hold_ms)));
        }
    }
    if let Some(kind) = active {
        if !faults.iter().any(|(fault, _)| *fault == kind.as_str()) {
            faults.push((kind.as_str(), ratio.max(1.0)));
        }
    }
    match state.latched {
        Some((kind, latched_ratio, until_ms)) if ts <= until_ms => {
            let reported = faults.iter().any(|(fault, _)| *fault == kind);
            if !reported {
                faults.push((kind, latched_ratio));
            }
        }
        Some(_) => state.latched = None,
        None => {}
    }
    faults
}

pub fn spawn(
    setup: EngineSetup,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(setup, store, keeper, metrics, cancel))
}

async fn run(
    setup: EngineSetup,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let poll_interval = setup.settings.poll_interval;
    let health_interval = setup.settings.health_interval;
    let database = setup.database.display().to_string();
    let opened = tokio::task::spawn_blocking(move || Engine::open(setup)).await;
    let mut engine = match opened {
        Ok(Ok(engine)) => engine,
        Ok(Err(err)) => {
            tracing::error!(error = %err, database, "cannot start detection; readings are stored but not scored");
            return;
        }
        Err(err) => {
            tracing::error!(error = %err, "the detection task failed to start");
            return;
        }
    };
    tracing::info!(cursor = engine.cursor(), "detection started");
    metrics.detect_cursor.set(engine.cursor());
    set_open_requests(&engine, &metrics);

    // The cursor as last committed; an idle step with nothing to commit skips the write.
    let mut committed_cursor = engine.cursor();
    let mut health = health::HealthChecks::new(Instant::now() + health_interval);
    let mut errors = crate::logging::RateLimit::new(Duration::from_secs(60));
    let mut more = false;
    loop {
        if !more {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(poll_interval) => {}
            }
        }

        let due = health.due(Instant::now(), health_interval);
        let Some((returned, result)) = step_blocking(engine, &metrics, &keeper, due).await else {
            return;
        };
        engine = returned;
        let write = match result {
            Ok((write, has_more)) => {
                more = has_more;
                write
            }
            Err(err) => {
                metrics.detect_errors.inc();
                more = false;
                if let Some(held_back) = errors.allow(std::time::Instant::now()) {
                    tracing::warn!(error = %err, repeats_not_logged = held_back, "cannot read new readings for detection; retrying");
                }
                continue;
            }
        };
        let changed = !write.ops.is_empty();
        if !changed && write.audit.is_empty() && write.cursor == Some(committed_cursor) {
            continue;
        }
        if store.write_detect(write).await.is_err() {
            tracing::debug!("the store writer has stopped; detection stops");
            return;
        }
        committed_cursor = engine.cursor();
        metrics.detect_cursor.set(committed_cursor);
        if changed {
            set_open_requests(&engine, &metrics);
        }
    }
    tracing::info!(cursor = engine.cursor(), "detection stopped");
}

/// Runs one step, and the health checks when they are due, on a blocking thread, because
/// the engine reads SQLite. Returns `None` when the step panicked.
async fn step_blocking(
    mut engine: Engine,
    metrics: &Arc<Metrics>,
    keeper: &Arc<TimeKeeper>,
    health_due: bool,
) -> Option<(Engine, rusqlite::Result<(DetectWrite, bool)>)> {
    let metrics = metrics.clone();
    let keeper = keeper.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let result = engine.step(&metrics).map(|(mut write, more)| {
            if health_due {
                let now_ms = keeper.receive_time().ts_ms;
                engine.check_health(&keeper, &metrics, now_ms, &mut write);
            }
            (write, more)
        });
        (engine, result)
    })
    .await;
    match joined {
        Ok(pair) => Some(pair),
        Err(err) => {
            tracing::error!(error = %err, "a detection step panicked; detection stops");
            None
        }
    }
}

fn set_open_requests(engine: &Engine, metrics: &Metrics) {
    match engine.open_requests() {
        Ok(open) => {
            metrics.requests_open.set(open);
        }
        Err(err) => tracing::warn!(error = %err, "cannot count open requests"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alarm::AlarmPolicy;
    use crate::detect::request::{
        Audience, MaintenanceRequest, RequestSource, RequestState, Severity, Urgency,
        REQUEST_COLUMNS,
    };
    use crate::reading::{Quality, Reading, Source, Value};
    use crate::store::{Batch, DetectOp, EventRow, StoreOptions};
    use crate::time::{ManualClock, TimePolicy};

    const START_MS: i64 = 1_780_000_000_000;
    const SENSOR: &str = "pump-1.bearing";

    fn reading(ts_ms: i64, value: Option<f64>, quality: Quality) -> Reading {
        Reading {
            sensor_id: SENSOR.to_string(),
            asset: "pump-1".to_string(),
            metric: "bearing_temperature".to_string(),
            unit: "degC".to_string(),
            value: value.map(Value::Number),
            quality,
            source: Source::Modbus,
            source_ts_ms: ts_ms,
            receive_ts_ms: ts_ms,
            detail: None,
        }
    }

    fn setup(database: PathBuf) -> EngineSetup {
        let settings = DetectSettings {
            alarm: AlarmPolicy {
                clear_ratio: 0.8,
                min_duration_ms: 2_000,
                clear_hold_ms: 2_000,
                cooldown_ms: 60_000,
            },
            ..DetectSettings::default()
        };
        let point = PointMeta {
            device: "pump-1".to_string(),
            point: "bearing".to_string(),
            min: Some(-20.0),
            max: Some(120.0),
            alarm_high: Some(90.0),
            alarm_low: None,
            state: false,
        };
        EngineSetup {
            gateway_id: "unit".to_string(),
            database,
            store_max_bytes: 1 << 30,
            settings,
            points: HashMap::from([(SENSOR.to_string(), point)]),
            devices: Vec::new(),
            asset_kinds: HashMap::from([("pump-1".to_string(), "pump".to_string())]),
        }
    }

    fn count(db: &std::path::Path, sql: &str) -> i64 {
        let conn = Connection::open(db).unwrap();
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn step_scores_each_reading_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let clock = Arc::new(ManualClock::new(START_MS));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock, policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            crate::store::open(StoreOptions::new(&db), keeper, metrics.clone()).unwrap();

        // One reading per second: 10 s below the limit, 5 s above it, 5 s below again. A
        // duplicate, a stale and a bad reading follow, and none of them may be scored.
        let mut readings: Vec<Reading> = (0..20)
            .map(|s| {
                let value = if (10..15).contains(&s) { 95.0 } else { 60.0 };
                reading(START_MS + s * 1000, Some(value), Quality::Good)
            })
            .collect();
        readings.push(reading(START_MS, Some(60.0), Quality::Good));
        readings.push(reading(START_MS + 30_000, Some(99.0), Quality::Stale));
        readings.push(reading(START_MS + 31_000, None, Quality::Bad));
        let batch = Batch {
            readings,
            ..Batch::default()
        };
        let committed = store.write(batch).await.unwrap();
        assert_eq!(committed.stored, 22);
        assert_eq!(committed.duplicates, 1);

        let mut engine = Engine::open(setup(db.clone())).unwrap();
        let (write, more) = engine.step(&metrics).unwrap();
        assert!(!more);
        assert_eq!(metrics.detect_readings_scored.get(), 20);
        assert_eq!(metrics.detect_readings_skipped.get(), 2);
        let kinds: Vec<&str> = write
            .ops
            .iter()
            .map(|op| match op {
                DetectOp::Open { event, .. } => event.fault_kind.as_str(),
                DetectOp::Close { .. } => "close",
            })
            .collect();
        assert_eq!(kinds, ["limit_high", "close"], "{:#?}", write.ops);
        // An ignored duplicate may still use up an id, so the cursor is the highest stored id.
        let last_id = count(&db, "SELECT max(id) FROM readings");
        assert_eq!(write.cursor, Some(last_id));
        store.write_detect(write).await.unwrap();

        // Nothing new: a second step scores nothing and changes nothing.
        let (write, _) = engine.step(&metrics).unwrap();
        assert!(write.ops.is_empty());
        assert_eq!(metrics.detect_readings_scored.get(), 20);

        // A restarted engine resumes after the last reading processed.
        let restarted = Engine::open(setup(db.clone())).unwrap();
        assert_eq!(restarted.cursor(), last_id);
        drop(restarted);
        drop(engine);
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();

        let closed = count(
            &db,
            "SELECT count(*) FROM requests WHERE state = 'closed' AND fault_kind = 'limit_high' \
             AND closed_ms IS NOT NULL AND category = 'heating'",
        );
        assert_eq!(closed, 1);
        assert_eq!(count(&db, "SELECT count(*) FROM requests"), 1);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM anomaly_events WHERE closed_ms IS NOT NULL"
            ),
            1
        );

        // Triage reads the row back as a MaintenanceRequest.
        let conn = Connection::open(&db).unwrap();
        let request = conn
            .query_row(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests"),
                [],
                MaintenanceRequest::from_row,
            )
            .unwrap();
        assert_eq!(request.alarm_key, "limit/pump-1/bearing_temperature/high");
        assert_eq!(request.source, RequestSource::Detector);
        assert_eq!(request.severity, Severity::Critical);
        assert_eq!(request.urgency, Urgency::Urgent);
        assert_eq!(request.audience, Audience::Tenants);
        assert_eq!(request.state, RequestState::Closed);
        assert_eq!(request.sensors, [SENSOR]);
        assert_eq!(request.opened_ms, START_MS + 12_000);
        assert_eq!(request.closed_ms, Some(START_MS + 17_000));
        assert_eq!(request.explanation["detail"]["limit"], 90.0);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM audit WHERE action LIKE 'detect.%'"
            ),
            2
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_keeps_one_open_request() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let clock = Arc::new(ManualClock::new(START_MS));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock, policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            crate::store::open(StoreOptions::new(&db), keeper, metrics.clone()).unwrap();
        let above = |from: i64, to: i64| Batch {
            readings: (from..to)
                .map(|s| reading(START_MS + s * 1000, Some(95.0), Quality::Good))
                .collect(),
            ..Batch::default()
        };

        store.write(above(0, 5)).await.unwrap();
        let mut engine = Engine::open(setup(db.clone())).unwrap();
        let (write, _) = engine.step(&metrics).unwrap();
        assert_eq!(write.ops.len(), 1, "{:#?}", write.ops);
        store.write_detect(write).await.unwrap();
        drop(engine);

        // Still above the limit after the restart: the open request stays the only one.
        store.write(above(5, 10)).await.unwrap();
        let mut engine = Engine::open(setup(db.clone())).unwrap();
        let (write, _) = engine.step(&metrics).unwrap();
        assert!(write.ops.is_empty(), "{:#?}", write.ops);
        assert_eq!(engine.open_requests().unwrap(), 1);
        drop(engine);
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();
        assert_eq!(count(&db, "SELECT count(*) FROM requests"), 1);
    }

    /// Feeds `values` of one sensor without device limits, one a second, through a fresh
    /// store and engine, and returns the fault kinds of the events opened and how many events
    /// are still open at the end.
    async fn run_series(values: &[f64]) -> (Vec<EventRow>, i64) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let clock = Arc::new(ManualClock::new(START_MS));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock, policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            crate::store::open(StoreOptions::new(&db), keeper, metrics.clone()).unwrap();
        let readings = values
            .iter()
            .enumerate()
            .map(|(second, value)| Reading {
                sensor_id: "ahu-1.supply_temp".to_string(),
                asset: "ahu-1".to_string(),
                metric: "supply_temp".to_string(),
                ..reading(START_MS + second as i64 * 1000, Some(*value), Quality::Good)
            })
            .collect();
        store
            .write(Batch {
                readings,
                ..Batch::default()
            })
            .await
            .unwrap();
        let mut engine = Engine::open(setup(db.clone())).unwrap();
        let mut opened = Vec::new();
        loop {
            let (write, more) = engine.step(&metrics).unwrap();
            opened.extend(open_events(&write));
            store.write_detect(write).await.unwrap();
            if !more {
                break;
            }
        }
        drop(engine);
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();
        let still_open = count(
            &db,
            "SELECT count(*) FROM anomaly_events WHERE closed_ms IS NULL",
        );
        (opened, still_open)
    }

    /// Feeds `values` of the bearing point, one a second, with its `state` flag as given,
    /// and returns the fault kinds of the events opened.
    async fn run_point(values: &[f64], state: bool) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let clock = Arc::new(ManualClock::new(START_MS));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock, policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            crate::store::open(StoreOptions::new(&db), keeper, metrics.clone()).unwrap();
        let readings = values
            .iter()
            .enumerate()
            .map(|(second, value)| {
                reading(START_MS + second as i64 * 1000, Some(*value), Quality::Good)
            })
            .collect();
        store
            .write(Batch {
                readings,
                ..Batch::default()
            })
            .await
            .unwrap();
        let mut setup = setup(db.clone());
        for point in setup.points.values_mut() {
            point.state = state;
        }
        let mut engine = Engine::open(setup).unwrap();
        let mut opened = Vec::new();
        loop {
            let (write, more) = engine.step(&metrics).unwrap();
            opened.extend(open_kinds(&write));
            store.write_detect(write).await.unwrap();
            if !more {
                break;
            }
        }
        drop(engine);
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();
        opened
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_point_switching_raises_nothing() {
        // A pump enable that stays at 1 for ten minutes, is switched off for five and on again:
        // as a measurement that is a stuck value and two level shifts.
        let mut values = vec![1.0; 600];
        values.extend(std::iter::repeat_n(0.0, 300));
        values.extend(std::iter::repeat_n(1.0, 300));
        let as_measurement = run_point(&values, false).await;
        assert!(
            !as_measurement.is_empty(),
            "the series must look faulty when scored"
        );
        let as_state = run_point(&values, true).await;
        assert!(as_state.is_empty(), "{as_state:?}");
    }

    fn noisy(seed: u64, count: usize, level: f64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..count)
            .map(|_| level + (rng.f64() - 0.5) * 0.4)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stuck_sensor_one_event_closed_on_recovery() {
        let mut values = noisy(1, 300, 21.0);
        values.extend(std::iter::repeat_n(21.37, 300));
        values.extend(noisy(2, 200, 21.0));
        let (opened, still_open) = run_series(&values).await;
        // The flat line is also a drop of variance, which the detector reports first.
        // NOTE: so a stuck sensor may open a `variance` event beside the `stuck` one.
        let kinds: Vec<&str> = opened.iter().map(|e| e.fault_kind.as_str()).collect();
        assert!(kinds.contains(&"stuck"), "{kinds:?}");
        assert!(opened.len() <= 2, "{kinds:?}");
        assert_eq!(still_open, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn level_shift_raises_an_event_despite_min_duration() {
        let mut values = noisy(3, 300, 21.0);
        values.extend(noisy(4, 100, 80.0));
        values.extend(noisy(5, 300, 21.0));
        let (opened, still_open) = run_series(&values).await;
        assert!(!opened.is_empty(), "no event for a jump from 21 to 80");
        assert!(opened.len() <= 2, "{opened:?}");
        assert_eq!(still_open, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lone_spike_event_keeps_its_score() {
        let mut values = noisy(3, 300, 21.0);
        values.push(80.0);
        values.extend(noisy(5, 300, 21.0));
        let (opened, _) = run_series(&values).await;
        assert!(!opened.is_empty(), "no event for a spike from 21 to 80");
        for event in &opened {
            assert!(
                event.score >= event.threshold,
                "{} event recorded score {} under its threshold {}",
                event.fault_kind,
                event.score,
                event.threshold
            );
        }
    }

    fn open_events(write: &DetectWrite) -> Vec<EventRow> {
        write
            .ops
            .iter()
            .filter_map(|op| match op {
                DetectOp::Open { event, .. } => Some(event.clone()),
                DetectOp::Close { .. } => None,
            })
            .collect()
    }

    fn open_kinds(write: &DetectWrite) -> Vec<String> {
        write
            .ops
            .iter()
            .filter_map(|op| match op {
                DetectOp::Open { event, .. } => Some(event.fault_kind.clone()),
                DetectOp::Close { .. } => None,
            })
            .collect()
    }

    fn close_keys(write: &DetectWrite) -> Vec<String> {
        write
            .ops
            .iter()
            .filter_map(|op| match op {
                DetectOp::Close { alarm_key, .. } => Some(alarm_key.clone()),
                DetectOp::Open { .. } => None,
            })
            .collect()
    }

    #[test]
    fn health_raises_and_clears_gateway_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        drop(crate::store::connect(&db, true).unwrap());
        // A board that booted at 1970: the clock is not trusted.
        let clock = Arc::new(ManualClock::new(0));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = TimeKeeper::new(clock.clone(), policy);
        let metrics = Metrics::new();
        let mut setup = setup(db);
        setup.store_max_bytes = 1_000_000;
        metrics.store_size_bytes.set(950_000);
        let mut engine = Engine::open(setup).unwrap();

        let mut first = DetectWrite::default();
        engine.check_health(&keeper, &metrics, 1_000, &mut first);
        assert!(first.ops.is_empty(), "{:#?}", first.ops);
        let mut raised = DetectWrite::default();
        engine.check_health(&keeper, &metrics, 3_000, &mut raised);
        let mut kinds = open_kinds(&raised);
        kinds.sort();
        assert_eq!(kinds, ["clock_untrusted", "store_full"]);
        assert_eq!(raised.audit.len(), 2);

        // The clock is set and old rows are evicted: both clear after the hold time.
        clock.set_wall(START_MS);
        let _ = keeper.receive_time();
        assert!(keeper.is_trusted());
        metrics.store_size_bytes.set(100_000);
        let mut holding = DetectWrite::default();
        engine.check_health(&keeper, &metrics, 4_000, &mut holding);
        assert!(holding.ops.is_empty(), "{:#?}", holding.ops);
        let mut cleared = DetectWrite::default();
        engine.check_health(&keeper, &metrics, 6_000, &mut cleared);
        let mut keys = close_keys(&cleared);
        keys.sort();
        assert_eq!(
            keys,
            [
                "health/gateway/clock_untrusted",
                "health/gateway/store_full"
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_sensor_becomes_stale() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let clock = Arc::new(ManualClock::new(START_MS));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock, policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            crate::store::open(StoreOptions::new(&db), keeper.clone(), metrics.clone()).unwrap();
        let batch = Batch {
            readings: (0..5)
                .map(|s| reading(START_MS + s * 1000, Some(60.0), Quality::Good))
                .collect(),
            ..Batch::default()
        };
        store.write(batch).await.unwrap();
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();

        let mut engine = Engine::open(setup(db)).unwrap();
        engine.step(&metrics).unwrap();
        let last = START_MS + 4_000;
        // The detector learned a 1 s interval, so 3 missing intervals make a silence.
        let mut fresh = DetectWrite::default();
        engine.check_health(&keeper, &metrics, last + 2_000, &mut fresh);
        assert!(fresh.ops.is_empty(), "{:#?}", fresh.ops);
        let mut pending = DetectWrite::default();
        engine.check_health(&keeper, &metrics, last + 5_000, &mut pending);
        assert!(pending.ops.is_empty(), "{:#?}", pending.ops);
        let mut raised = DetectWrite::default();
        engine.check_health(&keeper, &metrics, last + 7_000, &mut raised);
        assert_eq!(open_kinds(&raised), ["sensor_stale"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_restores_trend_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        let clock = Arc::new(ManualClock::new(START_MS + 3_600_000));
        let policy = TimePolicy {
            earliest_valid_ms: START_MS - 86_400_000,
            max_future_ms: 300_000,
        };
        let keeper = Arc::new(TimeKeeper::new(clock, policy));
        let metrics = Arc::new(Metrics::new());
        let (store, writer) =
            crate::store::open(StoreOptions::new(&db), keeper, metrics.clone()).unwrap();
        // One reading a minute for an hour, rising 0.2 degC a minute from 60 degC.
        let batch = Batch {
            readings: (0..60)
                .map(|m| {
                    let value = 60.0 + 0.2 * m as f64;
                    reading(START_MS + m * 60_000, Some(value), Quality::Good)
                })
                .collect(),
            ..Batch::default()
        };
        store.write(batch).await.unwrap();

        let trend_setup = || {
            let mut setup = setup(db.clone());
            setup.settings.trend = crate::detect::forecast::TrendConfig {
                window_ms: 2 * 3_600_000,
                max_points: 240,
                min_points: 30,
                horizon_ms: 10 * 86_400_000,
            };
            setup
        };
        let mut engine = Engine::open(trend_setup()).unwrap();
        let (write, _) = engine.step(&metrics).unwrap();
        let before = engine.sensors[SENSOR]
            .forecast
            .expect("a forecast before restart");
        store.write_detect(write).await.unwrap();
        drop(engine);

        let restarted = Engine::open(trend_setup()).unwrap();
        let state = &restarted.sensors[SENSOR];
        assert_eq!(state.forecaster.as_ref().map(|f| f.len()), Some(60));
        let after = state.forecast.expect("a forecast after restart");
        assert_eq!(after.crossing_ms, before.crossing_ms);
        assert_eq!(state.last_good_receive_ms, START_MS + 59 * 60_000);
        drop(restarted);
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();
    }
}
