//! Ticket rows and the one path every change takes: the state machine check, a history entry
//! with the next per-ticket sequence number, the outbox event, the audit row and the tenant
//! update, all inside the caller's transaction.

use std::collections::HashMap;

use chrono::{NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::{json, Value};

use super::config::DispatchConfig;
use super::state::{self, TicketState};
use crate::protocol::{EventKind, TicketEvent, TicketSnapshot, TicketSource, Transition};
use crate::store::{audit, outbox, AuditRecord};

/// The columns of `tickets`, in the order [`Ticket::from_row`] reads them.
pub const COLUMNS: &str = "id, number, state, category, urgency, confidence, needs_human, \
     escalation_reason, automation_stopped, unit, asset, fault, summary, language, vendor, \
     slot_start_ms, slot_end_ms, ack_due_ms, onsite_due_ms, resolve_due_ms, acked_ms, \
     sla_escalated, opened_ms, updated_ms, closed_ms";

/// One row of `tickets`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub number: i64,
    pub state: TicketState,
    pub category: String,
    pub urgency: String,
    pub confidence: f64,
    pub needs_human: bool,
    pub escalation_reason: Option<String>,
    pub automation_stopped: bool,
    pub unit: Option<String>,
    pub asset: Option<String>,
    pub fault: String,
    /// Description of the fault, built from the triage fields and never from the tenant's own
    /// words.
    pub summary: String,
    pub language: String,
    pub vendor: Option<String>,
    pub slot_start_ms: Option<i64>,
    pub slot_end_ms: Option<i64>,
    pub ack_due_ms: Option<i64>,
    pub onsite_due_ms: Option<i64>,
    pub resolve_due_ms: Option<i64>,
    pub acked_ms: Option<i64>,
    pub sla_escalated: bool,
    pub opened_ms: i64,
    pub updated_ms: i64,
    pub closed_ms: Option<i64>,
}

impl Ticket {
    pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Ticket> {
        let state_text: String = row.get(2)?;
        let state = TicketState::parse(&state_text).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("invalid ticket state {state_text:?}").into(),
            )
        })?;
        Ok(Ticket {
            id: row.get(0)?,
            number: row.get(1)?,
            state,
            category: row.get(3)?,
            urgency: row.get(4)?,
            confidence: row.get(5)?,
            needs_human: row.get(6)?,
            escalation_reason: row.get(7)?,
            automation_stopped: row.get(8)?,
            unit: row.get(9)?,
            asset: row.get(10)?,
            fault: row.get(11)?,
            summary: row.get(12)?,
            language: row.get(13)?,
            vendor: row.get(14)?,
            slot_start_ms: row.get(15)?,
            slot_end_ms: row.get(16)?,
            ack_due_ms: row.get(17)?,
            onsite_due_ms: row.get(18)?,
            resolve_due_ms: row.get(19)?,
            acked_ms: row.get(20)?,
            sla_escalated: row.get(21)?,
            opened_ms: row.get(22)?,
            updated_ms: row.get(23)?,
            closed_ms: row.get(24)?,
        })
    }
}

/// Loads one ticket.
pub fn load(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<Ticket>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM tickets WHERE id = ?1"),
        [id],
        Ticket::from_row,
    )
    .optional()
}

/// Loads every ticket that is not closed or cancelled.
pub fn load_open(tx: &Transaction<'_>) -> rusqlite::Result<Vec<Ticket>> {
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE state NOT IN ('closed', 'cancelled')
         ORDER BY opened_ms, id"
    ))?;
    let rows = statement.query_map([], Ticket::from_row)?;
    rows.collect()
}

/// Inserts a new ticket row.
pub fn insert(tx: &Transaction<'_>, t: &Ticket) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO tickets ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
        ),
        params![
            t.id,
            t.number,
            t.state.as_str(),
            t.category,
            t.urgency,
            t.confidence,
            t.needs_human,
            t.escalation_reason,
            t.automation_stopped,
            t.unit,
            t.asset,
            t.fault,
            t.summary,
            t.language,
            t.vendor,
            t.slot_start_ms,
            t.slot_end_ms,
            t.ack_due_ms,
            t.onsite_due_ms,
            t.resolve_due_ms,
            t.acked_ms,
            t.sla_escalated,
            t.opened_ms,
            t.updated_ms,
            t.closed_ms
        ],
    )?;
    Ok(())
}

