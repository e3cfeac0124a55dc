//! The office and a building end to end, with every part real: a `caretaker central` on
//! SQLite, Mosquitto, and a `caretaker run` gateway whose `[sync]` points at that central.
//!
//! A tenant's message on MQTT becomes a ticket at the gateway, which syncs it to the office.
//! An office user signs in through headless Chromium, opens the ticket and assigns another
//! vendor. The gateway pulls the change, its own store shows the new vendor, and the tenant's
//! update naming that vendor arrives on the tenant's MQTT topic. The screenshot of the
//! assigned ticket is kept in `target/test-artifacts/`.

mod support;

#[path = "support/central.rs"]
mod central;
#[path = "support/chromium.rs"]
#[allow(dead_code)]
mod chromium;
#[path = "support/dispatch_fixture.rs"]
mod fixture;
#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caretaker::protocol::{
    Change, Contact, Envelope, EventKind, TenantRecord, TenantUpdate, TicketEvent, TicketSnapshot,
    Transition,
};
use central::Central;
use chromium::Browser;
use mosquitto::{publish, Mosquitto, Publish};
use support::{free_port, read_log, wait_until, Gateway};

const PASSWORD: &str = "office e2e password";
const UNIT: &str = "2.th";
const SENDER: &str = "+4522334455";
const TICKET: &str = "dispatch-test-000001";
const VENDOR: &str = "Aqua Plumbing & Sons";
const WAIT: Duration = Duration::from_secs(60);
const SMTP_GATEWAY: &str = "gw-north";

fn artifact_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

/// Lines printed by a `mosquitto_sub` process, collected by a reader thread.
struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn start(port: u16, topic: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", topic, "-q", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mosquitto_sub");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Subscriber { child, lines }
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the gateway's own row of the ticket: (state, vendor).
fn gateway_ticket(db: &Path) -> Option<(String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).ok()?;
    let _ = conn.busy_timeout(Duration::from_secs(5));
    conn.query_row(
        "SELECT state, vendor FROM tickets WHERE id = ?1",
        [TICKET],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .ok()
}

