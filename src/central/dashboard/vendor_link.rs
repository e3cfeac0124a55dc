//! Signed vendor status links: a vendor reports "on the way" or "done" for a ticket without an
//! account. The link carries the ticket, the vendor, the action and an expiry time, and an
//! HMAC-SHA256 over all four under the dashboard's secret.

use std::fmt;

use super::auth::{constant_time_eq, hex, hmac_sha256};
use crate::protocol::TicketAction;

/// The reports a vendor can make through a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorAction {
    OnTheWay,
    Done,
}

impl VendorAction {
    pub const ALL: [VendorAction; 2] = [VendorAction::OnTheWay, VendorAction::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            VendorAction::OnTheWay => "on_the_way",
            VendorAction::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<VendorAction> {
        match text {
            "on_the_way" => Some(VendorAction::OnTheWay),
            "done" => Some(VendorAction::Done),
            _ => None,
        }
    }

    /// Returns the words on the vendor's button.
    pub fn label(self) -> &'static str {
        match self {
            VendorAction::OnTheWay => "On the way",
            VendorAction::Done => "Job done",
        }
    }

    pub fn ticket_action(self) -> TicketAction {
        match self {
            VendorAction::OnTheWay => TicketAction::OnTheWay,
            VendorAction::Done => TicketAction::Done,
        }
    }
}

/// The fields of a vendor status link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorLink {
    pub ticket: String,
    pub vendor: String,
    pub action: VendorAction,
    /// Milliseconds since the Unix epoch after which the link is rejected.
    pub expires_ms: i64,
}

/// Reason a vendor status link was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is incomplete: parameter {0} is missing")]
    Missing(&'static str),
    #[error("the link is invalid: {0}")]
    Invalid(String),
    #[error("the link's signature does not match; it was changed or not issued by this office")]
    BadSignature,
    #[error("the link expired at {expired}; ask the office for a new one")]
    Expired { expired: String },
}

impl VendorLink {
    /// Returns the link's signature, hex-encoded.
    pub fn sign(&self, secret: &[u8]) -> String {
        let expires = self.expires_ms.to_string();
        hex(&hmac_sha256(
            secret,
            &[
                b"vendor-link-v1",
                self.ticket.as_bytes(),
                self.vendor.as_bytes(),
                self.action.as_str().as_bytes(),
                expires.as_bytes(),
            ],
        ))
    }

    /// Returns the query string of the link, with the signature.
    pub fn query(&self, secret: &[u8]) -> String {
        let pairs = [
            ("ticket", self.ticket.as_str()),
            ("vendor", self.vendor.as_str()),
            ("action", self.action.as_str()),
            ("expires", &self.expires_ms.to_string()),
            ("sig", &self.sign(secret)),
        ];
        serde_urlencoded::to_string(pairs).expect("string pairs always encode")
    }

    /// Checks the parameters of a link and returns its fields when the signature matches and
    /// the link has not expired at `now_ms`.
    pub fn verify(
        params: &LinkParams,
        secret: &[u8],
        now_ms: i64,
    ) -> Result<VendorLink, LinkError> {
        let ticket = params.ticket.clone().ok_or(LinkError::Missing("ticket"))?;
        let vendor = params.vendor.clone().ok_or(LinkError::Missing("vendor"))?;
        let action_text = params
            .action
            .as_deref()
            .ok_or(LinkError::Missing("action"))?;
        let expires_text = params
            .expires
            .as_deref()
            .ok_or(LinkError::Missing("expires"))?;
        let signature = params.sig.as_deref().ok_or(LinkError::Missing("sig"))?;

        let action = VendorAction::parse(action_text)
            .ok_or_else(|| LinkError::Invalid(format!("unknown action {action_text:?}")))?;
        let expires_ms: i64 = expires_text
            .parse()
            .map_err(|_| LinkError::Invalid(format!("expiry {expires_text:?} is not a number")))?;
        let link = VendorLink {
            ticket,
            vendor,
            action,
            expires_ms,
        };

        // The signature is checked before the expiry, so that an edited expiry reads as
        // tampering, not as an expired link.
        if !constant_time_eq(link.sign(secret).as_bytes(), signature.as_bytes()) {
            return Err(LinkError::BadSignature);
        }
        if now_ms > link.expires_ms {
            return Err(LinkError::Expired {
                expired: super::view::format_time(link.expires_ms),
            });
        }
        Ok(link)
    }
}

impl fmt::Display for VendorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query parameters of a vendor status link, as received.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LinkParams {
    pub ticket: Option<String>,
    pub vendor: Option<String>,
    pub action: Option<String>,
    pub expires: Option<String>,
    pub sig: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"office secret";

    fn link() -> VendorLink {
        VendorLink {
            ticket: "B1-000007".into(),
            vendor: "Aqua & Co".into(),
            action: VendorAction::OnTheWay,
            expires_ms: 2_000_000,
        }
    }

    fn params(query: &str) -> LinkParams {
        serde_urlencoded::from_str(query).unwrap()
    }

    #[test]
    fn signed_link_verifies() {
        let query = link().query(SECRET);
        assert_eq!(
            VendorLink::verify(&params(&query), SECRET, 1_000_000),
            Ok(link())
        );
    }

    #[test]
    fn link_valid_until_expiry() {
        let query = link().query(SECRET);
        assert!(VendorLink::verify(&params(&query), SECRET, 2_000_000).is_ok());
        let late = VendorLink::verify(&params(&query), SECRET, 2_000_001);
        assert!(matches!(late, Err(LinkError::Expired { .. })), "{late:?}");
    }

    #[test]
    fn tampered_fields_rejected() {
        let query = link().query(SECRET);
        let cases = [
            query.replace("B1-000007", "B1-000008"),
            query.replace("Aqua", "Other"),
            query.replace("on_the_way", "done"),
            query.replace("2000000", "9000000"),
        ];
        for tampered in cases {
            let outcome = VendorLink::verify(&params(&tampered), SECRET, 1_000_000);
            assert_eq!(outcome, Err(LinkError::BadSignature), "{tampered}");
        }
    }

    #[test]
    fn other_secret_rejected() {
        let query = link().query(b"another office");
        let outcome = VendorLink::verify(&params(&query), SECRET, 1_000_000);
        assert_eq!(outcome, Err(LinkError::BadSignature));
    }

    #[test]
    fn missing_and_invalid_parameters() {
        let query = link().query(SECRET);
        let without_sig: String = query.split("&sig=").next().unwrap().to_string();
        let outcome = VendorLink::verify(&params(&without_sig), SECRET, 0);
        assert_eq!(outcome, Err(LinkError::Missing("sig")));
        let bad_action = query.replace("on_the_way", "paid");
        let outcome = VendorLink::verify(&params(&bad_action), SECRET, 0);
        assert!(matches!(outcome, Err(LinkError::Invalid(_))), "{outcome:?}");
        let bad_expiry = query.replace("2000000", "soon");
        let outcome = VendorLink::verify(&params(&bad_expiry), SECRET, 0);
        assert!(matches!(outcome, Err(LinkError::Invalid(_))), "{outcome:?}");
    }

    #[test]
    fn query_escapes_vendor_name() {
        let query = link().query(SECRET);
        assert!(query.contains("vendor=Aqua+%26+Co"), "{query}");
    }
}
