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
use caretaker::triage::Triage;
use chrono::NaiveDateTime;
use fixture::{local_ms, ticket_change, Flow, FIRST_TICKET};
use serde_json::{json, Value};

const SENDER: &str = "+4522334455";
const EMAIL: &str = "karen.jensen@example.com";
const TAP: &str = "The kitchen tap is dripping all the time";
const VENDOR: &str = "vendor:Nordvarme VVS";

#[test]
fn message_becomes_scheduled_ticket() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "2.th", TAP, now);

    let report = flow.step(now);
    assert_eq!(report.tickets_opened, 1, "{report:?}");
    let state = flow.single("SELECT state FROM tickets");
    assert_eq!(state, "scheduled");
    let vendor = flow.single("SELECT vendor FROM tickets");
    assert_eq!(vendor, "Nordvarme VVS");
    let templates =
        flow.strings("SELECT template FROM tenant_updates WHERE unit = '2.th' ORDER BY id");
    assert_eq!(templates, vec!["received", "booked"]);
    let booked = flow.single("SELECT text FROM tenant_updates WHERE template = 'booked'");
    assert!(
        booked.starts_with("Ticket dispatch-test-000001: Nordvarme VVS will come"),
        "{booked}"
    );
    let topic = flow.single("SELECT DISTINCT topic FROM tenant_updates");
    assert_eq!(topic, "tenants/2.th/updates");
    let seqs: Vec<String> =
        flow.strings("SELECT CAST(seq AS TEXT) FROM ticket_history ORDER BY seq");
    assert_eq!(seqs, vec!["1", "2", "3", "4"]);
    let kinds = flow.strings("SELECT DISTINCT kind FROM outbox ORDER BY kind");
    assert_eq!(kinds, vec!["audit", "tenant_update", "ticket"]);
    // A second pass finds nothing new.
    let again = flow.step(now + 1000);
    assert_eq!(again.messages, 0);
}

#[test]
fn unknown_sender_updates_only_operator() {
    let mut flow = Flow::new();
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", "+4511111111", "2.th", TAP, now);
    flow.step(now);
    let audiences = flow.strings("SELECT DISTINCT audience FROM tenant_updates");
    assert_eq!(audiences, vec!["operator"]);
    let topics = flow.strings("SELECT DISTINCT topic FROM tenant_updates");
    assert_eq!(topics, vec!["caretaker/test/operator"]);
}

#[test]
fn message_and_anomaly_merge() {
    let mut flow = Flow::new();
    flow.tenant(1, "1.tv", "da", &[("sms", "+4510000001")]);
    flow.tenant(2, "1.th", "en", &[("sms", "+4510000002")]);
    let now = local_ms("2026-01-12 07:30");
    flow.message(
        "m1",
        "+4510000001",
        "1.tv",
        "Der er ikke noget varmt vand i min lejlighed",
        now,
    );
    flow.step(now);
    flow.anomaly(
        "substation-1",
        "supply_temperature_low",
        "heating",
        now + 60_000,
    );
    flow.message(
        "m2",
        "+4510000002",
        "1.th",
        "We have no hot water since this morning",
        now + 120_000,
    );
    flow.step(now + 180_000);

    let tickets = flow.strings("SELECT id FROM tickets");
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let sources =
        flow.strings("SELECT kind || ':' || outcome FROM ticket_sources ORDER BY ts_ms, kind");
    assert_eq!(sources.len(), 3, "{sources:?}");
    let asset = flow.single("SELECT asset FROM tickets");
    assert_eq!(asset, "substation-1");
    let urgency = flow.single("SELECT urgency FROM tickets");
    assert_eq!(urgency, "urgent");
    let merges = flow.strings("SELECT action FROM audit WHERE action = 'merge'");
    assert_eq!(merges.len(), 2);
    let anomaly = flow.single("SELECT payload FROM outbox WHERE kind = 'anomaly'");
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
    let mut flow = Flow::new();
    flow.tenant(1, "3.th", "da", &[("sms", "+4510000003")]);
    let now = local_ms("2026-06-03 10:00");
    flow.anomaly("heating-pump-1", "bearing_wear", "heating", now);
    flow.step(now);
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");
    let texts = flow.strings("SELECT text FROM tenant_updates WHERE unit = '3.th' ORDER BY id");
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("Vi har modtaget"), "{}", texts[0]);
}

