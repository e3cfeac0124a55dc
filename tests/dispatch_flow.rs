//! Dispatch on a real SQLite file: messages and anomalies become scheduled tickets, merge
//! into incidents, escalate on the SLA under a manual clock, schedule across a DST change,
//! and leave no trace of an erased tenant. The `audit` and `erase` subcommands run as the
//! binary.

#[path = "support/dispatch_fixture.rs"]
mod fixture;

use std::process::Command;
use std::time::Duration;

use caretaker::protocol::{Change, Contact, OfficeChange, TenantRecord, TicketAction};
use caretaker::time::{Clock, ManualClock};
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Europe::Copenhagen;
use fixture::{
    add_anomaly, add_message, add_tenant, dispatcher, open, step, strings, write_config,
};

const SENDER: &str = "+4522334455";
const EMAIL: &str = "karen.jensen@example.com";

fn local_ms(text: &str) -> i64 {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    Copenhagen
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .timestamp_millis()
}

fn single(conn: &rusqlite::Connection, sql: &str) -> String {
    conn.query_row(sql, [], |row| row.get::<_, String>(0))
        .unwrap()
}

#[test]
fn message_becomes_scheduled_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "The kitchen tap is dripping all the time",
        now,
    );

    let report = step(&dispatcher, &mut conn, now);
    assert_eq!(report.tickets_opened, 1, "{report:?}");
    let state = single(&conn, "SELECT state FROM tickets");
    assert_eq!(state, "scheduled");
    let vendor = single(&conn, "SELECT vendor FROM tickets");
    assert_eq!(vendor, "Nordvarme VVS");
    let templates = strings(
        &conn,
        "SELECT template FROM tenant_updates WHERE unit = '2.th' ORDER BY id",
    );
    assert_eq!(templates, vec!["received", "booked"]);
    let booked = single(
        &conn,
        "SELECT text FROM tenant_updates WHERE template = 'booked'",
    );
    assert!(
        booked.starts_with("Ticket dispatch-test-000001: Nordvarme VVS will come"),
        "{booked}"
    );
    let topic = single(&conn, "SELECT DISTINCT topic FROM tenant_updates");
    assert_eq!(topic, "tenants/2.th/updates");
    let seqs: Vec<String> = strings(
        &conn,
        "SELECT CAST(seq AS TEXT) FROM ticket_history ORDER BY seq",
    );
    assert_eq!(seqs, vec!["1", "2", "3", "4"]);
    let kinds = strings(&conn, "SELECT DISTINCT kind FROM outbox ORDER BY kind");
    assert_eq!(kinds, vec!["audit", "tenant_update", "ticket"]);
    // A second pass finds nothing new.
    let again = step(&dispatcher, &mut conn, now + 1000);
    assert_eq!(again.messages, 0);
}

#[test]
fn unknown_sender_updates_only_operator() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    let now = local_ms("2026-06-03 10:00");
    add_message(
        &conn,
        "m1",
        "+4511111111",
        "2.th",
        "The kitchen tap is dripping all the time",
        now,
    );
    step(&dispatcher, &mut conn, now);
    let audiences = strings(&conn, "SELECT DISTINCT audience FROM tenant_updates");
    assert_eq!(audiences, vec!["operator"]);
    let topics = strings(&conn, "SELECT DISTINCT topic FROM tenant_updates");
    assert_eq!(topics, vec!["caretaker/test/operator"]);
}

