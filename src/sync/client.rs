//! HTTP(S) client of the central office's API v1, over rustls with the gateway's bearer
//! token on every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::config::SyncConfig;
use crate::protocol::{Heartbeat, OfficeChange, PROTOCOL_VERSION};

/// Header that names the protocol version on every request.
pub const PROTOCOL_HEADER: &str = "Caretaker-Protocol";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("the token contains characters not allowed in an HTTP header")]
    InvalidToken,
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("request to {url} failed: {message}")]
    Transport { url: String, message: String },
    #[error(
        "request to {url} failed: the central office's TLS certificate is not trusted: \
         {message}. The gateway trusts {trust}; set [sync] ca_file to the PEM file of the CA \
         that signed the office's certificate, and check that the certificate names the host \
         in [sync] url. Events stay queued until then"
    )]
    Certificate {
        url: String,
        message: String,
        trust: String,
    },
    #[error(
        "the central office rejected the token (HTTP 401); events stay queued. Check [sync] \
         token against the token issued with `caretaker central token add`"
    )]
    Unauthorized,
    #[error("the request body exceeds the office's limit (HTTP 413, limit {limit:?} bytes)")]
    TooLarge { limit: Option<u64> },
    #[error("the office rejected the request as malformed (HTTP 400): {message}")]
    BadRequest { message: String },
    #[error(
        "the office does not support protocol version {PROTOCOL_VERSION} (HTTP 426, supported \
         {supported:?}); upgrade caretaker on this gateway"
    )]
    UnsupportedProtocol { supported: Vec<u32> },
    #[error("{url} returned HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("invalid response from {url}: {message}")]
    Decode { url: String, message: String },
}

/// The response to `POST /v1/events`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventsReply {
    #[serde(default)]
    pub acked: Vec<Uuid>,
    #[serde(default)]
    pub rejected: Vec<RejectedEvent>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RejectedEvent {
    pub event_id: Uuid,
    pub status: u16,
    #[serde(default)]
    pub error: String,
}

/// The response to `POST /v1/heartbeat`.
#[derive(Debug, Clone, Deserialize)]
pub struct HeartbeatReply {
    #[serde(default)]
    pub protocol: Option<u32>,
    #[serde(default)]
    pub server_version: Option<String>,
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ChangesReply {
    changes: Vec<OfficeChange>,
}

/// An error body. Every field is optional because proxies respond with bodies of their own.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
    #[serde(default)]
    supported: Vec<u32>,
}

/// The client of one central office.
#[derive(Clone)]
pub struct CentralClient {
    http: reqwest::Client,
    base: String,
    /// The CA the client trusts, as named in a certificate error.
    trust: String,
}

impl CentralClient {
    pub fn new(config: &SyncConfig) -> Result<CentralClient, ClientError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.token.expose()))
            .map_err(|_| ClientError::InvalidToken)?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            PROTOCOL_HEADER,
            HeaderValue::from_str(&PROTOCOL_VERSION.to_string()).expect("digits are valid"),
        );
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("caretaker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ClientError::Build(err.to_string()))?;
        let trust = match &config.ca_file {
            Some(path) => format!("the CA in {}", path.display()),
            None => "the system's CA store".to_string(),
        };
        Ok(CentralClient {
            http,
            base: config.url.as_str().trim_end_matches('/').to_string(),
            trust,
        })
    }

    /// Sends a prepared `{"gateway", "events"}` body.
    pub async fn post_events(&self, body: String) -> Result<EventsReply, ClientError> {
        let url = format!("{}/v1/events", self.base);
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.read_json(&url, request.send().await).await
    }

    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatReply, ClientError> {
        let url = format!("{}/v1/heartbeat", self.base);
        let request = self.http.post(&url).json(heartbeat);
        self.read_json(&url, request.send().await).await
    }

    /// Fetches up to `limit` changes with ids above `after`, in id order.
    pub async fn changes(&self, after: i64, limit: u32) -> Result<Vec<OfficeChange>, ClientError> {
        let url = format!("{}/v1/changes?after={after}&limit={limit}", self.base);
        let response = self.http.get(&url).send().await;
        let reply: ChangesReply = self.read_json(&url, response).await?;
        Ok(reply.changes)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        response: reqwest::Result<reqwest::Response>,
    ) -> Result<T, ClientError> {
        let response = response.map_err(|err| self.transport_error(url, &err))?;
        read_body(url, response).await
    }

    /// Turns a failed request into [`ClientError::Certificate`] when the office's certificate
    /// was rejected, and into [`ClientError::Transport`] otherwise.
    fn transport_error(&self, url: &str, err: &reqwest::Error) -> ClientError {
        match certificate_error(err) {
            Some(message) => ClientError::Certificate {
                url: url.to_string(),
                message,
                trust: self.trust.clone(),
            },
            None => ClientError::Transport {
                url: url.to_string(),
                message: describe(err),
            },
        }
    }
}

async fn read_body<T: serde::de::DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|err| ClientError::Transport {
            url: url.to_string(),
            message: describe(&err),
        })?;
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|err| ClientError::Decode {
            url: url.to_string(),
            message: err.to_string(),
        });
    }
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
    let message = body
        .error
        .unwrap_or_else(|| text.chars().take(200).collect::<String>());
    Err(match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized,
        StatusCode::PAYLOAD_TOO_LARGE => ClientError::TooLarge {
            limit: body.max_body_bytes,
        },
        StatusCode::BAD_REQUEST => ClientError::BadRequest { message },
        StatusCode::UPGRADE_REQUIRED => ClientError::UnsupportedProtocol {
            supported: body.supported,
        },
        _ => ClientError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            message,
        },
    })
}

/// Names the kind of transport failure along with reqwest's message and its causes.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Returns rustls's description of a rejected server certificate, when that is the cause of
/// `err`.
fn certificate_error(err: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(
            tls @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) = find_rustls_error(current)
        {
            return Some(tls.to_string());
        }
        cause = current.source();
    }
    None
}

/// Returns the `rustls::Error` that `error` is or wraps. The connector reports a failed
/// handshake as an `io::Error` that wraps another `io::Error` around the rustls error, and
/// `io::Error::source` skips the wrapped error, so the layers are unwrapped here.
fn find_rustls_error<'a>(
    mut error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        error = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// Builds the rustls configuration: the office's certificate must chain to the CA in
/// `ca_file`, or to a root of the system's store when no file is given.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |message: String| ClientError::CaFile {
                path: path.to_path_buf(),
                message,
            };
            let file = std::fs::File::open(path).map_err(|err| ca_error(err.to_string()))?;
            let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| ca_error(err.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in the file".to_string()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|err| ca_error(format!("unusable certificate: {err}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(error = %error, "cannot read part of the system's CA store");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    ignored,
                    "no usable CA certificate in the system's store; set [sync] ca_file"
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ClientError::Build(err.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