#[test]
fn sla_breach_escalates() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let clock = ManualClock::new(local_ms("2026-06-03 10:00"));
    flow.message("m1", SENDER, "2.th", TAP, clock.wall_ms());
    flow.step(clock.wall_ms());
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");

    // Routine: acknowledge within 24 h, escalated once 80 % of it has passed.
    clock.advance(Duration::from_secs(19 * 3600));
    flow.step(clock.wall_ms());
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");
    clock.advance(Duration::from_secs(3600));
    let report = flow.step(clock.wall_ms());
    assert_eq!(report.escalated, 1);
    assert_eq!(flow.single("SELECT state FROM tickets"), "escalated");
    let actor = flow.single("SELECT actor FROM ticket_history ORDER BY seq DESC LIMIT 1");
    assert_eq!(actor, "rule:sla");
    let paged = flow.single("SELECT topic FROM tenant_updates WHERE template = 'page'");
    assert_eq!(paged, "caretaker/building-7/page/duty");
    // Escalating again on the next pass would page twice.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(flow.step(clock.wall_ms()).escalated, 0);
}

#[test]
fn dst_week_schedules_local_hours() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    // Friday before the change to summer time on Sunday 29 March 2026.
    let now = local_ms("2026-03-27 15:30");
    flow.message("m1", SENDER, "2.th", TAP, now);
    flow.step(now);
    let start = flow.number("SELECT slot_start_ms FROM tickets");
    // Monday 07:00 CEST is 05:00 UTC.
    let expected = NaiveDateTime::parse_from_str("2026-03-30 05:00", "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert_eq!(start, expected);
    let booked = flow.single("SELECT text FROM tenant_updates WHERE template = 'booked'");
    assert!(
        booked.contains("2026-03-30 07:00 to 2026-03-30 09:00"),
        "{booked}"
    );
}

#[test]
fn erase_leaves_no_trace() {
    let mut flow = Flow::new();
    let db = flow.db.clone();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER), ("email", EMAIL)]);
    flow.tenant(2, "3.tv", "da", &[("sms", "+4599999999")]);
    let now = local_ms("2026-06-03 10:00");
    let text = "The kitchen tap is dripping all the time, call Karen Jensen on +4522334455";
    flow.message("m1", SENDER, "2.th", text, now);
    flow.message(
        "m2",
        "+4599999999",
        "3.tv",
        "Vandhanen i køkkenet drypper hele tiden",
        now,
    );
    flow.step(now);
    flow.close();

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

    flow.reopen();
    for needle in [SENDER, EMAIL, "dripping all the time", "Karen"] {
        let found = caretaker::dispatch::cli::find_everywhere(&flow.conn, needle).unwrap();
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }
    let updates = flow.number("SELECT count(*) FROM tenant_updates WHERE unit = '2.th'");
    assert_eq!(updates, 0);
    // The other tenant keeps everything.
    let other = caretaker::dispatch::cli::find_everywhere(&flow.conn, "+4599999999").unwrap();
    assert!(other.contains(&"messages.sender".to_string()), "{other:?}");
    let erasures = flow.strings("SELECT subject FROM audit WHERE action = 'erase'");
    assert_eq!(erasures, vec!["unit:2.th"]);
    let verify = caretaker::store::audit::verify(&flow.conn).unwrap();
    assert!(verify.is_intact(), "{:?}", verify.problems);
}

#[test]
fn audit_detects_edited_row() {
    let mut flow = Flow::new();
    let db = flow.db.clone();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "2.th", TAP, now);
    flow.step(now);
    let vendor_row = flow.number("SELECT id FROM audit WHERE action = 'vendor_choice'");
    flow.close();

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

