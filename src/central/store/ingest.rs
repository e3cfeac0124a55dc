//! Checks of an incoming event that do not need the database, shared by both backends.

use crate::protocol::{AuditEntry, Envelope, EventKind, TenantUpdate, TicketEvent};

use super::{GatewayIdentity, Rejection};

/// An event whose payload decoded into the shape its kind promises.
pub(crate) enum Decoded {
    Ticket(Box<TicketEvent>),
    TenantUpdate(TenantUpdate),
    Anomaly,
    Audit(AuditEntry),
    Telemetry,
}

impl Decoded {
    /// The ticket whose building must be the sender's, if the event concerns one.
    pub(crate) fn ticket(&self, envelope: &Envelope) -> Option<String> {
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
pub(crate) fn decode(
    identity: &GatewayIdentity,
    envelope: &Envelope,
) -> Result<Decoded, Rejection> {
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
pub(crate) fn foreign_ticket(
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
pub(crate) fn vendor_dispatch(event: &TicketEvent) -> Option<String> {
    if event.transition.to == "dispatched" {
        event.ticket.vendor.clone()
    } else {
        None
    }
}
