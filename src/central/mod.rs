//! The central office: receives synced events from the gateways of many buildings, stores
//! them in SQLite or PostgreSQL, serves the office dashboard, and hands office decisions back
//! to the gateways through a pull feed.
//!
//! `caretaker central --listen ADDR --db URL` runs the server; `caretaker central token` and
//! `caretaker central user` manage gateway tokens and office users in the same database.

pub mod auth;
pub mod dashboard;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod smtp;
pub mod store;
pub mod tenants;
pub mod tls;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::secret::Secret;
use crate::time::{Clock, SystemClock};

/// Default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// `caretaker central`: run the server, or manage tokens and users.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CentralArgs {
    /// Database: `postgres://USER@HOST/DB` for PostgreSQL, or `sqlite://PATH` (or a plain
    /// path) for a SQLite file, created when missing.
    #[arg(long, value_name = "URL", global = true, env = "CARETAKER_CENTRAL_DB")]
    pub db: Option<String>,
    // Boxed to keep the command enum small.
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
    #[command(subcommand)]
    pub command: Option<CentralCommand>,
}

/// Options of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on, such as 0.0.0.0:8443.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS; without it the server speaks plain HTTP and belongs
    /// behind a TLS-terminating proxy.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, in bytes; gateways split batches to fit.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds without a heartbeat after which the dashboard flags a building's gateway.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub heartbeat_stale_secs: u64,
    /// File with the key that signs vendor status links and dashboard forms. Every central
    /// process behind one load balancer needs the same key. Without it, and without
    /// CARETAKER_DASHBOARD_SECRET, each start makes a random key.
    #[arg(long, value_name = "PATH")]
    pub dashboard_secret_file: Option<PathBuf>,
    /// The address users and vendors reach the dashboard at, such as
    /// https://office.example.org, for absolute vendor links.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    #[command(flatten)]
    pub smtp: smtp::SmtpArgs,
}

