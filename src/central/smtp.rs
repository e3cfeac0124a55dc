//! The SMTP relay channel: sends the stored relay entries by mail.
//!
//! A tenant update goes to the `email` contacts of the unit in the office's tenant directory,
//! unless the tenant gave no consent or opted out of e-mail. A vendor dispatch goes to the
//! vendor's address when one was given with `--smtp-vendor NAME=ADDRESS`. Entries are sent in
//! id order.
//!
//! The id of the last entry the server accepted goes to a state file only after the server
//! accepted it. An entry that failed is tried again after a capped backoff, also after a
//! restart, and an accepted one is not sent again. An entry with no recipient, or one the
//! server rejects for good (a 5xx reply), is logged and skipped.
//!
//! Every central process that shares a database needs the SMTP options on one process only,
//! since each keeps its own state file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::central::store::{CentralStore, RelayEntry};
use crate::protocol::{TenantUpdate, TicketSnapshot};

/// Command-line options of the SMTP channel.
#[derive(Debug, Clone, clap::Args)]
pub struct SmtpArgs {
    /// Send tenant updates and vendor dispatches by mail through this server:
    /// `smtp://HOST:PORT`, `smtp://HOST:PORT?tls=required` (STARTTLS) or `smtps://HOST:PORT`,
    /// with `USER:PASSWORD@` before the host when it requires a login.
    #[arg(
        long,
        value_name = "URL",
        env = "CARETAKER_SMTP_URL",
        hide_env_values = true
    )]
    #[arg(requires_all = ["smtp_from", "smtp_state"])]
    pub smtp_url: Option<String>,
    /// The sender address of relayed mail, such as "Office <office@example.org>".
    #[arg(long, value_name = "MAILBOX")]
    pub smtp_from: Option<String>,
    /// A vendor's mail address, as NAME=ADDRESS; repeat for each vendor.
    #[arg(long, value_name = "NAME=ADDRESS")]
    pub smtp_vendor: Vec<String>,
    /// PEM file of the CA that signed the mail server's certificate, trusted besides the
    /// system's CAs; for smtps:// and STARTTLS URLs only.
    #[arg(long, value_name = "PATH", requires = "smtp_url")]
    pub smtp_ca: Option<PathBuf>,
    /// File where the SMTP channel records the last entry the server accepted.
    #[arg(long, value_name = "PATH")]
    pub smtp_state: Option<PathBuf>,
}

/// Entries read from the store at once.
const BATCH: i64 = 50;

/// A configuration error of the SMTP channel.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("invalid --smtp-url (the value is not shown, as it may hold a password): {0}")]
    Url(String),
    #[error(
        "invalid {what} address {value:?}: {reason}; give a mailbox such as office@example.org"
    )]
    Address {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid --smtp-vendor {0:?}: give NAME=ADDRESS, such as \"Aqua VVS=jobs@aqua.dk\"")]
    Vendor(String),
    #[error(
        "cannot read the SMTP state file {path}: {reason}; delete it to send every entry again"
    )]
    State { path: PathBuf, reason: String },
    #[error("invalid --smtp-ca {path}: {reason}; give a PEM file with the CA certificate")]
    Ca { path: PathBuf, reason: String },
    #[error("--smtp-ca needs a TLS URL: smtps://HOST:PORT or smtp://HOST:PORT?tls=required")]
    CaWithoutTls,
}

/// Settings of the SMTP channel, apart from the store.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `smtp://HOST:PORT` (plain, for a relay on loopback), `smtp://HOST:PORT?tls=required`
    /// (STARTTLS) or `smtps://HOST:PORT`, with `USER:PASSWORD@` when the server requires a login.
    pub url: String,
    pub from: Mailbox,
    /// Vendor name to address.
    ///
    /// NOTE: the office has no vendor directory, so only the vendors given here get mail.
    pub vendors: HashMap<String, Mailbox>,
    /// PEM file of a CA that signed the server's certificate, trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// File holding the id of the last relay entry the server accepted.
    pub state_file: PathBuf,
    /// First wait after a failed send; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How often the store is read for new entries.
    pub poll_interval: Duration,
}

impl SmtpSettings {
    /// Checks the options given on the command line.
    pub fn parse(
        url: &str,
        from: &str,
        vendors: &[String],
        state_file: PathBuf,
    ) -> Result<SmtpSettings, SmtpConfigError> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|err| SmtpConfigError::Url(err.to_string()))?;
        let from = parse_mailbox("--smtp-from", from)?;
        let mut map = HashMap::new();
        for item in vendors {
            let Some((name, address)) = item.split_once('=') else {
                return Err(SmtpConfigError::Vendor(item.clone()));
            };
            if name.trim().is_empty() {
                return Err(SmtpConfigError::Vendor(item.clone()));
            }
            map.insert(
                name.trim().to_string(),
                parse_mailbox("--smtp-vendor", address.trim())?,
            );
        }
        Ok(SmtpSettings {
            url: url.to_string(),
            from,
            vendors: map,
            ca_file: None,
            state_file,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
        })
    }
}