#[test]
fn office_changes_drive_state_machine() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "2.th", TAP, now);
    flow.step(now);
    let ticket = FIRST_TICKET;

    let on_the_way = ticket_change(10, VENDOR, ticket, TicketAction::OnTheWay);
    flow.apply(&on_the_way, now + 60_000);
    // The same change pulled again is applied once.
    flow.apply(&on_the_way, now + 61_000);
    assert_eq!(flow.single("SELECT state FROM tickets"), "in_progress");
    flow.apply(
        &ticket_change(11, VENDOR, ticket, TicketAction::Done),
        now + 120_000,
    );
    assert_eq!(flow.single("SELECT state FROM tickets"), "resolved");
    flow.apply(
        &ticket_change(12, VENDOR, ticket, TicketAction::Close),
        now + 180_000,
    );
    assert_eq!(flow.single("SELECT state FROM tickets"), "closed");
    // A closed ticket cannot be cancelled; the attempt is audited and changes nothing.
    flow.apply(
        &ticket_change(13, VENDOR, ticket, TicketAction::Cancel),
        now + 240_000,
    );
    assert_eq!(flow.single("SELECT state FROM tickets"), "closed");
    let rejected = flow.strings("SELECT action FROM audit WHERE action = 'office_change.rejected'");
    assert_eq!(rejected.len(), 1);

    let templates = flow.strings("SELECT template FROM tenant_updates ORDER BY id");
    assert_eq!(templates, vec!["received", "booked", "on_the_way", "done"]);
    let done = flow.single("SELECT text FROM tenant_updates WHERE template = 'done'");
    assert!(done.contains("tell us how it went"), "{done}");
    let actors = flow.strings("SELECT actor FROM ticket_history WHERE seq > 4 ORDER BY seq");
    assert_eq!(actors, vec!["vendor:Nordvarme VVS"; 3]);

    // A year after closing, retention removes the ticket but remembers that its message was
    // handled, so the message never opens a second ticket.
    let later = now + 366 * 86_400_000;
    let report = flow.step(later);
    assert_eq!(report.tickets_opened, 0);
    let tickets = flow.number("SELECT count(*) FROM tickets");
    assert_eq!(tickets, 0);
    let outcome = flow.single("SELECT outcome FROM ticket_sources WHERE source_id = 'm1'");
    assert_eq!(outcome, "expired");
    let audit_rows = flow.number("SELECT count(*) FROM audit");
    assert!(audit_rows > 0);
}

/// Returns a flow in which the tenant of 2.th reported a burst pipe on a Sunday night, outside
/// every vendor's working hours, and the first pass has run, with the time of the report.
fn burst_pipe_flow() -> (Flow, i64) {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-07 02:10");
    let text = "A pipe burst in the bathroom and water is flooding the floor";
    flow.message("m1", SENDER, "2.th", text, now);
    flow.step(now);
    (flow, now)
}

/// Returns a flow in which the tenant of 2.th complained about a neighbour and the first pass
/// has run, with the time of the complaint.
fn neighbour_complaint_flow() -> (Flow, i64) {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    let text = "My neighbour plays loud music every night and I want to complain about it";
    flow.message("m1", SENDER, "2.th", text, now);
    flow.step(now);
    (flow, now)
}

#[test]
fn emergency_sends_on_call_and_pages() {
    let (flow, now) = burst_pipe_flow();
    assert_eq!(flow.single("SELECT urgency FROM tickets"), "emergency");
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");
    assert_eq!(flow.single("SELECT vendor FROM tickets"), "Nordvarme VVS");
    let start = flow.number("SELECT slot_start_ms FROM tickets");
    assert_eq!(start, now);
    let paged = flow.strings("SELECT topic FROM tenant_updates WHERE template = 'page'");
    assert_eq!(paged, vec!["caretaker/building-7/page/duty"]);
    let queued = flow.strings("SELECT rule FROM escalations");
    assert_eq!(queued, vec!["emergency"]);
}

