//! Wire types of sync protocol v1, shared by the gateway's sync task, the dispatch code that
//! produces and applies them, and the central office that receives them.
//!
//! A gateway pushes [`Envelope`]s and pulls [`OfficeChange`]s. Times are milliseconds since
//! the Unix epoch, UTC.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// One event that a gateway sends, as stored in its outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7, assigned when the event enters the outbox; the idempotency key.
    pub event_id: Uuid,
    pub gateway: String,
    /// Per-gateway sequence, increasing in the order events were produced.
    pub seq: i64,
    pub kind: EventKind,
    /// The ticket the event belongs to, which orders delivery per ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    pub ts_ms: i64,
    pub payload: serde_json::Value,
}

/// The kind of an event, which fixes the shape of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A [`TicketEvent`]: the ticket as it is after one transition.
    Ticket,
    /// A [`TenantUpdate`] for the office to relay.
    TenantUpdate,
    /// A summary of an anomaly event (asset, fault, score, sensors, window).
    Anomaly,
    /// An [`AuditEntry`] of a decision about a ticket.
    Audit,
    /// Counts and summaries of readings; the first to go when the outbox is full.
    Telemetry,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Ticket => "ticket",
            EventKind::TenantUpdate => "tenant_update",
            EventKind::Anomaly => "anomaly",
            EventKind::Audit => "audit",
            EventKind::Telemetry => "telemetry",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        Some(match text {
            "ticket" => EventKind::Ticket,
            "tenant_update" => EventKind::TenantUpdate,
            "anomaly" => EventKind::Anomaly,
            "audit" => EventKind::Audit,
            "telemetry" => EventKind::Telemetry,
            _ => return None,
        })
    }
}

/// The payload of an [`EventKind::Ticket`] event: the ticket after a transition, and the
/// transition. Personal data is redacted from every text field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub ticket: TicketSnapshot,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSnapshot {
    /// Unique across gateways: the gateway id, a dash and the gateway's ticket number.
    pub id: String,
    pub building: String,
    /// new, triaged, dispatched, scheduled, in_progress, resolved, closed, escalated or
    /// cancelled.
    pub state: String,
    /// The trade the job needs, as triage's category.
    pub category: String,
    /// emergency, urgent, normal or low.
    pub urgency: String,
    pub needs_human: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Redacted summary of what is wrong.
    pub summary: String,
    /// The sources of the ticket: message and request ids, each with its kind.
    pub sources: Vec<TicketSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_start_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_end_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_due_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onsite_due_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_due_ms: Option<i64>,
    pub opened_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSource {
    /// `message` or `request`.
    pub kind: String,
    pub id: String,
}

/// One entry of a ticket's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Per-ticket sequence number, starting at 1; orders the history whatever the clock did.
    pub seq: i64,
    pub ts_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// `rule:NAME`, `model:VERSION`, `human:NAME`, `vendor:NAME` or `office:USER`.
    pub actor: String,
    pub reason: String,
}

/// The payload of an [`EventKind::TenantUpdate`] event: a message to a tenant that the office
/// relays through its channels (SMS, e-mail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantUpdate {
    pub ticket: String,
    pub unit: String,
    /// `da` or `en`.
    pub language: String,
    /// The template's name, such as `received` or `booked`.
    pub template: String,
    pub text: String,
    pub ts_ms: i64,
}

/// The payload of an [`EventKind::Audit`] event: one row of the gateway's hash-chained audit
/// log that concerns a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub ticket: String,
    pub ts_ms: i64,
    pub actor: String,
    pub action: String,
    /// Inputs, rule or model version and outcome.
    pub detail: serde_json::Value,
    /// The row's hash in the gateway's chain, hex.
    pub hash: String,
}

/// What a gateway pulls: one decision of the office or report of a vendor, in the office's
/// order. `id` is the pull cursor: the gateway requests the changes after the last id it applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficeChange {
    pub id: i64,
    pub ts_ms: i64,
    /// `office:USER` or `vendor:NAME`.
    pub actor: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    Ticket {
        ticket: String,
        action: TicketAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vendor: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_start_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_end_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Adds or replaces a tenant directory entry.
    TenantUpsert(TenantRecord),
    /// Removes a unit's directory entry.
    TenantRemove { unit: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketAction {
    Acknowledge,
    Assign,
    Reschedule,
    OnTheWay,
    Done,
    Close,
    Cancel,
}

/// A unit's entry in the tenant directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub unit: String,
    /// `da` or `en`.
    pub language: String,
    /// Senders that map to this unit: phone numbers, e-mail addresses, MQTT user names.
    pub contacts: Vec<Contact>,
    /// Local time of day, `HH:MM`, when only emergencies may be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_until: Option<String>,
    /// Whether the tenant agreed to receive updates at all.
    pub consent: bool,
    /// Channels the tenant opted out of.
    #[serde(default)]
    pub opt_outs: Vec<String>,
    /// Whether a vendor may enter when nobody is home.
    #[serde(default)]
    pub permission_to_enter: bool,
    /// Local times when someone is home to let a vendor in, such as `Mon-Fri 16:00-20:00`
    /// or `Sat 09:00-12:00`. Empty means any time within the vendor's hours.
    #[serde(default)]
    pub availability: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// `sms`, `email` or `mqtt`.
    pub channel: String,
    pub address: String,
}

/// Sent by a gateway at every sync and on its own timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub gateway: String,
    pub version: String,
    pub protocol: u32,
    /// SHA-256 of the gateway's config file, hex.
    pub config_hash: String,
    pub ts_ms: i64,
    /// `ok`, `degraded` or `failing`, with the reasons.
    pub health: String,
    #[serde(default)]
    pub problems: Vec<String>,
    pub outbox_events: i64,
}
