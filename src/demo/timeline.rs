//! The demo's timeline: follows the gateway's store on a read-only connection and turns new
//! rows into readable lines and stage counts.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Simulated time of what happened, in milliseconds since the epoch.
    pub ts_ms: i64,
    /// The stage, such as `anomaly` or `ticket`.
    pub stage: &'static str,
    pub text: String,
}

/// Counts per stage of the pipeline.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub readings_modbus: u64,
    pub readings_mqtt: u64,
    pub readings_quarantined: u64,
    pub anomalies: u64,
    pub maintenance_requests: u64,
    pub tenant_messages: u64,
    pub tenant_messages_triaged: u64,
    pub tickets: u64,
    pub merged_incidents: u64,
    pub vendor_bookings: u64,
    pub tenant_updates: u64,
    /// Updates and pages for the operator rather than a tenant.
    pub operator_updates: u64,
    pub escalations: u64,
    /// Events the outbox has numbered so far.
    pub outbox_events: u64,
    pub events_synced: u64,
    pub events_rejected: u64,
}

/// Follows one gateway store.
pub struct Watcher {
    conn: Connection,
    counts: Counts,
    reading_cursor: i64,
    anomaly_cursor: i64,
    request_cursor: i64,
    update_cursor: i64,
    escalation_cursor: i64,
    messages_seen: HashSet<String>,
    messages_triaged: HashSet<String>,
    history_seen: HashSet<(String, i64)>,
    sources_seen: HashSet<(String, String)>,
    has_dispatch: bool,
    /// Simulated hour of the last readings line.
    readings_hour: Option<i64>,
}

const HOUR_MS: i64 = 3_600_000;

