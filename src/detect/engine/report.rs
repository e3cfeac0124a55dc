//! Turns a raised or cleared alarm into its anomaly event, its maintenance request and their
//! audit records, with the evidence that explains them.
//!
//! Alarm keys name the condition: `stream/ASSET/KIND`, `limit/ASSET/METRIC/SIDE`,
//! `forecast/ASSET/METRIC`, `multivariate/ASSET` and `health/SUBJECT/KIND`. Fault kinds
//! contain no `/`, so a key is read back from its last segment.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::{EngineSetup, SensorInfo};
use crate::detect::forecast::{Forecast, LimitSide};
use crate::detect::multivariate::{AssetModel, MvScore};
use crate::detect::request::{
    audience_for, category_for_asset_kind, urgency_for, ForecastWindow, MaintenanceRequest,
    RequestSource, RequestState, Severity,
};
use crate::store::{AuditRecord, DetectOp, DetectWrite, EventRow};
use crate::time::format_ms;

use crate::detect::stream::StreamVerdict;

pub(super) fn stream_key(asset: &str, kind: &str) -> String {
    format!("stream/{asset}/{kind}")
}

/// Returns the asset of a `stream/ASSET/KIND` key.
pub(super) fn stream_key_asset(key: &str) -> Option<&str> {
    key.strip_prefix("stream/")?
        .rsplit_once('/')
        .map(|(asset, _)| asset)
}

/// Returns the fault kind of a `stream/ASSET/KIND` key.
pub(super) fn stream_key_kind(key: &str) -> Option<&str> {
    key.strip_prefix("stream/")?
        .rsplit_once('/')
        .map(|(_, kind)| kind)
}

pub(super) fn limit_key(asset: &str, metric: &str, side: LimitSide) -> String {
    format!("limit/{asset}/{metric}/{}", side.as_str())
}

pub(super) fn forecast_key(asset: &str, metric: &str) -> String {
    format!("forecast/{asset}/{metric}")
}

pub(super) fn multivariate_key(asset: &str) -> String {
    format!("multivariate/{asset}")
}

pub(super) fn health_key(subject: &str, kind: &str) -> String {
    format!("health/{subject}/{kind}")
}

/// Scales a score by its threshold, so that every alarm is raised at 1. A threshold that is
/// not positive leaves only the detector's own decision.
pub(super) fn ratio(score: f64, threshold: f64, is_anomaly: bool) -> f64 {
    if threshold > 0.0 && score.is_finite() {
        score / threshold
    } else if is_anomaly {
        1.0
    } else {
        0.0
    }
}

/// The alarm as seen when it changes: its key and each sensor's latest ratio and value.
pub(super) struct SlotView<'a> {
    pub key: &'a str,
    pub scores: &'a BTreeMap<String, (f64, f64)>,
}

impl SlotView<'_> {
    /// Sensors at or above the threshold, highest first, or else the highest one.
    fn contributors(&self) -> Vec<(&str, f64, f64)> {
        let mut all: Vec<(&str, f64, f64)> = self
            .scores
            .iter()
            .map(|(sensor, (ratio, value))| (sensor.as_str(), *ratio, *value))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let above: Vec<_> = all.iter().copied().filter(|c| c.1 >= 1.0).collect();
        if above.is_empty() {
            all.truncate(1);
            all
        } else {
            above
        }
    }

    fn contributions_json(&self) -> Json {
        self.contributors()
            .iter()
            .map(|(sensor, ratio, value)| json!({"sensor": sensor, "value": value, "ratio": ratio}))
            .collect()
    }

    fn sensors(&self) -> Vec<String> {
        self.contributors()
            .iter()
            .map(|(sensor, _, _)| sensor.to_string())
            .collect()
    }
}

/// The evidence of a raised alarm, before it becomes rows.
pub(super) struct Finding {
    pub source: RequestSource,
    /// `stream`, `limit`, `forecast`, `multivariate` or `health`.
    pub detector: &'static str,
    pub asset: String,
    pub fault_kind: &'static str,
    pub sensors: Vec<String>,
    pub score: f64,
    pub threshold: f64,
    pub contributions: Json,
    pub severity: Severity,
    pub summary: String,
    pub forecast: Option<Forecast>,
    /// Detector-specific evidence for the explanation.
    pub detail: Json,
}