fn parse_mailbox(what: &'static str, value: &str) -> Result<Mailbox, SmtpConfigError> {
    value.parse().map_err(
        |err: lettre::address::AddressError| SmtpConfigError::Address {
            what,
            value: value.to_string(),
            reason: err.to_string(),
        },
    )
}

/// Reads the id of the last accepted entry; 0 when the file does not exist yet.
pub fn read_state(path: &Path) -> Result<i64, SmtpConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| SmtpConfigError::State {
            path: path.to_path_buf(),
            reason: format!("{:?} is not an entry id", text.trim()),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(SmtpConfigError::State {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }),
    }
}

/// Writes the id through a temporary file and a rename, so a crash leaves the old or the new.
fn write_state(path: &Path, id: i64) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        writeln!(file, "{id}")?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

/// One mail to send.
struct Mail {
    to: Vec<Mailbox>,
    subject: String,
    body: String,
}

/// A failure to send one entry.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the office store failed: {0}")]
    Store(String),
    #[error("the SMTP server did not accept the mail: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("the mail could not be built: {0}")]
    Build(String),
}

impl SendError {
    /// Returns whether a retry cannot help: a 5xx reply, or an entry no mail can be built from.
    fn is_permanent(&self) -> bool {
        matches!(self, SendError::Smtp(err) if err.is_permanent())
            || matches!(self, SendError::Build(_))
    }
}

/// Sends relay entries by mail until `cancel` fires.
pub struct SmtpRelay {
    settings: SmtpSettings,
    store: Arc<dyn CentralStore>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpRelay {
    pub fn new(
        settings: SmtpSettings,
        store: Arc<dyn CentralStore>,
    ) -> Result<SmtpRelay, SmtpConfigError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|err| SmtpConfigError::Url(err.to_string()))?
            .timeout(Some(Duration::from_secs(30)));
        if let Some(path) = &settings.ca_file {
            builder = builder.tls(tls_with_ca(&settings.url, path)?);
        }
        let transport = builder.build();
        Ok(SmtpRelay {
            settings,
            store,
            transport,
        })
    }

    /// Runs the channel: reads new entries, sends each, and records the accepted ones.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), SmtpConfigError> {
        let mut sent_up_to = read_state(&self.settings.state_file)?;
        let mut backoff = self.settings.backoff_initial;
        tracing::info!(after = sent_up_to, "SMTP relay started");
        loop {
            let wait = match self.pass(&mut sent_up_to).await {
                Ok(()) => {
                    backoff = self.settings.backoff_initial;
                    self.settings.poll_interval
                }
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        retry_in_ms = backoff.as_millis() as u64,
                        "SMTP relay failed; retrying"
                    );
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.settings.backoff_max);
                    wait
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends every entry after `sent_up_to`, and stops at the first one that may succeed later.
    async fn pass(&self, sent_up_to: &mut i64) -> Result<(), SendError> {
        loop {
            let entries = self
                .store
                .relay_after(*sent_up_to, BATCH)
                .await
                .map_err(|err| SendError::Store(err.to_string()))?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in entries {
                match self.deliver(&entry).await {
                    Ok(recipients) => tracing::info!(
                        relay_id = entry.id,
                        kind = %entry.kind,
                        ticket = %entry.ticket,
                        recipients,
                        channel = "smtp",
                        "relayed"
                    ),
                    Err(err) if err.is_permanent() => tracing::warn!(
                        relay_id = entry.id,
                        kind = %entry.kind,
                        ticket = %entry.ticket,
                        error = %err,
                        "SMTP server rejected the entry for good; skipping it"
                    ),
                    Err(err) => return Err(err),
                }
                *sent_up_to = entry.id;
                if let Err(err) = write_state(&self.settings.state_file, entry.id) {
                    // The mail went out; a restart before the next write sends it again.
                    tracing::error!(
                        path = %self.settings.state_file.display(),
                        error = %err,
                        "cannot record the sent SMTP entry"
                    );
                }
            }
        }
    }

    /// Sends one entry and returns how many recipients it went to (0 when it has no recipient).
    async fn deliver(&self, entry: &RelayEntry) -> Result<usize, SendError> {
        let Some(mail) = self.mail_for(entry).await? else {
            return Ok(0);
        };
        let recipients = mail.to.len();
        let mut builder = Message::builder()
            .from(self.settings.from.clone())
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN);
        for to in mail.to {
            builder = builder.to(to);
        }
        let message = builder
            .body(mail.body)
            .map_err(|err| SendError::Build(err.to_string()))?;
        self.transport.send(message).await?;
        Ok(recipients)
    }

    async fn mail_for(&self, entry: &RelayEntry) -> Result<Option<Mail>, SendError> {
        match entry.kind.as_str() {
            "tenant_update" => {
                let update: TenantUpdate = serde_json::from_str(&entry.payload).map_err(|err| {
                    SendError::Build(format!("invalid tenant update payload: {err}"))
                })?;
                let tenants = self
                    .store
                    .tenants(&entry.building)
                    .await
                    .map_err(|err| SendError::Store(err.to_string()))?;
                let to: Vec<Mailbox> = tenants
                    .iter()
                    .filter(|tenant| tenant.unit == update.unit && tenant.consent)
                    .filter(|tenant| !tenant.opt_outs.iter().any(|c| c == "email"))
                    .flat_map(|tenant| tenant.contacts.iter())
                    .filter(|contact| contact.channel == "email")
                    .filter_map(|contact| contact.address.parse().ok())
                    .collect();
                if to.is_empty() {
                    return Ok(None);
                }
                let subject = if update.language == "da" {
                    format!("Sag {}", update.ticket)
                } else {
                    format!("Ticket {}", update.ticket)
                };
                Ok(Some(Mail {
                    to,
                    subject,
                    body: update.text,
                }))
            }
            "vendor_dispatch" => {
                let Some(address) = self.settings.vendors.get(&entry.subject) else {
                    return Ok(None);
                };
                let ticket: TicketSnapshot =
                    serde_json::from_str(&entry.payload).map_err(|err| {
                        SendError::Build(format!("invalid vendor dispatch payload: {err}"))
                    })?;
                Ok(Some(Mail {
                    to: vec![address.clone()],
                    subject: format!("Job {} ({})", ticket.id, ticket.category),
                    body: vendor_body(&ticket),
                }))
            }
            _ => Ok(None),
        }
    }
}

