//! Secrets of the central office: gateway bearer tokens and office users' passwords.
//!
//! A gateway token is 32 random bytes from the operating system, shown once in hex with a
//! `ct_` prefix. Only its SHA-256 is stored, which is enough for a random 256-bit value, so a
//! lookup is one indexed query. Passwords are hashed with Argon2id and a random salt.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

/// Prefix of every gateway token, so that a leaked token is easy to recognise.
pub const TOKEN_PREFIX: &str = "ct_";

/// Errors of hashing or generating secrets.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `N` bytes from the operating system's random source.
fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|err| AuthError::Random(err.to_string()))?;
    Ok(bytes)
}

/// Generates a new gateway token.
pub fn new_token() -> Result<String, AuthError> {
    Ok(format!("{TOKEN_PREFIX}{}", hex(&random_bytes::<32>()?)))
}

/// Generates a new session id for a dashboard cookie.
pub fn new_session_id() -> Result<String, AuthError> {
    Ok(hex(&random_bytes::<32>()?))
}

/// Returns the SHA-256 of a token or session id, in hex, as the store keeps it.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Hashes a password with Argon2id (the crate's default parameters) and a random salt, as a
/// PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt_bytes = random_bytes::<16>()?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|err| AuthError::Hash(err.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| AuthError::Hash(err.to_string()))
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_hash_stably() {
        let first = new_token().unwrap();
        let second = new_token().unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with(TOKEN_PREFIX));
        assert_eq!(first.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(secret_hash(&first), secret_hash(&first));
        assert_ne!(secret_hash(&first), secret_hash(&second));
    }

    #[test]
    fn password_verifies_only_itself() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