impl Finding {
    pub(super) fn stream(
        info: &Arc<SensorInfo>,
        kind: &str,
        verdict: &StreamVerdict,
        expected: Option<f64>,
        slot: &SlotView<'_>,
    ) -> Finding {
        let fault_kind = static_kind(kind);
        // A value outside the plausible range is more often a broken sensor than a broken
        // asset, so no stream fault is critical on its own. Limit crossings are.
        let severity = Severity::Warning;
        let expected_text = expected
            .map(|e| format!(", expected about {e:.3} {}", info.unit))
            .unwrap_or_default();
        // A statistical fault is latched after the reading that showed it, so the alarm may
        // be raised on a later, quiet reading. The recorded score is the latched ratio on the
        // detector's scale, the evidence that raised the alarm, not the quiet reading's score.
        let latched = slot
            .scores
            .get(&info.sensor_id)
            .map(|(ratio, _)| *ratio)
            .filter(|ratio| ratio.is_finite() && verdict.threshold > 0.0);
        let score = match latched {
            Some(ratio) => verdict.score.max(ratio * verdict.threshold),
            None => verdict.score,
        };
        Finding {
            source: RequestSource::Detector,
            detector: "stream",
            asset: info.asset.clone(),
            fault_kind,
            sensors: slot.sensors(),
            score,
            threshold: verdict.threshold,
            contributions: slot.contributions_json(),
            severity,
            summary: format!(
                "{} on {} of {}{}",
                fault_kind.replace('_', " "),
                info.metric,
                info.asset,
                expected_text
            ),
            forecast: None,
            detail: json!({
                "sensor": info.sensor_id,
                "metric": info.metric,
                "unit": info.unit,
                "expected": expected,
                "changepoint": verdict.changepoint,
            }),
        }
    }

    pub(super) fn limit(
        info: &Arc<SensorInfo>,
        side: LimitSide,
        limit: f64,
        slot: &SlotView<'_>,
    ) -> Finding {
        let value = slot
            .scores
            .get(&info.sensor_id)
            .map(|(_, value)| *value)
            .unwrap_or(f64::NAN);
        let (fault_kind, word) = match side {
            LimitSide::High => ("limit_high", "above"),
            LimitSide::Low => ("limit_low", "below"),
        };
        Finding {
            source: RequestSource::Detector,
            detector: "limit",
            asset: info.asset.clone(),
            fault_kind,
            sensors: slot.sensors(),
            score: value,
            threshold: limit,
            contributions: slot.contributions_json(),
            severity: Severity::Critical,
            summary: format!(
                "{} of {} is {value} {unit}, {word} its alarm limit {limit} {unit}",
                info.metric,
                info.asset,
                unit = info.unit
            ),
            forecast: None,
            detail: json!({
                "metric": info.metric,
                "unit": info.unit,
                "limit": limit,
                "side": side.as_str(),
            }),
        }
    }

    /// `forecasts` contains the latest forecast of each sensor that feeds the alarm; the one of
    /// the sensor with the highest score explains the request.
    pub(super) fn forecast(
        info: &Arc<SensorInfo>,
        forecasts: &BTreeMap<String, Forecast>,
        now_ms: i64,
        slot: &SlotView<'_>,
    ) -> Finding {
        let top = slot.contributors().first().map(|c| c.0.to_string());
        let forecast = top
            .as_deref()
            .and_then(|sensor| forecasts.get(sensor))
            .or_else(|| forecasts.values().min_by_key(|f| f.crossing_ms))
            .copied();
        let (fault_kind, verb) = match forecast.map(|f| f.side) {
            Some(LimitSide::Low) => ("forecast_low", "falling"),
            _ => ("forecast_high", "rising"),
        };
        let summary = match &forecast {
            Some(f) => format!(
                "{} of {} {verb} {:.3} {unit}/h; alarm limit {} {unit} expected at {} \
                 (between {} and {})",
                info.metric,
                info.asset,
                f.slope_per_hour.abs(),
                f.limit,
                format_ms(f.crossing_ms),
                format_ms(f.earliest_ms),
                format_ms(f.latest_ms),
                unit = info.unit
            ),
            None => format!(
                "{} of {} {verb} towards its alarm limit",
                info.metric, info.asset
            ),
        };
        let detail = match &forecast {
            Some(f) => json!({
                "method": "Theil-Sen slope with Sen's 95% interval",
                "metric": info.metric,
                "unit": info.unit,
                "side": f.side.as_str(),
                "limit": f.limit,
                "level": f.level,
                "slope_per_hour": f.slope_per_hour,
                "slope_per_hour_interval": [f.slope_per_hour_low, f.slope_per_hour_high],
                "residual_sigma": f.residual_sigma,
                "points": f.points,
                "crossing": format_ms(f.crossing_ms),
                "earliest": format_ms(f.earliest_ms),
                "latest": format_ms(f.latest_ms),
                "hours_to_limit": (f.crossing_ms - now_ms) as f64 / 3_600_000.0,
            }),
            None => json!({"metric": info.metric}),
        };
        Finding {
            source: RequestSource::Forecast,
            detector: "forecast",
            asset: info.asset.clone(),
            fault_kind,
            sensors: slot.sensors(),
            score: slot.contributors().first().map(|c| c.1).unwrap_or(0.0),
            threshold: 1.0,
            contributions: slot.contributions_json(),
            severity: Severity::Warning,
            summary,
            forecast,
            detail,
        }
    }