#[test]
fn office_ack_clears_needs_human() {
    let (mut flow, now) = burst_pipe_flow();
    assert_eq!(flow.number("SELECT needs_human FROM tickets"), 1);

    // A report of the vendor does not count as a person taking the ticket on.
    let on_the_way = ticket_change(10, VENDOR, FIRST_TICKET, TicketAction::OnTheWay);
    flow.apply(&on_the_way, now + 60_000);
    assert_eq!(flow.number("SELECT needs_human FROM tickets"), 1);

    flow.apply(
        &office_booking(11, TicketAction::Acknowledge, None, None),
        now + 120_000,
    );
    assert_eq!(flow.number("SELECT needs_human FROM tickets"), 0);
    assert_eq!(flow.single("SELECT state FROM tickets"), "in_progress");

    // The ticket's next snapshot carries the cleared flag to the office.
    let snapshot =
        flow.single("SELECT payload FROM outbox WHERE kind = 'ticket' ORDER BY seq DESC LIMIT 1");
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(snapshot["ticket"]["needs_human"], false, "{snapshot}");
}

#[test]
fn escalated_ack_keeps_state() {
    let (mut flow, now) = neighbour_complaint_flow();
    flow.apply(
        &office_booking(1, TicketAction::Acknowledge, None, None),
        now + 60_000,
    );
    assert_eq!(flow.number("SELECT needs_human FROM tickets"), 0);
    // The ticket still has no vendor, and the office's queue lists it by this state.
    assert_eq!(flow.single("SELECT state FROM tickets"), "escalated");
    let stopped = flow.number("SELECT automation_stopped FROM tickets");
    assert_eq!(stopped, 1);
}

#[test]
fn complaint_stops_automation() {
    let (flow, _) = neighbour_complaint_flow();
    assert_eq!(flow.single("SELECT state FROM tickets"), "escalated");
    let vendors = flow.number("SELECT count(vendor) FROM tickets");
    assert_eq!(vendors, 0);
    let stopped = flow.number("SELECT automation_stopped FROM tickets");
    assert_eq!(stopped, 1);
    let templates =
        flow.strings("SELECT template FROM tenant_updates WHERE unit = '2.th' ORDER BY id");
    assert_eq!(templates, vec!["received", "escalated"]);
}

#[test]
fn quiet_hours_delay_updates() {
    let mut flow = Flow::new();
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
    flow.apply(&change, 0);
    let now = local_ms("2026-06-03 23:00");
    flow.message(
        "m1",
        SENDER,
        "2.th",
        "Vandhanen i køkkenet drypper hele tiden",
        now,
    );
    flow.step(now);
    let due: Vec<String> =
        flow.strings("SELECT CAST(due_ms AS TEXT) FROM tenant_updates WHERE unit = '2.th'");
    let morning = local_ms("2026-06-04 07:00").to_string();
    assert_eq!(due, vec![morning.clone(), morning]);
    // The tenant is out before noon, and the vendor may not enter without them.
    let start = flow.number("SELECT slot_start_ms FROM tickets");
    assert_eq!(start, local_ms("2026-06-04 12:00"));
}

/// Returns the built-in verdict of `text` with the labels of a confident routine repair.
fn repair(text: &str, category: &str) -> Triage {
    let mut triage = caretaker::triage::classify(text);
    triage.intent = "maintenance_request".into();
    triage.category = Some(category.into());
    triage.urgency = "routine".into();
    triage.needs_human = false;
    triage.confidence = 0.9;
    triage.explanation["needs_human_because"] = json!([]);
    if let Some(map) = triage.explanation.as_object_mut() {
        map.remove("low_confidence");
    }
    triage
}

/// Returns the verdict of a repair that triage hands to a human for low confidence.
fn unsure(text: &str, category: &str) -> Triage {
    let mut triage = repair(text, category);
    triage.needs_human = true;
    triage.confidence = 0.2;
    triage.explanation["needs_human_because"] =
        json!(["low confidence: the model is unsure of the labels"]);
    triage.explanation["low_confidence"] =
        json!("confidence 0.20 is below 0.35, so the message goes to a human");
    triage
}

/// Returns the templates of a unit's updates, oldest first.
fn unit_templates(flow: &Flow, unit: &str) -> Vec<String> {
    flow.strings(&format!(
        "SELECT template FROM tenant_updates WHERE unit = '{unit}' ORDER BY id"
    ))
}

