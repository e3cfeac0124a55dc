//! The office dashboard against a real `caretaker central` process. The tests seed it by
//! POSTing events with a gateway token, as a gateway would. They then use it through headless
//! Chromium (sign in, escalation queue, a ticket's story, assigning a vendor, a vendor's status
//! link) and through plain HTTP (roles, CSRF, tampered links, CSV). Office changes are checked
//! in the pull feed `GET /v1/changes` with the gateway's token.
//!
//! The screenshot of the assigned ticket is kept in `target/test-artifacts/`.

mod support;

#[path = "support/central.rs"]
mod central;
#[path = "support/chromium.rs"]
mod chromium;
#[path = "support/postgres.rs"]
mod postgres;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caretaker::protocol::{
    AuditEntry, Envelope, EventKind, Heartbeat, TicketEvent, TicketSnapshot, TicketSource,
    Transition, PROTOCOL_VERSION,
};
use serde_json::{json, Value};

use central::Central;
use chromium::{http, Browser, HttpReply};
use postgres::PgDatabase;

const PASSWORD: &str = "correct horse battery";
const NORTH_GATEWAY: &str = "gw-north";
const ESCALATED: &str = "gw-north-000002";
const WAIT: Duration = Duration::from_secs(60);

/// Sends a request of sync protocol v1 with a gateway's token.
fn api(central: &Central, method: &str, path: &str, token: &str, body: &Value) -> HttpReply {
    let authorization = format!("Bearer {token}");
    let version = PROTOCOL_VERSION.to_string();
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    http(
        method,
        &format!("{}{path}", central.url),
        &[
            ("Authorization", &authorization),
            ("Caretaker-Protocol", &version),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Builds the events a gateway would send, one per call, with increasing sequence numbers.
struct EventSource {
    gateway: String,
    seq: i64,
}

impl EventSource {
    fn new(gateway: &str) -> EventSource {
        EventSource {
            gateway: gateway.to_string(),
            seq: 0,
        }
    }

    fn envelope(&mut self, kind: EventKind, ticket: Option<&str>, payload: Value) -> Envelope {
        self.seq += 1;
        Envelope {
            event_id: uuid::Uuid::now_v7(),
            gateway: self.gateway.clone(),
            seq: self.seq,
            kind,
            ticket: ticket.map(str::to_string),
            ts_ms: now_ms(),
            payload,
        }
    }
}

fn snapshot(id: &str, state: &str, urgency: &str, summary: &str) -> TicketSnapshot {
    let now = now_ms();
    TicketSnapshot {
        id: id.to_string(),
        building: "north".to_string(),
        state: state.to_string(),
        category: "plumbing".to_string(),
        urgency: urgency.to_string(),
        needs_human: false,
        escalation_reason: None,
        unit: Some("4A".to_string()),
        asset: None,
        summary: summary.to_string(),
        sources: vec![TicketSource {
            kind: "message".to_string(),
            id: format!("msg-{id}"),
        }],
        vendor: None,
        slot_start_ms: None,
        slot_end_ms: None,
        ack_due_ms: Some(now + 2 * 3_600_000),
        onsite_due_ms: Some(now + 6 * 3_600_000),
        resolve_due_ms: Some(now + 48 * 3_600_000),
        opened_ms: now - 600_000,
        updated_ms: now - 60_000,
    }
}

fn ticket_event(source: &mut EventSource, ticket: TicketSnapshot, seq: i64, to: &str) -> Envelope {
    let id = ticket.id.clone();
    let transition = Transition {
        seq,
        ts_ms: now_ms() - 60_000 + seq,
        from: (seq > 1).then(|| "new".to_string()),
        to: to.to_string(),
        actor: if seq == 1 {
            "model:triage-1".to_string()
        } else {
            "rule:human-handover".to_string()
        },
        reason: if seq == 1 {
            "tenant message triaged as plumbing".to_string()
        } else {
            "tenant reports water through the ceiling".to_string()
        },
    };
    let payload = serde_json::to_value(TicketEvent { ticket, transition }).unwrap();
    source.envelope(EventKind::Ticket, Some(&id), payload)
}

/// Seeds building north: a normal ticket, an urgent one and an escalated one with its audit
/// entry, and an anomaly with sensor readings around it. Returns the events.
fn north_events(source: &mut EventSource) -> Vec<Envelope> {
    let mut events = Vec::new();
    let routine = snapshot("gw-north-000001", "new", "normal", "kitchen tap drips");
    events.push(ticket_event(source, routine, 1, "new"));
    let urgent = snapshot(
        "gw-north-000003",
        "new",
        "urgent",
        "no hot water in the flat",
    );
    events.push(ticket_event(source, urgent, 1, "new"));

    let opened = snapshot(ESCALATED, "new", "emergency", "water through the ceiling");
    events.push(ticket_event(source, opened, 1, "new"));
    let mut escalated = snapshot(
        ESCALATED,
        "escalated",
        "emergency",
        "water through the ceiling",
    );
    escalated.needs_human = true;
    escalated.escalation_reason = Some("emergency needs a human".to_string());
    events.push(ticket_event(source, escalated, 2, "escalated"));
    let audit = AuditEntry {
        ticket: ESCALATED.to_string(),
        ts_ms: now_ms() - 50_000,
        actor: "rule:human-handover".to_string(),
        action: "handover_to_office".to_string(),
        detail: json!({"rule": "emergency", "urgency": "emergency", "score": 0.97}),
        hash: "9f2c0e7d5b1a43c8e6f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8".to_string(),
    };
    let payload = serde_json::to_value(audit).unwrap();
    events.push(source.envelope(EventKind::Audit, Some(ESCALATED), payload));

    let at = now_ms() - 3_600_000;
    let minutes: Vec<Value> = (-30..=30)
        .map(|i| {
            let value = if i >= 0 {
                4.0 + f64::from(i) * 0.1
            } else {
                1.0
            };
            json!({"bucket_ms": at + i64::from(i) * 60_000, "min": value - 0.2,
                   "max": value + 0.2, "sum": value * 60.0, "count": 60})
        })
        .collect();
    let anomaly = json!({
        "asset": "pump-2", "fault": "bearing wear", "detector": "vibration-zscore",
        "score": 0.91, "threshold": 0.8, "opened_ms": at,
        "sensors": {"pump-2/vibration": minutes},
    });
    events.push(source.envelope(EventKind::Anomaly, None, anomaly));
    let telemetry = json!({"rollups": [
        {"sensor": "pump-2/vibration", "bucket_ms": at, "min": 0.8, "max": 7.1,
         "sum": 240.0, "count": 60}
    ]});
    events.push(source.envelope(EventKind::Telemetry, None, telemetry));
    events
}

fn post_events(central: &Central, token: &str, gateway: &str, events: &[Envelope]) {
    let body = json!({"gateway": gateway, "events": events});
    let reply = api(central, "POST", "/v1/events", token, &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["rejected"], json!([]), "{answer}");
    assert_eq!(
        answer["acked"].as_array().unwrap().len(),
        events.len(),
        "{answer}"
    );
}

fn heartbeat(central: &Central, token: &str, gateway: &str) {
    let beat = Heartbeat {
        gateway: gateway.to_string(),
        version: "0.1.0".to_string(),
        protocol: PROTOCOL_VERSION,
        config_hash: "0".repeat(64),
        ts_ms: now_ms(),
        health: "ok".to_string(),
        problems: Vec::new(),
        outbox_events: 0,
    };
    let body = serde_json::to_value(beat).unwrap();
    let reply = api(central, "POST", "/v1/heartbeat", token, &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Returns the ticket changes of the pull feed of `token`'s building.
fn pulled_changes(central: &Central, token: &str) -> Vec<Value> {
    let reply = api(
        central,
        "GET",
        "/v1/changes?after=0&limit=1000",
        token,
        &Value::Null,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["changes"].as_array().unwrap().clone()
}

fn artifact_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

#[test]
fn dashboard_assigns_vendor_in_chromium() {
    let stale_secs = 5;
    let central = Central::start_sqlite(&["--heartbeat-stale-secs", &stale_secs.to_string()]);
    let north = central.add_token(NORTH_GATEWAY, "north");
    let south = central.add_token("gw-south", "south");
    central.add_user("ida", "office", PASSWORD);

    heartbeat(&central, &south, "gw-south");
    let south_beat = Instant::now();
    let mut source = EventSource::new(NORTH_GATEWAY);
    post_events(&central, &north, NORTH_GATEWAY, &north_events(&mut source));

    let browser = Browser::start(&central.folder().join("chromedriver.log"));
    browser.goto(&format!("{}/tickets", central.url));
    browser.wait_for("input#user", WAIT).type_text("ida");
    browser.find_all("input#password")[0].type_text(PASSWORD);

    // South's gateway stops sending heartbeats; north's keeps them coming.
    let stale_after = Duration::from_secs(stale_secs + 1);
    std::thread::sleep(stale_after.saturating_sub(south_beat.elapsed()));
    heartbeat(&central, &north, NORTH_GATEWAY);
    let north_beat = Instant::now();
    browser.find_all("button#sign-in")[0].click();

    // The escalated ticket is the first row of the first table, in the escalation queue.
    let first = browser.wait_for("tr.ticket", WAIT);
    assert_eq!(first.attribute("data-ticket").as_deref(), Some(ESCALATED));
    let queue = browser.find_all("#escalation-queue tr.ticket");
    assert_eq!(queue.len(), 1, "{}", browser.source());
    let others = browser.find_all("#tickets tr.ticket");
    let order: Vec<String> = others
        .iter()
        .filter_map(|row| row.attribute("data-ticket"))
        .collect();
    assert_eq!(
        order,
        ["gw-north-000003", "gw-north-000001"],
        "urgent before normal"
    );
    let alerts: Vec<String> = browser
        .find_all("p.alert")
        .iter()
        .filter_map(|alert| alert.attribute("data-building"))
        .collect();
    assert!(
        alerts.contains(&"south".to_string()),
        "no alert for south: {alerts:?}"
    );
    if north_beat.elapsed() < Duration::from_secs(stale_secs) {
        assert!(
            !alerts.contains(&"north".to_string()),
            "north alerted: {alerts:?}"
        );
    }

    browser.screenshot(&artifact_dir().join("dashboard_tickets.png"));

    // The ticket's story: history and audit entries.
    first.find_all("a")[0].click();
    let history = browser.wait_for("table#history", WAIT).text();
    assert!(
        history.contains("tenant reports water through the ceiling"),
        "{history}"
    );
    assert!(history.contains("rule:human-handover"), "{history}");
    let audit = browser.wait_for("table#audit", WAIT).text();
    assert!(audit.contains("handover_to_office"), "{audit}");
    let facts = browser.wait_for("table#ticket-facts", WAIT).text();
    assert!(
        facts.contains("4A"),
        "an office user sees the unit: {facts}"
    );

    // Assign a vendor.
    let vendor = browser.wait_for("input#assign-vendor", WAIT);
    vendor.clear();
    vendor.type_text("Aqua Plumbing & Sons");
    browser.find_all("button#assign-submit")[0].click();
    let notice = browser.wait_for("#notice", WAIT).text();
    assert!(notice.contains("Vendor assignment recorded"), "{notice}");
    let vendor_cell = browser.wait_for("#ticket-vendor", WAIT).text();
    assert!(
        vendor_cell.starts_with("Aqua Plumbing & Sons"),
        "{vendor_cell}"
    );
    let changes_table = browser.wait_for("table#office-changes", WAIT).text();
    assert!(
        changes_table.contains("Aqua Plumbing & Sons"),
        "{changes_table}"
    );
    browser.screenshot(&artifact_dir().join("dashboard_assign_vendor.png"));

    // The gateway's pull feed carries the assignment.
    let changes = pulled_changes(&central, &north);
    let assign = changes
        .iter()
        .find(|change| change["change"]["action"] == "assign")
        .unwrap_or_else(|| panic!("no assign change in {changes:?}"));
    assert_eq!(assign["change"]["ticket"], ESCALATED);
    assert_eq!(assign["change"]["vendor"], "Aqua Plumbing & Sons");
    assert_eq!(assign["actor"], "office:ida");
    assert!(assign["change"]["slot_start_ms"].is_i64(), "{assign}");
    // Another building's feed does not.
    assert_eq!(pulled_changes(&central, &south), Vec::<Value>::new());

    // The vendor's status link works without an account.
    let link = browser
        .wait_for("#vendor-links a", WAIT)
        .attribute("href")
        .unwrap();
    assert!(link.contains("action=on_the_way"), "{link}");
    browser.find_all("header form button")[0].click();
    browser.wait_for("input#user", WAIT);
    browser.goto(&link);
    browser.wait_for("button#vendor-report", WAIT).click();
    let thanks = browser.wait_for("#notice", WAIT).text();
    assert!(thanks.contains("On the way"), "{thanks}");
    // The same report sent again records nothing new.
    let again = http("POST", &link, &[], b"");
    assert_eq!(again.status, 200, "{}", again.text());
    let changes = pulled_changes(&central, &north);
    let reports: Vec<&Value> = changes
        .iter()
        .filter(|change| change["change"]["action"] == "on_the_way")
        .collect();
    assert_eq!(reports.len(), 1, "{changes:?}");
    let report = reports[0];
    assert_eq!(report["actor"], "vendor:Aqua Plumbing & Sons");
    assert_eq!(report["change"]["ticket"], ESCALATED);

    let log = central.read_log();
    assert!(!log.contains(PASSWORD), "the password reached the log");
}

/// Signs in over HTTP and returns the session cookie (`name=value`).
fn sign_in(central: &Central, user: &str, password: &str) -> Result<String, HttpReply> {
    let body = serde_urlencoded::to_string([("user", user), ("password", password)]).unwrap();
    let reply = http(
        "POST",
        &format!("{}/login", central.url),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    match reply.header("set-cookie") {
        Some(cookie) if reply.status == 303 => Ok(cookie.split(';').next().unwrap().to_string()),
        _ => Err(reply),
    }
}

fn get_page(central: &Central, path: &str, cookie: &str) -> HttpReply {
    http(
        "GET",
        &format!("{}{path}", central.url),
        &[("Cookie", cookie)],
        b"",
    )
}

fn post_form(central: &Central, path: &str, cookie: &str, form: &[(&str, &str)]) -> HttpReply {
    let body = serde_urlencoded::to_string(form).unwrap();
    http(
        "POST",
        &format!("{}{path}", central.url),
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
}

/// Returns the value of the first hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("no CSRF field") + marker.len();
    page[start..start + 64].to_string()
}

#[test]
fn dashboard_guards_over_http() {
    check_guards(&Central::start_sqlite(&[]));
}

#[test]
fn dashboard_guards_on_postgres() {
    let database = PgDatabase::fresh();
    check_guards(&Central::start(&database.url, &[]));
}

/// Checks sign-in, roles, CSRF, vendor links and exports over plain HTTP.
fn check_guards(central: &Central) {
    let north = central.add_token(NORTH_GATEWAY, "north");
    central.add_user("ida", "office", PASSWORD);
    central.add_user("vic", "viewer", PASSWORD);
    let mut source = EventSource::new(NORTH_GATEWAY);
    post_events(central, &north, NORTH_GATEWAY, &north_events(&mut source));

    // Without a session, pages send the user to sign in.
    let anonymous = http("GET", &format!("{}/tickets", central.url), &[], b"");
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/login?next=%2Ftickets"));

    // A wrong password gets 401 and no cookie.
    let rejected = sign_in(central, "ida", "wrong password").unwrap_err();
    assert_eq!(rejected.status, 401);
    assert!(rejected.text().contains("Invalid user name or password"));
    let unknown = sign_in(central, "nobody", PASSWORD).unwrap_err();
    assert_eq!(unknown.status, 401);

    // The session cookie is HttpOnly and SameSite=Strict.
    let body = serde_urlencoded::to_string([("user", "ida"), ("password", PASSWORD)]).unwrap();
    let reply = http(
        "POST",
        &format!("{}/login", central.url),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    let set_cookie = reply.header("set-cookie").unwrap_or_default();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");

    // A viewer sees the ticket without the unit and cannot act on it.
    let viewer = sign_in(central, "vic", PASSWORD).unwrap();
    let ticket_path = format!("/tickets/{ESCALATED}");
    let page = get_page(central, &ticket_path, &viewer);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(!html.contains("4A"), "a viewer saw the unit");
    assert!(
        !html.contains("id=\"assign\""),
        "a viewer got the action forms"
    );
    let viewer_csrf = csrf_of(&html);
    let forbidden = post_form(
        central,
        &format!("{ticket_path}/acknowledge"),
        &viewer,
        &[("csrf", &viewer_csrf)],
    );
    assert_eq!(forbidden.status, 403, "{}", forbidden.text());

    // An office user's form without the CSRF token, or from another site, is rejected.
    let office = sign_in(central, "ida", PASSWORD).unwrap();
    let page = get_page(central, &ticket_path, &office).text();
    assert!(page.contains("4A"), "an office user sees the unit");
    let csrf = csrf_of(&page);
    let no_token = post_form(central, &format!("{ticket_path}/acknowledge"), &office, &[]);
    assert_eq!(no_token.status, 403);
    let other_session = post_form(
        central,
        &format!("{ticket_path}/acknowledge"),
        &office,
        &[("csrf", &viewer_csrf)],
    );
    assert_eq!(other_session.status, 403);
    let body = serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap();
    let cross_site = http(
        "POST",
        &format!("{}{ticket_path}/acknowledge", central.url),
        &[
            ("Cookie", &office),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    );
    assert_eq!(cross_site.status, 403);
    assert!(
        pulled_changes(central, &north).is_empty(),
        "a rejected form left a change"
    );

    // A valid acknowledgement goes to the pull feed.
    let done = post_form(
        central,
        &format!("{ticket_path}/acknowledge"),
        &office,
        &[("csrf", &csrf), ("note", "calling the tenant")],
    );
    assert_eq!(done.status, 303, "{}", done.text());
    let changes = pulled_changes(central, &north);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["change"]["action"], "acknowledge");
    assert_eq!(changes[0]["change"]["note"], "calling the tenant");

    // A reschedule with an end before its start is rejected with a message.
    let backwards = post_form(
        central,
        &format!("{ticket_path}/reschedule"),
        &office,
        &[
            ("csrf", &csrf),
            ("slot_start", "2030-01-01T12:00"),
            ("slot_end", "2030-01-01T10:00"),
        ],
    );
    assert_eq!(backwards.status, 400);
    assert!(backwards.text().contains("ends before it starts"));

    // A vendor link whose signature does not match gets a clear 403 page.
    let assign = post_form(
        central,
        &format!("{ticket_path}/assign"),
        &office,
        &[("csrf", &csrf), ("vendor", "Aqua")],
    );
    assert_eq!(assign.status, 303);
    let page = get_page(central, &ticket_path, &office).text();
    let start = page.find("/vendor/status?").expect("no vendor link");
    let end = start + page[start..].find('"').unwrap();
    let link = page[start..end].replace("&amp;", "&");
    let valid = http("GET", &format!("{}{link}", central.url), &[], b"");
    assert_eq!(valid.status, 200, "{}", valid.text());
    let tampered = link.replace("action=on_the_way", "action=done");
    let reply = http("GET", &format!("{}{tampered}", central.url), &[], b"");
    assert_eq!(reply.status, 403);
    assert!(
        reply.text().contains("signature does not match"),
        "{}",
        reply.text()
    );

    // The ticket CSV lists the escalated ticket first; the unit only for the office role.
    let csv = get_page(central, "/export/tickets.csv", &office);
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.text();
    let first_row = text.lines().nth(1).unwrap();
    assert!(first_row.starts_with(ESCALATED), "{text}");
    assert!(first_row.contains(",4A,"), "{first_row}");
    let viewer_csv = get_page(central, "/export/tickets.csv", &viewer).text();
    assert!(!viewer_csv.contains("4A"), "{viewer_csv}");

    // Readings summaries and the anomaly plot of the building.
    let readings = get_page(central, "/export/readings.csv?building=north", &viewer).text();
    assert!(
        readings.contains("north,gw-north,pump-2/vibration,"),
        "{readings}"
    );
    let building = get_page(central, "/buildings/north", &viewer).text();
    assert!(building.contains("<svg"), "no plot on the building page");
    assert!(building.contains("bearing wear"));
}
