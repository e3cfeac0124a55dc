//! The structured maintenance request that detection and the gateway's health checks hand to
//! triage.
//!
//! A tenant's message and a detector's alarm enter triage as the same kind of request. This
//! type is the detector side: it already carries the fields that triage would otherwise infer
//! from text (asset, trade category, urgency, audience), plus the evidence that explains
//! them. Rows of the `requests` table hold the same fields; [`MaintenanceRequest::from_row`]
//! reads one back.

use serde::{Deserialize, Serialize};

/// The origin of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestSource {
    /// A streaming or multivariate detector found an anomaly in the readings.
    Detector,
    /// A trend forecast predicts that a limit will be crossed.
    Forecast,
    /// The gateway's own health: a device offline, a stale sensor, a full store, the clock.
    Health,
}

impl RequestSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestSource::Detector => "detector",
            RequestSource::Forecast => "forecast",
            RequestSource::Health => "health",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "detector" => Some(RequestSource::Detector),
            "forecast" => Some(RequestSource::Forecast),
            "health" => Some(RequestSource::Health),
            _ => None,
        }
    }
}

/// The seriousness of the condition now, independent of how soon someone must act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look at the next visit.
    Info,
    /// Degraded: the asset still works, but a fault is developing or data is missing.
    Warning,
    /// The asset or the gateway is failing now.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// The time frame of the work, with the same values as tenant-message triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Routine,
    /// Within 24 hours.
    Urgent,
    /// Immediate danger to people or property.
    Emergency,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
            Urgency::Emergency => "emergency",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "routine" => Some(Urgency::Routine),
            "urgent" => Some(Urgency::Urgent),
            "emergency" => Some(Urgency::Emergency),
            _ => None,
        }
    }
}

/// The addressee of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The building operator or property manager: plant faults and the gateway's own health.
    Operator,
    /// The tenants as well, because they feel the fault (no heat, no hot water, no power).
    Tenants,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Operator => "operator",
            Audience::Tenants => "tenants",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "operator" => Some(Audience::Operator),
            "tenants" => Some(Audience::Tenants),
            _ => None,
        }
    }
}

/// Whether the condition behind a request still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Open,
    /// The signal recovered; triage may close the ticket or keep it for follow-up.
    Closed,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Open => "open",
            RequestState::Closed => "closed",
        }
    }
}

/// A prediction of when a signal will cross its limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastWindow {
    /// Predicted crossing time, in milliseconds since the Unix epoch.
    pub crossing_ms: i64,
    /// Half-width of the crossing time's interval, in milliseconds: the crossing is expected
    /// between `crossing_ms - uncertainty_ms` and `crossing_ms + uncertainty_ms`.
    pub uncertainty_ms: i64,
}

/// The triage pipeline's structured input from detection and health checks.
///
/// One condition (named by `alarm_key`) has at most one open request. The request is opened
/// when the alarm is raised and closed when the signal recovers, so a fault that persists
/// for days produces one request, not one per reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceRequest {
    /// Unique id: `<gateway>-<alarm key>-<opened ms>`, stable across restarts.
    pub request_id: String,
    /// The condition: detector or check, asset, fault kind and sensor.
    pub alarm_key: String,
    pub source: RequestSource,
    /// The asset concerned, such as `heating-pump-1`, or `gateway` for the gateway itself.
    pub asset: String,
    /// Sensor ids the condition was found on.
    pub sensors: Vec<String>,
    /// Fault kind, such as `spike`, `forecast_high` or `device_offline`.
    pub fault_kind: String,
    pub severity: Severity,
    /// The trade the job needs, in triage's category values (`heating`, `electrical`, ...).
    pub category: String,
    pub urgency: Urgency,
    pub audience: Audience,
    /// One sentence for a human, such as `bearing temperature rising; limit 90 degC expected
    /// 2026-12-09T10:00:00Z`.
    pub summary: String,
    /// Set on forecast requests.
    pub forecast: Option<ForecastWindow>,
    /// The evidence: detector, scores, thresholds, contributing sensors and their values.
    pub explanation: serde_json::Value,
    pub state: RequestState,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
}

