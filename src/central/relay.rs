//! Relay channels: how the office passes tenant updates and vendor dispatches on.
//!
//! Every entry is first stored in the `relay` table in the same transaction as the event that
//! carried it. The log channel, always on, then writes one log line per entry with its ids and
//! template or vendor, and never the text or the unit, which may identify a tenant.
//!
//! With `--smtp-url`, the SMTP channel in [`crate::central::smtp`] also mails each entry. It
//! reads the `relay` table on its own, so an entry stored while the mail server is away is
//! sent once the server is back.

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