#[test]
fn message_and_anomaly_merge() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(
        &dispatcher,
        &mut conn,
        1,
        "1.tv",
        "da",
        &[("sms", "+4510000001")],
    );
    add_tenant(
        &dispatcher,
        &mut conn,
        2,
        "1.th",
        "en",
        &[("sms", "+4510000002")],
    );
    let now = local_ms("2026-01-12 07:30");
    add_message(
        &conn,
        "m1",
        "+4510000001",
        "1.tv",
        "Der er ikke noget varmt vand i min lejlighed",
        now,
    );
    step(&dispatcher, &mut conn, now);
    add_anomaly(
        &conn,
        "substation-1",
        "supply_temperature_low",
        "heating",
        now + 60_000,
    );
    add_message(
        &conn,
        "m2",
        "+4510000002",
        "1.th",
        "We have no hot water since this morning",
        now + 120_000,
    );
    step(&dispatcher, &mut conn, now + 180_000);

    let tickets = strings(&conn, "SELECT id FROM tickets");
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let sources = strings(
        &conn,
        "SELECT kind || ':' || outcome FROM ticket_sources ORDER BY ts_ms, kind",
    );
    assert_eq!(sources.len(), 3, "{sources:?}");
    let asset = single(&conn, "SELECT asset FROM tickets");
    assert_eq!(asset, "substation-1");
    let urgency = single(&conn, "SELECT urgency FROM tickets");
    assert_eq!(urgency, "urgent");
    let merges = strings(&conn, "SELECT action FROM audit WHERE action = 'merge'");
    assert_eq!(merges.len(), 2);
    let anomaly = single(&conn, "SELECT payload FROM outbox WHERE kind = 'anomaly'");
    let anomaly: serde_json::Value = serde_json::from_str(&anomaly).unwrap();
    assert_eq!(anomaly["asset"], "substation-1");
    assert_eq!(anomaly["detector"], "stream");
    assert!(
        anomaly["rollups"].get("substation/supply_temp").is_some(),
        "{anomaly}"
    );
}

#[test]
fn anomaly_updates_served_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(
        &dispatcher,
        &mut conn,
        1,
        "3.th",
        "da",
        &[("sms", "+4510000003")],
    );
    let now = local_ms("2026-06-03 10:00");
    add_anomaly(&conn, "heating-pump-1", "bearing_wear", "heating", now);
    step(&dispatcher, &mut conn, now);
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "scheduled");
    let texts = strings(
        &conn,
        "SELECT text FROM tenant_updates WHERE unit = '3.th' ORDER BY id",
    );
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("Vi har modtaget"), "{}", texts[0]);
}

#[test]
fn sla_breach_escalates() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    let clock = ManualClock::new(local_ms("2026-06-03 10:00"));
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "The kitchen tap is dripping all the time",
        clock.wall_ms(),
    );
    step(&dispatcher, &mut conn, clock.wall_ms());
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "scheduled");

    // Routine: acknowledge within 24 h, escalated once 80 % of it has passed.
    clock.advance(Duration::from_secs(19 * 3600));
    step(&dispatcher, &mut conn, clock.wall_ms());
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "scheduled");
    clock.advance(Duration::from_secs(3600));
    let report = step(&dispatcher, &mut conn, clock.wall_ms());
    assert_eq!(report.escalated, 1);
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "escalated");
    let actor = single(
        &conn,
        "SELECT actor FROM ticket_history ORDER BY seq DESC LIMIT 1",
    );
    assert_eq!(actor, "rule:sla");
    let paged = single(
        &conn,
        "SELECT topic FROM tenant_updates WHERE template = 'page'",
    );
    assert_eq!(paged, "caretaker/building-7/page/duty");
    // Escalating again on the next pass would page twice.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(step(&dispatcher, &mut conn, clock.wall_ms()).escalated, 0);
}

#[test]
fn dst_week_schedules_local_hours() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    // Friday before the change to summer time on Sunday 29 March 2026.
    let now = local_ms("2026-03-27 15:30");
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "The kitchen tap is dripping all the time",
        now,
    );
    step(&dispatcher, &mut conn, now);
    let start: i64 = conn
        .query_row("SELECT slot_start_ms FROM tickets", [], |r| r.get(0))
        .unwrap();
    // Monday 07:00 CEST is 05:00 UTC.
    let expected = NaiveDateTime::parse_from_str("2026-03-30 05:00", "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert_eq!(start, expected);
    let booked = single(
        &conn,
        "SELECT text FROM tenant_updates WHERE template = 'booked'",
    );
    assert!(
        booked.contains("2026-03-30 07:00 to 2026-03-30 09:00"),
        "{booked}"
    );
}

