//! The intake of an event batch as both backends run it: the checks that need no database,
//! then, from what the database reports, the rows to write and the batch's outcome.
//!
//! A backend runs a [`Batch`] in one transaction, in these steps:
//!
//! 1. [`Batch::check`] decodes the events.
//! 2. The backend looks up the stored buildings of [`Batch::tickets`] and passes them to
//!    [`Batch::reject_foreign`].
//! 3. It inserts [`Batch::event_rows`], skipping event ids already stored, and passes the ids
//!    it inserted to [`Batch::writes`].
//! 4. It writes the rows that [`Batch::writes`] returns, and [`Batch::finish`] builds the
//!    outcome.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::protocol::{AuditEntry, Envelope, EventKind, TenantUpdate, TicketEvent, Transition};

use super::sql::json_text;
use super::{BatchOutcome, GatewayIdentity, Rejection, RelayEntry};

/// An event whose payload decoded into the shape its kind promises.
enum Decoded {
    Ticket(Box<TicketEvent>),
    TenantUpdate(TenantUpdate),
    Anomaly,
    Audit(AuditEntry),
    Telemetry,
}

impl Decoded {
    /// The ticket whose building must be the sender's, if the event concerns one.
    fn ticket(&self, envelope: &Envelope) -> Option<String> {
        match self {
            Decoded::Ticket(event) => Some(event.ticket.id.clone()),
            Decoded::TenantUpdate(update) => Some(update.ticket.clone()),
            Decoded::Audit(entry) => Some(entry.ticket.clone()),
            Decoded::Anomaly | Decoded::Telemetry => envelope.ticket.clone(),
        }
    }
}

/// Decodes an envelope's payload and checks what needs no stored state: the envelope's
/// gateway is the token's, every ticket it names carries the gateway's prefix, and a ticket
/// snapshot names the token's building.
fn decode(identity: &GatewayIdentity, envelope: &Envelope) -> Result<Decoded, Rejection> {
    let reject = |status: u16, error: String| Rejection {
        event_id: envelope.event_id,
        status,
        error,
    };
    if envelope.gateway != identity.gateway {
        return Err(reject(
            403,
            format!(
                "the event names gateway {:?}, but the token belongs to gateway {:?}",
                envelope.gateway, identity.gateway
            ),
        ));
    }
    let malformed = |err: serde_json::Error| {
        reject(
            400,
            format!(
                "invalid {} payload: {err}; see docs/sync-protocol.md for its fields",
                envelope.kind.as_str()
            ),
        )
    };
    let decoded = match envelope.kind {
        EventKind::Ticket => Decoded::Ticket(Box::new(
            serde_json::from_value(envelope.payload.clone()).map_err(malformed)?,
        )),
        EventKind::TenantUpdate => Decoded::TenantUpdate(
            serde_json::from_value(envelope.payload.clone()).map_err(malformed)?,
        ),
        EventKind::Audit => {
            Decoded::Audit(serde_json::from_value(envelope.payload.clone()).map_err(malformed)?)
        }
        EventKind::Anomaly => {
            if !envelope.payload.is_object() {
                return Err(reject(
                    400,
                    "invalid anomaly payload: not a JSON object".into(),
                ));
            }
            Decoded::Anomaly
        }
        EventKind::Telemetry => {
            if !envelope.payload.is_object() {
                return Err(reject(
                    400,
                    "invalid telemetry payload: not a JSON object".into(),
                ));
            }
            Decoded::Telemetry
        }
    };
    // Ticket ids are the gateway's id, a dash and its own number, so an id under another
    // gateway's prefix is never this gateway's to write, even before that ticket exists.
    let prefix = format!("{}-", identity.gateway);
    let tickets = decoded
        .ticket(envelope)
        .into_iter()
        .chain(envelope.ticket.clone());
    for ticket in tickets {
        if !ticket.starts_with(&prefix) {
            return Err(reject(
                403,
                format!(
                    "ticket {ticket:?} is not gateway {:?}'s: its tickets are named {prefix}NUMBER",
                    identity.gateway
                ),
            ));
        }
    }
    if let Decoded::Ticket(event) = &decoded {
        if event.ticket.building != identity.building {
            return Err(reject(
                403,
                format!(
                    "ticket {} belongs to building {:?}; this token may write only building {:?}",
                    event.ticket.id, event.ticket.building, identity.building
                ),
            ));
        }
        if event.transition.seq < 1 {
            return Err(reject(
                400,
                format!(
                    "ticket {} transition seq is {}; seqs start at 1",
                    event.ticket.id, event.transition.seq
                ),
            ));
        }
    }
    Ok(decoded)
}

