//! A Mosquitto broker that a test starts with its own config on a free loopback port, and the
//! `mosquitto_pub` client to publish to it.

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOSQUITTO_PUB: &str = "mosquitto_pub";

/// Returns a loopback port that nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral loopback port")
        .local_addr()
        .unwrap()
        .port()
}

/// Fails the test with the fix when Mosquitto is missing, so that nothing is skipped silently.
pub fn require_mosquitto() {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is missing; run the README's test command, which installs mosquitto and mosquitto-clients"
    );
}

/// A broker process, stopped on drop.
pub struct Mosquitto {
    pub port: u16,
    pub dir: PathBuf,
    /// Lines added to the generated config, such as TLS or password settings.
    extra: String,
    persistence: bool,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker with anonymous access and persistence on.
    pub fn start(dir: &Path) -> Mosquitto {
        Mosquitto::start_with(dir, "allow_anonymous true", true)
    }

    /// Starts a broker whose config adds `extra`, with persistence in `dir` when asked.
    pub fn start_with(dir: &Path, extra: &str, persistence: bool) -> Mosquitto {
        require_mosquitto();
        let mut broker = Mosquitto {
            port: free_port(),
            dir: dir.to_path_buf(),
            extra: extra.to_string(),
            persistence,
            child: None,
        };
        broker.launch();
        broker
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("mosquitto.log")
    }

    /// Returns the broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn write_config(&self) {
        // `user root` keeps a broker started by root from switching to the mosquitto user,
        // which could not write the test's folder. It has no effect for other users.
        let config = format!(
            "user root\n\
             listener {port} 127.0.0.1\n\
             {extra}\n\
             persistence {persistence}\n\
             persistence_location {dir}/\n\
             log_dest file {log}\n\
             log_type all\n\
             max_queued_messages 100000\n",
            port = self.port,
            extra = self.extra,
            persistence = self.persistence,
            dir = self.dir.display(),
            log = self.log_path().display(),
        );
        std::fs::write(self.dir.join("mosquitto.conf"), config).unwrap();
    }

    pub fn launch(&mut self) {
        self.write_config();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on port {port}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM, so that it saves its persistence file, and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Options of one `mosquitto_pub` call.
#[derive(Debug, Clone, Default)]
pub struct Publish<'a> {
    pub qos: u8,
    pub retain: bool,
    /// Extra arguments, such as TLS and login options.
    pub args: &'a [&'a str],
}

/// Publishes `payload` with `mosquitto_pub`, which exits once the broker has taken a QoS 1
/// or 2 message. Returns whether it succeeded.
pub fn try_publish(port: u16, topic: &str, payload: &[u8], options: &Publish) -> bool {
    let mut command = Command::new(MOSQUITTO_PUB);
    command
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-q",
        ])
        .arg(options.qos.to_string())
        .args(options.args)
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if options.retain {
        command.arg("-r");
    }
    let mut child = command
        .spawn()
        .expect("run mosquitto_pub; the README's test command installs mosquitto-clients");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(payload);
    drop(stdin);
    child.wait().map(|status| status.success()).unwrap_or(false)
}

/// Publishes and fails the test when the broker does not take the message.
pub fn publish(port: u16, topic: &str, payload: &[u8], options: &Publish) {
    assert!(
        try_publish(port, topic, payload, options),
        "mosquitto_pub could not publish to {topic} on port {port}"
    );
}

/// Publishes each line of `lines` as one message in a single `mosquitto_pub` session.
pub fn publish_lines(port: u16, topic: &str, lines: &[String], qos: u8) {
    let mut child = Command::new(MOSQUITTO_PUB)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-q",
        ])
        .arg(qos.to_string())
        .arg("-l")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mosquitto_pub");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().unwrap().success(),
        "mosquitto_pub -l failed on {topic}"
    );
}
