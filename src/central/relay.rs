//! Relay channels: how the office passes tenant updates and vendor dispatches on.
//!
//! Every entry is first stored in the `relay` table in the same transaction as the event that
//! carried it. The log channel, the default and the only one built, then writes one log line
//! per entry with its ids and template or vendor, and never the text or the unit, which may
//! identify a tenant.
//!
//! TODO: an SMTP channel (lettre) is not built; entries stay in the `relay` table for another
//! process to send.

use crate::central::metrics::CentralMetrics;
use crate::central::store::RelayEntry;

/// Hands stored relay entries to the log channel.
pub fn relay(entries: &[RelayEntry], metrics: &CentralMetrics) {
    for entry in entries {
        tracing::info!(
            relay_id = entry.id,
            kind = %entry.kind,
            building = %entry.building,
            ticket = %entry.ticket,
            subject = %entry.subject,
            channel = "log",
            "relayed"
        );
        metrics
            .relayed
            .get_or_create(&crate::central::metrics::KindLabel {
                kind: entry.kind.clone(),
            })
            .inc();
    }
}
