//! Triage of a detector's maintenance request, so that a request from the readings leaves
//! triage with the same fields as a tenant's message and dispatch treats both alike.
//!
//! Nothing here is inferred from text, because the detector already chose the trade, the
//! urgency and the audience. This module maps them onto the label schema and records in the
//! explanation where each field came from.

use serde_json::{json, Value};

use super::Triage;
use crate::detect::request::{Audience, MaintenanceRequest, Severity, Urgency};

/// The trade categories of the label schema.
pub const CATEGORIES: &[&str] = &[
    "plumbing",
    "electrical",
    "heating",
    "ventilation",
    "appliance",
    "doors_locks",
    "windows",
    "elevator",
    "pest",
    "structural",
    "common_areas",
    "fire_safety",
    "gas",
    "other",
];

/// Turns a detector's request into a triage decision written in `language`, the language of
/// the building's operator (`da` or `en`).
///
/// The intent is `emergency` for an emergency and `maintenance_request` otherwise. A human
/// takes over every emergency, every request for the operator and every critical one. A
/// language or category outside the schema is replaced (by `da` and `other`), and the
/// explanation lists each replacement.
pub fn triage_request(request: &MaintenanceRequest, language: &str) -> Triage {
    let mut notes: Vec<String> = Vec::new();
    let language = match language.trim().to_ascii_lowercase().as_str() {
        "da" => "da",
        "en" => "en",
        other => {
            notes.push(format!(
                "operator language {other:?} is not da or en, so da is used"
            ));
            "da"
        }
    };
    let category = if CATEGORIES.contains(&request.category.as_str()) {
        request.category.clone()
    } else {
        notes.push(format!(
            "category {:?} of the request is not a triage category, so other is used",
            request.category
        ));
        "other".to_string()
    };
    let intent = match request.urgency {
        Urgency::Emergency => "emergency",
        Urgency::Urgent | Urgency::Routine => "maintenance_request",
    };

    let mut reasons: Vec<String> = Vec::new();
    if request.urgency == Urgency::Emergency {
        reasons.push("emergency: a human is alerted as well".into());
    }
    if request.audience == Audience::Operator {
        reasons.push("the request is for the operator".into());
    }
    if request.severity == Severity::Critical {
        reasons.push("the severity is critical".into());
    }

    let evidence = &request.explanation;
    let forecast = match request.forecast {
        Some(window) => json!({
            "crossing_ms": window.crossing_ms,
            "uncertainty_ms": window.uncertainty_ms,
        }),
        None => evidence.get("forecast").cloned().unwrap_or(Value::Null),
    };
    let mut explanation = json!({
        "source": request.source.as_str(),
        "request_id": request.request_id,
        "alarm_key": request.alarm_key,
        "asset": request.asset,
        "fault_kind": request.fault_kind,
        "detector": evidence.get("detector").cloned().unwrap_or(Value::Null),
        "score": evidence.get("score").cloned().unwrap_or(Value::Null),
        "threshold": evidence.get("threshold").cloned().unwrap_or(Value::Null),
        "forecast": forecast,
        "severity": request.severity.as_str(),
        "audience": request.audience.as_str(),
        "summary": request.summary,
        "rules": [
            {"rule": "intent from the request's urgency", "matched": request.urgency.as_str()},
            {"rule": "category from the request", "matched": request.category},
        ],
        "needs_human_because": reasons,
    });
    if !notes.is_empty() {
        explanation["replaced"] = json!(notes);
    }

    Triage {
        language: language.to_string(),
        intent: intent.to_string(),
        category: Some(category),
        urgency: request.urgency.as_str().to_string(),
        needs_human: !reasons.is_empty(),
        unit: None,
        pii: Vec::new(),
        confidence: 1.0,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::request::{ForecastWindow, RequestSource, RequestState};

    fn request(severity: Severity, urgency: Urgency, audience: Audience) -> MaintenanceRequest {
        MaintenanceRequest {
            request_id: "gw-1-pump-spike-1000".into(),
            alarm_key: "pump-spike".into(),
            source: RequestSource::Detector,
            asset: "heating-pump-1".into(),
            sensors: vec!["heating-pump-1/bearing_temp".into()],
            fault_kind: "spike".into(),
            severity,
            category: "heating".into(),
            urgency,
            audience,
            summary: "bearing temperature rising".into(),
            forecast: None,
            explanation: json!({"detector": "robust_z", "score": 0.93, "threshold": 0.8}),
            state: RequestState::Open,
            opened_ms: 1000,
            closed_ms: None,
        }
    }

    #[test]
    fn routine_request_for_tenants() {
        let r = request(Severity::Warning, Urgency::Routine, Audience::Tenants);
        let t = triage_request(&r, "da");
        assert_eq!(t.language, "da");
        assert_eq!(t.intent, "maintenance_request");
        assert_eq!(t.category.as_deref(), Some("heating"));
        assert_eq!(t.urgency, "routine");
        assert!(!t.needs_human);
        assert_eq!(t.unit, None);
        assert!(t.pii.is_empty());
        assert_eq!(t.confidence, 1.0);
        assert_eq!(t.explanation["detector"], "robust_z");
        assert_eq!(t.explanation["score"], 0.93);
        assert_eq!(t.explanation["threshold"], 0.8);
        assert_eq!(t.explanation["forecast"], Value::Null);
    }

    #[test]
    fn operator_and_critical_need_a_human() {
        let operator = request(Severity::Warning, Urgency::Routine, Audience::Operator);
        assert!(triage_request(&operator, "en").needs_human);
        let critical = request(Severity::Critical, Urgency::Urgent, Audience::Tenants);
        let t = triage_request(&critical, "en");
        assert!(t.needs_human);
        assert_eq!(t.urgency, "urgent");
        assert_eq!(t.intent, "maintenance_request");
    }

    #[test]
    fn emergency_urgency_makes_emergency_intent() {
        let r = request(Severity::Critical, Urgency::Emergency, Audience::Tenants);
        let t = triage_request(&r, "en");
        assert_eq!(t.intent, "emergency");
        assert_eq!(t.urgency, "emergency");
        assert!(t.needs_human);
    }

    #[test]
    fn forecast_window_in_explanation() {
        let mut r = request(Severity::Warning, Urgency::Urgent, Audience::Operator);
        r.forecast = Some(ForecastWindow {
            crossing_ms: 86_400_000,
            uncertainty_ms: 3_600_000,
        });
        let t = triage_request(&r, "da");
        assert_eq!(t.explanation["forecast"]["crossing_ms"], 86_400_000);
        assert_eq!(t.explanation["forecast"]["uncertainty_ms"], 3_600_000);
    }

    #[test]
    fn unknown_language_and_category_are_replaced() {
        let mut r = request(Severity::Info, Urgency::Routine, Audience::Tenants);
        r.category = "teapots".into();
        let t = triage_request(&r, "fr");
        assert_eq!(t.language, "da");
        assert_eq!(t.category.as_deref(), Some("other"));
        assert_eq!(t.explanation["replaced"].as_array().map(Vec::len), Some(2));
        assert_eq!(triage_request(&r, " EN ").language, "en");
    }
}
