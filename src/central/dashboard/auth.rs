//! Sign-in, sessions, roles and CSRF tokens.
//!
//! A session id is 32 random bytes, hex-encoded in the cookie; the store keeps only its
//! SHA-256. A form's CSRF token is an HMAC-SHA256 of the session id under the dashboard's
//! secret, so it needs no storage and changes with every session.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use axum::http::{header, HeaderMap};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "caretaker_session";

/// Permission level of an office user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads tickets and plots without personal data, and changes nothing.
    Viewer,
    /// Acts on tickets and may read tenants' personal data.
    Office,
    /// As `Office`.
    Admin,
}

impl Role {
    /// Parses a stored role name. `dispatcher` is accepted as another name for `office`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "office" | "dispatcher" => Some(Role::Office),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Office => "office",
            Role::Admin => "admin",
        }
    }

    /// Returns whether the role may read tenants' units and tenant directory entries.
    pub fn sees_personal_data(self) -> bool {
        matches!(self, Role::Office | Role::Admin)
    }

    /// Returns whether the role may acknowledge, assign, reschedule, close and cancel tickets.
    pub fn may_act(self) -> bool {
        matches!(self, Role::Office | Role::Admin)
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub user: String,
    pub role: Role,
    /// Token that every form of this session must send back.
    pub csrf: String,
}

/// A PHC string that no password matches, verified when the user name is unknown so that a
/// failed sign-in takes as long for an unknown user as for a wrong password.
const UNKNOWN_USER_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2lnbi1pbi1wYWRkaW5n$kYy0VDLkxAtD5wXlqO0jVqCrp/6yWZ9uXGo7Fqx5kzQ";

/// Checks `password` against an argon2 PHC string. A hash that cannot be parsed matches
/// nothing. Takes tens of milliseconds by design, so call it off the async threads.
pub(crate) fn verify_password(password: &str, phc: Option<&str>) -> bool {
    let phc = phc.unwrap_or(UNKNOWN_USER_HASH);
    let Ok(parsed) = PasswordHash::new(phc) else {
        tracing::warn!("a stored password hash is not a valid PHC string; sign-in rejected");
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Returns a new session id: 32 random bytes from the operating system, hex-encoded.
pub(crate) fn new_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Returns the SHA-256 of a session id, hex-encoded, as the store keeps it.
pub(crate) fn session_hash(session_id: &str) -> String {
    hex(&Sha256::digest(session_id.as_bytes()))
}

/// Returns the CSRF token of a session.
pub(crate) fn csrf_token(secret: &[u8], session_id: &str) -> String {
    hex(&hmac_sha256(secret, &[b"csrf", session_id.as_bytes()]))
}

/// Compares a submitted CSRF token with the session's in constant time.
pub(crate) fn csrf_matches(expected: &str, submitted: &str) -> bool {
    constant_time_eq(expected.as_bytes(), submitted.as_bytes())
}

/// Returns the session id from the request's cookies, when it has a well-formed one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            let well_formed = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
            if name == SESSION_COOKIE && well_formed {
                return Some(value.to_string());
            }
        }
    }
    None
}

/// Returns the `Set-Cookie` value that starts a session.
pub(crate) fn session_set_cookie(session_id: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={session_id}; Path=/; Max-Age={max_age_secs}; HttpOnly; \
         SameSite=Strict{secure}"
    )
}

/// Returns the `Set-Cookie` value that removes the session cookie.
pub(crate) fn session_clear_cookie(secure: bool) -> String {
    session_set_cookie("", 0, secure)
}

/// Returns whether a state-changing request comes from a page of this server. Its `Origin`
/// header, when present, must be `public_url` or name the same host and port as its `Host`
/// header. Browsers send `Origin` on every cross-site POST, so a form on another site is caught
/// here even before the CSRF token is checked.
pub(crate) fn same_origin(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if public_url.is_some_and(|url| url.trim_end_matches('/') == origin) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host == Some(host)
}