impl Watcher {
    /// Opens the store at `path` read-only. The gateway must have created it.
    pub fn open(path: &Path) -> rusqlite::Result<Watcher> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Watcher {
            conn,
            counts: Counts::default(),
            reading_cursor: 0,
            anomaly_cursor: 0,
            request_cursor: 0,
            update_cursor: 0,
            escalation_cursor: 0,
            messages_seen: HashSet::new(),
            messages_triaged: HashSet::new(),
            history_seen: HashSet::new(),
            sources_seen: HashSet::new(),
            has_dispatch: false,
            readings_hour: None,
        })
    }

    /// Returns whether the store has dispatch's tables, so that tickets are expected.
    pub fn has_dispatch(&self) -> bool {
        self.has_dispatch
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Reads what is new since the last call and returns its timeline lines, oldest first.
    /// `now_ms` is the simulated time, for the lines about readings.
    pub fn poll(&mut self, now_ms: i64) -> rusqlite::Result<Vec<Line>> {
        let mut lines = Vec::new();
        self.poll_readings(now_ms, &mut lines)?;
        self.poll_anomalies(&mut lines)?;
        self.poll_messages(&mut lines)?;
        self.poll_dispatch(&mut lines)?;
        self.poll_sync()?;
        lines.sort_by_key(|line| line.ts_ms);
        Ok(lines)
    }

    fn poll_readings(&mut self, now_ms: i64, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT s.source, count(*), max(r.id) FROM readings r JOIN sensors s ON s.id = r.sensor
             WHERE r.id > ?1 GROUP BY s.source",
        )?;
        let rows = statement.query_map([self.reading_cursor], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let before = (self.counts.readings_modbus, self.counts.readings_mqtt);
        let mut cursor = self.reading_cursor;
        for row in rows {
            let (source, count, max_id) = row?;
            cursor = cursor.max(max_id);
            match source.as_str() {
                "modbus" => self.counts.readings_modbus += count as u64,
                "mqtt" => self.counts.readings_mqtt += count as u64,
                _ => {}
            }
        }
        drop(statement);
        self.reading_cursor = cursor;
        self.counts.readings_quarantined =
            self.conn
                .query_row("SELECT count(*) FROM quarantine", [], |row| {
                    row.get::<_, i64>(0)
                })? as u64;

        let first = before == (0, 0) && self.reading_cursor > 0;
        let hour = now_ms.div_euclid(HOUR_MS);
        if first || (self.reading_cursor > 0 && self.readings_hour.is_some_and(|h| h < hour)) {
            lines.push(Line {
                ts_ms: now_ms,
                stage: "readings",
                text: format!(
                    "{} stored from Modbus, {} from MQTT, {} quarantined",
                    self.counts.readings_modbus,
                    self.counts.readings_mqtt,
                    self.counts.readings_quarantined
                ),
            });
        }
        if self.reading_cursor > 0 {
            self.readings_hour = Some(hour);
        }
        Ok(())
    }

    fn poll_anomalies(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT e.id, e.asset, e.detector, e.fault_kind, e.score, e.threshold, e.opened_ms,
                    (SELECT r.summary FROM requests r WHERE r.event = e.id)
             FROM anomaly_events e WHERE e.id > ?1 ORDER BY e.id",
        )?;
        let rows = statement.query_map([self.anomaly_cursor], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, f64>(4)?,
                row.get::<_, f64>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, Option<String>>(7)?,
            ))
        })?;
        for row in rows {
            let (id, asset, detector, kind, score, threshold, opened_ms, summary) = row?;
            self.anomaly_cursor = id;
            self.counts.anomalies += 1;
            let explanation = summary.unwrap_or_else(|| kind.replace('_', " "));
            lines.push(Line {
                ts_ms: opened_ms,
                stage: "anomaly",
                text: format!(
                    "{asset}: {explanation} ({detector} detector, score {score:.2} against \
                     threshold {threshold:.2})"
                ),
            });
        }
        drop(statement);

        let mut statement = self.conn.prepare_cached(
            "SELECT id, source, summary, urgency, category, audience, opened_ms FROM requests
             WHERE id > ?1 AND event IS NULL ORDER BY id",
        )?;
        let rows = statement.query_map([self.request_cursor], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        for row in rows {
            let (id, source, summary, urgency, category, audience, opened_ms) = row?;
            self.request_cursor = self.request_cursor.max(id);
            lines.push(Line {
                ts_ms: opened_ms,
                stage: "request",
                text: format!("{summary} ({source}, {urgency} {category} job for the {audience})"),
            });
        }
        drop(statement);
        self.counts.maintenance_requests =
            self.conn
                .query_row("SELECT count(*) FROM requests", [], |row| {
                    row.get::<_, i64>(0)
                })? as u64;
        Ok(())
    }

    fn poll_messages(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, received_ts_ms, transport, unit, text, state, language, intent, category,
                    urgency, needs_human, triaged_ts_ms
             FROM messages ORDER BY received_ts_ms",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(MessageRow {
                id: row.get(0)?,
                received_ms: row.get(1)?,
                transport: row.get(2)?,
                unit: row.get(3)?,
                text: row.get(4)?,
                triaged: row.get::<_, String>(5)? == "triaged",
                language: row.get(6)?,
                intent: row.get(7)?,
                category: row.get(8)?,
                urgency: row.get(9)?,
                needs_human: row.get::<_, Option<i64>>(10)?.unwrap_or(0) != 0,
                triaged_ms: row.get(11)?,
            })
        })?;
        for row in rows {
            let message = row?;
            if self.messages_seen.insert(message.id.clone()) {
                self.counts.tenant_messages += 1;
                lines.push(Line {
                    ts_ms: message.received_ms,
                    stage: "message",
                    text: format!(
                        "unit {} over {}: \"{}\"",
                        message.unit.as_deref().unwrap_or("?"),
                        message.transport,
                        message.text
                    ),
                });
            }
            if message.triaged && self.messages_triaged.insert(message.id.clone()) {
                self.counts.tenant_messages_triaged += 1;
                let handover = if message.needs_human {
                    ", handed to a human"
                } else {
                    ""
                };
                lines.push(Line {
                    ts_ms: message.triaged_ms.unwrap_or(message.received_ms),
                    stage: "triage",
                    text: format!(
                        "unit {}: {} {}, {} {}{handover}",
                        message.unit.as_deref().unwrap_or("?"),
                        message.language.as_deref().unwrap_or("?"),
                        message.intent.as_deref().unwrap_or("?"),
                        message.urgency.as_deref().unwrap_or("?"),
                        message.category.as_deref().unwrap_or("?"),
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reads dispatch's tables: ticket history, merged sources, tenant updates and
    /// escalations. Does nothing in a store without them.
    fn poll_dispatch(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        if !self.dispatch_tables()? {
            return Ok(());
        }
        self.poll_history(lines)?;
        self.poll_sources(lines)?;
        self.poll_updates(lines)?;
        self.poll_escalations(lines)
    }

    fn dispatch_tables(&mut self) -> rusqlite::Result<bool> {
        if !self.has_dispatch {
            self.has_dispatch = self.conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tickets'",
                [],
                |row| row.get::<_, i64>(0),
            )? > 0;
        }
        Ok(self.has_dispatch)
    }

    fn poll_history(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT h.ticket, h.seq, h.ts_ms, h.from_state, h.to_state, h.actor, h.reason,
                    t.category, t.urgency, t.summary, t.vendor, t.slot_start_ms
             FROM ticket_history h JOIN tickets t ON t.id = h.ticket
             ORDER BY h.ts_ms, h.ticket, h.seq",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(HistoryRow {
                ticket: row.get(0)?,
                seq: row.get(1)?,
                ts_ms: row.get(2)?,
                from: row.get(3)?,
                to: row.get(4)?,
                actor: row.get(5)?,
                reason: row.get(6)?,
                category: row.get(7)?,
                urgency: row.get(8)?,
                summary: row.get(9)?,
                vendor: row.get(10)?,
                slot_start_ms: row.get(11)?,
            })
        })?;
        for row in rows {
            let row = row?;
            if !self.history_seen.insert((row.ticket.clone(), row.seq)) {
                continue;
            }
            if row.seq == 1 {
                self.counts.tickets += 1;
                lines.push(Line {
                    ts_ms: row.ts_ms,
                    stage: "ticket",
                    text: format!(
                        "{} opened: {} {} job, {}",
                        row.ticket, row.urgency, row.category, row.summary
                    ),
                });
                continue;
            }
            if row.to == "scheduled" {
                self.counts.vendor_bookings += 1;
                let slot = row
                    .slot_start_ms
                    .map(crate::time::format_ms)
                    .unwrap_or_else(|| "no slot".to_string());
                lines.push(Line {
                    ts_ms: row.ts_ms,
                    stage: "booking",
                    text: format!(
                        "{} booked with {}, slot from {slot}",
                        row.ticket,
                        row.vendor.as_deref().unwrap_or("?")
                    ),
                });
                continue;
            }
            lines.push(Line {
                ts_ms: row.ts_ms,
                stage: "ticket",
                text: format!(
                    "{} {} -> {} by {}: {}",
                    row.ticket,
                    row.from.as_deref().unwrap_or("-"),
                    row.to,
                    row.actor,
                    row.reason
                ),
            });
        }
        Ok(())
    }

    /// Counts sources that joined a ticket someone else opened: merged incidents.
    fn poll_sources(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT kind, source_id, ticket, unit, asset, ts_ms FROM ticket_sources
             WHERE outcome = 'merged' ORDER BY ts_ms",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        for row in rows {
            let (kind, id, ticket, unit, asset, ts_ms) = row?;
            if !self.sources_seen.insert((kind.clone(), id)) {
                continue;
            }
            self.counts.merged_incidents += 1;
            let origin = match (kind.as_str(), unit, asset) {
                ("message", Some(unit), _) => format!("message from unit {unit}"),
                (_, _, Some(asset)) => format!("{kind} on {asset}"),
                _ => kind,
            };
            lines.push(Line {
                ts_ms,
                stage: "merged",
                text: format!(
                    "{origin} joined {}",
                    ticket.as_deref().unwrap_or("a ticket")
                ),
            });
        }
        Ok(())
    }

    fn poll_updates(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, ticket, unit, audience, language, template, text, created_ms
             FROM tenant_updates WHERE id > ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([self.update_cursor], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, i64>(7)?,
            ))
        })?;
        for row in rows {
            let (id, ticket, unit, audience, language, template, text, ts_ms) = row?;
            self.update_cursor = id;
            let (stage, to) = if audience == "tenant" {
                self.counts.tenant_updates += 1;
                (
                    "tenant update",
                    format!("unit {}", unit.as_deref().unwrap_or("?")),
                )
            } else {
                self.counts.operator_updates += 1;
                ("operator", "the operator".to_string())
            };
            lines.push(Line {
                ts_ms,
                stage,
                text: format!("{ticket} to {to} ({language}, {template}): \"{text}\""),
            });
        }
        Ok(())
    }

    fn poll_escalations(&mut self, lines: &mut Vec<Line>) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, ticket, rule, reason, contact, opened_ms FROM escalations
             WHERE id > ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([self.escalation_cursor], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        for row in rows {
            let (id, ticket, rule, reason, contact, ts_ms) = row?;
            self.escalation_cursor = id;
            self.counts.escalations += 1;
            let paged = contact
                .map(|contact| format!(", paged {contact}"))
                .unwrap_or_default();
            lines.push(Line {
                ts_ms,
                stage: "escalation",
                text: format!("{ticket} by rule {rule}: {reason}{paged}"),
            });
        }
        Ok(())
    }

    /// Counts the events the central office took: every event the outbox ever numbered,
    /// less those still queued and those the office rejected for good. The sync task deletes
    /// an event from the outbox once the office acknowledged it.
    fn poll_sync(&mut self) -> rusqlite::Result<()> {
        let numbered: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'",
                [],
                |row| row.get(0),
            )
            .unwrap_or(0);
        let queued: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))?;
        let rejected: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sync_rejected", [], |row| row.get(0))
            .unwrap_or(0);
        self.counts.outbox_events = numbered.max(0) as u64;
        self.counts.events_synced = (numbered - queued - rejected).max(0) as u64;
        self.counts.events_rejected = rejected.max(0) as u64;
        Ok(())
    }
}

struct HistoryRow {
    ticket: String,
    seq: i64,
    ts_ms: i64,
    from: Option<String>,
    to: String,
    actor: String,
    reason: String,
    category: String,
    urgency: String,
    summary: String,
    vendor: Option<String>,
    slot_start_ms: Option<i64>,
}

struct MessageRow {
    id: String,
    received_ms: i64,
    transport: String,
    unit: Option<String>,
    text: String,
    triaged: bool,
    language: Option<String>,
    intent: Option<String>,
    category: Option<String>,
    urgency: Option<String>,
    needs_human: bool,
    triaged_ms: Option<i64>,
}