#[derive(Debug, Subcommand)]
pub enum CentralCommand {
    /// Add, revoke or list gateway tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add office users.
    #[command(subcommand)]
    User(UserCommand),
    /// Edit a building's tenant directory, which its gateway pulls.
    #[command(subcommand)]
    Tenant(tenants::TenantCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a gateway and print it once on stdout; only its SHA-256 is stored.
    Add {
        /// The gateway's id, as `[gateway] id` in its config.
        #[arg(long)]
        gateway: String,
        /// The building whose tickets the gateway may write.
        #[arg(long)]
        building: String,
    },
    /// Revoke every token of a gateway.
    Revoke {
        #[arg(long)]
        gateway: String,
    },
    /// List tokens (without the secrets).
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an office user. The password is read from the first line of stdin.
    Add {
        #[arg(long)]
        name: String,
        /// `admin` or `office` (both act on tickets and see tenants' personal data) or
        /// `viewer` (reads only).
        #[arg(long, default_value = "office")]
        role: String,
        /// Replace the password and role of an existing user instead of failing.
        #[arg(long)]
        update: bool,
    },
}

/// Runs `caretaker central`.
pub fn main(args: CentralArgs) -> ExitCode {
    let json = args.serve.log_json;
    crate::logging::init("info", json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: CentralArgs) -> anyhow::Result<()> {
    let Some(url) = args.db.clone() else {
        bail!("missing --db URL (or CARETAKER_CENTRAL_DB): give sqlite://PATH or postgres://...");
    };
    let store = store::open(&url)
        .await
        .with_context(|| format!("opening the central store {}", store::redact_url(&url)))?;
    let clock = SystemClock::new();
    match args.command {
        None => serve(*args.serve, store).await,
        Some(CentralCommand::Token(command)) => token_command(command, store, &clock).await,
        Some(CentralCommand::User(command)) => user_command(command, store, &clock).await,
        Some(CentralCommand::Tenant(command)) => tenants::command(command, store, &clock).await,
    }
}

async fn token_command(
    command: TokenCommand,
    store: Arc<dyn store::CentralStore>,
    clock: &SystemClock,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Add { gateway, building } => {
            validate_name("gateway", &gateway)?;
            validate_name("building", &building)?;
            let token = auth::new_token()?;
            let id = store
                .add_token(
                    &gateway,
                    &building,
                    &auth::secret_hash(&token),
                    clock.wall_ms(),
                )
                .await?;
            eprintln!(
                "token {id} for gateway {gateway} (building {building}); it is shown only once:"
            );
            println!("{token}");
        }
        TokenCommand::Revoke { gateway } => {
            let count = store.revoke_tokens(&gateway, clock.wall_ms()).await?;
            if count == 0 {
                bail!("gateway {gateway:?} has no live token; `caretaker central token list` shows them");
            }
            eprintln!("revoked {count} token(s) of gateway {gateway}");
        }
        TokenCommand::List => {
            println!("id\tgateway\tbuilding\tcreated\trevoked");
            for token in store.list_tokens().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    token.id,
                    token.gateway,
                    token.building,
                    crate::time::format_ms(token.created_ms),
                    token
                        .revoked_ms
                        .map(crate::time::format_ms)
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(())
}

async fn user_command(
    command: UserCommand,
    store: Arc<dyn store::CentralStore>,
    clock: &SystemClock,
) -> anyhow::Result<()> {
    let UserCommand::Add { name, role, update } = command;
    validate_name("user name", &name)?;
    if !["admin", "office", "viewer"].contains(&role.as_str()) {
        bail!("invalid role {role:?}: give admin, office or viewer");
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        bail!("the password on stdin has fewer than 8 characters; give a longer one");
    }
    let user = store::User {
        name: name.clone(),
        role: role.clone(),
        password_hash: auth::hash_password(password)?,
        created_ms: clock.wall_ms(),
    };
    if update {
        store.update_user(&user).await?;
        eprintln!("updated user {name} (role {role})");
    } else {
        store.add_user(&user).await.map_err(|err| match err {
            store::StoreError::Conflict(_) => {
                anyhow::anyhow!("user {name:?} already exists; add --update to replace it")
            }
            other => other.into(),
        })?;
        eprintln!("added user {name} (role {role})");
    }
    Ok(())
}

/// Accepts ids and names of 1 to 64 characters: letters, digits, `.`, `_` and `-`.
fn validate_name(what: &str, value: &str) -> anyhow::Result<()> {
    let valid = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        bail!("invalid {what} {value:?}: use 1 to 64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

fn dashboard_secret(args: &ServeArgs) -> anyhow::Result<Secret> {
    if let Some(path) = &args.dashboard_secret_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the dashboard secret {}", path.display()))?;
        let text = text.trim();
        if text.len() < 16 {
            bail!(
                "the dashboard secret in {} has fewer than 16 characters; give a longer one",
                path.display()
            );
        }
        return Ok(Secret::new(text));
    }
    if let Ok(text) = std::env::var("CARETAKER_DASHBOARD_SECRET") {
        if text.trim().len() >= 16 {
            return Ok(Secret::new(text.trim()));
        }
        bail!("CARETAKER_DASHBOARD_SECRET has fewer than 16 characters; give a longer one");
    }
    tracing::warn!(
        "no dashboard secret given; using a random one, so vendor links stop working on a \
         restart and on other central processes"
    );
    Ok(Secret::new(auth::new_session_id()?))
}

async fn serve(args: ServeArgs, store: Arc<dyn store::CentralStore>) -> anyhow::Result<()> {
    let Some(addr) = args.listen else {
        bail!("missing --listen ADDR, such as --listen 127.0.0.1:8443");
    };
    if args.max_body_bytes < 1024 {
        bail!(
            "--max-body-bytes {} is too small; give at least 1024",
            args.max_body_bytes
        );
    }
    let smtp = match (
        &args.smtp.smtp_url,
        &args.smtp.smtp_from,
        &args.smtp.smtp_state,
    ) {
        (Some(url), Some(from), Some(state)) => {
            let mut settings =
                smtp::SmtpSettings::parse(url, from, &args.smtp.smtp_vendor, state.clone())?;
            settings.ca_file = args.smtp.smtp_ca.clone();
            smtp::read_state(state)?;
            Some(smtp::SmtpRelay::new(settings, Arc::clone(&store))?)
        }
        _ => None,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let metrics = Arc::new(metrics::CentralMetrics::new());
    let api = server::router(server::ApiState {
        store: Arc::clone(&store),
        clock: Arc::clone(&clock),
        metrics,
        config: Arc::new(server::ApiConfig {
            max_body_bytes: args.max_body_bytes,
        }),
    });
    let mut dashboard_config = dashboard::DashboardConfig::new(dashboard_secret(&args)?);
    dashboard_config.heartbeat_stale_ms = args.heartbeat_stale_secs.saturating_mul(1000) as i64;
    dashboard_config.secure_cookie = args.tls_cert.is_some()
        || args
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"));
    dashboard_config.public_url = args.public_url.clone();
    let app = api.merge(dashboard::router(dashboard::DashboardState {
        store: Arc::clone(&store),
        clock,
        config: Arc::new(dashboard_config),
    }));

    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = tcp.local_addr()?;
    let listen = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = tls::server_config(cert, key)?;
            server::Listen::Tls(tls::TlsListener::new(tcp, config)?)
        }
        _ => server::Listen::Plain(tcp),
    };
    tracing::info!(
        listen = %local,
        tls = args.tls_cert.is_some(),
        store = %store.describe(),
        max_body_bytes = args.max_body_bytes,
        "central office started"
    );
    let smtp_cancel = tokio_util::sync::CancellationToken::new();
    let smtp_task = smtp.map(|relay| tokio::spawn(relay.run(smtp_cancel.clone())));
    server::serve(listen, app, shutdown_signal()).await?;
    smtp_cancel.cancel();
    if let Some(task) = smtp_task {
        task.await.context("the SMTP relay task panicked")??;
    }
    tracing::info!("central office stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received; finishing requests in flight"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; finishing requests in flight"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