/// Builds the TLS mode of `url` with the CA in `path` trusted as well.
fn tls_with_ca(url: &str, path: &Path) -> Result<Tls, SmtpConfigError> {
    let ca_error = |reason: String| SmtpConfigError::Ca {
        path: path.to_path_buf(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|err| SmtpConfigError::Url(err.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| SmtpConfigError::Url("the URL has no host".into()))?
        .to_string();
    let pem = std::fs::read(path).map_err(|err| ca_error(err.to_string()))?;
    let certificate = Certificate::from_pem(&pem).map_err(|err| ca_error(err.to_string()))?;
    let parameters = TlsParameters::builder(host)
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|err| ca_error(err.to_string()))?;
    let mode = parsed
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(parameters)),
        (_, Some("required")) => Ok(Tls::Required(parameters)),
        (_, Some("opportunistic")) => Ok(Tls::Opportunistic(parameters)),
        _ => Err(SmtpConfigError::CaWithoutTls),
    }
}

/// Builds the text of a vendor's job mail: what, where and when, without the tenant's contacts.
fn vendor_body(ticket: &TicketSnapshot) -> String {
    let mut body = format!(
        "Job {} in building {}\nCategory: {}\nUrgency: {}\n",
        ticket.id, ticket.building, ticket.category, ticket.urgency
    );
    if let Some(unit) = &ticket.unit {
        body.push_str(&format!("Unit: {unit}\n"));
    }
    if let Some(start) = ticket.slot_start_ms {
        body.push_str(&format!("Slot: {}", crate::time::format_ms(start)));
        if let Some(end) = ticket.slot_end_ms {
            body.push_str(&format!(" to {}", crate::time::format_ms(end)));
        }
        body.push('\n');
    }
    body.push_str(&format!("\n{}\n", ticket.summary));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(from: &str, vendors: &[&str]) -> Result<SmtpSettings, SmtpConfigError> {
        let vendors: Vec<String> = vendors.iter().map(|v| v.to_string()).collect();
        SmtpSettings::parse(
            "smtp://127.0.0.1:2525",
            from,
            &vendors,
            PathBuf::from("smtp.state"),
        )
    }

    #[test]
    fn vendor_option_parsed() {
        let settings = parse("Office <office@example.org>", &["Aqua VVS = jobs@aqua.dk"]).unwrap();
        assert_eq!(
            settings.vendors["Aqua VVS"].email.to_string(),
            "jobs@aqua.dk"
        );
    }

    #[test]
    fn bad_options_named_in_error() {
        let err = parse("not an address", &[]).unwrap_err().to_string();
        assert!(err.contains("--smtp-from"), "{err}");
        assert!(err.contains("not an address"), "{err}");
        let err = parse("office@example.org", &["no-separator"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-separator"), "{err}");
        let err = parse("office@example.org", &["=jobs@aqua.dk"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NAME=ADDRESS"), "{err}");
    }

    #[test]
    fn url_password_kept_out_of_error() {
        let err = SmtpSettings::parse(
            "ftp://user:hush-hush@127.0.0.1",
            "office@example.org",
            &[],
            PathBuf::from("smtp.state"),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hush-hush"), "{err}");
    }

    #[test]
    fn bad_ca_names_option() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let err = tls_with_ca("smtp://127.0.0.1:25", &ca)
            .unwrap_err()
            .to_string();
        assert!(err.contains("smtp-ca"), "{err}");
    }

    #[test]
    fn state_read_and_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtp.state");
        assert_eq!(read_state(&path).unwrap(), 0);
        write_state(&path, 42).unwrap();
        assert_eq!(read_state(&path).unwrap(), 42);
        std::fs::write(&path, "forty").unwrap();
        let err = read_state(&path).unwrap_err().to_string();
        assert!(err.contains("forty"), "{err}");
    }
}