/// Writes every field of an existing ticket.
pub fn update(tx: &Transaction<'_>, t: &Ticket) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE tickets SET state = ?2, category = ?3, urgency = ?4, confidence = ?5,
             needs_human = ?6, escalation_reason = ?7, automation_stopped = ?8, unit = ?9,
             asset = ?10, summary = ?11, vendor = ?12, slot_start_ms = ?13, slot_end_ms = ?14,
             ack_due_ms = ?15, onsite_due_ms = ?16, resolve_due_ms = ?17, acked_ms = ?18,
             sla_escalated = ?19, updated_ms = ?20, closed_ms = ?21
         WHERE id = ?1",
        params![
            t.id,
            t.state.as_str(),
            t.category,
            t.urgency,
            t.confidence,
            t.needs_human,
            t.escalation_reason,
            t.automation_stopped,
            t.unit,
            t.asset,
            t.summary,
            t.vendor,
            t.slot_start_ms,
            t.slot_end_ms,
            t.ack_due_ms,
            t.onsite_due_ms,
            t.resolve_due_ms,
            t.acked_ms,
            t.sla_escalated,
            t.updated_ms,
            t.closed_ms
        ],
    )?;
    Ok(())
}

/// Settings a change to a ticket needs beyond the transaction.
pub struct Context<'a> {
    pub gateway: &'a str,
    pub config: &'a DispatchConfig,
}

/// Appends an audit row about a ticket to the chain and queues it for the office.
pub fn audit(
    tx: &Transaction<'_>,
    ticket: &str,
    actor: &str,
    action: &str,
    detail: Value,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let record = AuditRecord {
        ts_ms: now_ms,
        actor: actor.to_string(),
        action: action.to_string(),
        subject: ticket.to_string(),
        detail: detail.clone(),
    };
    let hash = audit::insert(tx, &record)?;
    let entry = crate::protocol::AuditEntry {
        ticket: ticket.to_string(),
        ts_ms: now_ms,
        actor: actor.to_string(),
        action: action.to_string(),
        detail,
        hash,
    };
    outbox::enqueue(
        tx,
        EventKind::Audit,
        Some(ticket),
        now_ms,
        &serde_json::to_value(entry).unwrap_or(Value::Null),
    )?;
    Ok(())
}

/// Moves `ticket` to `to` (or records an event in its current state when `to` equals it),
/// writing the history entry, the outbox event, the audit row and the tenant update.
/// Returns `Ok(false)` and changes nothing when the state machine rejects the move, or when
/// a rule or the model (`actor` starting with `rule:` or `model:`) would book a ticket whose
/// automation is stopped.
pub fn transition(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    ticket: &mut Ticket,
    to: TicketState,
    actor: &str,
    reason: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let from = ticket.state;
    if from != to && state::check(from, to).is_err() {
        return Ok(false);
    }
    // After a human has taken over, a rule never books the ticket again.
    let automated = actor.starts_with("rule:") || actor.starts_with("model:");
    let booking = matches!(to, TicketState::Dispatched | TicketState::Scheduled);
    if ticket.automation_stopped && automated && booking {
        return Ok(false);
    }
    if from == to && !from.is_open() {
        return Ok(false);
    }
    ticket.state = to;
    ticket.updated_ms = now_ms;
    if !to.is_open() {
        ticket.closed_ms = Some(now_ms);
    }
    update(tx, ticket)?;
    record_history(ctx, tx, ticket, Some(from), actor, reason, now_ms)?;
    if from != to || to == TicketState::Scheduled {
        if let Some(template) = state::template_for(to) {
            queue_updates(ctx, tx, ticket, template, now_ms)?;
        }
    }
    Ok(true)
}

