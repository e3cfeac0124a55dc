//! View data of the pages, built from store rows by pure functions: ticket order, SLA
//! countdowns, times, and the sensor series and reading summaries found in gateway payloads.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::central::store::TicketRow;

/// States in which a ticket needs no more work.
const FINISHED_STATES: [&str; 3] = ["resolved", "closed", "cancelled"];

/// Urgencies from the most to the least pressing.
pub(crate) const URGENCIES: [&str; 4] = ["emergency", "urgent", "normal", "low"];

/// Ticket states, in the order a ticket usually passes them.
pub(crate) const STATES: [&str; 9] = [
    "new",
    "triaged",
    "escalated",
    "dispatched",
    "scheduled",
    "in_progress",
    "resolved",
    "closed",
    "cancelled",
];

pub(crate) fn is_finished(state: &str) -> bool {
    FINISHED_STATES.contains(&state)
}

/// Returns whether a ticket belongs in the escalation queue, because it waits for a human
/// and is not finished.
pub(crate) fn in_escalation_queue(ticket: &TicketRow) -> bool {
    ticket.is_escalated() && !is_finished(&ticket.state)
}

fn urgency_rank(urgency: &str) -> usize {
    URGENCIES
        .iter()
        .position(|u| *u == urgency)
        .unwrap_or(URGENCIES.len())
}

/// Sorts tickets for the list: the escalation queue first, then open before finished, then by
/// urgency, then by the nearest SLA due time, then by id.
pub(crate) fn sort_tickets(tickets: &mut [TicketRow]) {
    tickets.sort_by(|a, b| {
        let key = |t: &TicketRow| {
            (
                !in_escalation_queue(t),
                is_finished(&t.state),
                urgency_rank(&t.urgency),
                next_due(t).map_or(i64::MAX, |due| due.at_ms),
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
}

/// The SLA deadline that a ticket works towards in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// `acknowledge`, `on site` or `resolve`.
    pub what: &'static str,
    pub at_ms: i64,
}

/// Returns the next SLA deadline of a ticket: acknowledgement until it is dispatched, the
/// vendor on site until work starts, then resolution. A finished ticket has none.
pub(crate) fn next_due(ticket: &TicketRow) -> Option<Due> {
    let ack = ticket.ack_due_ms.map(|at_ms| Due {
        what: "acknowledge",
        at_ms,
    });
    let onsite = ticket.onsite_due_ms.map(|at_ms| Due {
        what: "on site",
        at_ms,
    });
    let resolve = ticket.resolve_due_ms.map(|at_ms| Due {
        what: "resolve",
        at_ms,
    });
    match ticket.state.as_str() {
        "new" | "triaged" | "escalated" => ack.or(onsite).or(resolve),
        "dispatched" | "scheduled" => onsite.or(resolve),
        state if is_finished(state) => None,
        _ => resolve,
    }
}

/// Closeness of a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pressure {
    Overdue,
    /// Due within the hour.
    Soon,
    Later,
}

impl Pressure {
    pub fn css_class(self) -> &'static str {
        match self {
            Pressure::Overdue => "overdue",
            Pressure::Soon => "soon",
            Pressure::Later => "later",
        }
    }
}

/// Returns a countdown such as `acknowledge in 1 h 05 min` or `on site overdue by 12 min`.
pub(crate) fn countdown(due: Due, now_ms: i64) -> (String, Pressure) {
    let left_ms = due.at_ms - now_ms;
    if left_ms < 0 {
        let text = format!("{} overdue by {}", due.what, format_span(-left_ms));
        (text, Pressure::Overdue)
    } else {
        let pressure = if left_ms <= 3_600_000 {
            Pressure::Soon
        } else {
            Pressure::Later
        };
        (
            format!("{} in {}", due.what, format_span(left_ms)),
            pressure,
        )
    }
}

/// Formats a span of milliseconds in days, hours and minutes, rounded down to the minute.
pub(crate) fn format_span(ms: i64) -> String {
    let minutes = ms / 60_000;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {minutes:02} min")
    } else {
        format!("{minutes} min")
    }
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn format_time(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(time) => time.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => format!("{ms} ms"),
    }
}

/// Formats milliseconds since the Unix epoch for an `<input type="datetime-local">`, in UTC.
pub(crate) fn format_input_time(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(time) => time.format("%Y-%m-%dT%H:%M").to_string(),
        None => String::new(),
    }
}

