//! CSV exports of tickets and of readings summaries.

use crate::central::store::TicketRow;

use super::view::{format_time, next_due, ReadingSummary};

/// Writes tickets as CSV, one row per ticket with its SLA due times in RFC 3339 UTC. The
/// `unit` column is empty unless `personal_data` is set.
pub(crate) fn tickets_csv(tickets: &[TicketRow], personal_data: bool) -> csv::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "id",
        "building",
        "gateway",
        "state",
        "urgency",
        "category",
        "needs_human",
        "escalation_reason",
        "unit",
        "asset",
        "summary",
        "vendor",
        "slot_start",
        "slot_end",
        "next_due",
        "next_due_at",
        "opened",
        "updated",
    ])?;
    for ticket in tickets {
        let due = next_due(ticket);
        let unit = if personal_data {
            ticket.unit.clone().unwrap_or_default()
        } else {
            String::new()
        };
        writer.write_record([
            ticket.id.as_str(),
            &ticket.building,
            &ticket.gateway,
            &ticket.state,
            &ticket.urgency,
            &ticket.category,
            if ticket.needs_human { "true" } else { "false" },
            ticket.escalation_reason.as_deref().unwrap_or(""),
            &unit,
            ticket.asset.as_deref().unwrap_or(""),
            &neutralize_formula(&ticket.summary),
            ticket.vendor.as_deref().unwrap_or(""),
            &optional_time(ticket.slot_start_ms),
            &optional_time(ticket.slot_end_ms),
            due.map_or("", |d| d.what),
            &optional_time(due.map(|d| d.at_ms)),
            &rfc3339(ticket.opened_ms),
            &rfc3339(ticket.updated_ms),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

/// Writes readings summaries as CSV: one row per sensor and period.
pub(crate) fn readings_csv(rows: &[ReadingSummary]) -> csv::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "building",
        "gateway",
        "sensor",
        "period_start",
        "count",
        "min",
        "max",
        "mean",
    ])?;
    let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    for row in rows {
        writer.write_record([
            row.building.as_str(),
            &row.gateway,
            &neutralize_formula(&row.sensor),
            &rfc3339(row.bucket_ms),
            &number(row.count),
            &number(row.min),
            &number(row.max),
            &number(row.mean),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format_time(ms))
}

fn optional_time(ms: Option<i64>) -> String {
    ms.map(rfc3339).unwrap_or_default()
}

/// Prefixes a cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return) with a `'`, because summaries and sensor names come from
/// gateways and tenants.
fn neutralize_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::ticket;
    use super::*;

    fn parse(bytes: &[u8]) -> Vec<csv::StringRecord> {
        csv::Reader::from_reader(bytes)
            .records()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn tickets_export_round_trips() {
        let mut row = ticket("B1-000001", "new", "urgent");
        row.summary = "leak, \"big\"\nunder sink".into();
        row.ack_due_ms = Some(0);
        let bytes = tickets_csv(&[row], true).unwrap();
        let records = parse(&bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(&records[0][0], "B1-000001");
        assert_eq!(&records[0][8], "3B");
        assert_eq!(&records[0][10], "leak, \"big\"\nunder sink");
        assert_eq!(&records[0][14], "acknowledge");
        assert_eq!(&records[0][15], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn unit_hidden_without_personal_data() {
        let bytes = tickets_csv(&[ticket("B1-000001", "new", "urgent")], false).unwrap();
        assert_eq!(&parse(&bytes)[0][8], "");
    }

    #[test]
    fn formula_cells_neutralized() {
        let mut row = ticket("B1-000001", "new", "urgent");
        row.summary = "=HYPERLINK(\"http://x\")".into();
        let bytes = tickets_csv(&[row], true).unwrap();
        assert_eq!(&parse(&bytes)[0][10], "'=HYPERLINK(\"http://x\")");
    }

    #[test]
    fn readings_export_rows() {
        let rows = vec![ReadingSummary {
            building: "north".into(),
            gateway: "B1".into(),
            sensor: "temp".into(),
            bucket_ms: 3_600_000,
            count: Some(60.0),
            min: Some(20.5),
            max: None,
            mean: Some(21.0),
        }];
        let records = parse(&readings_csv(&rows).unwrap());
        assert_eq!(&records[0][3], "1970-01-01T01:00:00Z");
        assert_eq!(&records[0][4], "60");
        assert_eq!(&records[0][6], "");
        assert_eq!(&records[0][7], "21");
    }
}