/// Writes a history entry for the ticket's current state, its outbox event and its audit row.
pub fn record_history(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    ticket: &Ticket,
    from: Option<TicketState>,
    actor: &str,
    reason: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let seq: i64 = tx.query_row(
        "SELECT coalesce(max(seq), 0) + 1 FROM ticket_history WHERE ticket = ?1",
        [&ticket.id],
        |row| row.get(0),
    )?;
    tx.execute(
        "INSERT INTO ticket_history (ticket, seq, ts_ms, from_state, to_state, actor, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            ticket.id,
            seq,
            now_ms,
            from.map(TicketState::as_str),
            ticket.state.as_str(),
            actor,
            reason
        ],
    )?;
    let transition = Transition {
        seq,
        ts_ms: now_ms,
        from: from.map(|s| s.as_str().to_string()),
        to: ticket.state.as_str().to_string(),
        actor: actor.to_string(),
        reason: reason.to_string(),
    };
    let event = TicketEvent {
        ticket: snapshot(tx, ctx.gateway, ticket)?,
        transition,
    };
    outbox::enqueue(
        tx,
        EventKind::Ticket,
        Some(&ticket.id),
        now_ms,
        &serde_json::to_value(event).unwrap_or(Value::Null),
    )?;
    audit(
        tx,
        &ticket.id,
        actor,
        "transition",
        json!({
            "seq": seq,
            "from": from.map(TicketState::as_str),
            "to": ticket.state.as_str(),
            "reason": reason,
            "urgency": ticket.urgency,
            "confidence": ticket.confidence,
        }),
        now_ms,
    )
}

