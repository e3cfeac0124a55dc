//! The rustls client configuration for a TLS connection to the broker.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} contains no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} contains no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the CA certificate in {path} is not usable: {source}")]
    InvalidCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("the client certificate {cert} and key {key} do not form a usable pair: {source}")]
    InvalidClientAuth {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// Builds the client configuration from the PEM files: the broker's certificate must chain to
/// a CA in `ca_file`, and a client certificate is presented when one is configured.
///
/// Installs ring as the process's default crypto provider first, if none is installed.
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut roots = RootCertStore::empty();
    for cert in read_certificates(&files.ca_file)? {
        roots.add(cert).map_err(|source| TlsError::InvalidCa {
            path: files.ca_file.clone(),
            source,
        })?;
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let (Some(cert_path), Some(key_path)) = (&files.client_cert_file, &files.client_key_file)
    else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = read_certificates(cert_path)?;
    let key = read_private_key(key_path)?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|source| TlsError::InvalidClientAuth {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        })
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_path_buf(),
        })
}