/// Builds the 403 rejection of an event about a ticket stored under another building.
fn foreign_ticket(
    identity: &GatewayIdentity,
    envelope: &Envelope,
    ticket: &str,
    building: &str,
) -> Rejection {
    Rejection {
        event_id: envelope.event_id,
        status: 403,
        error: format!(
            "ticket {ticket} belongs to building {building:?}; this token may write only \
             building {:?}",
            identity.building
        ),
    }
}

/// Whether a ticket event should also hand a vendor dispatch to the relay: the transition
/// entered `dispatched` and the snapshot names a vendor.
fn vendor_dispatch(event: &TicketEvent) -> Option<String> {
    if event.transition.to == "dispatched" {
        event.ticket.vendor.clone()
    } else {
        None
    }
}

/// The state of one event of a batch in the steps of the intake.
enum Verdict {
    /// Passed every check so far, and is stored unless its id is stored already.
    Candidate(Decoded),
    Rejected(Rejection),
    /// An earlier event of the same batch has the same id.
    Repeat,
    /// Stored by this batch.
    Stored,
    /// Stored by an earlier request.
    Duplicate,
}

/// One row of the `events` table.
pub(crate) struct EventInsert {
    pub event_id: Uuid,
    pub gateway: String,
    pub seq: i64,
    pub kind: &'static str,
    pub ticket: Option<String>,
    pub ts_ms: i64,
    pub payload: String,
    pub received_ms: i64,
}

/// One row of `ticket_history`.
pub(crate) struct HistoryInsert {
    pub ticket: String,
    pub transition: Transition,
}

/// A ticket snapshot to upsert into `tickets` with the conflict clause
/// [`super::sql::TICKET_UPSERT_CONFLICT`].
pub(crate) struct TicketUpsert {
    pub id: String,
    pub building: String,
    pub gateway: String,
    pub seq: i64,
    pub state: String,
    pub urgency: String,
    pub needs_human: bool,
    pub opened_ms: i64,
    pub updated_ms: i64,
    /// The snapshot as JSON text.
    pub snapshot: String,
}

/// One row of `anomalies` or `telemetry`. The `telemetry` table has no ticket column.
pub(crate) struct SummaryInsert {
    pub event_id: Uuid,
    pub gateway: String,
    pub building: String,
    pub ts_ms: i64,
    pub ticket: Option<String>,
    pub payload: String,
}

/// A relay entry before the database gives it an id.
pub(crate) struct RelayInsert {
    pub kind: &'static str,
    pub building: String,
    pub ticket: String,
    pub subject: String,
    pub payload: String,
    pub created_ms: i64,
}

impl RelayInsert {
    pub(crate) fn with_id(self, id: i64) -> RelayEntry {
        RelayEntry {
            id,
            kind: self.kind.to_string(),
            building: self.building,
            ticket: self.ticket,
            subject: self.subject,
            payload: self.payload,
            created_ms: self.created_ms,
        }
    }
}

/// The rows that the events stored by a batch add beside the `events` table.
///
/// Rows of one table are sorted by their key, so that two transactions that write the same
/// rows take their locks in the same order. `relay` stays in batch order, which is the order
/// of its ids.
#[derive(Default)]
pub(crate) struct Writes {
    pub history: Vec<HistoryInsert>,
    /// At most one snapshot per ticket: the first one with the batch's highest transition seq
    /// for that ticket, which is the one that stays when the snapshots are upserted in batch
    /// order.
    pub tickets: Vec<TicketUpsert>,
    pub audit: Vec<AuditEntry>,
    pub anomalies: Vec<SummaryInsert>,
    pub telemetry: Vec<SummaryInsert>,
    pub relay: Vec<RelayInsert>,
}