#[test]
fn low_confidence_message_books_nothing() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    flow.triaged("m1", SENDER, "2.th", TAP, &unsure(TAP, "plumbing"), now);
    flow.step(now);

    assert_eq!(flow.single("SELECT state FROM tickets"), "escalated");
    assert_eq!(flow.number("SELECT count(vendor) FROM tickets"), 0);
    assert_eq!(flow.number("SELECT count(slot_start_ms) FROM tickets"), 0);
    assert_eq!(
        flow.single("SELECT rule FROM escalations"),
        "low_confidence"
    );
    let reason = flow.single("SELECT reason FROM escalations");
    assert!(reason.contains("low confidence"), "{reason}");
    assert_eq!(unit_templates(&flow, "2.th"), vec!["received", "escalated"]);
    let received = flow.single("SELECT text FROM tenant_updates WHERE template = 'received'");
    assert!(received.contains(FIRST_TICKET), "{received}");
    let pages = flow.number("SELECT count(*) FROM tenant_updates WHERE template = 'page'");
    assert_eq!(pages, 1);
}

#[test]
fn dispute_message_books_nothing() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    let text = "The tap still drips and I will not pay the rent until it is fixed";
    let mut triage = repair(text, "plumbing");
    triage.needs_human = true;
    triage.explanation["needs_human_because"] =
        json!(["rent hardship or dispute ('not pay the rent')"]);
    flow.triaged("m1", SENDER, "2.th", text, &triage, now);
    flow.step(now);

    assert_eq!(flow.single("SELECT state FROM tickets"), "escalated");
    assert_eq!(flow.number("SELECT count(vendor) FROM tickets"), 0);
    assert_eq!(flow.single("SELECT rule FROM escalations"), "dispute");
    assert_eq!(unit_templates(&flow, "2.th"), vec!["received", "escalated"]);
}

#[test]
fn unsure_report_keeps_neighbour_booking() {
    let mut flow = Flow::new();
    flow.tenant(1, "1.tv", "en", &[("sms", "+4510000001")]);
    flow.tenant(2, "1.th", "en", &[("sms", "+4510000002")]);
    let now = local_ms("2026-06-03 10:00");
    let text = "We have no hot water since this morning";
    flow.triaged(
        "m1",
        "+4510000001",
        "1.tv",
        text,
        &repair(text, "plumbing"),
        now,
    );
    flow.step(now);
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");

    // An unsure report from a flat on the same substation is not merged into the booking.
    let unclear = "no hot water maybe, or something else";
    let verdict = unsure(unclear, "plumbing");
    flow.triaged("m2", "+4510000002", "1.th", unclear, &verdict, now + 60_000);
    flow.step(now + 60_000);
    let states = flow.strings("SELECT state FROM tickets ORDER BY number");
    assert_eq!(states, vec!["scheduled", "escalated"]);
    let vendors = flow.strings("SELECT coalesce(vendor, '-') FROM tickets ORDER BY number");
    assert_eq!(vendors, vec!["Nordvarme VVS", "-"]);
    assert_eq!(
        flow.single("SELECT rule FROM escalations"),
        "low_confidence"
    );
    assert_eq!(unit_templates(&flow, "1.th"), vec!["received", "escalated"]);
    assert_eq!(unit_templates(&flow, "1.tv"), vec!["received", "booked"]);
}

#[test]
fn local_faults_open_separate_tickets() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    flow.tenant(2, "3.tv", "en", &[("sms", "+4599999999")]);
    let now = local_ms("2026-06-03 10:00");
    // Substation 1 supplies water to both flats, but a tap and a shower are two jobs.
    flow.triaged("m1", SENDER, "2.th", TAP, &repair(TAP, "plumbing"), now);
    let shower = "There is a dripping shower in the bathroom";
    let verdict = repair(shower, "plumbing");
    flow.triaged("m2", "+4599999999", "3.tv", shower, &verdict, now + 60_000);
    flow.step(now + 60_000);

    let units = flow.strings("SELECT unit FROM tickets ORDER BY number");
    assert_eq!(units, vec!["2.th", "3.tv"]);
    let faults = flow.strings("SELECT fault FROM tickets ORDER BY number");
    assert_eq!(faults, vec!["leaking_tap", "leaking_tap"]);
    assert_eq!(
        flow.number("SELECT count(*) FROM audit WHERE action = 'merge'"),
        0
    );
    let received = flow
        .single("SELECT text FROM tenant_updates WHERE unit = '3.tv' AND template = 'received'");
    assert!(received.contains("dispatch-test-000002"), "{received}");
}