/// Parses the value of an `<input type="datetime-local">` (`YYYY-MM-DDTHH:MM`, seconds
/// optional) as a UTC time in milliseconds since the Unix epoch.
pub(crate) fn parse_input_time(text: &str) -> Option<i64> {
    let text = text.trim();
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|time| time.and_utc().timestamp_millis())
}

/// One point of a sensor's series: a minute (or hour) rollup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SeriesPoint {
    pub ts_ms: i64,
    pub mean: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A sensor's readings around an anomaly.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub sensor: String,
    pub points: Vec<SeriesPoint>,
}

/// The parts of an anomaly summary that the building page shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnomalyView {
    pub asset: String,
    pub fault: String,
    pub detector: Option<String>,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    /// When the anomaly began, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub ticket: Option<String>,
    pub series: Vec<Series>,
}

/// Reads an anomaly summary as gateways send it: `asset`, `fault`, `detector`, `score`,
/// `threshold`, `opened_ms` and `sensors`, the sensors' minute rollups around the event.
/// `sensors` may be an object from sensor name to a list of rollups, or a list of objects
/// with a `sensor` (or `name`) and `points` (or `rollups`). A rollup has a time
/// (`bucket_ms`, `ts_ms` or `minute_ms`) and `mean`, `value` or `sum` with `count`, and may
/// have `min` and `max`. A field that is missing or of another type is left out, and the
/// event time falls back to `fallback_ms` (when the office received it).
pub(crate) fn anomaly_view(payload: &Value, fallback_ms: i64, ticket: Option<&str>) -> AnomalyView {
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_string);
    let number = |key: &str| payload.get(key).and_then(Value::as_f64);
    let at_ms = ["opened_ms", "ts_ms", "start_ms"]
        .iter()
        .find_map(|key| payload.get(*key).and_then(Value::as_i64))
        .unwrap_or(fallback_ms);
    AnomalyView {
        asset: text("asset").unwrap_or_else(|| "unknown asset".into()),
        fault: text("fault").unwrap_or_else(|| "unknown fault".into()),
        detector: text("detector"),
        score: number("score"),
        threshold: number("threshold"),
        at_ms,
        ticket: ticket.map(str::to_string).or_else(|| text("ticket")),
        series: sensor_series(payload.get("sensors")),
    }
}

fn sensor_series(sensors: Option<&Value>) -> Vec<Series> {
    let mut series = Vec::new();
    match sensors {
        Some(Value::Object(map)) => {
            for (name, points) in map {
                series.push(Series {
                    sensor: name.clone(),
                    points: series_points(points),
                });
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let name = ["sensor", "name", "id"]
                    .iter()
                    .find_map(|key| item.get(*key).and_then(Value::as_str));
                let points = ["points", "rollups", "series", "values"]
                    .iter()
                    .find_map(|key| item.get(*key));
                if let (Some(name), Some(points)) = (name, points) {
                    series.push(Series {
                        sensor: name.to_string(),
                        points: series_points(points),
                    });
                }
            }
        }
        _ => {}
    }
    series.retain(|s| !s.points.is_empty());
    series
}

fn series_points(points: &Value) -> Vec<SeriesPoint> {
    let mut out: Vec<SeriesPoint> = points
        .as_array()
        .map(|items| items.iter().filter_map(rollup_point).collect())
        .unwrap_or_default();
    out.sort_by_key(|point| point.ts_ms);
    out
}

fn rollup_point(item: &Value) -> Option<SeriesPoint> {
    let ts_ms = ["bucket_ms", "ts_ms", "minute_ms", "hour_ms"]
        .iter()
        .find_map(|key| item.get(*key).and_then(Value::as_i64))?;
    let number = |key: &str| {
        item.get(key)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
    };
    let mean = number("mean").or_else(|| number("value")).or_else(|| {
        let count = number("count").filter(|c| *c > 0.0)?;
        Some(number("sum")? / count)
    })?;
    Some(SeriesPoint {
        ts_ms,
        mean,
        min: number("min"),
        max: number("max"),
    })
}

/// One row of the readings summary export: one sensor over one period.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadingSummary {
    pub building: String,
    pub gateway: String,
    pub sensor: String,
    pub bucket_ms: i64,
    pub count: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

