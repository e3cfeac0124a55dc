//! A Mosquitto broker of the benchmark's own, on a free loopback port.

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::process::Running;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Returns a loopback TCP port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A running broker, stopped on drop.
pub struct Broker {
    pub port: u16,
    process: Running,
}

impl Broker {
    /// Writes a config into `dir` and starts Mosquitto with it, logging to `dir/mosquitto.log`.
    pub fn start(dir: &Path) -> anyhow::Result<Broker> {
        let port = free_port()?;
        let config_path = dir.join("mosquitto.conf");
        fs::write(&config_path, config(port))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log_path = dir.join("mosquitto.log");
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(MOSQUITTO);
        command
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut process = Running::spawn("mosquitto", command)?;

        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Err(err) = process.ensure_running() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                bail!("{err}; its log {}:\n{log}", log_path.display());
            }
            if Instant::now() >= deadline {
                bail!("mosquitto did not accept connections on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Broker { port, process })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.process.terminate(Duration::from_secs(5)).await?;
        Ok(())
    }
}

/// The broker config of the benchmark: the limits of the shipped
/// `firmware-config/mosquitto.conf`, on a loopback listener without persistence or passwords.
///
/// `max_inflight_messages 1000` lets the broker send a QoS 1 subscriber up to 1000 messages
/// before their PUBACKs come back. The gateway acknowledges a message only after its batch is
/// committed, so with Mosquitto's default of 20 the QoS 1 rate is bound by the commit latency.
/// `max_queued_messages 100000` holds a whole default flood that the consumer cannot take at
/// once. Beyond it, Mosquitto 2.0 drops messages for that subscriber, QoS 0 ones included, and
/// the benchmark counts them as lost.
fn config(port: u16) -> String {
    format!(
        "# Written by the ingest load benchmark (benches/ingest_load.rs) for one case.\n\
         listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         max_inflight_messages 1000\n\
         max_queued_messages 100000\n\
         max_packet_size 1048576\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n"
    )
}