#[test]
fn unclear_reports_stay_per_unit() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    flow.tenant(2, "3.tv", "en", &[("sms", "+4599999999")]);
    let now = local_ms("2026-06-03 10:00");
    let text = "Something is wrong with the plumbing";
    flow.triaged("m1", SENDER, "2.th", text, &repair(text, "plumbing"), now);
    flow.triaged(
        "m2",
        "+4599999999",
        "3.tv",
        text,
        &repair(text, "plumbing"),
        now,
    );
    flow.step(now);
    assert_eq!(flow.number("SELECT count(*) FROM tickets"), 2);
}

#[test]
fn supply_reports_join_one_incident() {
    let mut flow = Flow::new();
    let flats = [
        (
            "1.tv",
            "+4510000001",
            "Der er ikke noget varmt vand i min lejlighed",
        ),
        (
            "1.th",
            "+4510000002",
            "We have no hot water since this morning",
        ),
        ("2.tv", "+4510000003", "No hot water in our flat either"),
    ];
    for (index, (unit, sender, _)) in flats.iter().enumerate() {
        flow.tenant(index as i64 + 1, unit, "en", &[("sms", sender)]);
    }
    let now = local_ms("2026-01-12 07:30");
    let (unit, sender, text) = flats[0];
    flow.triaged("m1", sender, unit, text, &repair(text, "plumbing"), now);
    flow.step(now);
    flow.anomaly(
        "substation-1",
        "supply_temperature_low",
        "heating",
        now + 60_000,
    );
    for (index, (unit, sender, text)) in flats.iter().enumerate().skip(1) {
        let at = now + 60_000 * (index as i64 + 1);
        let id = format!("m{}", index + 1);
        flow.triaged(&id, sender, unit, text, &repair(text, "plumbing"), at);
    }
    flow.step(now + 240_000);

    assert_eq!(flow.number("SELECT count(*) FROM tickets"), 1);
    assert_eq!(flow.number("SELECT count(*) FROM ticket_sources"), 4);
    assert_eq!(flow.single("SELECT asset FROM tickets"), "substation-1");
    assert_eq!(flow.single("SELECT urgency FROM tickets"), "urgent");
    for (unit, _, _) in flats {
        let received = flow.strings(&format!(
            "SELECT text FROM tenant_updates WHERE unit = '{unit}' AND template = 'received'"
        ));
        assert_eq!(
            received.len(),
            1,
            "received updates of {unit}: {received:?}"
        );
        assert!(
            received[0].contains(FIRST_TICKET),
            "{unit}: {}",
            received[0]
        );
    }
}

#[test]
fn late_directory_entry_gets_updates() {
    let mut flow = Flow::new();
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "2.th", TAP, now);
    flow.step(now);
    assert_eq!(flow.number("SELECT count(unit) FROM tenant_updates"), 0);

    // The office enters the tenant after the ticket opened; the next update reaches them.
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let on_the_way = ticket_change(10, VENDOR, FIRST_TICKET, TicketAction::OnTheWay);
    flow.apply(&on_the_way, now + 60_000);
    assert_eq!(unit_templates(&flow, "2.th"), vec!["on_the_way"]);
    let topic = flow.single("SELECT topic FROM tenant_updates WHERE unit = '2.th'");
    assert_eq!(topic, "tenants/2.th/updates");
}

/// Returns a change of the office to the first ticket with a vendor and a slot.
fn office_booking(
    id: i64,
    action: TicketAction,
    vendor: Option<&str>,
    slot: Option<(i64, i64)>,
) -> OfficeChange {
    OfficeChange {
        id,
        ts_ms: 0,
        actor: "office:ida".into(),
        change: Change::Ticket {
            ticket: FIRST_TICKET.into(),
            action,
            vendor: vendor.map(String::from),
            slot_start_ms: slot.map(|(start, _)| start),
            slot_end_ms: slot.map(|(_, end)| end),
            note: None,
        },
    }
}