    pub(super) fn multivariate(asset: &str, score: &MvScore, slot: &SlotView<'_>) -> Finding {
        let contributions: Json = score
            .contributions
            .iter()
            .map(|(feature, share)| json!({"feature": feature, "contribution": share}))
            .collect();
        let top: Vec<&str> = score
            .contributions
            .iter()
            .take(3)
            .map(|(feature, _)| feature.as_str())
            .collect();
        Finding {
            source: RequestSource::Detector,
            detector: "multivariate",
            asset: asset.to_string(),
            fault_kind: "multivariate",
            sensors: score.contributions.iter().map(|(f, _)| f.clone()).collect(),
            // The streaming scorer's score is 0.5 at its threshold.
            score: score.score,
            threshold: 0.5,
            contributions,
            severity: Severity::Warning,
            summary: format!(
                "{asset} deviates from its normal operation; largest contributions from {}",
                top.join(", ")
            ),
            forecast: None,
            detail: json!({
                "statistic": score.statistic,
                "value": score.value,
                "statistic_threshold": score.threshold,
                "imputed": score.imputed,
                "alarm": slot.key,
            }),
        }
    }

    /// Builds a finding of the gateway's own health checks.
    pub(super) fn health(
        asset: &str,
        fault_kind: &'static str,
        severity: Severity,
        summary: String,
        detail: Json,
        slot: &SlotView<'_>,
    ) -> Finding {
        Finding {
            source: RequestSource::Health,
            detector: "health",
            asset: asset.to_string(),
            fault_kind,
            sensors: slot.sensors(),
            score: slot.contributors().first().map(|c| c.1).unwrap_or(1.0),
            threshold: 1.0,
            contributions: slot.contributions_json(),
            severity,
            summary,
            forecast: None,
            detail,
        }
    }
}

/// Maps a detector's fault kind to a static label for metrics; unknown kinds are `anomaly`.
fn static_kind(kind: &str) -> &'static str {
    const KINDS: [&str; 8] = [
        "out_of_range",
        "stuck",
        "missing",
        "spike",
        "level_shift",
        "variance",
        "seasonal",
        "anomaly",
    ];
    KINDS
        .iter()
        .find(|known| **known == kind)
        .copied()
        .unwrap_or("anomaly")
}

