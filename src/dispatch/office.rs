//! Changes decided by the office or reported by a vendor, pulled by sync: tenant directory
//! entries and ticket actions, applied through the same state machine as automation.

use rusqlite::{params, Transaction};
use serde_json::json;

use super::state::TicketState;
use super::{hours, templates, tickets, Dispatcher};
use crate::protocol::{Change, OfficeChange, TenantRecord, TicketAction};

/// How far ahead an office slot may start: 365 days.
const MAX_SLOT_AHEAD_MS: i64 = 365 * 86_400_000;

impl Dispatcher {
    /// Applies one decision of the office or report of a vendor. Each change id is applied
    /// once. Some changes are rejected: one for an unknown ticket, one naming an unknown vendor
    /// or a vendor without the ticket's trade, one whose slot is over or ends before it starts,
    /// and one the state machine does not allow. A rejected change is recorded in the audit log
    /// and skipped, so that sync moves on.
    pub fn apply_office_change(
        &self,
        tx: &Transaction<'_>,
        change: &OfficeChange,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO office_changes (id, ts_ms, applied_ms) VALUES (?1, ?2, ?3)",
            params![change.id, change.ts_ms, now_ms],
        )?;
        if inserted == 0 {
            return Ok(());
        }
        match &change.change {
            Change::TenantUpsert(record) => self.upsert_tenant(tx, change, record, now_ms),
            Change::TenantRemove { unit } => {
                let unit = &super::merge::normalize_unit(unit);
                tx.execute("DELETE FROM tenant_contacts WHERE unit = ?1", [unit])?;
                tx.execute("DELETE FROM tenants WHERE unit = ?1", [unit])?;
                let record = crate::store::AuditRecord {
                    ts_ms: now_ms,
                    actor: change.actor.clone(),
                    action: "directory.remove".into(),
                    subject: format!("unit:{unit}"),
                    detail: json!({"change": change.id}),
                };
                crate::store::audit::insert(tx, &record)?;
                Ok(())
            }
            Change::Ticket {
                ticket,
                action,
                vendor,
                slot_start_ms,
                slot_end_ms,
                note,
            } => self.apply_ticket_change(
                tx,
                change,
                ticket,
                *action,
                vendor.as_deref(),
                *slot_start_ms,
                *slot_end_ms,
                note.as_deref(),
                now_ms,
            ),
        }
    }

    fn upsert_tenant(
        &self,
        tx: &Transaction<'_>,
        change: &OfficeChange,
        record: &TenantRecord,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        // Units are stored normalised, as dispatch compares them.
        let unit = super::merge::normalize_unit(&record.unit);
        let mut problems = Vec::new();
        let language = if templates::LANGUAGES.contains(&record.language.as_str()) {
            record.language.clone()
        } else {
            problems.push(format!(
                "language {:?} is not da or en, so da is used",
                record.language
            ));
            "da".to_string()
        };
        let availability: Vec<String> = match hours::parse_all(&record.availability) {
            Ok(_) => record.availability.clone(),
            Err(message) => {
                problems.push(format!("{message}, so the availability is ignored"));
                Vec::new()
            }
        };
        if !problems.is_empty() {
            tracing::warn!(
                change = change.id,
                problems = ?problems,
                "directory entry stored with corrections"
            );
        }
        tx.execute(
            "INSERT INTO tenants (unit, language, quiet_from, quiet_until, consent, opt_outs,
                                  permission_to_enter, availability, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(unit) DO UPDATE SET language = excluded.language,
                 quiet_from = excluded.quiet_from, quiet_until = excluded.quiet_until,
                 consent = excluded.consent, opt_outs = excluded.opt_outs,
                 permission_to_enter = excluded.permission_to_enter,
                 availability = excluded.availability, updated_ms = excluded.updated_ms",
            params![
                unit,
                language,
                record.quiet_from,
                record.quiet_until,
                record.consent,
                serde_json::to_string(&record.opt_outs).unwrap_or_else(|_| "[]".into()),
                record.permission_to_enter,
                serde_json::to_string(&availability).unwrap_or_else(|_| "[]".into()),
                now_ms
            ],
        )?;
        tx.execute("DELETE FROM tenant_contacts WHERE unit = ?1", [&unit])?;
        for contact in &record.contacts {
            tx.execute(
                "INSERT INTO tenant_contacts (channel, address, unit) VALUES (?1, ?2, ?3)
                 ON CONFLICT(channel, address) DO UPDATE SET unit = excluded.unit",
                params![contact.channel, contact.address.trim(), unit],
            )?;
        }
        // The contacts are personal data, so the audit row records only their number.
        let audit_row = crate::store::AuditRecord {
            ts_ms: now_ms,
            actor: change.actor.clone(),
            action: "directory.upsert".into(),
            subject: format!("unit:{unit}"),
            detail: json!({
                "change": change.id,
                "contacts": record.contacts.len(),
                "problems": problems,
            }),
        };
        crate::store::audit::insert(tx, &audit_row)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_ticket_change(
        &self,
        tx: &Transaction<'_>,
        change: &OfficeChange,
        id: &str,
        action: TicketAction,
        vendor: Option<&str>,
        slot_start: Option<i64>,
        slot_end: Option<i64>,
        note: Option<&str>,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let ctx = self.ctx();
        let Some(mut ticket) = tickets::load(tx, id)? else {
            let record = crate::store::AuditRecord {
                ts_ms: now_ms,
                actor: change.actor.clone(),
                action: "office_change.skipped".into(),
                subject: id.to_string(),
                detail: json!({"change": change.id, "reason": "unknown ticket"}),
            };
            crate::store::audit::insert(tx, &record)?;
            tracing::warn!(
                change = change.id,
                ticket = id,
                "office change for an unknown ticket skipped"
            );
            return Ok(());
        };
        let actor = change.actor.as_str();
        if let Err(rejection) =
            self.check_ticket_change(&ticket, vendor, slot_start, slot_end, now_ms)
        {
            return reject_change(tx, change, &ticket, action, &rejection, now_ms);
        }
        let note = note.map(crate::triage::redact);
        let reason = |what: &str| match &note {
            Some(note) => format!("{what}: {note}"),
            None => what.to_string(),
        };
        if let Some(vendor) = vendor {
            ticket.vendor = Some(vendor.to_string());
        }
        if slot_start.is_some() {
            ticket.slot_start_ms = slot_start;
            ticket.slot_end_ms = slot_end.or(slot_start);
        }
        // Office staff send these actions, so the ticket no longer waits for a person. The
        // vendor's progress reports leave the flag unchanged.
        let taken_on = matches!(
            action,
            TicketAction::Acknowledge
                | TicketAction::Assign
                | TicketAction::Reschedule
                | TicketAction::Close
                | TicketAction::Cancel
        );
        if taken_on {
            ticket.needs_human = false;
        }
        let moved = match action {
            TicketAction::Acknowledge => {
                ticket.acked_ms.get_or_insert(now_ms);
                let state = ticket.state;
                tickets::transition(
                    &ctx,
                    tx,
                    &mut ticket,
                    state,
                    actor,
                    &reason("acknowledged"),
                    now_ms,
                )?
            }
            TicketAction::Assign => {
                let mut moved = true;
                if !matches!(
                    ticket.state,
                    TicketState::Dispatched | TicketState::Scheduled
                ) {
                    moved = tickets::transition(
                        &ctx,
                        tx,
                        &mut ticket,
                        TicketState::Dispatched,
                        actor,
                        &reason("assigned"),
                        now_ms,
                    )?;
                }
                if moved && ticket.slot_start_ms.is_some() {
                    moved = tickets::transition(
                        &ctx,
                        tx,
                        &mut ticket,
                        TicketState::Scheduled,
                        actor,
                        &reason("booked"),
                        now_ms,
                    )?;
                }
                moved
            }
            TicketAction::Reschedule => tickets::transition(
                &ctx,
                tx,
                &mut ticket,
                TicketState::Scheduled,
                actor,
                &reason("rescheduled"),
                now_ms,
            )?,
            TicketAction::OnTheWay => {
                ticket.acked_ms.get_or_insert(now_ms);
                tickets::transition(
                    &ctx,
                    tx,
                    &mut ticket,
                    TicketState::InProgress,
                    actor,
                    &reason("vendor on the way"),
                    now_ms,
                )?
            }
            TicketAction::Done => tickets::transition(
                &ctx,
                tx,
                &mut ticket,
                TicketState::Resolved,
                actor,
                &reason("done"),
                now_ms,
            )?,
            TicketAction::Close => tickets::transition(
                &ctx,
                tx,
                &mut ticket,
                TicketState::Closed,
                actor,
                &reason("closed"),
                now_ms,
            )?,
            TicketAction::Cancel => tickets::transition(
                &ctx,
                tx,
                &mut ticket,
                TicketState::Cancelled,
                actor,
                &reason("cancelled"),
                now_ms,
            )?,
        };
        if !moved {
            let rejection = Rejection {
                field: "action",
                value: json!(format!("{action:?}")),
                reason: "the state machine does not allow this change in the ticket's state"
                    .to_string(),
            };
            reject_change(tx, change, &ticket, action, &rejection, now_ms)?;
        } else {
            // Closing or cancelling a ticket settles its open escalations.
            tx.execute(
                "UPDATE escalations SET resolved_ms = ?2
                 WHERE ticket = ?1 AND resolved_ms IS NULL AND ?3",
                params![ticket.id, now_ms, !ticket.state.is_open()],
            )?;
        }
        Ok(())
    }
}

