//! Dispatch: tenant messages and detector requests become tickets that are merged into
//! incidents, handed to a vendor in a slot under the SLA, explained to tenants in their
//! language and escalated to a human by rule.
//!
//! [`Dispatcher::step`] does one pass inside one write transaction: new triaged messages, new
//! requests, SLA timers and retention. [`Dispatcher::apply_office_change`] applies what the
//! office or a vendor decided, through the same state machine. [`spawn`] runs passes on a
//! timer and publishes the queued updates over MQTT.
//!
//! Personal data stays out of the audit log and out of tickets: a ticket's summary is built
//! from triage's fields, never from the tenant's text, and audit rows name messages by id.
//! That is why `caretaker erase` can delete a tenant's texts, contacts and updates while the
//! audit chain stays intact. The unit stays on tickets and audit rows, because it names the
//! flat where the work is, not the person.

pub mod cli;
pub mod config;
pub mod hours;
pub mod merge;
mod office;
mod publish;
pub mod schedule;
mod sla;
pub mod state;
pub mod templates;
pub mod tickets;

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::{json, Value};

pub use config::DispatchConfig;
use merge::{Input, InputKind, OpenTicket};
pub use publish::spawn;
use schedule::{Slot, TenantAccess, VendorCalendar};
use state::TicketState;
use tickets::{Context, Ticket};

use crate::detect::request::{MaintenanceRequest, REQUEST_COLUMNS};

/// The `meta` key of the last request id dispatch has handled.
pub const REQUEST_CURSOR_KEY: &str = "dispatch_request_cursor";
/// Maximum inputs handled per pass, so that one pass keeps the writer busy only briefly.
const BATCH: i64 = 100;

/// Counts of one pass, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub messages: usize,
    pub requests: usize,
    pub tickets_opened: usize,
    pub merged: usize,
    pub escalated: usize,
}

/// The dispatch logic with its configuration. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    gateway: String,
    config: Arc<DispatchConfig>,
}

/// A triaged message as dispatch reads it.
struct MessageRow {
    id: String,
    sender: String,
    unit: Option<String>,
    language: Option<String>,
    intent: Option<String>,
    category: Option<String>,
    urgency: Option<String>,
    needs_human: bool,
    stated_unit: Option<String>,
    confidence: f64,
    explanation: Value,
    received_ms: i64,
    /// The tenant's own words, read only to find the fault kind and never stored elsewhere.
    text: String,
}

/// Triage's decision about one input, in the form tickets need.
struct Decision {
    category: String,
    fault: String,
    urgency: String,
    confidence: f64,
    needs_human: bool,
    /// The handover rule, when a human must take over.
    handover: Option<&'static str>,
    handover_reason: Option<String>,
    language: String,
    summary: String,
}

