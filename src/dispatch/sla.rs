//! SLA timers and retention, run on every dispatch pass.

use rusqlite::{params, OptionalExtension, Transaction};

use super::state::TicketState;
use super::{schedule, tickets, Dispatcher};

/// The `meta` key of the time retention last ran.
const RETENTION_KEY: &str = "dispatch_retention_ms";

impl Dispatcher {
    /// Escalates tickets whose acknowledgement, on-site or resolution time is close to its
    /// SLA limit. Each ticket escalates for the SLA once.
    pub(super) fn check_sla(&self, tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<usize> {
        let warn = self.config.warn_percent;
        let mut escalated = 0;
        for mut ticket in tickets::load_open(tx)? {
            if ticket.sla_escalated || ticket.state.is_settled() {
                continue;
            }
            let opened = ticket.opened_ms;
            let mut breach: Option<(&str, i64)> = None;
            if let Some(due) = ticket.ack_due_ms.filter(|_| ticket.acked_ms.is_none()) {
                if schedule::near_breach(opened, due, now_ms, warn) {
                    breach = Some(("acknowledge", due));
                }
            }
            let on_site = matches!(ticket.state, TicketState::InProgress);
            if let Some(due) = ticket.onsite_due_ms.filter(|_| !on_site) {
                if breach.is_none() && schedule::near_breach(opened, due, now_ms, warn) {
                    breach = Some(("on_site", due));
                }
            }
            if let Some(due) = ticket.resolve_due_ms {
                if breach.is_none() && schedule::near_breach(opened, due, now_ms, warn) {
                    breach = Some(("resolve", due));
                }
            }
            let Some((which, due)) = breach else {
                continue;
            };
            ticket.sla_escalated = true;
            let reason = format!(
                "{which} time of the {} SLA ends at {}; {warn}% of it has passed",
                ticket.urgency,
                tickets::local_text(self.config.time_zone, due)
            );
            if ticket.state == TicketState::Escalated {
                tickets::update(tx, &ticket)?;
                self.queue_escalation(tx, &ticket, "sla", &reason, now_ms, true)?;
            } else {
                self.escalate(tx, &mut ticket, "sla", &reason, now_ms, true)?;
            }
            escalated += 1;
        }
        Ok(escalated)
    }

    /// Deletes what outlived its retention, at most once an hour: closed and cancelled
    /// tickets with their history, sources, escalations and updates after
    /// `ticket_retention_days`, and published updates after `update_retention_days`. Audit
    /// rows are never deleted, because the hash chain needs every row and the table's
    /// triggers reject deletes.
    pub(super) fn retain(&self, tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<()> {
        let last: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [RETENTION_KEY],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if now_ms - last < 3_600_000 && now_ms >= last {
            return Ok(());
        }

        let ticket_cutoff = now_ms - i64::from(self.config.ticket_retention_days) * 86_400_000;
        let update_cutoff = now_ms - i64::from(self.config.update_retention_days) * 86_400_000;
        let old =
            "SELECT id FROM tickets WHERE state IN ('closed', 'cancelled') AND closed_ms < ?1";
        for table in ["ticket_history", "escalations"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE ticket IN ({old})"),
                [ticket_cutoff],
            )?;
        }
        tx.execute(
            &format!("DELETE FROM tenant_updates WHERE ticket IN ({old})"),
            [ticket_cutoff],
        )?;
        // A source row keeps its message from being dispatched again, so it stays until
        // intake's retention has removed the message itself.
        tx.execute(
            &format!(
                "UPDATE ticket_sources SET ticket = NULL, outcome = 'expired'
                 WHERE ticket IN ({old})"
            ),
            [ticket_cutoff],
        )?;
        tx.execute(
            "DELETE FROM ticket_sources WHERE ticket IS NULL AND (kind = 'request' OR NOT EXISTS
                 (SELECT 1 FROM messages m WHERE m.id = ticket_sources.source_id))",
            [],
        )?;
        tx.execute(
            "DELETE FROM tickets WHERE state IN ('closed', 'cancelled') AND closed_ms < ?1",
            [ticket_cutoff],
        )?;
        tx.execute(
            "DELETE FROM tenant_updates WHERE published_ms IS NOT NULL AND published_ms < ?1",
            [update_cutoff],
        )?;
        tx.execute(
            "DELETE FROM office_changes WHERE applied_ms < ?1",
            [ticket_cutoff],
        )?;

        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![RETENTION_KEY, now_ms],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::{Decision, Dispatcher};
    use crate::dispatch::state::TicketState;
    use crate::dispatch::tickets::{self, Ticket};

    /// Builds a dispatcher from the shipped vendor, SLA, escalation, template and building
    /// files.
    fn shipped_dispatcher(dir: &std::path::Path) -> Dispatcher {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config");
        let text = format!(
            "[gateway]\nid = \"gw\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"gw\"\n\n\
             [[mqtt.subscription]]\nfilter = \"sensors/+/+\"\nformat = \"json\"\n\
             value_path = \"v\"\n\n[dispatch]\nbuilding = \"{}\"\nvendors = \"{}\"\n\
             sla = \"{}\"\nescalation = \"{}\"\ntemplates = \"{}\"\n",
            shipped.join("building.toml").display(),
            shipped.join("vendors.toml").display(),
            shipped.join("sla.toml").display(),
            shipped.join("escalation.toml").display(),
            shipped.join("templates").display(),
        );
        let config = crate::config::load_text(&dir.join("gateway.toml"), text)
            .unwrap_or_else(|diags| panic!("{diags}"));
        Dispatcher::new("gw", std::sync::Arc::new(config.dispatch.unwrap()))
    }

    fn count(tx: &rusqlite::Transaction<'_>, sql: &str) -> i64 {
        tx.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    fn load(tx: &rusqlite::Transaction<'_>, id: &str) -> Ticket {
        tickets::load(tx, id).unwrap().unwrap()
    }

    #[test]
    fn sla_escalated_ticket_stays_unbooked() {
        let dir = tempfile::tempdir().unwrap();
        let dispatcher = shipped_dispatcher(dir.path());
        let mut conn = crate::store::connect(&dir.path().join("store.db"), true).unwrap();
        let tx = conn.transaction().unwrap();
        // Wednesday 3 June 2026, 10:00 in Copenhagen.
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 6, 3, 8, 0, 0)
            .unwrap()
            .timestamp_millis();
        let decision = Decision {
            category: "plumbing".into(),
            fault: "leaking_tap".into(),
            urgency: "routine".into(),
            confidence: 0.9,
            needs_human: false,
            handover: None,
            handover_reason: None,
            language: "en".into(),
            summary: "plumbing (maintenance_request) reported by a tenant".into(),
        };
        let mut ticket = dispatcher
            .new_ticket(&tx, &decision, Some("2.th".into()), None, now)
            .unwrap();
        tickets::insert(&tx, &ticket).unwrap();
        dispatcher
            .open_and_dispatch(&tx, &mut ticket, &decision, now)
            .unwrap();
        assert_eq!(ticket.state, TicketState::Scheduled);

        // After 20 of the 24 hours to acknowledge a routine ticket, the SLA escalates it.
        let later = now + 20 * 3_600_000;
        assert_eq!(dispatcher.check_sla(&tx, later).unwrap(), 1);
        let escalated = load(&tx, &ticket.id);
        assert_eq!(escalated.state, TicketState::Escalated);
        assert!(escalated.automation_stopped);
        let bookings = "SELECT count(*) FROM tenant_updates WHERE template = 'booked'";
        let booked_before = count(&tx, bookings);

        // Automation does not book it again.
        let mut again = escalated.clone();
        dispatcher
            .dispatch(&tx, &mut again, later + 60_000)
            .unwrap();
        assert_eq!(load(&tx, &ticket.id), escalated);
        assert_eq!(count(&tx, bookings), booked_before);
        let ctx = dispatcher.ctx();
        let mut ticket = escalated.clone();
        let moved = tickets::transition(
            &ctx,
            &tx,
            &mut ticket,
            TicketState::Dispatched,
            "rule:vendor_choice",
            "vendor Nordvarme VVS",
            later + 60_000,
        )
        .unwrap();
        assert!(!moved, "a rule booked an escalated ticket");
        assert_eq!(load(&tx, &ticket.id), escalated);

        // A human's office change still moves it on.
        let moved = tickets::transition(
            &ctx,
            &tx,
            &mut ticket,
            TicketState::Dispatched,
            "office:ida",
            "assigned",
            later + 120_000,
        )
        .unwrap();
        assert!(moved);
        assert_eq!(load(&tx, &ticket.id).state, TicketState::Dispatched);
    }
}