/// Flattens a telemetry payload into summary rows. The rollups are looked for in `rollups`,
/// `sensors` or `summaries`, or the payload itself when it is a list. Each rollup is an object
/// with `sensor` (or `name`), a time (`bucket_ms`, `hour_ms` or `ts_ms`), `count`, `min` and
/// `max`, and `mean` or `sum`. An object from sensor name to a list of rollups is read too.
pub(crate) fn reading_summaries(
    building: &str,
    gateway: &str,
    payload: &Value,
    fallback_ms: i64,
) -> Vec<ReadingSummary> {
    let list = ["rollups", "sensors", "summaries"]
        .iter()
        .find_map(|key| payload.get(*key))
        .unwrap_or(payload);
    let mut entries: Vec<(Option<String>, &Value)> = Vec::new();
    match list {
        Value::Array(items) => entries.extend(items.iter().map(|item| (None, item))),
        Value::Object(map) => {
            for (name, value) in map {
                match value {
                    Value::Array(items) => {
                        entries.extend(items.iter().map(|item| (Some(name.clone()), item)))
                    }
                    Value::Object(_) => entries.push((Some(name.clone()), value)),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    entries
        .into_iter()
        .filter_map(|(name, item)| {
            let sensor = name.or_else(|| {
                ["sensor", "name"]
                    .iter()
                    .find_map(|key| item.get(*key).and_then(Value::as_str))
                    .map(str::to_string)
            })?;
            let number = |key: &str| item.get(key).and_then(Value::as_f64);
            let bucket_ms = ["bucket_ms", "hour_ms", "ts_ms"]
                .iter()
                .find_map(|key| item.get(*key).and_then(Value::as_i64))
                .unwrap_or(fallback_ms);
            let count = number("count");
            let mean = number("mean").or_else(|| {
                let count = count.filter(|c| *c > 0.0)?;
                Some(number("sum")? / count)
            });
            Some(ReadingSummary {
                building: building.to_string(),
                gateway: gateway.to_string(),
                sensor,
                bucket_ms,
                count,
                min: number("min"),
                max: number("max"),
                mean,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn ticket(id: &str, state: &str, urgency: &str) -> TicketRow {
        TicketRow {
            id: id.into(),
            building: "north".into(),
            gateway: "B1".into(),
            state: state.into(),
            category: "plumbing".into(),
            urgency: urgency.into(),
            needs_human: false,
            escalation_reason: None,
            unit: Some("3B".into()),
            asset: None,
            summary: "tap drips".into(),
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            ack_due_ms: None,
            onsite_due_ms: None,
            resolve_due_ms: None,
            opened_ms: 0,
            updated_ms: 0,
            seq: 1,
        }
    }

    #[test]
    fn escalated_tickets_sort_first() {
        let mut human = ticket("B1-000003", "triaged", "low");
        human.needs_human = true;
        let mut tickets = vec![
            ticket("B1-000001", "dispatched", "emergency"),
            ticket("B1-000002", "escalated", "normal"),
            human,
            ticket("B1-000004", "closed", "emergency"),
        ];
        sort_tickets(&mut tickets);
        let order: Vec<&str> = tickets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(order, ["B1-000002", "B1-000003", "B1-000001", "B1-000004"]);
    }

    #[test]
    fn finished_escalation_leaves_queue() {
        let mut done = ticket("B1-000001", "closed", "normal");
        done.needs_human = true;
        assert!(!in_escalation_queue(&done));
        assert!(in_escalation_queue(&ticket(
            "B1-000002",
            "escalated",
            "low"
        )));
    }

    #[test]
    fn same_urgency_sorts_by_due_time() {
        let mut later = ticket("B1-000001", "new", "urgent");
        later.ack_due_ms = Some(5_000);
        let mut sooner = ticket("B1-000002", "new", "urgent");
        sooner.ack_due_ms = Some(1_000);
        let mut tickets = vec![later, sooner];
        sort_tickets(&mut tickets);
        assert_eq!(tickets[0].id, "B1-000002");
    }

    #[test]
    fn due_follows_state() {
        let mut t = ticket("B1-000001", "new", "urgent");
        t.ack_due_ms = Some(1);
        t.onsite_due_ms = Some(2);
        t.resolve_due_ms = Some(3);
        assert_eq!(next_due(&t).map(|d| d.at_ms), Some(1));
        t.state = "scheduled".into();
        assert_eq!(next_due(&t).map(|d| d.at_ms), Some(2));
        t.state = "in_progress".into();
        assert_eq!(next_due(&t).map(|d| d.at_ms), Some(3));
        t.state = "closed".into();
        assert_eq!(next_due(&t), None);
    }

    #[test]
    fn countdown_words() {
        let due = Due {
            what: "acknowledge",
            at_ms: 10 * 3_600_000,
        };
        let (text, pressure) = countdown(due, 10 * 3_600_000 - 65 * 60_000);
        assert_eq!(text, "acknowledge in 1 h 05 min");
        assert_eq!(pressure, Pressure::Later);
        let (text, pressure) = countdown(due, 10 * 3_600_000 - 30 * 60_000);
        assert_eq!(text, "acknowledge in 30 min");
        assert_eq!(pressure, Pressure::Soon);
        let (text, pressure) = countdown(due, 10 * 3_600_000 + 12 * 60_000);
        assert_eq!(text, "acknowledge overdue by 12 min");
        assert_eq!(pressure, Pressure::Overdue);
        assert_eq!(format_span(50 * 3_600_000), "2 d 2 h");
    }

    #[test]
    fn times_format_and_parse() {
        let ms = 1_764_892_800_000; // 2025-12-05 00:00 UTC
        assert_eq!(format_time(ms), "2025-12-05 00:00 UTC");
        assert_eq!(format_input_time(ms + 90 * 60_000), "2025-12-05T01:30");
        assert_eq!(parse_input_time("2025-12-05T01:30"), Some(ms + 90 * 60_000));
        assert_eq!(
            parse_input_time("2025-12-05T01:30:10"),
            Some(ms + 90 * 60_000 + 10_000)
        );
        assert_eq!(parse_input_time("tomorrow"), None);
    }

    #[test]
    fn anomaly_with_sensor_map() {
        let payload = json!({
            "asset": "pump-1", "fault": "bearing wear", "detector": "zscore",
            "score": 0.93, "threshold": 0.8, "opened_ms": 7_200_000,
            "sensors": {
                "vibration": [
                    {"bucket_ms": 7_260_000, "min": 1.0, "max": 3.0, "sum": 8.0, "count": 4},
                    {"bucket_ms": 7_200_000, "mean": 1.5}
                ],
                "empty": []
            }
        });
        let view = anomaly_view(&payload, 0, Some("B1-000009"));
        assert_eq!(view.asset, "pump-1");
        assert_eq!(view.at_ms, 7_200_000);
        assert_eq!(view.score, Some(0.93));
        assert_eq!(view.ticket.as_deref(), Some("B1-000009"));
        assert_eq!(view.series.len(), 1);
        let points = &view.series[0].points;
        assert_eq!(points[0].ts_ms, 7_200_000);
        assert_eq!(points[1].mean, 2.0);
        assert_eq!(points[1].max, Some(3.0));
    }

    #[test]
    fn anomaly_with_sensor_list_and_gaps() {
        let payload = json!({
            "sensors": [
                {"sensor": "flow", "rollups": [{"ts_ms": 5, "value": 1.0}, {"ts_ms": 6}]},
                {"points": [{"ts_ms": 5, "value": 1.0}]}
            ]
        });
        let view = anomaly_view(&payload, 42, None);
        assert_eq!(view.asset, "unknown asset");
        assert_eq!(view.at_ms, 42);
        assert_eq!(view.series.len(), 1);
        assert_eq!(view.series[0].sensor, "flow");
        assert_eq!(view.series[0].points.len(), 1);
    }

    #[test]
    fn telemetry_rollup_list() {
        let payload = json!({"rollups": [
            {"sensor": "temp", "bucket_ms": 3_600_000, "min": 1.0, "max": 5.0,
             "sum": 12.0, "count": 4},
            {"bucket_ms": 3_600_000}
        ]});
        let rows = reading_summaries("north", "B1", &payload, 0);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].sensor, "temp");
        assert_eq!(rows[0].mean, Some(3.0));
        assert_eq!(rows[0].count, Some(4.0));
    }

    #[test]
    fn telemetry_sensor_map() {
        let payload = json!({"sensors": {"temp": [{"hour_ms": 10, "mean": 2.5}]}});
        let rows = reading_summaries("north", "B1", &payload, 0);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].bucket_ms, 10);
        assert_eq!(rows[0].mean, Some(2.5));
        assert_eq!(rows[0].min, None);
    }
}
