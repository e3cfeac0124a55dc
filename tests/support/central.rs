//! A real `caretaker central` process for tests, on a free loopback port.
//!
//! [`Central::start_sqlite`] gives it a fresh SQLite file in a temporary folder;
//! [`Central::start`] takes any database URL, such as the one of a `PgDatabase` from
//! `support/postgres.rs`. Tokens and users are added with the binary's own `central token
//! add` and `central user add`. The process is killed when the value is dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Returns the path of the `caretaker` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_caretaker")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral loopback port")
        .local_addr()
        .unwrap()
        .port()
}

/// Creates a gateway token in the database at `db_url` and returns it.
pub fn add_token(db_url: &str, gateway: &str, building: &str) -> String {
    let output = Command::new(binary())
        .args(["central", "token", "add", "--db", db_url])
        .args(["--gateway", gateway, "--building", building])
        .output()
        .expect("run caretaker central token add");
    assert!(
        output.status.success(),
        "caretaker central token add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(
        token.starts_with("ct_"),
        "unexpected token output {token:?}"
    );
    token
}

/// Adds an office user with `password` to the database at `db_url`.
pub fn add_user(db_url: &str, name: &str, role: &str, password: &str) {
    let mut child = Command::new(binary())
        .args(["central", "user", "add", "--db", db_url])
        .args(["--name", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run caretaker central user add");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "caretaker central user add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running `caretaker central`.
pub struct Central {
    child: Option<Child>,
    pub port: u16,
    /// `http://127.0.0.1:PORT` (or `https://` when started with TLS options).
    pub url: String,
    pub db_url: String,
    pub log: PathBuf,
    folder: tempfile::TempDir,
}

impl Central {
    /// Starts a central office on a fresh SQLite file.
    pub fn start_sqlite(extra_args: &[&str]) -> Central {
        let folder = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", folder.path().join("central.db").display());
        Central::start_in(folder, &db_url, extra_args)
    }

    /// Starts a central office on the database at `db_url`.
    pub fn start(db_url: &str, extra_args: &[&str]) -> Central {
        Central::start_in(tempfile::tempdir().unwrap(), db_url, extra_args)
    }

    fn start_in(mut folder: tempfile::TempDir, db_url: &str, extra_args: &[&str]) -> Central {
        let tls = extra_args.contains(&"--tls-cert");
        let scheme = if tls { "https" } else { "http" };
        for _attempt in 0..5 {
            let port = free_port();
            let log = folder.path().join(format!("central-{port}.log"));
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(binary())
                .args([
                    "central",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--db",
                    db_url,
                ])
                .args(extra_args)
                .env(
                    "CARETAKER_DASHBOARD_SECRET",
                    "test-dashboard-secret-0123456789",
                )
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("start caretaker central");
            let mut central = Central {
                child: Some(child),
                port,
                url: format!("{scheme}://127.0.0.1:{port}"),
                db_url: db_url.to_string(),
                log,
                folder,
            };
            if central.wait_ready(Duration::from_secs(30)) {
                return central;
            }
            let exited = central.child.as_mut().unwrap().try_wait().unwrap();
            let text = central.read_log();
            // Only a lost race for the port is worth another attempt.
            if exited.is_none() || !text.contains("cannot listen") {
                panic!("caretaker central did not become ready; its log:\n{text}");
            }
            folder = central.take_folder();
        }
        panic!("caretaker central found no free port in 5 attempts");
    }

    fn take_folder(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.folder, placeholder)
    }

    /// Waits until the TCP port accepts connections (and `/healthz` returns 200 over plain
    /// HTTP), or the process exits.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let tls = self.url.starts_with("https");
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                return false;
            }
            if tls {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return true;
                }
            } else if self
                .get_plain("/healthz")
                .is_some_and(|(status, _)| status == 200)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends a plain HTTP GET and returns the status and body.
    pub fn get_plain(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    /// Creates a gateway token in this office's database.
    pub fn add_token(&self, gateway: &str, building: &str) -> String {
        add_token(&self.db_url, gateway, building)
    }

    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        add_user(&self.db_url, name, role, password)
    }

    pub fn read_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Returns the temporary folder that contains the log (and the SQLite file, if any).
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Sends SIGTERM, waits for the process to exit, and returns its exit status and log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, self.read_log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("caretaker central did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// PEM files for a central office over TLS on 127.0.0.1, made with openssl.
pub struct TlsFiles {
    /// The CA that signed the office's certificate.
    pub ca: PathBuf,
    /// A second CA that signed nothing the office presents.
    pub other_ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Writes a CA, a certificate for `127.0.0.1` signed by it with its key, and an unrelated
    /// CA into `dir`.
    pub fn create(dir: &Path) -> TlsFiles {
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl");
            assert!(
                output.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let new_ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for (name, subject) in [("ca", "/CN=office test CA"), ("other-ca", "/CN=other CA")] {
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", subject];
            args.extend(new_ec_key);
            args.extend(["-keyout", key.as_str(), "-out", pem.as_str()]);
            openssl(&args);
        }
        let mut request = vec!["req", "-nodes", "-subj", "/CN=127.0.0.1"];
        request.extend(new_ec_key);
        request.extend(["-keyout", "office.key", "-out", "office.csr"]);
        openssl(&request);
        std::fs::write(
            dir.join("office.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "office.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "office.ext",
            "-out",
            "office.pem",
        ]);
        TlsFiles {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            cert: dir.join("office.pem"),
            key: dir.join("office.key"),
        }
    }

    /// Returns the `caretaker central` options that serve with this certificate.
    pub fn central_args(&self) -> Vec<&str> {
        vec![
            "--tls-cert",
            self.cert.to_str().unwrap(),
            "--tls-key",
            self.key.to_str().unwrap(),
        ]
    }
}