#[test]
fn office_change_bad_values_rejected() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "2.th", TAP, now);
    flow.step(now);
    let ticket_row = "SELECT state || '|' || vendor || '|' || slot_start_ms || '|' || slot_end_ms
                      FROM tickets";
    let before = flow.single(ticket_row);
    let hour = 3_600_000;
    let cases = [
        (
            office_booking(10, TicketAction::Assign, Some("Aqua VVS"), None),
            "vendor",
            json!("Aqua VVS"),
        ),
        (
            office_booking(11, TicketAction::Assign, Some("Lys & Kraft El"), None),
            "vendor",
            json!("Lys & Kraft El"),
        ),
        (
            office_booking(
                12,
                TicketAction::Reschedule,
                None,
                Some((now - 3 * hour, now - hour)),
            ),
            "slot_start_ms",
            json!(now - 3 * hour),
        ),
        (
            office_booking(
                13,
                TicketAction::Reschedule,
                None,
                Some((now + 5 * hour, now + 4 * hour)),
            ),
            "slot_end_ms",
            json!(now + 4 * hour),
        ),
    ];
    for (change, field, value) in &cases {
        flow.apply(change, now + 60_000);
        assert_eq!(flow.single(ticket_row), before, "change {}", change.id);
        let detail = flow.single(&format!(
            "SELECT detail FROM audit WHERE action = 'office_change.rejected'
             AND json_extract(detail, '$.change') = {}",
            change.id
        ));
        let detail: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(detail["field"], *field, "{detail}");
        assert_eq!(detail["value"], *value, "{detail}");
        assert!(detail["reason"].as_str().is_some(), "{detail}");
        // The rejection reaches the office through the outbox.
        let synced = flow.number(&format!(
            "SELECT count(*) FROM outbox WHERE kind = 'audit'
             AND json_extract(payload, '$.action') = 'office_change.rejected'
             AND json_extract(payload, '$.detail.change') = {}",
            change.id
        ));
        assert_eq!(synced, 1, "change {}", change.id);
    }
    // Each rejected change counts as handled, so the feed moves past it.
    let handled = flow.number("SELECT count(*) FROM office_changes WHERE id BETWEEN 10 AND 13");
    assert_eq!(handled, 4);
    assert_eq!(unit_templates(&flow, "2.th"), vec!["received", "booked"]);

    // A valid change after them is applied.
    let slot = (now + 48 * hour, now + 50 * hour);
    let valid = office_booking(14, TicketAction::Reschedule, None, Some(slot));
    flow.apply(&valid, now + 120_000);
    let start = flow.number("SELECT slot_start_ms FROM tickets");
    assert_eq!(start, slot.0);
    assert_eq!(
        unit_templates(&flow, "2.th"),
        vec!["received", "booked", "booked"]
    );
}

#[test]
fn operator_anomaly_keeps_booked_ticket() {
    let mut flow = Flow::new();
    flow.tenant(1, "1.tv", "en", &[("sms", "+4510000001")]);
    let now = local_ms("2026-01-12 07:30");
    let text = "We have no hot water since this morning";
    flow.triaged(
        "m1",
        "+4510000001",
        "1.tv",
        text,
        &repair(text, "plumbing"),
        now,
    );
    flow.step(now);
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");

    // A detector request for the operator merges into the booking without handing it over.
    let request = flow.anomaly(
        "substation-1",
        "supply_temperature_low",
        "heating",
        now + 60_000,
    );
    flow.conn
        .execute(
            "UPDATE requests SET audience = 'operator' WHERE request_id = ?1",
            [&request],
        )
        .unwrap();
    flow.step(now + 120_000);
    assert_eq!(flow.number("SELECT count(*) FROM tickets"), 1);
    assert_eq!(
        flow.number("SELECT count(*) FROM audit WHERE action = 'merge'"),
        1
    );
    assert_eq!(flow.single("SELECT state FROM tickets"), "scheduled");
    assert_eq!(flow.number("SELECT automation_stopped FROM tickets"), 0);
    assert_eq!(flow.number("SELECT count(*) FROM escalations"), 0);
    assert_eq!(
        flow.number("SELECT count(*) FROM tenant_updates WHERE template = 'page'"),
        0
    );
    assert_eq!(
        flow.number("SELECT count(*) FROM audit WHERE action = 'handover.skipped'"),
        1
    );
}