impl Writes {
    /// Sorts the rows of each table by their key, and drops history and audit rows whose key
    /// an earlier row of the batch has.
    fn sort_and_dedup(&mut self) {
        // Stable sorts keep rows of equal keys in batch order, so each dedup keeps the first
        // of them, as an insert that ignores conflicts would.
        self.history
            .sort_by(|a, b| (&a.ticket, a.transition.seq).cmp(&(&b.ticket, b.transition.seq)));
        self.history.dedup_by(|next, kept| {
            next.ticket == kept.ticket && next.transition.seq == kept.transition.seq
        });
        self.tickets.sort_by(|a, b| a.id.cmp(&b.id));
        self.audit
            .sort_by(|a, b| (&a.ticket, &a.hash).cmp(&(&b.ticket, &b.hash)));
        self.audit
            .dedup_by(|next, kept| next.ticket == kept.ticket && next.hash == kept.hash);
        self.anomalies.sort_by_key(|row| row.event_id);
        self.telemetry.sort_by_key(|row| row.event_id);
    }
}

/// A batch of events on its way into the store.
pub(crate) struct Batch {
    identity: GatewayIdentity,
    now_ms: i64,
    events: Vec<Envelope>,
    verdicts: Vec<Verdict>,
}

impl Batch {
    /// Decodes every event and applies the checks of [`decode`].
    pub(crate) fn check(identity: &GatewayIdentity, events: Vec<Envelope>, now_ms: i64) -> Batch {
        let verdicts = events
            .iter()
            .map(|envelope| match decode(identity, envelope) {
                Ok(decoded) => Verdict::Candidate(decoded),
                Err(rejection) => Verdict::Rejected(rejection),
            })
            .collect();
        Batch {
            identity: identity.clone(),
            now_ms,
            events,
            verdicts,
        }
    }

    /// Lists, sorted and once each, the tickets of the events still in the running, whose
    /// stored building [`Batch::reject_foreign`] needs.
    pub(crate) fn tickets(&self) -> Vec<String> {
        let mut tickets: Vec<String> = self
            .candidates()
            .filter_map(|(envelope, decoded)| decoded.ticket(envelope))
            .collect();
        tickets.sort();
        tickets.dedup();
        tickets
    }

    /// Rejects with 403 every event about a ticket that `stored_buildings` (ticket id to
    /// building) places in another building than the token's.
    pub(crate) fn reject_foreign(&mut self, stored_buildings: &HashMap<String, String>) {
        for (envelope, verdict) in self.events.iter().zip(self.verdicts.iter_mut()) {
            let Verdict::Candidate(decoded) = verdict else {
                continue;
            };
            let Some(ticket) = decoded.ticket(envelope) else {
                continue;
            };
            match stored_buildings.get(&ticket) {
                Some(building) if *building != self.identity.building => {
                    *verdict = Verdict::Rejected(foreign_ticket(
                        &self.identity,
                        envelope,
                        &ticket,
                        building,
                    ));
                }
                _ => {}
            }
        }
    }

    /// Returns the `events` rows of the events still in the running, sorted by event id. An
    /// event whose id an earlier event of the batch has is left out and acknowledged as a
    /// duplicate.
    pub(crate) fn event_rows(&mut self) -> Vec<EventInsert> {
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        for (envelope, verdict) in self.events.iter().zip(self.verdicts.iter_mut()) {
            if !matches!(verdict, Verdict::Candidate(_)) {
                continue;
            }
            if !seen.insert(envelope.event_id) {
                *verdict = Verdict::Repeat;
                continue;
            }
            rows.push(EventInsert {
                event_id: envelope.event_id,
                gateway: envelope.gateway.clone(),
                seq: envelope.seq,
                kind: envelope.kind.as_str(),
                ticket: envelope.ticket.clone(),
                ts_ms: envelope.ts_ms,
                payload: envelope.payload.to_string(),
                received_ms: self.now_ms,
            });
        }
        rows.sort_by_key(|row| row.event_id);
        rows
    }

    /// Returns how many relay entries the events still in the running add at most, so that a
    /// backend may reserve their ids beforehand.
    pub(crate) fn max_relay_entries(&self) -> usize {
        self.candidates()
            .filter(|(_, decoded)| match decoded {
                Decoded::Ticket(event) => vendor_dispatch(event).is_some(),
                Decoded::TenantUpdate(_) => true,
                _ => false,
            })
            .count()
    }