/// Why an office change to a ticket is rejected: the field, its value and the reason.
struct Rejection {
    field: &'static str,
    value: serde_json::Value,
    reason: String,
}

/// Records a rejected change in the ticket's audit trail, which sync sends to the office, and
/// logs it. The ticket stays as it was.
fn reject_change(
    tx: &Transaction<'_>,
    change: &OfficeChange,
    ticket: &tickets::Ticket,
    action: TicketAction,
    rejection: &Rejection,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tickets::audit(
        tx,
        &ticket.id,
        &change.actor,
        "office_change.rejected",
        json!({
            "change": change.id,
            "action": format!("{action:?}"),
            "state": ticket.state.as_str(),
            "field": rejection.field,
            "value": rejection.value,
            "reason": rejection.reason,
        }),
        now_ms,
    )?;
    tracing::warn!(
        change = change.id,
        ticket = %ticket.id,
        action = ?action,
        state = %ticket.state,
        field = rejection.field,
        value = %rejection.value,
        reason = %rejection.reason,
        "office change rejected; the ticket is unchanged"
    );
    Ok(())
}

impl Dispatcher {
    /// Checks the vendor and slot of an office change against the vendor list and the clock.
    fn check_ticket_change(
        &self,
        ticket: &tickets::Ticket,
        vendor: Option<&str>,
        slot_start: Option<i64>,
        slot_end: Option<i64>,
        now_ms: i64,
    ) -> Result<(), Rejection> {
        if let Some(name) = vendor {
            let Some(known) = self.config.vendors.iter().find(|v| v.name == name) else {
                let names: Vec<&str> = self
                    .config
                    .vendors
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect();
                return Err(Rejection {
                    field: "vendor",
                    value: json!(name),
                    reason: format!(
                        "unknown vendor {name:?}; the vendor list has {}",
                        names.join(", ")
                    ),
                });
            };
            if !known.trades.iter().any(|trade| trade == &ticket.category) {
                return Err(Rejection {
                    field: "vendor",
                    value: json!(name),
                    reason: format!(
                        "vendor {name:?} does not take {} jobs (trades: {})",
                        ticket.category,
                        known.trades.join(", ")
                    ),
                });
            }
        }
        let local = |ms: i64| tickets::local_text(self.config.time_zone, ms);
        if let (Some(start), Some(end)) = (slot_start, slot_end) {
            if end < start {
                return Err(Rejection {
                    field: "slot_end_ms",
                    value: json!(end),
                    reason: format!(
                        "the slot ends at {} before it starts at {}",
                        local(end),
                        local(start)
                    ),
                });
            }
        }
        if slot_end.is_some() && slot_start.is_none() {
            return Err(Rejection {
                field: "slot_end_ms",
                value: json!(slot_end),
                reason: "the slot has an end but no start".to_string(),
            });
        }
        // A slot that has begun but not ended is a visit under way, so only a slot that is
        // over counts as past.
        if let Some(start) = slot_start {
            let end = slot_end.unwrap_or(start);
            if end <= now_ms {
                return Err(Rejection {
                    field: "slot_start_ms",
                    value: json!(start),
                    reason: format!(
                        "the slot {} to {} is in the past (now {})",
                        local(start),
                        local(end),
                        local(now_ms)
                    ),
                });
            }
            if start > now_ms + MAX_SLOT_AHEAD_MS {
                return Err(Rejection {
                    field: "slot_start_ms",
                    value: json!(start),
                    reason: format!(
                        "the slot starts at {}, more than 365 days after now ({}); \
                         send a slot within the next year",
                        local(start),
                        local(now_ms)
                    ),
                });
            }
        }
        Ok(())
    }
}

impl crate::sync::ApplyChange for Dispatcher {
    fn apply(
        &self,
        tx: &Transaction<'_>,
        change: &OfficeChange,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        self.apply_office_change(tx, change, now_ms)
    }
}