/// Adds the operations and audit record of a raised alarm to `out`.
pub(super) fn open(
    setup: &EngineSetup,
    key: &str,
    finding: Finding,
    since_ms: i64,
    at_ms: i64,
    peak: f64,
    out: &mut DetectWrite,
) {
    let asset_kind = setup
        .asset_kinds
        .get(&finding.asset)
        .map(String::as_str)
        .unwrap_or("");
    // A health condition without an asset (the store, the clock) needs no trade.
    let category = if finding.source == RequestSource::Health && asset_kind.is_empty() {
        "other"
    } else {
        category_for_asset_kind(asset_kind)
    };
    let time_to_limit = finding.forecast.map(|f| (f.crossing_ms - at_ms).max(0));
    let urgency = urgency_for(finding.severity, time_to_limit);
    let audience = audience_for(finding.source, finding.severity, category);

    let alarm = setup.settings.alarm;
    let forecast_json = finding.forecast.map(|f| {
        json!({
            "crossing_ms": f.crossing_ms,
            "earliest_ms": f.earliest_ms,
            "latest_ms": f.latest_ms,
            "uncertainty_ms": f.uncertainty_ms(),
        })
    });
    let explanation = json!({
        "detector": finding.detector,
        "fault_kind": finding.fault_kind,
        "asset": finding.asset,
        "asset_kind": asset_kind,
        "sensors": finding.sensors,
        "score": finding.score,
        "threshold": finding.threshold,
        "peak_ratio": peak,
        "contributions": finding.contributions,
        "since": format_ms(since_ms),
        "raised": format_ms(at_ms),
        "rule": format!(
            "raised after the score stayed at or above its threshold for {} s; clears after {} s \
             below {} of it",
            alarm.min_duration_ms / 1000,
            alarm.clear_hold_ms / 1000,
            alarm.clear_ratio
        ),
        "category_rule": format!("asset kind {asset_kind:?} needs trade {category}"),
        "urgency_rule": match time_to_limit {
            Some(ms) => format!("severity {} and limit expected in {:.1} h", finding.severity.as_str(), ms as f64 / 3_600_000.0),
            None => format!("severity {}", finding.severity.as_str()),
        },
        "forecast": forecast_json,
        "detail": finding.detail,
    });

    let request = MaintenanceRequest {
        request_id: format!("{}-{key}-{at_ms}", setup.gateway_id),
        alarm_key: key.to_string(),
        source: finding.source,
        asset: finding.asset.clone(),
        sensors: finding.sensors.clone(),
        fault_kind: finding.fault_kind.to_string(),
        severity: finding.severity,
        category: category.to_string(),
        urgency,
        audience,
        summary: finding.summary.clone(),
        forecast: finding.forecast.map(|f| ForecastWindow {
            crossing_ms: f.crossing_ms,
            uncertainty_ms: f.uncertainty_ms(),
        }),
        explanation: explanation.clone(),
        state: RequestState::Open,
        opened_ms: at_ms,
        closed_ms: None,
    };

    tracing::info!(
        alarm = key,
        asset = %finding.asset,
        fault_kind = finding.fault_kind,
        severity = finding.severity.as_str(),
        summary = %finding.summary,
        "alarm raised; request opened"
    );
    out.ops.push(DetectOp::Open {
        event: EventRow {
            alarm_key: key.to_string(),
            asset: finding.asset.clone(),
            sensors: finding.sensors.clone(),
            detector: finding.detector.to_string(),
            fault_kind: finding.fault_kind.to_string(),
            score: finding.score,
            threshold: finding.threshold,
            contributions: finding.contributions.clone(),
            opened_ms: since_ms,
        },
        request: Some(Box::new(request)),
    });
    out.audit.push(AuditRecord {
        ts_ms: at_ms,
        actor: format!("detector:{}", finding.detector),
        action: "detect.raise".to_string(),
        subject: key.to_string(),
        detail: explanation,
    });
}

/// Adds the operations and audit record of a cleared alarm to `out`.
pub(super) fn close(
    key: &str,
    at_ms: i64,
    peak: f64,
    scores: &BTreeMap<String, (f64, f64)>,
    out: &mut DetectWrite,
) {
    tracing::info!(alarm = key, "alarm cleared; request closed");
    let last: Json = scores
        .iter()
        .map(|(sensor, (ratio, value))| json!({"sensor": sensor, "value": value, "ratio": ratio}))
        .collect();
    out.ops.push(DetectOp::Close {
        alarm_key: key.to_string(),
        closed_ms: at_ms,
    });
    let detector = key.split('/').next().unwrap_or("detector");
    out.audit.push(AuditRecord {
        ts_ms: at_ms,
        actor: format!("detector:{detector}"),
        action: "detect.clear".to_string(),
        subject: key.to_string(),
        detail: json!({"cleared": format_ms(at_ms), "peak_ratio": peak, "last": last}),
    });
}

/// A row of an asset's features being gathered from the readings of one poll.
#[derive(Debug, Clone)]
pub(super) struct AssetRow {
    features: Vec<String>,
    ts_ms: Option<i64>,
    values: Vec<Option<f64>>,
}

/// A completed row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DoneRow {
    pub ts_ms: i64,
    pub values: Vec<Option<f64>>,
}

impl AssetRow {
    pub(super) fn new(model: &AssetModel) -> Self {
        AssetRow {
            features: model.features().to_vec(),
            ts_ms: None,
            values: vec![None; model.features().len()],
        }
    }

    /// Adds a point's value at `ts_ms`. A different time completes the row gathered so far
    /// and returns it; points that are not features are ignored.
    pub(super) fn push(&mut self, ts_ms: i64, point: &str, value: f64) -> Option<DoneRow> {
        let index = self.features.iter().position(|f| f == point)?;
        let mut done = None;
        if self.ts_ms != Some(ts_ms) {
            if let Some(previous) = self.ts_ms {
                let values = std::mem::replace(&mut self.values, vec![None; self.features.len()]);
                done = Some(DoneRow {
                    ts_ms: previous,
                    values,
                });
            }
            self.ts_ms = Some(ts_ms);
        }
        self.values[index] = Some(value);
        done
    }
}