    /// Marks the events whose ids are in `inserted` as stored and the other ones in the
    /// running as duplicates, and returns the rows that the stored ones add.
    pub(crate) fn writes(&mut self, inserted: &HashSet<Uuid>) -> Writes {
        let mut writes = Writes::default();
        let mut latest: HashMap<String, usize> = HashMap::new();
        for (envelope, verdict) in self.events.iter().zip(self.verdicts.iter_mut()) {
            let Verdict::Candidate(decoded) = verdict else {
                continue;
            };
            if !inserted.contains(&envelope.event_id) {
                *verdict = Verdict::Duplicate;
                continue;
            }
            add_rows(
                &mut writes,
                &mut latest,
                &self.identity,
                envelope,
                decoded,
                self.now_ms,
            );
            *verdict = Verdict::Stored;
        }
        writes.sort_and_dedup();
        writes
    }

    /// Builds the outcome, with the relay entries that the backend stored for
    /// [`Writes::relay`], in the same order.
    pub(crate) fn finish(self, relayed: Vec<RelayEntry>) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            relayed,
            ..BatchOutcome::default()
        };
        for (envelope, verdict) in self.events.iter().zip(self.verdicts) {
            match verdict {
                Verdict::Rejected(rejection) => outcome.rejected.push(rejection),
                Verdict::Stored => {
                    outcome.acked.push(envelope.event_id);
                    outcome.stored_kinds.push(envelope.kind);
                }
                Verdict::Duplicate | Verdict::Repeat => {
                    outcome.acked.push(envelope.event_id);
                    outcome.duplicates += 1;
                }
                Verdict::Candidate(_) => {
                    unreachable!("Batch::writes settles every candidate before finish")
                }
            }
        }
        outcome
    }

    fn candidates(&self) -> impl Iterator<Item = (&Envelope, &Decoded)> {
        self.events
            .iter()
            .zip(&self.verdicts)
            .filter_map(|(envelope, verdict)| match verdict {
                Verdict::Candidate(decoded) => Some((envelope, decoded)),
                _ => None,
            })
    }
}

/// Adds the rows of one stored event to `writes`. `latest` maps a ticket id to the index in
/// `writes.tickets` of its snapshot so far.
fn add_rows(
    writes: &mut Writes,
    latest: &mut HashMap<String, usize>,
    identity: &GatewayIdentity,
    envelope: &Envelope,
    decoded: &Decoded,
    now_ms: i64,
) {
    match decoded {
        Decoded::Ticket(event) => {
            let snapshot = &event.ticket;
            writes.history.push(HistoryInsert {
                ticket: snapshot.id.clone(),
                transition: event.transition.clone(),
            });
            let upsert = TicketUpsert {
                id: snapshot.id.clone(),
                building: snapshot.building.clone(),
                gateway: envelope.gateway.clone(),
                seq: event.transition.seq,
                state: snapshot.state.clone(),
                urgency: snapshot.urgency.clone(),
                needs_human: snapshot.needs_human,
                opened_ms: snapshot.opened_ms,
                updated_ms: snapshot.updated_ms,
                snapshot: json_text(snapshot),
            };
            match latest.get(&snapshot.id) {
                Some(&index) if writes.tickets[index].seq >= upsert.seq => {}
                Some(&index) => writes.tickets[index] = upsert,
                None => {
                    latest.insert(snapshot.id.clone(), writes.tickets.len());
                    writes.tickets.push(upsert);
                }
            }
            if let Some(vendor) = vendor_dispatch(event) {
                writes.relay.push(RelayInsert {
                    kind: "vendor_dispatch",
                    building: identity.building.clone(),
                    ticket: snapshot.id.clone(),
                    subject: vendor,
                    payload: json_text(snapshot),
                    created_ms: now_ms,
                });
            }
        }
        Decoded::TenantUpdate(update) => writes.relay.push(RelayInsert {
            kind: "tenant_update",
            building: identity.building.clone(),
            ticket: update.ticket.clone(),
            subject: update.template.clone(),
            payload: json_text(update),
            created_ms: now_ms,
        }),
        Decoded::Audit(entry) => writes.audit.push(entry.clone()),
        Decoded::Anomaly => writes.anomalies.push(summary(identity, envelope)),
        Decoded::Telemetry => writes.telemetry.push(summary(identity, envelope)),
    }
}

fn summary(identity: &GatewayIdentity, envelope: &Envelope) -> SummaryInsert {
    SummaryInsert {
        event_id: envelope.event_id,
        gateway: envelope.gateway.clone(),
        building: identity.building.clone(),
        ts_ms: envelope.ts_ms,
        ticket: envelope.ticket.clone(),
        payload: envelope.payload.to_string(),
    }
}
