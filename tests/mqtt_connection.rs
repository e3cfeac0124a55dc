//! Connecting to the broker: backoff when nothing listens, TLS with a password, and a clear
//! error with backoff when the password is wrong. The gateway's log is captured to check what
//! an operator would read.

#[path = "support/mosquitto.rs"]
mod mosquitto;
#[path = "support/mqtt_gateway.rs"]
mod mqtt_gateway;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mosquitto::{free_port, publish, Mosquitto, Publish};
use mqtt_gateway::{blocking, mqtt_config, now_ms, readings, wait_for, Gateway};

const WAIT: Duration = Duration::from_secs(30);

/// How long a test watches the reconnection attempts.
const WATCH: Duration = Duration::from_secs(6);

/// Installs the log capture once and returns its buffer. Tests find their own lines by the
/// broker address.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Returns the captured log lines that mention `needle`.
fn log_lines(needle: &str) -> Vec<String> {
    let log = captured_log();
    let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    text.lines()
        .filter(|line| line.contains(needle))
        .map(str::to_string)
        .collect()
}

fn attempts(gateway: &Gateway) -> f64 {
    gateway.metric("caretaker_mqtt_connection_errors_total")
}

/// A refused connection backs off instead of retrying in a hot loop: bytebeamio/rumqtt#703.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_backs_off() {
    captured_log();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"gw-refused\"\n\
         [[mqtt.subscription]]\nfilter = \"sensors/#\"\nformat = \"number\"\n"
    );
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    tokio::time::sleep(WATCH).await;

    // Waits of 0.25–0.5 s, 0.5–1 s, 1–2 s and 2–4 s fit at most 5 attempts into 6 s.
    let count = attempts(&gateway);
    assert!(
        count >= 2.0,
        "only {count} attempts: the gateway stopped retrying"
    );
    assert!(
        count <= 6.0,
        "{count} attempts in {WATCH:?}: not backing off"
    );
    assert_eq!(gateway.metric("caretaker_mqtt_connected"), 0.0);
    let broker = format!("127.0.0.1:{port}");
    let failures = log_lines(&broker)
        .into_iter()
        .filter(|line| line.contains("mqtt connection failed"))
        .count();
    assert_eq!(
        failures, 1,
        "the same error is logged once, not per attempt"
    );
    gateway.stop().await;
}

/// Certificates for a CA and a broker on 127.0.0.1, made with openssl.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=caretaker test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b", "passwd", "gw-user", "s3cret-Pa55"])
        .current_dir(dir)
        .status()
        .expect("run mosquitto_passwd");
    assert!(status.success());
}

fn tls_broker(dir: &Path) -> Mosquitto {
    make_certificates(dir);
    let d = dir.display();
    let extra = format!(
        "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
         password_file {d}/passwd\nallow_anonymous false"
    );
    Mosquitto::start_with(dir, &extra, true)
}

fn tls_config(port: u16, client_id: &str, password: &str) -> String {
    format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client_id}\"\n\
         username = \"gw-user\"\npassword = \"{password}\"\n\
         [mqtt.tls]\nca_file = \"ca.pem\"\n\
         [[mqtt.subscription]]\nfilter = \"sensors/+/temp\"\nformat = \"json\"\nvalue_path = \"v\"\ntimestamp_path = \"ts\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_password_connects() {
    captured_log();
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let text = tls_config(broker.port, "gw-tls", "s3cret-Pa55");
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    let subscribed = wait_for(WAIT, || broker.log().contains("Sending SUBACK to gw-tls")).await;
    assert!(
        subscribed,
        "no subscription over TLS; broker log:\n{}",
        broker.log()
    );
    assert_eq!(gateway.metric("caretaker_mqtt_connected"), 1.0);

    let port = broker.port;
    let ca = dir.path().join("ca.pem").display().to_string();
    let payload = format!(r#"{{"ts":{},"v":21.5}}"#, now_ms());
    blocking(move || {
        let args = [
            "--cafile",
            ca.as_str(),
            "-u",
            "gw-user",
            "-P",
            "s3cret-Pa55",
        ];
        let options = Publish {
            qos: 1,
            retain: false,
            args: &args,
        };
        publish(port, "sensors/ahu1/temp", payload.as_bytes(), &options);
    })
    .await;
    let db = gateway.db.clone();
    assert!(
        wait_for(WAIT, || readings(&db).len() == 1).await,
        "reading over TLS not stored"
    );
    assert_eq!(readings(&db)[0].value, Some(21.5));
    assert!(
        !log_lines("")
            .iter()
            .any(|line| line.contains("s3cret-Pa55")),
        "the password reached the log"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gives_clear_error_and_backoff() {
    captured_log();
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let wrong = "Wr0ng-Pa55-7781";
    let text = tls_config(broker.port, "gw-wrong", wrong);
    let gateway = Gateway::start(mqtt_config(&text, dir.path()), &dir.path().join("gw.db"));
    tokio::time::sleep(WATCH).await;

    let count = attempts(&gateway);
    assert!(
        count >= 2.0,
        "only {count} attempts: the gateway stopped retrying"
    );
    assert!(
        count <= 6.0,
        "{count} attempts in {WATCH:?}: not backing off"
    );
    let address = format!("127.0.0.1:{}", broker.port);
    let errors: Vec<String> = log_lines(&address)
        .into_iter()
        .filter(|line| line.contains("mqtt login rejected"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("ERROR"), "{}", errors[0]);
    assert!(
        errors[0].contains("rejected the login of user `gw-user`"),
        "{}",
        errors[0]
    );
    assert!(
        !log_lines("").iter().any(|line| line.contains(wrong)),
        "the password reached the log"
    );
    assert!(readings(&gateway.db).is_empty());
    gateway.stop().await;
}
