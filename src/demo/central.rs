//! The demo's central office, in process on a temporary SQLite file, assembled from the
//! central module's store, API router and dashboard router.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::central::dashboard::{self, DashboardConfig, DashboardState};
use crate::central::metrics::CentralMetrics;
use crate::central::server::{self, ApiConfig, ApiState, Listen};
use crate::central::{auth, store, DEFAULT_MAX_BODY_BYTES};
use crate::protocol::{Change, Contact, TenantRecord};
use crate::secret::Secret;
use crate::time::Clock;

/// Name of the office user the demo creates for the dashboard.
pub const DASHBOARD_USER: &str = "demo";

/// A running central office.
pub struct CentralOffice {
    pub address: SocketAddr,
    /// The gateway's bearer token for sync.
    pub gateway_token: String,
    /// Password of [`DASHBOARD_USER`], random per run.
    pub dashboard_password: String,
    /// The store, for the summary's count of events received.
    pub store: Arc<dyn store::CentralStore>,
}

impl CentralOffice {
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Opens a central store at `database`, issues a token for `gateway` of `building`, adds an
/// office user and the demo's tenant directory (which the gateway pulls), and serves the API and the dashboard on a loopback port until `cancel`.
pub async fn start(
    database: &Path,
    gateway: &str,
    building: &str,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> anyhow::Result<CentralOffice> {
    let url = format!("sqlite://{}", database.display());
    let store = store::open(&url)
        .await
        .with_context(|| format!("cannot open the central store {}", database.display()))?;
    let gateway_token = auth::new_token()?;
    store
        .add_token(
            gateway,
            building,
            &auth::secret_hash(&gateway_token),
            clock.wall_ms(),
        )
        .await
        .context("cannot issue the gateway's token")?;
    let dashboard_password = auth::new_session_id()?[..16].to_string();
    store
        .add_user(&store::User {
            name: DASHBOARD_USER.to_string(),
            role: "office".to_string(),
            password_hash: auth::hash_password(&dashboard_password)?,
            created_ms: clock.wall_ms(),
        })
        .await
        .context("cannot add the dashboard user")?;

    for record in tenant_directory() {
        let unit = record.unit.clone();
        store
            .add_change(
                building,
                "office:demo",
                Change::TenantUpsert(record),
                clock.wall_ms(),
            )
            .await
            .with_context(|| format!("cannot add unit {unit} to the tenant directory"))?;
    }

    let api = server::router(ApiState {
        store: Arc::clone(&store),
        clock: Arc::clone(&clock),
        metrics: Arc::new(CentralMetrics::new()),
        config: Arc::new(ApiConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }),
    });
    let secret = Secret::new(auth::new_session_id()?);
    let app = api.merge(dashboard::router(DashboardState {
        store: Arc::clone(&store),
        clock,
        config: Arc::new(DashboardConfig::new(secret)),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a loopback port for the central office")?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let shutdown = cancel.cancelled_owned();
        if let Err(err) = server::serve(Listen::Plain(listener), app, shutdown).await {
            tracing::error!(error = %err, "the demo's central office stopped");
        }
    });
    Ok(CentralOffice {
        address,
        gateway_token,
        dashboard_password,
        store,
    })
}

/// The tenant directory of the demo building: one consenting tenant per unit of the scripted
/// messages, reachable under the sender the script uses, in the script's language.
fn tenant_directory() -> Vec<TenantRecord> {
    let mut records: Vec<TenantRecord> = Vec::new();
    for message in super::tenants::SCRIPT {
        if records.iter().any(|record| record.unit == message.unit) {
            continue;
        }
        let channel = match message.route {
            super::tenants::Route::Mqtt => "mqtt",
            super::tenants::Route::Http => "sms",
        };
        records.push(TenantRecord {
            unit: message.unit.to_string(),
            language: message.language.to_string(),
            contacts: vec![Contact {
                channel: channel.to_string(),
                address: message.sender.to_string(),
            }],
            quiet_from: None,
            quiet_until: None,
            consent: true,
            opt_outs: Vec::new(),
            permission_to_enter: false,
            availability: Vec::new(),
        });
    }
    records
}