impl MaintenanceRequest {
    /// Reads a row of the `requests` table selected as
    /// `SELECT request_id, alarm_key, source, asset, fault_kind, severity, category, urgency,
    /// audience, summary, forecast_ms, forecast_uncertainty_ms, explanation, state, opened_ms,
    /// closed_ms FROM requests`. Unknown enum values and malformed JSON become a conversion
    /// error naming the column.
    pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        fn invalid(column: usize, name: &str, value: &str) -> rusqlite::Error {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                format!("invalid {name} {value:?} in the requests table").into(),
            )
        }
        let source: String = row.get(2)?;
        let severity: String = row.get(5)?;
        let urgency: String = row.get(7)?;
        let audience: String = row.get(8)?;
        let explanation: String = row.get(12)?;
        let state: String = row.get(13)?;
        let forecast_ms: Option<i64> = row.get(10)?;
        let uncertainty_ms: Option<i64> = row.get(11)?;
        let explanation: serde_json::Value = serde_json::from_str(&explanation)
            .map_err(|_| invalid(12, "explanation", &explanation))?;
        let sensors = explanation
            .get("sensors")
            .and_then(|list| list.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|sensor| sensor.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(MaintenanceRequest {
            request_id: row.get(0)?,
            alarm_key: row.get(1)?,
            source: RequestSource::parse(&source).ok_or_else(|| invalid(2, "source", &source))?,
            asset: row.get(3)?,
            sensors,
            fault_kind: row.get(4)?,
            severity: Severity::parse(&severity)
                .ok_or_else(|| invalid(5, "severity", &severity))?,
            category: row.get(6)?,
            urgency: Urgency::parse(&urgency).ok_or_else(|| invalid(7, "urgency", &urgency))?,
            audience: Audience::parse(&audience)
                .ok_or_else(|| invalid(8, "audience", &audience))?,
            summary: row.get(9)?,
            forecast: forecast_ms.map(|crossing_ms| ForecastWindow {
                crossing_ms,
                uncertainty_ms: uncertainty_ms.unwrap_or(0),
            }),
            explanation,
            state: match state.as_str() {
                "open" => RequestState::Open,
                "closed" => RequestState::Closed,
                _ => return Err(invalid(13, "state", &state)),
            },
            opened_ms: row.get(14)?,
            closed_ms: row.get(15)?,
        })
    }
}

/// The column list that [`MaintenanceRequest::from_row`] expects, in order.
pub const REQUEST_COLUMNS: &str = "request_id, alarm_key, source, asset, fault_kind, severity, \
     category, urgency, audience, summary, forecast_ms, forecast_uncertainty_ms, explanation, \
     state, opened_ms, closed_ms";

/// Maps a device map's `asset_kind` to the trade that works on it, in triage's category
/// values. Kinds this table does not name get `other`, which triage routes to a human.
pub fn category_for_asset_kind(asset_kind: &str) -> &'static str {
    match asset_kind.trim().to_ascii_lowercase().as_str() {
        "pump" | "substation" | "boiler" | "heat_pump" | "heat-pump" | "radiator" | "heating"
        | "heat_meter" | "heat-meter" => "heating",
        "meter" | "energy_meter" | "energy-meter" | "switchboard" | "inverter" | "lighting" => {
            "electrical"
        }
        "ahu" | "fan" | "ventilation" | "air_handling_unit" | "air-handling-unit" => "ventilation",
        "water_meter" | "water-meter" | "tank" | "valve" | "plumbing" => "plumbing",
        "elevator" | "lift" => "elevator",
        "smoke_detector" | "fire_panel" | "fire-panel" => "fire_safety",
        _ => "other",
    }
}

/// Derives urgency from the severity and, for forecasts, from how far away the predicted
/// crossing is: under a day is urgent, because a vendor needs about that long to come.
pub fn urgency_for(severity: Severity, time_to_limit_ms: Option<i64>) -> Urgency {
    const DAY_MS: i64 = 86_400_000;
    let by_severity = match severity {
        Severity::Critical => Urgency::Urgent,
        Severity::Warning | Severity::Info => Urgency::Routine,
    };
    let by_horizon = match time_to_limit_ms {
        Some(ms) if ms <= DAY_MS => Urgency::Urgent,
        _ => Urgency::Routine,
    };
    by_severity.max(by_horizon)
}

/// Chooses the audience: tenants hear of critical faults in the trades they feel at once,
/// and everything else goes to the operator only.
pub fn audience_for(source: RequestSource, severity: Severity, category: &str) -> Audience {
    let felt_by_tenants = matches!(category, "heating" | "plumbing" | "electrical" | "elevator");
    if source != RequestSource::Health && severity == Severity::Critical && felt_by_tenants {
        Audience::Tenants
    } else {
        Audience::Operator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_follows_asset_kind() {
        assert_eq!(category_for_asset_kind("pump"), "heating");
        assert_eq!(category_for_asset_kind("substation"), "heating");
        assert_eq!(category_for_asset_kind("meter"), "electrical");
        assert_eq!(category_for_asset_kind("Elevator"), "elevator");
        assert_eq!(category_for_asset_kind("teapot"), "other");
    }

    #[test]
    fn urgency_rises_with_severity_and_near_forecast() {
        assert_eq!(urgency_for(Severity::Warning, None), Urgency::Routine);
        assert_eq!(urgency_for(Severity::Critical, None), Urgency::Urgent);
        assert_eq!(
            urgency_for(Severity::Warning, Some(3_600_000)),
            Urgency::Urgent
        );
        assert_eq!(
            urgency_for(Severity::Warning, Some(7 * 86_400_000)),
            Urgency::Routine
        );
    }

    #[test]
    fn audience_is_tenants_only_for_critical_plant_faults() {
        let tenants = audience_for(RequestSource::Detector, Severity::Critical, "heating");
        assert_eq!(tenants, Audience::Tenants);
        let health = audience_for(RequestSource::Health, Severity::Critical, "heating");
        assert_eq!(health, Audience::Operator);
        let warning = audience_for(RequestSource::Forecast, Severity::Warning, "heating");
        assert_eq!(warning, Audience::Operator);
    }
}