#[test]
fn erase_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let db = dir.path().join("store.db");
    let mut conn = open(&db);
    add_tenant(
        &dispatcher,
        &mut conn,
        1,
        "2.th",
        "en",
        &[("sms", SENDER), ("email", EMAIL)],
    );
    add_tenant(
        &dispatcher,
        &mut conn,
        2,
        "3.tv",
        "da",
        &[("sms", "+4599999999")],
    );
    let now = local_ms("2026-06-03 10:00");
    let text = "The kitchen tap is dripping all the time, call Karen Jensen on +4522334455";
    add_message(&conn, "m1", SENDER, "2.th", text, now);
    add_message(
        &conn,
        "m2",
        "+4599999999",
        "3.tv",
        "Vandhanen i køkkenet drypper hele tiden",
        now,
    );
    step(&dispatcher, &mut conn, now);
    drop(conn);

    let output = Command::new(env!("CARGO_BIN_EXE_caretaker"))
        .args(["erase", "--db"])
        .arg(&db)
        .args(["--unit", "2.th"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let conn = open(&db);
    for needle in [SENDER, EMAIL, "dripping all the time", "Karen"] {
        let found = caretaker::dispatch::cli::find_everywhere(&conn, needle).unwrap();
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }
    let updates: i64 = conn
        .query_row(
            "SELECT count(*) FROM tenant_updates WHERE unit = '2.th'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(updates, 0);
    // The other tenant keeps everything.
    let other = caretaker::dispatch::cli::find_everywhere(&conn, "+4599999999").unwrap();
    assert!(other.contains(&"messages.sender".to_string()), "{other:?}");
    let erasures = strings(&conn, "SELECT subject FROM audit WHERE action = 'erase'");
    assert_eq!(erasures, vec!["unit:2.th"]);
    let verify = caretaker::store::audit::verify(&conn).unwrap();
    assert!(verify.is_intact(), "{:?}", verify.problems);
}

#[test]
fn audit_detects_edited_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let db = dir.path().join("store.db");
    let mut conn = open(&db);
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "The kitchen tap is dripping all the time",
        now,
    );
    step(&dispatcher, &mut conn, now);
    let vendor_row: i64 = conn
        .query_row(
            "SELECT id FROM audit WHERE action = 'vendor_choice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);

    let audit = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caretaker"))
            .arg("audit")
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    let clean = audit(&["--verify"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    let story = audit(&["--ticket", "dispatch-test-000001"]);
    let story_text = String::from_utf8_lossy(&story.stdout);
    assert!(story.status.success(), "{story_text}");
    assert!(story_text.contains("#4"), "{story_text}");
    assert!(story_text.contains("vendor_choice"), "{story_text}");

    // An attacker with shell access drops the trigger and changes the chosen vendor.
    let sql = format!(
        "DROP TRIGGER audit_no_update; UPDATE audit SET detail = replace(detail, 'Nordvarme', \
         'Other') WHERE id = {vendor_row};"
    );
    let edited = Command::new("sqlite3").arg(&db).arg(&sql).status().unwrap();
    assert!(edited.success());
    let tampered = audit(&["--verify"]);
    let text = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("TAMPERED row {vendor_row}:")),
        "{text}"
    );
}

fn office_change(id: i64, ticket: &str, action: TicketAction) -> OfficeChange {
    OfficeChange {
        id,
        ts_ms: 0,
        actor: "vendor:Nordvarme VVS".into(),
        change: Change::Ticket {
            ticket: ticket.into(),
            action,
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            note: None,
        },
    }
}

fn apply(
    dispatcher: &caretaker::dispatch::Dispatcher,
    conn: &mut rusqlite::Connection,
    change: &OfficeChange,
    now: i64,
) {
    let tx = conn.transaction().unwrap();
    dispatcher.apply_office_change(&tx, change, now).unwrap();
    tx.commit().unwrap();
}

#[test]
fn office_changes_drive_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "The kitchen tap is dripping all the time",
        now,
    );
    step(&dispatcher, &mut conn, now);
    let ticket = "dispatch-test-000001";

    let on_the_way = office_change(10, ticket, TicketAction::OnTheWay);
    apply(&dispatcher, &mut conn, &on_the_way, now + 60_000);
    // The same change pulled again is applied once.
    apply(&dispatcher, &mut conn, &on_the_way, now + 61_000);
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "in_progress");
    apply(
        &dispatcher,
        &mut conn,
        &office_change(11, ticket, TicketAction::Done),
        now + 120_000,
    );
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "resolved");
    apply(
        &dispatcher,
        &mut conn,
        &office_change(12, ticket, TicketAction::Close),
        now + 180_000,
    );
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "closed");
    // A closed ticket cannot be cancelled; the attempt is audited and changes nothing.
    apply(
        &dispatcher,
        &mut conn,
        &office_change(13, ticket, TicketAction::Cancel),
        now + 240_000,
    );
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "closed");
    let rejected = strings(
        &conn,
        "SELECT action FROM audit WHERE action = 'office_change.rejected'",
    );
    assert_eq!(rejected.len(), 1);

    let templates = strings(&conn, "SELECT template FROM tenant_updates ORDER BY id");
    assert_eq!(templates, vec!["received", "booked", "on_the_way", "done"]);
    let done = single(
        &conn,
        "SELECT text FROM tenant_updates WHERE template = 'done'",
    );
    assert!(done.contains("tell us how it went"), "{done}");
    let actors = strings(
        &conn,
        "SELECT actor FROM ticket_history WHERE seq > 4 ORDER BY seq",
    );
    assert_eq!(actors, vec!["vendor:Nordvarme VVS"; 3]);

    // A year after closing, retention removes the ticket but remembers that its message was
    // handled, so the message never opens a second ticket.
    let later = now + 366 * 86_400_000;
    let report = step(&dispatcher, &mut conn, later);
    assert_eq!(report.tickets_opened, 0);
    let tickets: i64 = conn
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tickets, 0);
    let outcome = single(
        &conn,
        "SELECT outcome FROM ticket_sources WHERE source_id = 'm1'",
    );
    assert_eq!(outcome, "expired");
    let audit_rows: i64 = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert!(audit_rows > 0);
}