#[test]
fn office_slot_next_decade_rejected() {
    let mut flow = Flow::new();
    flow.tenant(1, "2.th", "en", &[("sms", SENDER)]);
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "2.th", TAP, now);
    flow.step(now);
    let before = flow.number("SELECT slot_start_ms FROM tickets");
    let start = local_ms("2099-06-03 10:00");
    let change = office_booking(
        10,
        TicketAction::Reschedule,
        None,
        Some((start, start + 7_200_000)),
    );
    flow.apply(&change, now + 60_000);
    assert_eq!(flow.number("SELECT slot_start_ms FROM tickets"), before);
    let detail = flow.single(
        "SELECT detail FROM audit WHERE action = 'office_change.rejected'
         AND json_extract(detail, '$.change') = 10",
    );
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["field"], "slot_start_ms", "{detail}");
    assert_eq!(detail["value"], json!(start), "{detail}");

    // A slot eleven months ahead is still accepted.
    let start = now + 330 * 86_400_000;
    let change = office_booking(
        11,
        TicketAction::Reschedule,
        None,
        Some((start, start + 7_200_000)),
    );
    flow.apply(&change, now + 120_000);
    assert_eq!(flow.number("SELECT slot_start_ms FROM tickets"), start);
}

#[test]
fn unlisted_senders_raise_many_units() {
    let mut flow = Flow::new();
    let now = local_ms("2026-01-12 07:30");
    // No directory entries: the units come from the topics the messages arrived on.
    let reports = [
        (
            "1.tv",
            "+4510000001",
            "We have no hot water since this morning",
        ),
        ("1.th", "+4510000002", "No hot water in our flat either"),
        ("2.tv", "+4510000003", "There is no hot water in the flat"),
    ];
    for (index, (unit, sender, text)) in reports.iter().enumerate() {
        let id = format!("m{}", index + 1);
        let at = now + 60_000 * index as i64;
        flow.triaged(&id, sender, unit, text, &repair(text, "plumbing"), at);
        flow.step(at);
    }
    assert_eq!(flow.number("SELECT count(*) FROM tickets"), 1);
    let units = flow.strings("SELECT unit FROM ticket_sources ORDER BY source_id");
    assert_eq!(units, vec!["1.tv", "1.th", "2.tv"]);
    assert_eq!(flow.single("SELECT urgency FROM tickets"), "urgent");
    let raised = flow.number(
        "SELECT count(*) FROM audit WHERE action = 'merge'
         AND json_extract(detail, '$.urgency.raised_by') = 'many_units'",
    );
    assert_eq!(raised, 1);
}

#[test]
fn spaced_unit_matches_building_map() {
    let mut flow = Flow::new();
    let now = local_ms("2026-01-12 07:30");
    let text = "We have no hot water since this morning";
    flow.triaged(
        "m1",
        "+4510000002",
        " 1. TH",
        text,
        &repair(text, "plumbing"),
        now,
    );
    flow.step(now);
    assert_eq!(flow.single("SELECT unit FROM tickets"), "1.th");
    // Substation 1 serves 1.th, so its anomaly joins the tenant's ticket.
    flow.anomaly(
        "substation-1",
        "supply_temperature_low",
        "heating",
        now + 60_000,
    );
    flow.step(now + 120_000);
    assert_eq!(flow.number("SELECT count(*) FROM tickets"), 1);
    assert_eq!(flow.single("SELECT asset FROM tickets"), "substation-1");
}

#[test]
fn spaced_directory_unit_gets_updates() {
    let mut flow = Flow::new();
    flow.tenant(1, "St. TV", "en", &[("sms", SENDER)]);
    assert_eq!(flow.single("SELECT unit FROM tenants"), "st.tv");
    let now = local_ms("2026-06-03 10:00");
    flow.message("m1", SENDER, "st. tv", TAP, now);
    flow.step(now);
    assert_eq!(flow.single("SELECT unit FROM tickets"), "st.tv");
    assert_eq!(unit_templates(&flow, "st.tv"), vec!["received", "booked"]);
}
