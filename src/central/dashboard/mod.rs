//! The office dashboard: server-rendered HTML pages served by the central office.
//!
//! Office users sign in with a name and password (argon2 hashes in the store) and get a
//! session cookie (`HttpOnly`, `SameSite=Strict`). Every form carries a CSRF token derived
//! from the session, and every POST with an `Origin` header from another host is rejected.
//! The pages work without JavaScript: lists refresh themselves with
//! `<meta http-equiv="refresh">` and plots are inline SVG rendered here.
//!
//! Pages:
//! - `/tickets`: tickets by building, the escalation queue first, with filters and SLA
//!   countdowns, and an alert for every building whose gateway stopped sending heartbeats;
//! - `/tickets/{id}`: a ticket's history, audit story, office changes and the action forms
//!   (acknowledge, assign a vendor, reschedule, close, cancel) that add changes to the pull feed;
//! - `/buildings/{building}`: the gateways, and the sensors behind each anomaly as a plot
//!   around the event;
//! - `/export/tickets.csv` and `/export/readings.csv`;
//! - `/vendor/status`: the page behind a vendor's signed status link, which needs no account.
//!
//! Roles: `viewer` reads; `office` also acts on tickets; `admin` as `office`. Tenants'
//! personal data (units and tenant directory entries with contacts) shows only to `office`
//! and `admin`.

mod auth;
mod export;
mod handlers;
mod pages;
mod plot;
mod vendor_link;
mod view;

use std::sync::Arc;

use axum::Router;

use crate::central::store::CentralStore;
use crate::secret::Secret;
use crate::time::Clock;

pub use auth::Role;
pub use vendor_link::{LinkError, VendorAction, VendorLink};

/// Settings of the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Key of the HMAC-SHA256 that signs vendor status links and CSRF tokens. Every central
    /// process behind one load balancer needs the same key, or links signed by one are
    /// rejected by another.
    pub secret: Secret,
    /// How long a session lasts after sign-in, in milliseconds.
    pub session_ms: i64,
    /// How long a vendor status link stays valid after the page that shows it was rendered,
    /// in milliseconds.
    pub vendor_link_ms: i64,
    /// A gateway whose latest heartbeat is older than this, in milliseconds, is shown as an
    /// alert.
    pub heartbeat_stale_ms: i64,
    /// Seconds between automatic reloads of the list pages.
    pub refresh_secs: u32,
    /// Marks the session cookie `Secure`: set it when users reach the server over HTTPS
    /// (directly or through a TLS-terminating proxy).
    pub secure_cookie: bool,
    /// The address users and vendors reach the dashboard at, such as
    /// `https://office.example.org`, for absolute vendor links. Without it, links are built
    /// from the request's `Host` header.
    pub public_url: Option<String>,
}

impl DashboardConfig {
    /// Returns settings with the defaults: 8 hour sessions, 72 hour vendor links, gateways
    /// stale after 10 minutes without a heartbeat, pages reloaded every 30 seconds.
    pub fn new(secret: Secret) -> Self {
        DashboardConfig {
            secret,
            session_ms: 8 * 3_600_000,
            vendor_link_ms: 72 * 3_600_000,
            heartbeat_stale_ms: 10 * 60_000,
            refresh_secs: 30,
            secure_cookie: false,
            public_url: None,
        }
    }
}

/// State shared by the dashboard's handlers.
#[derive(Clone)]
pub struct DashboardState {
    pub store: Arc<dyn CentralStore>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<DashboardConfig>,
}

/// Returns the dashboard's routes, for the central server to merge into its router.
pub fn router(state: DashboardState) -> Router {
    handlers::routes().with_state(state)
}