/// Counts the ticket's events in the office's database whose payload contains `needle`.
fn office_ticket_events(db: &Path, needle: &str) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    conn.query_row(
        "SELECT COUNT(*) FROM events WHERE ticket = ?1 AND instr(payload, ?2) > 0",
        [TICKET, needle],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

fn booked_texts(messages: &[serde_json::Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|message| message["template"] == "booked")
        .filter_map(|message| message["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn office_assignment_reaches_gateway_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let office = Central::start_sqlite(&[]);
    let token = office.add_token(fixture::GATEWAY, fixture::GATEWAY);
    office.add_user("ida", "office", PASSWORD);
    let office_db = office.folder().join("central.db");

    let broker = Mosquitto::start(dir.path());
    let config = fixture::write_config(dir.path(), broker.port, free_port(), "");
    // The gateway rejects an assignment to a vendor it does not know, so the office's vendor
    // is in its list. Its hours start later than the shipped plumber's, so automation books
    // the shipped plumber first.
    fixture::extend_vendors(
        &config,
        &format!(
            "\n[[vendor]]\nname = \"{VENDOR}\"\ntrades = [\"plumbing\"]\n\
             hours = [\"Mon-Fri 08:00-15:00\"]\ndaily_capacity = 2\ncost_cap = 5000\n"
        ),
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[sync]
url = "{url}"
token = "{token}"
poll_interval_secs = 1
pull_interval_secs = 1
backoff_initial_ms = 200
backoff_max_secs = 2
telemetry_interval_secs = 0
"#,
        url = office.url,
    ));
    std::fs::write(&config, text).unwrap();
    let db = dir.path().join("store.db");
    {
        let dispatcher = fixture::dispatcher(&config);
        let mut conn = fixture::open(&db);
        fixture::add_tenant(&dispatcher, &mut conn, 1, UNIT, "en", &[("sms", SENDER)]);
    }

    let log = dir.path().join("gateway.log");
    let _gateway = Gateway::start(&config, &log);
    let subscribed = wait_until(WAIT, || read_log(&log).contains("tenants/+/messages"));
    assert!(subscribed, "{}", read_log(&log));
    let tenant = Subscriber::start(broker.port, &format!("tenants/{UNIT}/updates"));
    std::thread::sleep(Duration::from_millis(500));

    let message = serde_json::json!({
        "text": "The kitchen tap is dripping all the time",
        "sender": SENDER,
        "channel": "sms",
    })
    .to_string();
    publish(
        broker.port,
        &format!("tenants/{UNIT}/messages"),
        message.as_bytes(),
        &Publish {
            qos: 1,
            retain: false,
            args: &[],
        },
    );

    // The gateway books its own vendor and sends the tenant an update.
    let booked = wait_until(WAIT, || !booked_texts(&tenant.messages()).is_empty());
    assert!(
        booked,
        "no booked update: {:?}\n{}",
        tenant.messages(),
        read_log(&log)
    );
    let first = gateway_ticket(&db).expect("the gateway has the ticket");
    assert_eq!(first.0, "scheduled");
    assert_ne!(first.1.as_deref(), Some(VENDOR));

    // The ticket reaches the office.
    let synced = wait_until(WAIT, || office_ticket_events(&office_db, "") >= 1);
    assert!(
        synced,
        "the office has no event of {TICKET}; gateway log:\n{}",
        read_log(&log)
    );

    // An office user assigns another vendor in the dashboard.
    let browser = Browser::start(&office.folder().join("chromedriver.log"));
    browser.goto(&format!("{}/tickets", office.url));
    browser.wait_for("input#user", WAIT).type_text("ida");
    browser.find_all("input#password")[0].type_text(PASSWORD);
    browser.find_all("button#sign-in")[0].click();
    let row = browser.wait_for(&format!("tr.ticket[data-ticket=\"{TICKET}\"]"), WAIT);
    row.find_all("a")[0].click();
    let vendor = browser.wait_for("input#assign-vendor", WAIT);
    vendor.clear();
    vendor.type_text(VENDOR);
    browser.find_all("button#assign-submit")[0].click();
    let notice = browser.wait_for("#notice", WAIT).text();
    assert!(notice.contains("Vendor assignment recorded"), "{notice}");
    std::fs::create_dir_all(artifact_dir()).unwrap();
    browser.screenshot(&artifact_dir().join("office_e2e_assigned.png"));

    // The gateway applies it to its own store.
    let applied = wait_until(WAIT, || {
        gateway_ticket(&db).is_some_and(|(_, vendor)| vendor.as_deref() == Some(VENDOR))
    });
    assert!(
        applied,
        "gateway ticket {:?}; gateway log:\n{}",
        gateway_ticket(&db),
        read_log(&log)
    );
    assert_eq!(gateway_ticket(&db).unwrap().0, "scheduled");

    // An update naming the new vendor arrives on the tenant's topic.
    let named = wait_until(WAIT, || {
        booked_texts(&tenant.messages())
            .iter()
            .any(|text| text.contains(VENDOR))
    });
    assert!(
        named,
        "no update naming {VENDOR}: {:?}\n{}",
        tenant.messages(),
        read_log(&log)
    );
    let updates = tenant.messages();
    let last = updates.last().unwrap();
    assert_eq!(last["language"], "en", "{last}");

    // The gateway's event of the ticket with the new vendor reaches the office.
    let back = wait_until(WAIT, || office_ticket_events(&office_db, VENDOR) >= 1);
    assert!(back, "no event of {TICKET} naming {VENDOR} at the office");
}

/// An `aiosmtpd` server on loopback that stores every accepted mail in a Maildir.
struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> SmtpServer {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python3");
        assert!(
            python.exists(),
            "{} is missing; run scripts/install-test-deps.sh",
            python.display()
        );
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        SmtpServer {
            child,
            maildir: maildir.to_path_buf(),
        }
    }

    /// Returns the raw text of every mail received so far.
    fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Posts events as gateway `gw-north` of building `north` does.
fn post_events(office: &Central, token: &str, events: &[Envelope]) {
    let body = serde_json::json!({ "gateway": SMTP_GATEWAY, "events": events }).to_string();
    let authorization = format!("Bearer {token}");
    let reply = chromium::http(
        "POST",
        &format!("{}/v1/events", office.url),
        &[
            ("Authorization", &authorization),
            ("Caretaker-Protocol", "1"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let acked = reply.json()["acked"].as_array().unwrap().len();
    assert_eq!(acked, events.len(), "{}", reply.text());
}

fn envelope(seq: i64, kind: EventKind, ticket: &str, payload: serde_json::Value) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7(),
        gateway: SMTP_GATEWAY.to_string(),
        seq,
        kind,
        ticket: Some(ticket.to_string()),
        ts_ms: now_ms(),
        payload,
    }
}

fn tenant_update(seq: i64, ticket: &str, unit: &str, text: &str) -> Envelope {
    let update = TenantUpdate {
        ticket: ticket.to_string(),
        unit: unit.to_string(),
        language: "en".to_string(),
        template: "booked".to_string(),
        text: text.to_string(),
        ts_ms: now_ms(),
    };
    envelope(
        seq,
        EventKind::TenantUpdate,
        ticket,
        serde_json::to_value(update).unwrap(),
    )
}

fn dispatched(seq: i64, ticket: &str, vendor: &str) -> Envelope {
    let now = now_ms();
    let snapshot = TicketSnapshot {
        id: ticket.to_string(),
        building: "north".to_string(),
        state: "dispatched".to_string(),
        category: "plumbing".to_string(),
        urgency: "urgent".to_string(),
        needs_human: false,
        escalation_reason: None,
        unit: Some("2.th".to_string()),
        asset: None,
        summary: "Kitchen tap dripping".to_string(),
        sources: Vec::new(),
        vendor: Some(vendor.to_string()),
        slot_start_ms: Some(now + 3_600_000),
        slot_end_ms: Some(now + 7_200_000),
        ack_due_ms: None,
        onsite_due_ms: None,
        resolve_due_ms: None,
        opened_ms: now - 60_000,
        updated_ms: now,
    };
    let event = TicketEvent {
        ticket: snapshot,
        transition: Transition {
            seq: 1,
            ts_ms: now,
            from: Some("triaged".to_string()),
            to: "dispatched".to_string(),
            actor: "rule:smtp-test".to_string(),
            reason: "vendor chosen".to_string(),
        },
    };
    envelope(
        seq,
        EventKind::Ticket,
        ticket,
        serde_json::to_value(event).unwrap(),
    )
}

/// Adds a tenant with an e-mail contact to the office's directory through its store.
fn add_directory_entry(db_url: &str, unit: &str, email: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = caretaker::central::store::open(db_url).await.unwrap();
        let record = TenantRecord {
            unit: unit.to_string(),
            language: "en".to_string(),
            contacts: vec![Contact {
                channel: "email".to_string(),
                address: email.to_string(),
            }],
            quiet_from: None,
            quiet_until: None,
            consent: true,
            opt_outs: Vec::new(),
            permission_to_enter: true,
            availability: Vec::new(),
        };
        store
            .add_change(
                "north",
                "office:test",
                Change::TenantUpsert(record),
                now_ms(),
            )
            .await
            .unwrap();
    });
}

#[test]
fn smtp_relay_mails_tenant_and_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let state = dir.path().join("smtp.state");
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let args = [
        "--smtp-url",
        smtp_url.as_str(),
        "--smtp-from",
        "Office <office@example.org>",
        "--smtp-vendor",
        "Aqua Plumbing & Sons=jobs@aqua.example",
        "--smtp-state",
        state.to_str().unwrap(),
    ];
    // The database lives in this test's folder, so that it outlives the first process.
    let db_url = format!("sqlite://{}", dir.path().join("central.db").display());
    let office = Central::start(&db_url, &args);
    let token = office.add_token(SMTP_GATEWAY, "north");
    add_directory_entry(&db_url, "2.th", "tenant-2th@example.net");
    add_directory_entry(&db_url, "3.tv", "tenant-3tv@example.net");

    // The mail server is not up yet: the office stores the entries and keeps trying.
    post_events(
        &office,
        &token,
        &[
            dispatched(1, "gw-north-000001", "Aqua Plumbing & Sons"),
            tenant_update(
                2,
                "gw-north-000001",
                "2.th",
                "Aqua Plumbing & Sons will come at 10:00.",
            ),
            dispatched(3, "gw-north-000002", "A vendor without an address"),
        ],
    );
    let retrying = wait_until(WAIT, || office.read_log().contains("SMTP relay failed"));
    assert!(retrying, "{}", office.read_log());
    assert!(
        !state.exists(),
        "an entry was recorded as sent with no server"
    );

    let maildir = dir.path().join("maildir");
    let server = SmtpServer::start(smtp_port, &maildir);
    let delivered = wait_until(WAIT, || server.mails().len() >= 2);
    assert!(
        delivered,
        "mails: {:?}\n{}",
        server.mails(),
        office.read_log()
    );
    let mails = server.mails();
    let vendor = mails
        .iter()
        .find(|mail| mail.contains("To: jobs@aqua.example"))
        .unwrap_or_else(|| panic!("no vendor mail in {mails:?}"));
    assert!(vendor.contains("gw-north-000001"), "{vendor}");
    assert!(vendor.contains("Kitchen tap dripping"), "{vendor}");
    let tenant = mails
        .iter()
        .find(|mail| mail.contains("To: tenant-2th@example.net"))
        .unwrap_or_else(|| panic!("no tenant mail in {mails:?}"));
    assert!(
        tenant.contains("Aqua Plumbing & Sons will come at 10:00."),
        "{tenant}"
    );
    assert!(
        tenant.contains("From: Office <office@example.org>"),
        "{tenant}"
    );
    assert!(
        !mails.iter().any(|mail| mail.contains("tenant-3tv")),
        "another unit got mail: {mails:?}"
    );
    let log = office.read_log();
    assert!(
        !log.contains("tenant-2th@example.net"),
        "an address reached the log"
    );
    assert!(
        !log.contains("will come at 10:00"),
        "an update's text reached the log"
    );

    // A restart on the same database and state file sends only what is new.
    let (status, _log) = office.stop();
    assert!(status.success(), "central exited with {status}");
    let office = Central::start(&db_url, &args);
    post_events(
        &office,
        &token,
        &[tenant_update(
            4,
            "gw-north-000001",
            "2.th",
            "The job is done.",
        )],
    );
    let third = wait_until(WAIT, || server.mails().len() >= 3);
    assert!(third, "mails: {:?}\n{}", server.mails(), office.read_log());
    std::thread::sleep(Duration::from_secs(2));
    let mails = server.mails();
    assert_eq!(mails.len(), 3, "a mail was sent twice: {mails:?}");
    assert!(mails.iter().any(|mail| mail.contains("The job is done.")));
}