/// Builds the ticket's snapshot for the office, with the summary redacted.
pub fn snapshot(
    tx: &Transaction<'_>,
    gateway: &str,
    t: &Ticket,
) -> rusqlite::Result<TicketSnapshot> {
    let mut statement = tx.prepare_cached(
        "SELECT kind, source_id FROM ticket_sources WHERE ticket = ?1 ORDER BY ts_ms, source_id",
    )?;
    let sources = statement
        .query_map([&t.id], |row| {
            Ok(TicketSource {
                kind: row.get(0)?,
                id: row.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(TicketSnapshot {
        id: t.id.clone(),
        building: gateway.to_string(),
        state: t.state.as_str().to_string(),
        category: t.category.clone(),
        urgency: t.urgency.clone(),
        needs_human: t.needs_human,
        escalation_reason: t.escalation_reason.clone(),
        unit: t.unit.clone(),
        asset: t.asset.clone(),
        summary: crate::triage::redact(&t.summary),
        sources,
        vendor: t.vendor.clone(),
        slot_start_ms: t.slot_start_ms,
        slot_end_ms: t.slot_end_ms,
        ack_due_ms: t.ack_due_ms,
        onsite_due_ms: t.onsite_due_ms,
        resolve_due_ms: t.resolve_due_ms,
        opened_ms: t.opened_ms,
        updated_ms: t.updated_ms,
    })
}

/// A directory entry as updates need it.
#[derive(Debug, Clone)]
struct Recipient {
    unit: String,
    language: String,
    quiet_from: Option<String>,
    quiet_until: Option<String>,
}

/// Lists the units that receive a ticket's updates: the units of its messages' senders and
/// those its asset serves, when they are in the directory, consented and did not opt out of
/// MQTT. Senders are looked up in the directory as it is now, so a unit entered after the
/// ticket opened receives the updates that follow.
fn recipients(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    t: &Ticket,
) -> rusqlite::Result<Vec<Recipient>> {
    let mut units: Vec<String> = tx
        .prepare_cached(
            "SELECT unit FROM ticket_sources WHERE ticket = ?1 AND unit IS NOT NULL
             UNION
             SELECT c.unit FROM ticket_sources s
                 JOIN messages m ON m.id = s.source_id
                 JOIN tenant_contacts c ON c.address = trim(m.sender)
             WHERE s.ticket = ?1 AND s.kind = 'message'",
        )?
        .query_map([&t.id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(asset) = &t.asset {
        if let Some(served) = ctx.config.assets.units.get(asset) {
            units.extend(served.iter().cloned());
        }
    }
    units.sort();
    units.dedup();
    let mut out = Vec::new();
    for unit in units {
        if let Some(recipient) = recipient(tx, &unit)? {
            out.push(recipient);
        }
    }
    Ok(out)
}

/// Returns the directory entry of `unit` when it may receive updates over MQTT: it exists,
/// has consent and did not opt out of MQTT.
fn recipient(tx: &Transaction<'_>, unit: &str) -> rusqlite::Result<Option<Recipient>> {
    let row = tx
        .prepare_cached(
            "SELECT language, quiet_from, quiet_until, consent, opt_outs FROM tenants
             WHERE unit = ?1",
        )?
        .query_row([unit], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    let Some((language, quiet_from, quiet_until, consent, opt_outs)) = row else {
        return Ok(None);
    };
    let opted_out = serde_json::from_str::<Vec<String>>(&opt_outs)
        .unwrap_or_default()
        .iter()
        .any(|channel| channel == "mqtt");
    Ok((consent && !opted_out).then(|| Recipient {
        unit: unit.to_string(),
        language,
        quiet_from,
        quiet_until,
    }))
}

/// Queues the update `template` for every recipient of the ticket, or for the operator when
/// it has none, with its outbox event and audit row.
pub fn queue_updates(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    t: &Ticket,
    template: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let recipients = recipients(ctx, tx, t)?;
    let emergency = t.urgency == "emergency";
    if recipients.is_empty() {
        let language = ctx.config.operator_language.clone();
        let text = render(ctx, t, template, &language);
        insert_update(
            ctx,
            tx,
            t,
            UpdateRow {
                unit: None,
                audience: "operator",
                language: &language,
                template,
                text: &text,
                topic: &ctx.config.operator_topic,
                due_ms: now_ms,
            },
            now_ms,
        )?;
        return Ok(());
    }
    for recipient in recipients {
        queue_tenant_update(ctx, tx, t, template, &recipient, emergency, now_ms)?;
    }
    Ok(())
}

/// Queues the update `template` for one unit of the ticket, when the directory lets it
/// receive updates. Returns whether it queued one.
pub fn queue_unit_update(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    t: &Ticket,
    template: &str,
    unit: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let Some(recipient) = recipient(tx, unit)? else {
        return Ok(false);
    };
    let emergency = t.urgency == "emergency";
    queue_tenant_update(ctx, tx, t, template, &recipient, emergency, now_ms)?;
    Ok(true)
}

/// Queues one tenant's update, due when their quiet hours end unless it is an emergency.
fn queue_tenant_update(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    t: &Ticket,
    template: &str,
    recipient: &Recipient,
    emergency: bool,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let text = render(ctx, t, template, &recipient.language);
    let due_ms = if emergency {
        now_ms
    } else {
        quiet_end(
            ctx.config.time_zone,
            recipient.quiet_from.as_deref(),
            recipient.quiet_until.as_deref(),
            now_ms,
        )
        .unwrap_or(now_ms)
    };
    let topic = ctx.config.unit_topic(&recipient.unit);
    insert_update(
        ctx,
        tx,
        t,
        UpdateRow {
            unit: Some(&recipient.unit),
            audience: "tenant",
            language: &recipient.language,
            template,
            text: &text,
            topic: &topic,
            due_ms,
        },
        now_ms,
    )
}

/// Queues a page for the escalation contact on call, or for the first contact when no
/// contact is on call.
pub fn page(
    ctx: &Context<'_>,
    tx: &Transaction<'_>,
    t: &Ticket,
    now_ms: i64,
) -> rusqlite::Result<Option<String>> {
    let contacts = &ctx.config.contacts;
    let contact = contacts
        .iter()
        .find(|c| super::hours::covers(&c.on_call, ctx.config.time_zone, now_ms))
        .or_else(|| contacts.first());
    let Some(contact) = contact else {
        return Ok(None);
    };
    let language = ctx.config.operator_language.clone();
    let text = render(ctx, t, "page", &language);
    insert_update(
        ctx,
        tx,
        t,
        UpdateRow {
            unit: None,
            audience: "operator",
            language: &language,
            template: "page",
            text: &text,
            topic: &contact.topic,
            due_ms: now_ms,
        },
        now_ms,
    )?;
    Ok(Some(contact.name.clone()))
}

struct UpdateRow<'a> {
    unit: Option<&'a str>,
    audience: &'a str,
    language: &'a str,
    template: &'a str,
    text: &'a str,
    topic: &'a str,
    due_ms: i64,
}

fn insert_update(
    _ctx: &Context<'_>,
    tx: &Transaction<'_>,
    t: &Ticket,
    row: UpdateRow<'_>,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO tenant_updates
             (ticket, unit, audience, language, template, text, topic, created_ms, due_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            t.id,
            row.unit,
            row.audience,
            row.language,
            row.template,
            row.text,
            row.topic,
            now_ms,
            row.due_ms
        ],
    )?;
    if let Some(unit) = row.unit {
        let update = crate::protocol::TenantUpdate {
            ticket: t.id.clone(),
            unit: unit.to_string(),
            language: row.language.to_string(),
            template: row.template.to_string(),
            text: crate::triage::redact(row.text),
            ts_ms: now_ms,
        };
        outbox::enqueue(
            tx,
            EventKind::TenantUpdate,
            Some(&t.id),
            now_ms,
            &serde_json::to_value(update).unwrap_or(Value::Null),
        )?;
    }
    audit(
        tx,
        &t.id,
        "rule:tenant_update",
        "message",
        json!({
            "template": row.template,
            "audience": row.audience,
            "unit": row.unit,
            "language": row.language,
            "topic": row.topic,
            "due_ms": row.due_ms,
            "quiet_hours_delay_ms": row.due_ms - now_ms,
        }),
        now_ms,
    )
}

/// Fills a template with the ticket's fields, with times in the building's time zone.
pub fn render(ctx: &Context<'_>, t: &Ticket, template: &str, language: &str) -> String {
    let tz = ctx.config.time_zone;
    let mut values: HashMap<&str, String> = HashMap::new();
    values.insert("ticket", t.id.clone());
    values.insert("category", t.category.clone());
    values.insert("urgency", t.urgency.clone());
    if let Some(vendor) = &t.vendor {
        values.insert("vendor", vendor.clone());
    }
    if let Some(start) = t.slot_start_ms {
        values.insert("slot_start", local_text(tz, start));
    }
    if let Some(end) = t.slot_end_ms {
        values.insert("slot_end", local_text(tz, end));
    }
    if let Some(unit) = &t.unit {
        values.insert("unit", unit.clone());
    }
    if let Some(reason) = &t.escalation_reason {
        values.insert("reason", reason.clone());
    }
    ctx.config
        .templates
        .render(language, template, &values)
        .unwrap_or_else(|| format!("{} {}", t.id, t.state))
}

/// Formats an instant as local `YYYY-MM-DD HH:MM` in `tz`.
pub fn local_text(tz: Tz, ms: i64) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(local) => local.format("%Y-%m-%d %H:%M").to_string(),
        None => ms.to_string(),
    }
}

/// Returns when the quiet hours that contain `now_ms` end, or `None` outside quiet hours.
/// Quiet hours may wrap past midnight (22:00 to 07:00) and are read in the building's local
/// time, so they follow DST.
pub fn quiet_end(tz: Tz, from: Option<&str>, until: Option<&str>, now_ms: i64) -> Option<i64> {
    let from = NaiveTime::parse_from_str(from?, "%H:%M").ok()?;
    let until = NaiveTime::parse_from_str(until?, "%H:%M").ok()?;
    let local = tz.timestamp_millis_opt(now_ms).single()?;
    let time = local.time().with_second(0)?.with_nanosecond(0)?;
    let quiet = if from <= until {
        time >= from && time < until
    } else {
        time >= from || time < until
    };
    if !quiet {
        return None;
    }
    let mut date = local.date_naive();
    if from > until && time >= from {
        date = date.succ_opt()?;
    }
    let end = tz.from_local_datetime(&date.and_time(until)).earliest()?;
    Some(end.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Copenhagen;

    fn at(text: &str) -> i64 {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        Copenhagen
            .from_local_datetime(&naive)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let end = quiet_end(
            Copenhagen,
            Some("22:00"),
            Some("07:00"),
            at("2026-06-03 23:30"),
        );
        assert_eq!(end, Some(at("2026-06-04 07:00")));
        let early = quiet_end(
            Copenhagen,
            Some("22:00"),
            Some("07:00"),
            at("2026-06-04 05:00"),
        );
        assert_eq!(early, Some(at("2026-06-04 07:00")));
        assert_eq!(
            quiet_end(
                Copenhagen,
                Some("22:00"),
                Some("07:00"),
                at("2026-06-04 12:00")
            ),
            None
        );
        assert_eq!(
            quiet_end(Copenhagen, None, Some("07:00"), at("2026-06-04 05:00")),
            None
        );
    }
}