#[test]
fn emergency_sends_on_call_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    // Sunday night, outside every vendor's working hours.
    let now = local_ms("2026-06-07 02:10");
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "A pipe burst in the bathroom and water is flooding the floor",
        now,
    );
    step(&dispatcher, &mut conn, now);
    assert_eq!(single(&conn, "SELECT urgency FROM tickets"), "emergency");
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "scheduled");
    assert_eq!(single(&conn, "SELECT vendor FROM tickets"), "Nordvarme VVS");
    let start: i64 = conn
        .query_row("SELECT slot_start_ms FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(start, now);
    let paged = strings(
        &conn,
        "SELECT topic FROM tenant_updates WHERE template = 'page'",
    );
    assert_eq!(paged, vec!["caretaker/building-7/page/duty"]);
    let queued = strings(&conn, "SELECT rule FROM escalations");
    assert_eq!(queued, vec!["emergency"]);
}

#[test]
fn complaint_stops_automation() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    add_tenant(&dispatcher, &mut conn, 1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    let text = "My neighbour plays loud music every night and I want to complain about it";
    add_message(&conn, "m1", SENDER, "2.th", text, now);
    step(&dispatcher, &mut conn, now);
    assert_eq!(single(&conn, "SELECT state FROM tickets"), "escalated");
    let vendors: i64 = conn
        .query_row("SELECT count(vendor) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(vendors, 0);
    let stopped: bool = conn
        .query_row("SELECT automation_stopped FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert!(stopped);
    let templates = strings(
        &conn,
        "SELECT template FROM tenant_updates WHERE unit = '2.th' ORDER BY id",
    );
    assert_eq!(templates, vec!["received", "escalated"]);
}

#[test]
fn quiet_hours_delay_updates() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1883, 9999, "");
    let dispatcher = dispatcher(&config);
    let mut conn = open(&dir.path().join("store.db"));
    let record = TenantRecord {
        unit: "2.th".into(),
        language: "da".into(),
        contacts: vec![Contact {
            channel: "sms".into(),
            address: SENDER.into(),
        }],
        quiet_from: Some("22:00".into()),
        quiet_until: Some("07:00".into()),
        consent: true,
        opt_outs: Vec::new(),
        permission_to_enter: false,
        availability: vec!["Mon-Fri 12:00-18:00".into()],
    };
    let change = OfficeChange {
        id: 1,
        ts_ms: 0,
        actor: "office:test".into(),
        change: Change::TenantUpsert(record),
    };
    apply(&dispatcher, &mut conn, &change, 0);
    let now = local_ms("2026-06-03 23:00");
    add_message(
        &conn,
        "m1",
        SENDER,
        "2.th",
        "Vandhanen i køkkenet drypper hele tiden",
        now,
    );
    step(&dispatcher, &mut conn, now);
    let due: Vec<String> = strings(
        &conn,
        "SELECT CAST(due_ms AS TEXT) FROM tenant_updates WHERE unit = '2.th'",
    );
    let morning = local_ms("2026-06-04 07:00").to_string();
    assert_eq!(due, vec![morning.clone(), morning]);
    // The tenant is out before noon, and the vendor may not enter without them.
    let start: i64 = conn
        .query_row("SELECT slot_start_ms FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(start, local_ms("2026-06-04 12:00"));
}