/// An SMTP server (a fault double beside the real `aiosmtpd` one) that replies 451, try again
/// later, to the first `TEMPORARY_FAILURES` messages and stores the rest in a Maildir.
const FLAKY_SERVER: &str = r#"
import mailbox, sys, time
from aiosmtpd.controller import Controller

class Flaky:
    def __init__(self):
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.attempts <= int(sys.argv[3]):
            return "451 4.3.0 try again later"
        mailbox.Maildir(sys.argv[2]).add(envelope.content)
        return "250 OK"

controller = Controller(Flaky(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
while True:
    time.sleep(60)
"#;

const TEMPORARY_FAILURES: usize = 2;

#[test]
fn smtp_relay_retries_temporary_failure() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let maildir = dir.path().join("maildir");
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python3");
    let child = Command::new(python)
        .args(["-c", FLAKY_SERVER, &smtp_port.to_string()])
        .arg(&maildir)
        .arg(TEMPORARY_FAILURES.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the flaky SMTP server");
    let server = SmtpServer {
        child,
        maildir: maildir.clone(),
    };
    let state = dir.path().join("smtp.state");
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let db_url = format!("sqlite://{}", dir.path().join("central.db").display());
    let office = Central::start(
        &db_url,
        &[
            "--smtp-url",
            &smtp_url,
            "--smtp-from",
            "office@example.org",
            "--smtp-state",
            state.to_str().unwrap(),
        ],
    );
    let token = office.add_token(SMTP_GATEWAY, "north");
    add_directory_entry(&db_url, "2.th", "tenant-2th@example.net");
    post_events(
        &office,
        &token,
        &[tenant_update(
            1,
            "gw-north-000001",
            "2.th",
            "We have received your message.",
        )],
    );

    let delivered = wait_until(WAIT, || !server.mails().is_empty());
    assert!(delivered, "{}", office.read_log());
    let failures = office.read_log().matches("SMTP relay failed").count();
    assert!(
        failures >= TEMPORARY_FAILURES,
        "{failures} failures logged:\n{}",
        office.read_log()
    );
    // The relay writes its state after the server has accepted the mail, so wait for the file.
    let recorded = wait_until(WAIT, || {
        std::fs::read_to_string(&state).is_ok_and(|content| content.trim() == "1")
    });
    assert!(recorded, "state file {}", state.display());
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "1");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.mails().len(), 1, "the accepted mail was sent again");
}

