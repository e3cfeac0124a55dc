//! Headless Chromium for dashboard tests, driven through chromedriver's W3C WebDriver API,
//! and a small blocking HTTP/1.1 client for loopback servers.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/install-test-deps.sh installs
//! them). `CARETAKER_TEST_CHROMIUM` and `CARETAKER_TEST_CHROMEDRIVER` override the paths.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{free_port, wait_until};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("response is not JSON ({err}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one HTTP/1.1 request to `http://HOST:PORT/PATH` and reads the whole response. The
/// connection is closed after each request, so the body ends at the end of the stream unless
/// it is chunked.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported, got {url}"));
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let mut stream =
        TcpStream::connect(authority).unwrap_or_else(|err| panic!("connect to {url}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let raw = read_response(&mut stream)
        .unwrap_or_else(|err| panic!("read the response of {method} {url}: {err}"));
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "malformed response to {method} {url}: {}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Reads one response: up to the end of its body by `Content-Length` or the last chunk, or
/// to the end of the stream when it has neither. A server may keep the connection open
/// despite `Connection: close`, so reading to the end of the stream alone could hang.
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok());
            let complete = match length {
                Some(length) => body.len() >= length,
                None if head.contains("transfer-encoding: chunked") => dechunk(body).is_some(),
                None => false,
            };
            if complete {
                return Ok(raw);
            }
        }
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buffer[..read]);
    }
}

fn parse_response(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(length) = header("content-length").and_then(|v| v.parse().ok()) {
        body.truncate(length);
    }
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Decodes standard base64 (with or without padding), as WebDriver returns screenshots.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("invalid base64 character {:?}", c as char),
        }
    };
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn program(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// A chromedriver process and one headless Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session
    /// whose network stays on loopback: no proxy, no background requests.
    pub fn start(log: &Path) -> Browser {
        let chromium = program("CARETAKER_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("CARETAKER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        for path in [&chromium, &chromedriver] {
            assert!(
                path.exists(),
                "{} is missing; run scripts/install-test-deps.sh (Debian packages chromium \
                 and chromium-driver)",
                path.display()
            );
        }
        let port = free_port();
        let log_file = std::fs::File::create(log).unwrap();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let ready = wait_until(Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http("GET", &format!("{base}/status"), &[], b"").json()["value"]["ready"]
                    == json!(true)
        });
        assert!(
            ready,
            "chromedriver did not become ready; see {}",
            log.display()
        );

        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--window-size=1280,1100".to_string(),
            "--no-proxy-server".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-default-apps".to_string(),
            "--disable-domain-reliability".to_string(),
            "--disable-sync".to_string(),
            "--disable-extensions".to_string(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}
        });
        let reply = http(
            "POST",
            &format!("{base}/session"),
            &[("Content-Type", "application/json")],
            capabilities.to_string().as_bytes(),
        );
        let value = reply.json();
        let session = value["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver opened no session: {}", reply.text()))
            .to_string();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    /// Sends a WebDriver command and returns its `value`; panics with the driver's error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if method == "POST" {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        let reply = http(method, &url, headers, body.as_bytes());
        let value = reply.json();
        assert!(
            reply.status == 200,
            "WebDriver {method} {path} failed with {}: {}",
            reply.status,
            value["value"]
        );
        value["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.command("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn title(&self) -> String {
        self.command("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Returns the elements that match a CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|item| Element {
                browser: self,
                id: item[ELEMENT_KEY].as_str().unwrap().to_string(),
            })
            .collect()
    }

    /// Waits up to `timeout` for an element that matches `css`, and panics with the page's
    /// address and title when none appears.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let found = wait_until(timeout, || !self.find_all(css).is_empty());
        assert!(
            found,
            "no element matches {css:?} on {} ({:?})",
            self.current_url(),
            self.title()
        );
        self.find_all(css).remove(0)
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        if TcpStream::connect(self.base.trim_start_matches("http://")).is_ok() {
            let _ = std::panic::catch_unwind(|| http("DELETE", &url, &[], b""));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    pub fn click(&self) {
        let path = format!("/element/{}/click", self.id);
        self.browser.command("POST", &path, Some(json!({})));
    }

    pub fn clear(&self) {
        let path = format!("/element/{}/clear", self.id);
        self.browser.command("POST", &path, Some(json!({})));
    }

    pub fn type_text(&self, text: &str) {
        let path = format!("/element/{}/value", self.id);
        self.browser
            .command("POST", &path, Some(json!({ "text": text })));
    }

    pub fn text(&self) -> String {
        let path = format!("/element/{}/text", self.id);
        self.browser
            .command("GET", &path, None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn attribute(&self, name: &str) -> Option<String> {
        let path = format!("/element/{}/attribute/{name}", self.id);
        self.browser
            .command("GET", &path, None)
            .as_str()
            .map(str::to_string)
    }

    /// Returns the elements inside this one that match a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let path = format!("/element/{}/elements", self.id);
        let found = self.browser.command(
            "POST",
            &path,
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|item| Element {
                browser: self.browser,
                id: item[ELEMENT_KEY].as_str().unwrap().to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
        assert_eq!(base64_decode("aGk"), b"hi");
    }

    #[test]
    fn chunked_body_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let reply = parse_response(raw).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"abcde");
    }
}