/// Returns `next` when it is a path on this server, and `/tickets` otherwise, so that the
/// sign-in page cannot be used to redirect to another site.
pub(crate) fn local_redirect(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/tickets".to_string(),
    }
}

/// Returns the HMAC-SHA256 of the parts, each preceded by its length so that two different
/// lists of parts never produce the same message.
pub(crate) fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC accepts a key of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use axum::http::HeaderValue;

    use super::*;

    fn hash(password: &str) -> String {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn password_matches_its_hash() {
        let stored = hash("correct horse");
        assert!(verify_password("correct horse", Some(&stored)));
        assert!(!verify_password("correct hors", Some(&stored)));
    }

    #[test]
    fn unknown_user_never_matches() {
        assert!(PasswordHash::new(UNKNOWN_USER_HASH).is_ok());
        assert!(!verify_password("", None));
        assert!(!verify_password("password", None));
    }

    #[test]
    fn invalid_stored_hash_matches_nothing() {
        assert!(!verify_password("x", Some("not a phc string")));
    }

    #[test]
    fn roles_parse_and_allow() {
        assert_eq!(Role::parse("viewer"), Some(Role::Viewer));
        assert_eq!(Role::parse("office"), Some(Role::Office));
        assert_eq!(Role::parse("dispatcher"), Some(Role::Office));
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
        assert!(!Role::Viewer.sees_personal_data());
        assert!(!Role::Viewer.may_act());
        assert!(Role::Office.sees_personal_data());
        assert!(Role::Admin.may_act());
    }

    #[test]
    fn session_ids_are_random_hex() {
        let first = new_session_id().unwrap();
        let second = new_session_id().unwrap();
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        assert_eq!(session_hash(&first).len(), 64);
        assert_ne!(session_hash(&first), first);
    }

    #[test]
    fn session_cookie_found_among_others() {
        let id = "ab".repeat(32);
        let mut headers = HeaderMap::new();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}; other=1");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(session_cookie(&headers), Some(id));
    }

    #[test]
    fn malformed_session_cookie_ignored() {
        let mut headers = HeaderMap::new();
        let cookie = format!("{SESSION_COOKIE}=<script>");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn session_cookie_attributes() {
        let cookie = session_set_cookie("abc", 60, true);
        assert!(cookie.contains("HttpOnly"));
        assert!(cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Secure"));
        assert!(cookie.contains("Max-Age=60"));
        assert!(!session_set_cookie("abc", 60, false).contains("Secure"));
    }

    #[test]
    fn csrf_token_depends_on_session_and_secret() {
        let token = csrf_token(b"secret", "session-1");
        assert!(csrf_matches(&token, &csrf_token(b"secret", "session-1")));
        assert!(!csrf_matches(&token, &csrf_token(b"secret", "session-2")));
        assert!(!csrf_matches(&token, &csrf_token(b"other", "session-1")));
        assert!(!csrf_matches(&token, ""));
    }

    #[test]
    fn origin_check() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers, None));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers, None));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers, None));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, None));
        // Behind a proxy that rewrites `Host`, the configured public address still matches.
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://office.example"),
        );
        assert!(same_origin(&headers, Some("https://office.example/")));
        assert!(!same_origin(&headers, Some("https://other.example")));
    }

    #[test]
    fn redirect_stays_local() {
        assert_eq!(
            local_redirect(Some("/tickets/B1-000001")),
            "/tickets/B1-000001"
        );
        assert_eq!(local_redirect(Some("//evil.example/")), "/tickets");
        assert_eq!(local_redirect(Some("https://evil.example/")), "/tickets");
        assert_eq!(local_redirect(Some("/\\evil.example")), "/tickets");
        assert_eq!(local_redirect(None), "/tickets");
    }

    #[test]
    fn hmac_parts_are_length_prefixed() {
        let joined = hmac_sha256(b"k", &[b"ab", b"c"]);
        let split = hmac_sha256(b"k", &[b"a", b"bc"]);
        assert_ne!(joined, split);
    }

    #[test]
    fn hex_encodes_bytes() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