/// Writes `smtp.key` and a self-signed `smtp.pem` for 127.0.0.1 into `dir` with openssl.
fn self_signed(dir: &Path) {
    let output = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "1"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-keyout", "smtp.key", "-out", "smtp.pem"])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn smtp_relay_over_tls_trusts_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let smtp_port = free_port();
    let maildir = dir.path().join("maildir");
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python3");
    let child = Command::new(python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{smtp_port}"),
        ])
        .arg("--smtpscert")
        .arg(dir.path().join("smtp.pem"))
        .arg("--smtpskey")
        .arg(dir.path().join("smtp.key"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let server = SmtpServer {
        child,
        maildir: maildir.clone(),
    };
    let state = dir.path().join("smtp.state");
    let smtp_url = format!("smtps://127.0.0.1:{smtp_port}");
    let db_url = format!("sqlite://{}", dir.path().join("central.db").display());
    let ca = dir.path().join("smtp.pem");
    let mut args = vec![
        "--smtp-url",
        smtp_url.as_str(),
        "--smtp-from",
        "office@example.org",
        "--smtp-state",
        state.to_str().unwrap(),
    ];

    // Without the CA the server's certificate is not trusted, so nothing is sent.
    let office = Central::start(&db_url, &args);
    let token = office.add_token(SMTP_GATEWAY, "north");
    add_directory_entry(&db_url, "2.th", "tenant-2th@example.net");
    post_events(
        &office,
        &token,
        &[tenant_update(
            1,
            "gw-north-000001",
            "2.th",
            "Sent over TLS.",
        )],
    );
    let untrusted = wait_until(WAIT, || {
        office
            .read_log()
            .lines()
            .any(|line| line.contains("SMTP relay failed") && line.contains("certificate"))
    });
    assert!(untrusted, "{}", office.read_log());
    assert!(
        server.mails().is_empty(),
        "mail sent to an untrusted server"
    );
    let (status, _log) = office.stop();
    assert!(status.success(), "central exited with {status}");

    // With the CA given, the stored entry goes out.
    args.extend(["--smtp-ca", ca.to_str().unwrap()]);
    let office = Central::start(&db_url, &args);
    let delivered = wait_until(WAIT, || !server.mails().is_empty());
    assert!(delivered, "{}", office.read_log());
    let mails = server.mails();
    assert!(mails[0].contains("Sent over TLS."), "{mails:?}");
    assert!(mails[0].contains("To: tenant-2th@example.net"), "{mails:?}");
}
