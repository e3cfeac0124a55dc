//! The systemd notifications of `caretaker run`: the real binary sends READY=1, WATCHDOG=1
//! keep-alives and STOPPING=1 to the unix datagram socket named by NOTIFY_SOCKET, as systemd
//! provides it to a `Type=notify` service.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, read_log};

/// How long the gateway may take to start and send READY=1.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Watchdog timeout given in WATCHDOG_USEC; keep-alives are due every half of it.
const WATCHDOG: Duration = Duration::from_secs(2);

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config whose only source is an MQTT broker that is not running. The gateway
/// starts and retries the connection, which is all these tests need.
fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = format!(
        r#"
[gateway]
id = "notify-test"

[store]
path = "caretaker.db"

[http]
listen = "127.0.0.1:{}"

[mqtt]
host = "127.0.0.1"
port = {}
client_id = "notify-test"

[[mqtt.subscription]]
filter = "sensors/#"
qos = 1
format = "json"
value_path = "v"
"#,
        free_port(),
        free_port()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn start(config: &Path, log: &Path, env: &[(&str, String)]) -> Running {
    let log = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_caretaker"));
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(log);
    for (key, value) in env {
        command.env(key, value);
    }
    Running {
        child: command.spawn().expect("start caretaker"),
    }
}

/// Receives datagrams until one contains `line` as a whole line, `timeout` passes or the
/// gateway exits, and returns every datagram received.
fn receive_until(
    socket: &UnixDatagram,
    gateway: &mut Running,
    line: &str,
    timeout: Duration,
) -> (bool, Vec<String>) {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if gateway.child.try_wait().unwrap().is_some() {
            break;
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let found = text.lines().any(|l| l == line);
        received.push(text);
        if found {
            return (true, received);
        }
    }
    (false, received)
}

/// Returns the datagrams queued on the socket.
fn drain(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(len) = socket.recv(&mut buf) {
        received.push(String::from_utf8_lossy(&buf[..len]).into_owned());
    }
    received
}

fn terminate(running: &mut Running) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(running.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM failed");
    running.child.wait().unwrap()
}

#[test]
fn run_sends_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log = dir.path().join("gateway.log");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();

    let mut gateway = start(
        &config,
        &log,
        &[
            ("NOTIFY_SOCKET", socket_path.display().to_string()),
            ("WATCHDOG_USEC", WATCHDOG.as_micros().to_string()),
        ],
    );

    let (ready, received) = receive_until(&socket, &mut gateway, "READY=1", READY_TIMEOUT);
    assert!(
        ready,
        "no READY=1; received {received:?}\n{}",
        read_log(&log)
    );
    let ready_message = received.last().unwrap();
    assert!(
        ready_message
            .lines()
            .any(|l| l == "STATUS=gateway notify-test running"),
        "READY=1 came without the status line: {ready_message:?}"
    );

    // Keep-alives follow every WATCHDOG / 2. Two of them after READY=1 show that they repeat.
    for keep_alive in 1..=2 {
        let (found, received) = receive_until(&socket, &mut gateway, "WATCHDOG=1", WATCHDOG * 5);
        assert!(
            found,
            "keep-alive {keep_alive} after READY=1 missing; received {received:?}\n{}",
            read_log(&log)
        );
    }

    let status = terminate(&mut gateway);
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        read_log(&log)
    );
    // The gateway has exited, so everything it sent is queued on the socket already.
    let received = drain(&socket);
    assert!(
        received
            .iter()
            .any(|message| message.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM; received {received:?}\n{}",
        read_log(&log)
    );
}

#[test]
fn watchdog_for_other_pid_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log = dir.path().join("gateway.log");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();

    // WATCHDOG_PID names another process (PID 1), so the watchdog is not this process's.
    let mut gateway = start(
        &config,
        &log,
        &[
            ("NOTIFY_SOCKET", socket_path.display().to_string()),
            ("WATCHDOG_USEC", WATCHDOG.as_micros().to_string()),
            ("WATCHDOG_PID", "1".to_string()),
        ],
    );
    let (ready, received) = receive_until(&socket, &mut gateway, "READY=1", READY_TIMEOUT);
    assert!(
        ready,
        "no READY=1; received {received:?}\n{}",
        read_log(&log)
    );

    let (keep_alive, received) = receive_until(&socket, &mut gateway, "WATCHDOG=1", WATCHDOG * 2);
    assert!(
        !keep_alive,
        "keep-alive sent for a watchdog of another PID; received {received:?}"
    );
    assert!(terminate(&mut gateway).success());
}

#[test]
fn run_without_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log = dir.path().join("gateway.log");

    // A watchdog timeout without NOTIFY_SOCKET: nothing to notify, and the gateway runs.
    let mut gateway = start(
        &config,
        &log,
        &[("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())],
    );
    let started = support::wait_until(READY_TIMEOUT, || {
        read_log(&log).contains("local API listening")
    });
    assert!(started, "gateway did not start\n{}", read_log(&log));
    std::thread::sleep(WATCHDOG);
    assert!(
        gateway.child.try_wait().unwrap().is_none(),
        "gateway exited\n{}",
        read_log(&log)
    );
    let status = terminate(&mut gateway);
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        read_log(&log)
    );
    assert!(
        !read_log(&log).contains("systemd"),
        "gateway logged about systemd without NOTIFY_SOCKET\n{}",
        read_log(&log)
    );
}
