//! Telemetry events: per-sensor summaries of each completed hour of readings, taken from
//! the hourly rollups, so that the office can export readings summaries.

use rusqlite::{params, Transaction};

use super::outbox::{read_cursor, write_cursor};
use crate::protocol::EventKind;

/// The `meta` key of the start of the last hour summarized, in ms since the epoch.
pub const TELEMETRY_CURSOR_KEY: &str = "sync_telemetry_hour_ms";

const HOUR_MS: i64 = 3_600_000;

/// Hours summarized on the first pass, when no hour has been summarized yet.
const FIRST_PASS_HOURS: i64 = 24;

/// Maximum sensors in one telemetry event, which keeps an event far below a request limit.
const MAX_SENSORS_PER_EVENT: usize = 200;

/// Enqueues telemetry events for every completed hour after the last one summarized, one
/// event per hour (more when it has over 200 sensors), and moves the cursor past them in
/// the same transaction. Returns the number of events enqueued.
///
/// NOTE: a rollup that changes after its hour was summarized (a reading that arrives more
/// than an hour late) is not sent again.
pub fn enqueue_summaries(tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<usize> {
    let current_hour = now_ms - now_ms.rem_euclid(HOUR_MS);
    let last_done = match read_cursor(tx, TELEMETRY_CURSOR_KEY)? {
        Some(hour) => hour,
        None => current_hour - (FIRST_PASS_HOURS + 1) * HOUR_MS,
    };
    if last_done >= current_hour - HOUR_MS {
        return Ok(0);
    }
    let mut statement = tx.prepare_cached(
        "SELECT r.bucket_ms, s.sensor_id, s.asset, s.metric, s.unit, r.min, r.max, r.sum, r.count
         FROM rollup_hour r JOIN sensors s ON s.id = r.sensor
         WHERE r.bucket_ms > ?1 AND r.bucket_ms < ?2
         ORDER BY r.bucket_ms, s.sensor_id",
    )?;
    let rows = statement.query_map(params![last_done, current_hour], |row| {
        let count: i64 = row.get(8)?;
        let sum: f64 = row.get(7)?;
        Ok((
            row.get::<_, i64>(0)?,
            serde_json::json!({
                "sensor": row.get::<_, String>(1)?,
                "asset": row.get::<_, String>(2)?,
                "metric": row.get::<_, String>(3)?,
                "unit": row.get::<_, String>(4)?,
                "min": row.get::<_, f64>(5)?,
                "max": row.get::<_, f64>(6)?,
                "mean": if count > 0 { sum / count as f64 } else { 0.0 },
                "count": count,
            }),
        ))
    })?;
    let mut hours: Vec<(i64, Vec<serde_json::Value>)> = Vec::new();
    for row in rows {
        let (hour, summary) = row?;
        match hours.last_mut() {
            Some((last, sensors)) if *last == hour && sensors.len() < MAX_SENSORS_PER_EVENT => {
                sensors.push(summary)
            }
            _ => hours.push((hour, vec![summary])),
        }
    }
    drop(statement);
    for (hour, sensors) in &hours {
        let payload = serde_json::json!({
            "hour_start_ms": hour,
            "hour_end_ms": hour + HOUR_MS,
            "sensors": sensors,
        });
        crate::store::outbox::enqueue(tx, EventKind::Telemetry, None, now_ms, &payload)?;
    }
    write_cursor(tx, TELEMETRY_CURSOR_KEY, current_hour - HOUR_MS)?;
    Ok(hours.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn store_with_rollups(buckets: &[i64]) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO sensors (id, sensor_id, asset, metric, unit, source)
             VALUES (1, 'pump-1.temp', 'pump-1', 'temp', 'C', 'mqtt')",
            [],
        )
        .unwrap();
        for bucket in buckets {
            conn.execute(
                "INSERT INTO rollup_hour (sensor, bucket_ms, min, max, sum, count)
                 VALUES (1, ?1, 1.0, 3.0, 8.0, 4)",
                [bucket],
            )
            .unwrap();
        }
        conn
    }

    fn telemetry_payloads(conn: &Connection) -> Vec<serde_json::Value> {
        conn.prepare("SELECT payload FROM outbox WHERE kind = 'telemetry' ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|text| serde_json::from_str(&text.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn completed_hours_are_summarized_once() {
        let now = 100 * HOUR_MS + 1_000;
        let mut conn = store_with_rollups(&[98 * HOUR_MS, 99 * HOUR_MS, 100 * HOUR_MS]);
        let tx = conn.transaction().unwrap();
        assert_eq!(enqueue_summaries(&tx, now).unwrap(), 2);
        assert_eq!(enqueue_summaries(&tx, now).unwrap(), 0);
        tx.commit().unwrap();
        let payloads = telemetry_payloads(&conn);
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0]["hour_start_ms"], 98 * HOUR_MS);
        assert_eq!(payloads[1]["sensors"][0]["sensor"], "pump-1.temp");
        assert_eq!(payloads[1]["sensors"][0]["mean"], 2.0);
        assert_eq!(payloads[1]["sensors"][0]["count"], 4);
    }

    #[test]
    fn next_hour_is_summarized_when_complete() {
        let mut conn = store_with_rollups(&[99 * HOUR_MS, 100 * HOUR_MS]);
        let tx = conn.transaction().unwrap();
        assert_eq!(enqueue_summaries(&tx, 100 * HOUR_MS + 5).unwrap(), 1);
        assert_eq!(enqueue_summaries(&tx, 101 * HOUR_MS + 5).unwrap(), 1);
        tx.commit().unwrap();
        let payloads = telemetry_payloads(&conn);
        assert_eq!(payloads[1]["hour_start_ms"], 100 * HOUR_MS);
    }
}