impl Dispatcher {
    pub fn new(gateway: impl Into<String>, config: Arc<DispatchConfig>) -> Dispatcher {
        Dispatcher {
            gateway: gateway.into(),
            config,
        }
    }

    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            gateway: &self.gateway,
            config: &self.config,
        }
    }

    /// Runs one pass: new messages, new requests, SLA timers and, once an hour, retention.
    pub fn step(&self, tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<StepReport> {
        let mut report = StepReport::default();
        for message in self.new_messages(tx)? {
            report.messages += 1;
            self.handle_message(tx, &message, now_ms, &mut report)?;
        }

        // Requests are followed by id, with the last one handled stored in `meta`.
        let cursor: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [REQUEST_CURSOR_KEY],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut statement = tx.prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS}, id, event FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?;
        let requests: Vec<(i64, Option<i64>, MaintenanceRequest)> = statement
            .query_map(params![cursor, BATCH], |row| {
                Ok((
                    row.get(16)?,
                    row.get(17)?,
                    MaintenanceRequest::from_row(row)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(statement);
        let mut last = cursor;
        for (id, event, request) in requests {
            report.requests += 1;
            self.handle_request(tx, id, event, &request, now_ms, &mut report)?;
            last = id;
        }
        if last != cursor {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![REQUEST_CURSOR_KEY, last],
            )?;
        }

        report.escalated += self.check_sla(tx, now_ms)?;
        self.retain(tx, now_ms)?;
        Ok(report)
    }

    /// Counts tickets that are neither closed nor cancelled.
    pub fn open_tickets(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
        conn.query_row(
            "SELECT count(*) FROM tickets WHERE state NOT IN ('closed', 'cancelled')",
            [],
            |row| row.get(0),
        )
    }

    fn new_messages(&self, tx: &Transaction<'_>) -> rusqlite::Result<Vec<MessageRow>> {
        let mut statement = tx.prepare_cached(
            "SELECT id, sender, unit, language, intent, category, urgency, needs_human,
                    stated_unit, confidence, explanation, received_ts_ms, text
             FROM messages m
             WHERE state = 'triaged' AND NOT EXISTS (
                 SELECT 1 FROM ticket_sources s WHERE s.kind = 'message' AND s.source_id = m.id)
             ORDER BY received_ts_ms, id LIMIT ?1",
        )?;
        let rows = statement.query_map([BATCH], |row| {
            let explanation: Option<String> = row.get(10)?;
            Ok(MessageRow {
                id: row.get(0)?,
                sender: row.get(1)?,
                unit: row.get(2)?,
                language: row.get(3)?,
                intent: row.get(4)?,
                category: row.get(5)?,
                urgency: row.get(6)?,
                needs_human: row.get::<_, Option<bool>>(7)?.unwrap_or(true),
                stated_unit: row.get(8)?,
                confidence: row.get::<_, Option<f64>>(9)?.unwrap_or(0.0),
                explanation: explanation
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(Value::Null),
                received_ms: row.get(11)?,
                text: row.get(12)?,
            })
        })?;
        rows.collect()
    }

    fn handle_message(
        &self,
        tx: &Transaction<'_>,
        message: &MessageRow,
        now_ms: i64,
        report: &mut StepReport,
    ) -> rusqlite::Result<()> {
        let known_unit: Option<String> = tx
            .prepare_cached("SELECT unit FROM tenant_contacts WHERE address = ?1 LIMIT 1")?
            .query_row([message.sender.trim()], |row| row.get(0))
            .optional()?;
        let intent = message.intent.clone().unwrap_or_else(|| "unknown".into());
        let works = matches!(intent.as_str(), "maintenance_request" | "emergency");
        // The unit intake recorded: the topic's unit, else the directory's, else the one the
        // tenant wrote. It fills the ticket and its sources, so that `many_units` counts
        // senders outside the directory too.
        let unit = message
            .unit
            .clone()
            .or_else(|| known_unit.clone())
            .or_else(|| message.stated_unit.clone())
            .map(|unit| merge::normalize_unit(&unit))
            .filter(|unit| !unit.is_empty());
        let decision = message_decision(message, &intent, self.config.operator_language.as_str());
        let classification = json!({
            "message": message.id,
            "sender_known": known_unit.is_some(),
            "intent": intent,
            "category": message.category,
            "urgency": message.urgency,
            "needs_human": message.needs_human,
            "confidence": message.confidence,
            "model": message.explanation.get("model").and_then(|m| m.get("version")),
            "rules": redact_json(message.explanation.get("rules")),
            "needs_human_because": redact_json(message.explanation.get("needs_human_because")),
            "handover": decision.handover,
        });

        if !works && !message.needs_human {
            let followup = if intent == "status_followup" {
                self.latest_open_for_unit(tx, unit.as_deref())?
            } else {
                None
            };
            let outcome = if followup.is_some() {
                "followup"
            } else {
                "no_ticket"
            };
            record_source(
                tx,
                "message",
                &message.id,
                followup.as_deref(),
                unit.as_deref(),
                None,
                now_ms,
                outcome,
            )?;
            if let Some(ticket) = followup {
                tickets::audit(
                    tx,
                    &ticket,
                    "rule:followup",
                    "classification",
                    classification,
                    now_ms,
                )?;
            }
            return Ok(());
        }

        let input = Input {
            kind: InputKind::Message,
            unit: unit.as_deref(),
            asset: None,
            category: &decision.category,
            fault: &decision.fault,
            ts_ms: message.received_ms,
        };
        let open = self.open_for_merge(tx)?;
        let found = merge::find(
            &input,
            &open,
            &self.config.assets,
            self.config.merge_window_ms,
        );
        // A message that a human must take over joins only its own unit's ticket, so that an
        // uncertain or disputed report never escalates another unit's booking.
        let found = found.filter(|found| {
            !self.stops_automation(decision.handover) || found.rule == "same_unit_fault"
        });
        if let Some(found) = found {
            record_source(
                tx,
                "message",
                &message.id,
                Some(&found.ticket),
                unit.as_deref(),
                None,
                now_ms,
                "merged",
            )?;
            tickets::audit(
                tx,
                &found.ticket,
                "model:triage",
                "classification",
                classification,
                now_ms,
            )?;
            self.merge_into(
                tx,
                &found,
                &decision,
                InputKind::Message,
                &message.id,
                known_unit.as_deref(),
                now_ms,
            )?;
            report.merged += 1;
            return Ok(());
        }

        let mut ticket = self.new_ticket(tx, &decision, unit.clone(), None, now_ms)?;
        tickets::insert(tx, &ticket)?;
        record_source(
            tx,
            "message",
            &message.id,
            Some(&ticket.id),
            unit.as_deref(),
            None,
            now_ms,
            "opened",
        )?;
        tickets::audit(
            tx,
            &ticket.id,
            "model:triage",
            "classification",
            classification,
            now_ms,
        )?;
        report.tickets_opened += 1;
        if self.open_and_dispatch(tx, &mut ticket, &decision, now_ms)? {
            report.escalated += 1;
        }
        Ok(())
    }

    fn handle_request(
        &self,
        tx: &Transaction<'_>,
        row_id: i64,
        event: Option<i64>,
        request: &MaintenanceRequest,
        now_ms: i64,
        report: &mut StepReport,
    ) -> rusqlite::Result<()> {
        let triage = crate::triage::triage_request(request, &self.config.operator_language);
        let handover = if triage.intent == "emergency" {
            Some("emergency")
        } else if triage.needs_human {
            Some("model")
        } else {
            None
        };
        let decision = Decision {
            category: triage.category.clone().unwrap_or_else(|| "other".into()),
            fault: request.fault_kind.clone(),
            urgency: triage.urgency.clone(),
            confidence: f64::from(triage.confidence),
            needs_human: triage.needs_human,
            handover,
            handover_reason: handover.map(|_| {
                format!(
                    "{} on {}: {}",
                    request.fault_kind, request.asset, request.summary
                )
            }),
            language: triage.language.clone(),
            summary: crate::triage::redact(&request.summary),
        };
        let classification = json!({
            "request": request.request_id,
            "request_row": row_id,
            "source": request.source.as_str(),
            "asset": request.asset,
            "fault_kind": request.fault_kind,
            "severity": request.severity.as_str(),
            "category": decision.category,
            "urgency": decision.urgency,
            "confidence": decision.confidence,
            "explanation": triage.explanation,
        });
        let input = Input {
            kind: InputKind::Request,
            unit: None,
            asset: Some(&request.asset),
            category: &decision.category,
            fault: &decision.fault,
            ts_ms: request.opened_ms,
        };
        let open = self.open_for_merge(tx)?;
        let found = merge::find(
            &input,
            &open,
            &self.config.assets,
            self.config.merge_window_ms,
        );
        let ticket_id = if let Some(found) = found {
            record_source(
                tx,
                "request",
                &request.request_id,
                Some(&found.ticket),
                None,
                Some(&request.asset),
                now_ms,
                "merged",
            )?;
            tickets::audit(
                tx,
                &found.ticket,
                "rule:triage_request",
                "classification",
                classification,
                now_ms,
            )?;
            self.merge_into(
                tx,
                &found,
                &decision,
                InputKind::Request,
                &request.request_id,
                None,
                now_ms,
            )?;
            report.merged += 1;
            found.ticket
        } else {
            let mut ticket =
                self.new_ticket(tx, &decision, None, Some(request.asset.clone()), now_ms)?;
            tickets::insert(tx, &ticket)?;
            record_source(
                tx,
                "request",
                &request.request_id,
                Some(&ticket.id),
                None,
                Some(&request.asset),
                now_ms,
                "opened",
            )?;
            tickets::audit(
                tx,
                &ticket.id,
                "rule:triage_request",
                "classification",
                classification,
                now_ms,
            )?;
            report.tickets_opened += 1;
            if self.open_and_dispatch(tx, &mut ticket, &decision, now_ms)? {
                report.escalated += 1;
            }
            ticket.id
        };
        if let Some(event) = event {
            self.queue_anomaly_summary(tx, event, &ticket_id, now_ms)?;
        }
        Ok(())
    }

    /// Queues the anomaly behind a request for the office, with the minute rollups of its
    /// sensors from one hour before to one hour after it opened.
    fn queue_anomaly_summary(
        &self,
        tx: &Transaction<'_>,
        event: i64,
        ticket: &str,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let row = tx
            .query_row(
                "SELECT asset, fault_kind, detector, score, threshold, opened_ms, sensors
                 FROM anomaly_events WHERE id = ?1",
                [event],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, f64>(3)?,
                        row.get::<_, f64>(4)?,
                        row.get::<_, i64>(5)?,
                        row.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((asset, fault, detector, score, threshold, opened_ms, sensors)) = row else {
            return Ok(());
        };
        let sensor_ids: Vec<String> = serde_json::from_str(&sensors).unwrap_or_default();
        let mut series = serde_json::Map::new();
        let mut statement = tx.prepare_cached(
            "SELECT r.bucket_ms, r.min, r.max, r.sum / r.count, r.count
             FROM rollup_minute r JOIN sensors s ON s.id = r.sensor
             WHERE s.sensor_id = ?1 AND r.bucket_ms BETWEEN ?2 AND ?3 ORDER BY r.bucket_ms",
        )?;
        for sensor in &sensor_ids {
            let points: Vec<Value> = statement
                .query_map(
                    params![sensor, opened_ms - 3_600_000, opened_ms + 3_600_000],
                    |row| {
                        Ok(json!({
                            "bucket_ms": row.get::<_, i64>(0)?,
                            "min": row.get::<_, f64>(1)?,
                            "max": row.get::<_, f64>(2)?,
                            "mean": row.get::<_, f64>(3)?,
                            "count": row.get::<_, i64>(4)?,
                        }))
                    },
                )?
                .collect::<rusqlite::Result<_>>()?;
            series.insert(sensor.clone(), Value::Array(points));
        }
        let payload = json!({
            "ticket": ticket,
            "asset": asset,
            "fault": fault,
            "detector": detector,
            "score": score,
            "threshold": threshold,
            "opened_ms": opened_ms,
            "rollups": series,
        });
        crate::store::outbox::enqueue(
            tx,
            crate::protocol::EventKind::Anomaly,
            Some(ticket),
            now_ms,
            &payload,
        )?;
        Ok(())
    }

    fn new_ticket(
        &self,
        tx: &Transaction<'_>,
        decision: &Decision,
        unit: Option<String>,
        asset: Option<String>,
        now_ms: i64,
    ) -> rusqlite::Result<Ticket> {
        let number: i64 = tx.query_row(
            "SELECT coalesce(max(number), 0) + 1 FROM tickets",
            [],
            |row| row.get(0),
        )?;
        let sla = self.config.sla_for(&decision.urgency);
        Ok(Ticket {
            id: format!("{}-{number:06}", self.gateway),
            number,
            state: TicketState::New,
            category: decision.category.clone(),
            urgency: decision.urgency.clone(),
            confidence: decision.confidence,
            needs_human: decision.needs_human,
            escalation_reason: None,
            automation_stopped: false,
            unit,
            asset,
            fault: decision.fault.clone(),
            summary: decision.summary.clone(),
            language: decision.language.clone(),
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            ack_due_ms: Some(now_ms + i64::from(sla.acknowledge_mins) * 60_000),
            onsite_due_ms: Some(now_ms + i64::from(sla.on_site_mins) * 60_000),
            resolve_due_ms: Some(now_ms + i64::from(sla.resolve_mins) * 60_000),
            acked_ms: None,
            sla_escalated: false,
            opened_ms: now_ms,
            updated_ms: now_ms,
            closed_ms: None,
        })
    }

    /// Writes the first history entry, moves the new ticket to triaged and, unless a handover
    /// rule stops automation, chooses a vendor and a slot. Returns whether it escalated.
    fn open_and_dispatch(
        &self,
        tx: &Transaction<'_>,
        ticket: &mut Ticket,
        decision: &Decision,
        now_ms: i64,
    ) -> rusqlite::Result<bool> {
        let ctx = self.ctx();
        tickets::record_history(
            &ctx,
            tx,
            ticket,
            None,
            "rule:intake",
            "ticket opened",
            now_ms,
        )?;
        tickets::transition(
            &ctx,
            tx,
            ticket,
            TicketState::Triaged,
            "model:triage",
            "triage done",
            now_ms,
        )?;
        if let Some(rule) = decision.handover {
            let reason = decision
                .handover_reason
                .clone()
                .unwrap_or_else(|| rule.to_string());
            if self.stops_automation(Some(rule)) {
                self.escalate(tx, ticket, rule, &reason, now_ms, true)?;
                return Ok(true);
            }
            // The rule queues and pages without stopping automation (emergencies by default).
            self.queue_escalation(tx, ticket, rule, &reason, now_ms, true)?;
        }
        self.dispatch(tx, ticket, now_ms)
    }

    /// Chooses the vendor and slot and moves the ticket to dispatched and scheduled. Returns
    /// whether the ticket was escalated instead, or as well.
    /// Evaluates every vendor of the ticket's trade and returns the one with the earliest
    /// slot (its index in the vendor list), with the inputs of the decision for the audit log.
    fn choose_vendor(
        &self,
        tx: &Transaction<'_>,
        ticket: &Ticket,
        now_ms: i64,
    ) -> rusqlite::Result<(Option<(usize, Slot)>, Value)> {
        let sla = self.config.sla_for(&ticket.urgency);
        let onsite_due = ticket.onsite_due_ms.unwrap_or(now_ms);
        let emergency = ticket.urgency == "emergency";
        let cost = self
            .config
            .job_cost
            .get(&ticket.category)
            .copied()
            .unwrap_or(0);
        let access = self.tenant_access(tx, ticket.unit.as_deref())?;
        let mut candidates: Vec<Value> = Vec::new();
        let mut best: Option<(usize, Slot)> = None;
        for (index, vendor) in self.config.vendors.iter().enumerate() {
            if !vendor.trades.iter().any(|t| t == &ticket.category) {
                continue;
            }
            if cost > vendor.cost_cap {
                let rejected = format!("job cost {cost} is over the cost cap {}", vendor.cost_cap);
                candidates.push(json!({"vendor": vendor.name, "rejected": rejected}));
                continue;
            }
            let slot = if emergency {
                if !vendor.emergency {
                    candidates
                        .push(json!({"vendor": vendor.name, "rejected": "takes no emergencies"}));
                    continue;
                }
                schedule::emergency_slot(
                    &vendor.on_call,
                    vendor.time_zone,
                    now_ms,
                    sla.job_mins,
                    onsite_due,
                )
            } else {
                let booked = self.bookings(tx, &vendor.name, vendor.time_zone)?;
                let calendar = VendorCalendar {
                    hours: &vendor.hours,
                    time_zone: vendor.time_zone,
                    daily_capacity: vendor.daily_capacity,
                    booked: &booked,
                };
                let tenant = TenantAccess {
                    availability: &access.0,
                    permission_to_enter: access.1,
                    time_zone: self.config.time_zone,
                };
                schedule::earliest_slot(
                    &calendar,
                    tenant,
                    now_ms,
                    sla.job_mins,
                    onsite_due,
                    self.config.horizon_days,
                )
            };
            match slot {
                Some(slot) => {
                    candidates.push(json!({
                        "vendor": vendor.name,
                        "slot_start_ms": slot.start_ms,
                        "meets_sla": slot.meets_sla,
                    }));
                    if best.is_none_or(|(_, b)| slot.start_ms < b.start_ms) {
                        best = Some((index, slot));
                    }
                }
                None => candidates.push(
                    json!({"vendor": vendor.name, "rejected": "no free slot in the horizon"}),
                ),
            }
        }
        let inputs = json!({
            "category": ticket.category,
            "urgency": ticket.urgency,
            "onsite_due_ms": onsite_due,
            "job_cost": cost,
            "tenant_availability": access.0.len(),
            "permission_to_enter": access.1,
            "candidates": candidates,
        });
        Ok((best, inputs))
    }

    /// Returns whether the handover rule stops automation under the configuration.
    fn stops_automation(&self, rule: Option<&str>) -> bool {
        rule.is_some_and(|rule| self.config.stop_automation.iter().any(|r| r == rule))
    }

    fn dispatch(
        &self,
        tx: &Transaction<'_>,
        ticket: &mut Ticket,
        now_ms: i64,
    ) -> rusqlite::Result<bool> {
        let ctx = self.ctx();
        // Once a ticket is escalated with automation stopped, only a human books it, through
        // an office change.
        if ticket.automation_stopped || ticket.state == TicketState::Escalated {
            tickets::audit(
                tx,
                &ticket.id,
                "rule:vendor_choice",
                "vendor_choice",
                json!({
                    "outcome": null,
                    "skipped": "the ticket is escalated to a human, so automation books nothing",
                    "state": ticket.state.as_str(),
                }),
                now_ms,
            )?;
            tracing::info!(
                ticket = %ticket.id,
                state = %ticket.state,
                "vendor choice skipped: the ticket is escalated to a human"
            );
            return Ok(false);
        }
        let onsite_due = ticket.onsite_due_ms.unwrap_or(now_ms);
        let (best, inputs) = self.choose_vendor(tx, ticket, now_ms)?;

        let Some((index, slot)) = best else {
            tickets::audit(
                tx,
                &ticket.id,
                "rule:vendor_choice",
                "vendor_choice",
                json!({"inputs": inputs, "outcome": null}),
                now_ms,
            )?;
            let reason = format!("no vendor for {} can take the job", ticket.category);
            self.escalate(tx, ticket, "no_vendor", &reason, now_ms, true)?;
            return Ok(true);
        };
        let vendor = &self.config.vendors[index];
        tickets::audit(
            tx,
            &ticket.id,
            "rule:vendor_choice",
            "vendor_choice",
            json!({
                "inputs": inputs,
                "outcome": vendor.name,
                "rule": "earliest slot among vendors of the trade",
            }),
            now_ms,
        )?;
        ticket.vendor = Some(vendor.name.clone());
        tickets::transition(
            &ctx,
            tx,
            ticket,
            TicketState::Dispatched,
            "rule:vendor_choice",
            &format!("vendor {}", vendor.name),
            now_ms,
        )?;
        ticket.slot_start_ms = Some(slot.start_ms);
        ticket.slot_end_ms = Some(slot.end_ms);
        tickets::audit(
            tx,
            &ticket.id,
            "rule:schedule",
            "schedule",
            json!({
                "vendor": vendor.name,
                "slot_start_ms": slot.start_ms,
                "slot_end_ms": slot.end_ms,
                "slot_local": tickets::local_text(self.config.time_zone, slot.start_ms),
                "meets_sla": slot.meets_sla,
                "onsite_due_ms": onsite_due,
            }),
            now_ms,
        )?;
        tickets::transition(
            &ctx,
            tx,
            ticket,
            TicketState::Scheduled,
            "rule:schedule",
            "earliest slot within the vendor's hours",
            now_ms,
        )?;
        if !slot.meets_sla {
            let reason = format!(
                "the earliest slot, {}, is after the on-site time of the SLA",
                tickets::local_text(self.config.time_zone, slot.start_ms)
            );
            self.escalate(tx, ticket, "sla", &reason, now_ms, true)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Local availability windows and permission to enter of a unit's tenant.
    fn tenant_access(
        &self,
        tx: &Transaction<'_>,
        unit: Option<&str>,
    ) -> rusqlite::Result<(Vec<hours::Window>, bool)> {
        let Some(unit) = unit else {
            return Ok((Vec::new(), true));
        };
        let row: Option<(String, bool)> = tx
            .query_row(
                "SELECT availability, permission_to_enter FROM tenants WHERE unit = ?1",
                [unit],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((availability, permission)) = row else {
            return Ok((Vec::new(), false));
        };
        let texts: Vec<String> = serde_json::from_str(&availability).unwrap_or_default();
        // Windows were checked when the directory entry was stored.
        Ok((hours::parse_all(&texts).unwrap_or_default(), permission))
    }

    /// Jobs booked per local date for a vendor, from the open tickets.
    fn bookings(
        &self,
        tx: &Transaction<'_>,
        vendor: &str,
        tz: chrono_tz::Tz,
    ) -> rusqlite::Result<HashMap<chrono::NaiveDate, u32>> {
        let mut out = HashMap::new();
        let mut statement = tx.prepare_cached(
            "SELECT slot_start_ms FROM tickets WHERE vendor = ?1 AND slot_start_ms IS NOT NULL
             AND state NOT IN ('cancelled')",
        )?;
        let starts = statement.query_map([vendor], |row| row.get::<_, i64>(0))?;
        for start in starts {
            if let Some(day) = schedule::local_date(tz, start?) {
                *out.entry(day).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// Moves a ticket to escalated, queues it for a human and pages the contact on call.
    fn escalate(
        &self,
        tx: &Transaction<'_>,
        ticket: &mut Ticket,
        rule: &str,
        reason: &str,
        now_ms: i64,
        stop: bool,
    ) -> rusqlite::Result<()> {
        self.escalate_paging(tx, ticket, rule, reason, now_ms, stop, true)
    }

    /// Escalates like [`Dispatcher::escalate`], but pages the contact on call only when `page`
    /// is true.
    #[allow(clippy::too_many_arguments)]
    fn escalate_paging(
        &self,
        tx: &Transaction<'_>,
        ticket: &mut Ticket,
        rule: &str,
        reason: &str,
        now_ms: i64,
        stop: bool,
        page: bool,
    ) -> rusqlite::Result<()> {
        ticket.escalation_reason = Some(reason.to_string());
        ticket.needs_human = true;
        if stop {
            ticket.automation_stopped = true;
        }
        let moved = tickets::transition(
            &self.ctx(),
            tx,
            ticket,
            TicketState::Escalated,
            &format!("rule:{rule}"),
            reason,
            now_ms,
        )?;
        if !moved {
            tickets::update(tx, ticket)?;
        }
        self.queue_escalation(tx, ticket, rule, reason, now_ms, page)
    }

    fn queue_escalation(
        &self,
        tx: &Transaction<'_>,
        ticket: &Ticket,
        rule: &str,
        reason: &str,
        now_ms: i64,
        page: bool,
    ) -> rusqlite::Result<()> {
        let contact = if page {
            tickets::page(&self.ctx(), tx, ticket, now_ms)?
        } else {
            None
        };
        tx.execute(
            "INSERT INTO escalations (ticket, rule, reason, contact, paged, opened_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![ticket.id, rule, reason, contact, contact.is_some(), now_ms],
        )?;
        tickets::audit(
            tx,
            &ticket.id,
            &format!("rule:{rule}"),
            "escalation",
            json!({
                "rule": rule,
                "reason": reason,
                "paged": contact,
                "automation_stopped": ticket.automation_stopped,
            }),
            now_ms,
        )
    }

    /// Adds a message or request to an open ticket, raising its urgency by the merge rules,
    /// and sends the unit of a joining message its own "received" update.
    #[allow(clippy::too_many_arguments)]
    fn merge_into(
        &self,
        tx: &Transaction<'_>,
        found: &merge::Merge,
        decision: &Decision,
        kind: InputKind,
        source: &str,
        unit: Option<&str>,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let Some(mut ticket) = tickets::load(tx, &found.ticket)? else {
            return Ok(());
        };
        let (has_request, has_message, units) = self.source_mix(tx, &ticket.id)?;
        let confirmed = has_request && has_message;
        let before_urgency = ticket.urgency.clone();
        let before_confidence = ticket.confidence;
        let (urgency, raised_by) = merge::raised_urgency(
            &ticket.urgency,
            &decision.urgency,
            confirmed,
            units,
            self.config.many_units,
        );
        ticket.urgency = urgency;
        ticket.confidence = merge::combined_confidence(ticket.confidence, decision.confidence);
        if ticket.asset.is_none() {
            ticket.asset = found.asset.clone();
        }
        if let Some(raised_by) = raised_by {
            // A higher urgency brings the SLA's due times forward, never back.
            let sla = self.config.sla_for(&ticket.urgency);
            let earlier = |due: Option<i64>, mins: u32| {
                due.map(|d| d.min(ticket.opened_ms + i64::from(mins) * 60_000))
            };
            ticket.ack_due_ms = earlier(ticket.ack_due_ms, sla.acknowledge_mins);
            ticket.onsite_due_ms = earlier(ticket.onsite_due_ms, sla.on_site_mins);
            ticket.resolve_due_ms = earlier(ticket.resolve_due_ms, sla.resolve_mins);
            tracing::info!(ticket = %ticket.id, rule = raised_by, "incident urgency raised");
        }
        ticket.updated_ms = now_ms;
        tickets::update(tx, &ticket)?;
        let kind_text = match kind {
            InputKind::Message => "message",
            InputKind::Request => "request",
        };
        tickets::audit(
            tx,
            &ticket.id,
            &format!("rule:merge.{}", found.rule),
            "merge",
            json!({
                "source": {"kind": kind_text, "id": source},
                "rule": found.rule,
                "confidence": {"before": before_confidence, "after": ticket.confidence},
                "urgency": {
                    "before": before_urgency,
                    "after": ticket.urgency,
                    "raised_by": raised_by,
                },
                "asset": ticket.asset,
                "units": units,
            }),
            now_ms,
        )?;
        let reason = format!("{kind_text} {source} merged by rule {}", found.rule);
        tickets::record_history(
            &self.ctx(),
            tx,
            &ticket,
            Some(ticket.state),
            &format!("rule:merge.{}", found.rule),
            &reason,
            now_ms,
        )?;
        if let Some(unit) = unit {
            tickets::queue_unit_update(&self.ctx(), tx, &ticket, "received", unit, now_ms)?;
        }
        if let Some(rule) = decision
            .handover
            .filter(|rule| self.stops_automation(Some(rule)))
        {
            // Only a ticket that automation has not yet moved on is handed over. One that is
            // escalated, booked by the office or sent to a vendor keeps its state, and the
            // audit records that the rule was not applied again.
            let untouched = matches!(ticket.state, TicketState::New | TicketState::Triaged);
            if untouched {
                let reason = decision
                    .handover_reason
                    .clone()
                    .unwrap_or_else(|| rule.to_string());
                let page = !self.was_paged(tx, &ticket.id)?;
                self.escalate_paging(tx, &mut ticket, rule, &reason, now_ms, true, page)?;
            } else {
                tracing::info!(
                    ticket = %ticket.id,
                    rule,
                    state = %ticket.state,
                    "handover not applied to a merged ticket that has moved on"
                );
                tickets::audit(
                    tx,
                    &ticket.id,
                    &format!("rule:{rule}"),
                    "handover.skipped",
                    json!({
                        "rule": rule,
                        "source": {"kind": kind_text, "id": source},
                        "state": ticket.state.as_str(),
                        "reason": "the ticket has moved past triage: escalated, sent to a vendor or booked",
                    }),
                    now_ms,
                )?;
            }
        }
        Ok(())
    }

    /// Returns whether a contact has already been paged about the ticket.
    fn was_paged(&self, tx: &Transaction<'_>, ticket: &str) -> rusqlite::Result<bool> {
        tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM escalations WHERE ticket = ?1 AND paged)",
            [ticket],
            |row| row.get(0),
        )
    }

    /// Returns whether the ticket has request and message sources, and how many units reported
    /// it.
    fn source_mix(
        &self,
        tx: &Transaction<'_>,
        ticket: &str,
    ) -> rusqlite::Result<(bool, bool, usize)> {
        tx.query_row(
            "SELECT count(*) FILTER (WHERE kind = 'request'),
                    count(*) FILTER (WHERE kind = 'message'),
                    count(DISTINCT unit)
             FROM ticket_sources WHERE ticket = ?1",
            [ticket],
            |row| {
                let requests: i64 = row.get(0)?;
                let messages: i64 = row.get(1)?;
                let units: i64 = row.get(2)?;
                Ok((requests > 0, messages > 0, units as usize))
            },
        )
    }

    fn open_for_merge(&self, tx: &Transaction<'_>) -> rusqlite::Result<Vec<OpenTicket>> {
        let open = tickets::load_open(tx)?;
        let mut out = Vec::with_capacity(open.len());
        for ticket in open {
            if ticket.state.is_settled() {
                continue;
            }
            let (has_request, has_message, _) = self.source_mix(tx, &ticket.id)?;
            let units: Vec<String> = tx
                .prepare_cached(
                    "SELECT DISTINCT unit FROM ticket_sources
                     WHERE ticket = ?1 AND unit IS NOT NULL",
                )?
                .query_map([&ticket.id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            out.push(OpenTicket {
                id: ticket.id,
                unit: ticket.unit,
                asset: ticket.asset,
                category: ticket.category,
                fault: ticket.fault,
                opened_ms: ticket.opened_ms,
                units,
                has_request,
                has_message,
            });
        }
        Ok(out)
    }

    fn latest_open_for_unit(
        &self,
        tx: &Transaction<'_>,
        unit: Option<&str>,
    ) -> rusqlite::Result<Option<String>> {
        let Some(unit) = unit else {
            return Ok(None);
        };
        tx.query_row(
            "SELECT id FROM tickets WHERE unit = ?1 AND state NOT IN ('closed', 'cancelled')
             ORDER BY opened_ms DESC LIMIT 1",
            [unit],
            |row| row.get(0),
        )
        .optional()
    }
}

#[allow(clippy::too_many_arguments)]
fn record_source(
    tx: &Transaction<'_>,
    kind: &str,
    source_id: &str,
    ticket: Option<&str>,
    unit: Option<&str>,
    asset: Option<&str>,
    now_ms: i64,
    outcome: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO ticket_sources (kind, source_id, ticket, unit, asset, ts_ms, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![kind, source_id, ticket, unit, asset, now_ms, outcome],
    )?;
    Ok(())
}

/// Copies a JSON value with the personal data redacted from every string, because triage's
/// explanations quote the words that fired a rule.
fn redact_json(value: Option<&Value>) -> Value {
    match value {
        None => Value::Null,
        Some(Value::String(text)) => Value::String(crate::triage::redact(text)),
        Some(Value::Array(items)) => {
            Value::Array(items.iter().map(|v| redact_json(Some(v))).collect())
        }
        Some(Value::Object(map)) => Value::Object(
            map.iter()
                .map(|(key, v)| (key.clone(), redact_json(Some(v))))
                .collect(),
        ),
        Some(other) => other.clone(),
    }
}

/// Turns a triaged message into a ticket decision, naming the handover rule that applies.
fn message_decision(message: &MessageRow, intent: &str, operator_language: &str) -> Decision {
    let category = message
        .category
        .clone()
        .unwrap_or_else(|| intent.to_string());
    let because: Vec<String> = message
        .explanation
        .get("needs_human_because")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let low_confidence = message.explanation.get("low_confidence").is_some();
    let handover = handover_rule(intent, message.needs_human, &because, low_confidence);
    let handover_reason = handover.map(|rule| {
        if because.is_empty() {
            rule.replace('_', " ")
        } else {
            format!(
                "{}: {}",
                rule.replace('_', " "),
                crate::triage::redact(&because.join("; "))
            )
        }
    });
    let urgency = message.urgency.clone().unwrap_or_else(|| "routine".into());
    let urgency = if urgency == "none" {
        "routine".to_string()
    } else {
        urgency
    };
    let fault = merge::message_fault(&message.text)
        .map(str::to_string)
        .unwrap_or_else(|| category.clone());
    Decision {
        summary: format!("{category} ({intent}) reported by a tenant"),
        fault,
        category,
        urgency,
        confidence: message.confidence,
        needs_human: message.needs_human,
        handover,
        handover_reason,
        language: message
            .language
            .clone()
            .unwrap_or_else(|| operator_language.to_string()),
    }
}

/// Returns the handover rule for a message, by precedence: emergency, dispute, legal,
/// complaint, low confidence, then the model's own vote.
pub fn handover_rule(
    intent: &str,
    needs_human: bool,
    because: &[String],
    low_confidence: bool,
) -> Option<&'static str> {
    if intent == "emergency" {
        return Some("emergency");
    }
    if !needs_human {
        return None;
    }
    let mentions = |word: &str| because.iter().any(|reason| reason.contains(word));
    if mentions("dispute") {
        Some("dispute")
    } else if mentions("legal") || mentions("lease") {
        Some("legal")
    } else if intent == "complaint" {
        Some("complaint")
    } else if low_confidence {
        Some("low_confidence")
    } else {
        Some("model")
    }
}
