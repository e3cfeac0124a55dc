//! The central office's store, one suite run against both backends: a SQLite file and a
//! fresh PostgreSQL database (see `support/postgres.rs` for where that runs).

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use caretaker::central::store::{self, CentralStore, GatewayIdentity, TicketFilter, User};
use caretaker::protocol::{
    AuditEntry, Change, Envelope, EventKind, Heartbeat, TenantRecord, TenantUpdate, TicketAction,
    TicketEvent, TicketSnapshot, Transition,
};
use serde_json::json;
use uuid::Uuid;

const NOW: i64 = 1_780_000_000_000;

fn identity(gateway: &str, building: &str) -> GatewayIdentity {
    GatewayIdentity {
        token_id: 1,
        gateway: gateway.into(),
        building: building.into(),
    }
}

fn snapshot(id: &str, building: &str, state: &str, urgency: &str) -> TicketSnapshot {
    TicketSnapshot {
        id: id.into(),
        building: building.into(),
        state: state.into(),
        category: "plumbing".into(),
        urgency: urgency.into(),
        needs_human: false,
        escalation_reason: None,
        unit: Some("3B".into()),
        asset: None,
        summary: "kitchen tap drips".into(),
        sources: vec![],
        vendor: None,
        slot_start_ms: None,
        slot_end_ms: None,
        ack_due_ms: Some(NOW + 3_600_000),
        onsite_due_ms: None,
        resolve_due_ms: None,
        opened_ms: NOW,
        updated_ms: NOW,
    }
}

fn envelope(
    gateway: &str,
    seq: i64,
    kind: EventKind,
    ticket: Option<&str>,
    payload: serde_json::Value,
) -> Envelope {
    Envelope {
        event_id: Uuid::now_v7(),
        gateway: gateway.into(),
        seq,
        kind,
        ticket: ticket.map(str::to_string),
        ts_ms: NOW + seq,
        payload,
    }
}

fn ticket_event(
    gateway: &str,
    seq: i64,
    snapshot: TicketSnapshot,
    transition_seq: i64,
) -> Envelope {
    let id = snapshot.id.clone();
    let to = snapshot.state.clone();
    let event = TicketEvent {
        ticket: snapshot,
        transition: Transition {
            seq: transition_seq,
            ts_ms: NOW + transition_seq,
            from: None,
            to,
            actor: "rule:test".into(),
            reason: format!("transition {transition_seq}"),
        },
    };
    envelope(
        gateway,
        seq,
        EventKind::Ticket,
        Some(&id),
        serde_json::to_value(event).unwrap(),
    )
}

/// Runs one test body against a fresh SQLite file and a fresh PostgreSQL database.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let folder = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", folder.path().join("central.db").display());
                let store = caretaker::central::store::open(&url).await.unwrap();
                super::$name(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let database = tokio::task::spawn_blocking(super::postgres::PgDatabase::fresh)
                    .await
                    .unwrap();
                let store = caretaker::central::store::open(&database.url)
                    .await
                    .unwrap();
                super::$name(store).await;
                drop(database);
            }
        }
    };
}

both_backends!(batch_sent_twice_stored_once);
async fn batch_sent_twice_stored_once(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let batch = vec![
        ticket_event("gw1", 1, snapshot("gw1-000001", "b1", "new", "normal"), 1),
        envelope(
            "gw1",
            2,
            EventKind::Telemetry,
            None,
            json!({"readings": 10}),
        ),
    ];
    let first = store.accept_events(&gw, batch.clone(), NOW).await.unwrap();
    assert_eq!(first.acked.len(), 2);
    assert_eq!(first.duplicates, 0);
    assert!(first.rejected.is_empty());
    let second = store.accept_events(&gw, batch.clone(), NOW).await.unwrap();
    assert_eq!(second.acked, first.acked);
    assert_eq!(second.duplicates, 2);
    assert_eq!(store.event_count().await.unwrap(), 2);
    assert_eq!(store.ticket_history("gw1-000001").await.unwrap().len(), 1);
    assert_eq!(store.telemetry("b1", 0).await.unwrap().len(), 1);
}

both_backends!(ticket_never_regresses);
async fn ticket_never_regresses(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let id = "gw1-000002";
    let events = vec![
        ticket_event("gw1", 1, snapshot(id, "b1", "new", "normal"), 1),
        ticket_event("gw1", 3, snapshot(id, "b1", "scheduled", "normal"), 3),
    ];
    store.accept_events(&gw, events, NOW).await.unwrap();
    // The transition with seq 2 arrives last, as after a retry.
    let late = vec![ticket_event(
        "gw1",
        2,
        snapshot(id, "b1", "dispatched", "normal"),
        2,
    )];
    store.accept_events(&gw, late, NOW).await.unwrap();
    let ticket = store.ticket(id).await.unwrap().expect("ticket stored");
    assert_eq!(ticket.state, "scheduled");
    assert_eq!(ticket.seq, 3);
    let history = store.ticket_history(id).await.unwrap();
    let seqs: Vec<i64> = history.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(history[1].to, "dispatched");
}

both_backends!(other_building_rejected_403);
async fn other_building_rejected_403(store: Arc<dyn CentralStore>) {
    let owner = identity("gw1", "b1");
    let intruder = identity("gw2", "b2");
    let id = "gw1-000003";
    store
        .accept_events(
            &owner,
            vec![ticket_event("gw1", 1, snapshot(id, "b1", "new", "low"), 1)],
            NOW,
        )
        .await
        .unwrap();

    // A snapshot that claims the other building, an update of the stored ticket from the
    // other building's gateway, and an envelope that names another gateway.
    let claims_b1 = ticket_event("gw2", 1, snapshot("gw2-000001", "b1", "new", "low"), 1);
    let overwrites = ticket_event("gw2", 2, snapshot(id, "b2", "closed", "low"), 2);
    let audit = AuditEntry {
        ticket: id.into(),
        ts_ms: NOW,
        actor: "rule:x".into(),
        action: "closed".into(),
        detail: json!({}),
        hash: "ab".into(),
    };
    let audit = envelope(
        "gw2",
        3,
        EventKind::Audit,
        Some(id),
        serde_json::to_value(audit).unwrap(),
    );
    let impostor = envelope("gw1", 4, EventKind::Telemetry, None, json!({}));
    let fine = envelope("gw2", 5, EventKind::Telemetry, None, json!({"n": 1}));
    let outcome = store
        .accept_events(
            &intruder,
            vec![
                claims_b1.clone(),
                overwrites.clone(),
                audit.clone(),
                impostor.clone(),
                fine.clone(),
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(outcome.acked, vec![fine.event_id]);
    let statuses: Vec<(Uuid, u16)> = outcome
        .rejected
        .iter()
        .map(|r| (r.event_id, r.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (claims_b1.event_id, 403),
            (overwrites.event_id, 403),
            (audit.event_id, 403),
            (impostor.event_id, 403)
        ]
    );
    assert!(
        outcome.rejected[0].error.contains("b1"),
        "{}",
        outcome.rejected[0].error
    );
    assert!(
        outcome.rejected[1].error.contains(id),
        "{}",
        outcome.rejected[1].error
    );
    let ticket = store.ticket(id).await.unwrap().unwrap();
    assert_eq!(ticket.state, "new");
    assert_eq!(ticket.building, "b1");
    assert!(store.ticket("gw2-000001").await.unwrap().is_none());
    assert!(store.ticket_audit(id).await.unwrap().is_empty());
}

both_backends!(malformed_payload_rejected_400);
async fn malformed_payload_rejected_400(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let bad = envelope(
        "gw1",
        1,
        EventKind::Ticket,
        Some("gw1-9"),
        json!({"ticket": 5}),
    );
    let good = envelope(
        "gw1",
        2,
        EventKind::Anomaly,
        None,
        json!({"asset": "pump-1"}),
    );
    let outcome = store
        .accept_events(&gw, vec![bad.clone(), good.clone()], NOW)
        .await
        .unwrap();
    assert_eq!(outcome.acked, vec![good.event_id]);
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].status, 400);
    assert!(
        outcome.rejected[0].error.contains("ticket payload"),
        "{}",
        outcome.rejected[0].error
    );
    assert_eq!(store.event_count().await.unwrap(), 1);
    let anomalies = store.anomalies("b1", 0).await.unwrap();
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalies[0].payload["asset"], "pump-1");
}

both_backends!(changes_feed_per_building);
async fn changes_feed_per_building(store: Arc<dyn CentralStore>) {
    let ack = |ticket: &str| Change::Ticket {
        ticket: ticket.into(),
        action: TicketAction::Acknowledge,
        vendor: None,
        slot_start_ms: None,
        slot_end_ms: None,
        note: None,
    };
    let a1 = store
        .add_change("b1", "office:ann", ack("gw1-1"), NOW)
        .await
        .unwrap();
    let b1 = store
        .add_change("b2", "office:ann", ack("gw2-1"), NOW)
        .await
        .unwrap();
    let a2 = store
        .add_change("b1", "vendor:pipes", ack("gw1-2"), NOW + 1)
        .await
        .unwrap();
    assert!(a1.id < b1.id);
    assert!(b1.id < a2.id);
    let all = store.changes_after("b1", 0, 100).await.unwrap();
    assert_eq!(all, vec![a1.clone(), a2.clone()]);
    let after_first = store.changes_after("b1", a1.id, 100).await.unwrap();
    assert_eq!(after_first, vec![a2.clone()]);
    let limited = store.changes_after("b1", 0, 1).await.unwrap();
    assert_eq!(limited, vec![a1]);
    assert!(store
        .changes_after("b1", a2.id, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.changes_after("b2", 0, 100).await.unwrap(), vec![b1]);
}

both_backends!(tenant_directory_follows_changes);
async fn tenant_directory_follows_changes(store: Arc<dyn CentralStore>) {
    let record = TenantRecord {
        unit: "3B".into(),
        language: "da".into(),
        contacts: vec![],
        quiet_from: None,
        quiet_until: None,
        consent: true,
        opt_outs: vec![],
        permission_to_enter: false,
        availability: vec!["Sat 09:00-12:00".into()],
    };
    store
        .add_change(
            "b1",
            "office:ann",
            Change::TenantUpsert(record.clone()),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(store.tenants("b1").await.unwrap(), vec![record]);
    assert!(store.tenants("b2").await.unwrap().is_empty());
    store
        .add_change(
            "b1",
            "office:ann",
            Change::TenantRemove { unit: "3B".into() },
            NOW,
        )
        .await
        .unwrap();
    assert!(store.tenants("b1").await.unwrap().is_empty());
    assert_eq!(store.changes_after("b1", 0, 10).await.unwrap().len(), 2);
}

both_backends!(tokens_hashed_and_revoked);
async fn tokens_hashed_and_revoked(store: Arc<dyn CentralStore>) {
    let id = store.add_token("gw1", "b1", "hash-one", NOW).await.unwrap();
    store.add_token("gw2", "b2", "hash-two", NOW).await.unwrap();
    let found = store
        .find_token("hash-one")
        .await
        .unwrap()
        .expect("token found");
    assert_eq!(found.token_id, id);
    assert_eq!(found.gateway, "gw1");
    assert_eq!(found.building, "b1");
    assert!(store.find_token("hash-three").await.unwrap().is_none());
    assert_eq!(store.revoke_tokens("gw1", NOW + 5).await.unwrap(), 1);
    assert!(store.find_token("hash-one").await.unwrap().is_none());
    assert!(store.find_token("hash-two").await.unwrap().is_some());
    let tokens = store.list_tokens().await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].revoked_ms, Some(NOW + 5));
    assert_eq!(tokens[1].revoked_ms, None);
    assert_eq!(
        store.buildings().await.unwrap(),
        vec!["b1".to_string(), "b2".to_string()]
    );
}

both_backends!(users_and_sessions);
async fn users_and_sessions(store: Arc<dyn CentralStore>) {
    let user = User {
        name: "ann".into(),
        role: "office".into(),
        password_hash: "$argon2id$placeholder".into(),
        created_ms: NOW,
    };
    store.add_user(&user).await.unwrap();
    let again = store.add_user(&user).await;
    assert!(
        matches!(again, Err(store::StoreError::Conflict(_))),
        "{again:?}"
    );
    assert_eq!(store.find_user("ann").await.unwrap(), Some(user.clone()));
    assert!(store.find_user("bob").await.unwrap().is_none());
    let promoted = User {
        role: "admin".into(),
        ..user.clone()
    };
    store.update_user(&promoted).await.unwrap();

    store
        .create_session("s1", "ann", NOW, NOW + 1000)
        .await
        .unwrap();
    let session = store
        .find_session("s1", NOW + 999)
        .await
        .unwrap()
        .expect("session live");
    assert_eq!(session.user, "ann");
    assert_eq!(session.role, "admin");
    assert!(store
        .find_session("s1", NOW + 1000)
        .await
        .unwrap()
        .is_none());
    store.delete_session("s1").await.unwrap();
    assert!(store.find_session("s1", NOW).await.unwrap().is_none());
}

both_backends!(stale_heartbeat_flagged);
async fn stale_heartbeat_flagged(store: Arc<dyn CentralStore>) {
    let heartbeat = |gateway: &str| Heartbeat {
        gateway: gateway.into(),
        version: "0.1.0".into(),
        protocol: 1,
        config_hash: "00".into(),
        ts_ms: NOW,
        health: "ok".into(),
        problems: vec![],
        outbox_events: 3,
    };
    store
        .record_heartbeat(&identity("gw1", "b1"), &heartbeat("gw1"), NOW)
        .await
        .unwrap();
    store
        .record_heartbeat(&identity("gw2", "b2"), &heartbeat("gw2"), NOW + 50_000)
        .await
        .unwrap();
    let statuses = store.gateway_statuses(NOW + 70_000, 60_000).await.unwrap();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].gateway, "gw1");
    assert!(statuses[0].stale);
    assert!(!statuses[1].stale);
    assert_eq!(statuses[1].heartbeat.outbox_events, 3);
}

both_backends!(escalated_tickets_listed_first);
async fn escalated_tickets_listed_first(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let mut escalated = snapshot("gw1-000010", "b1", "escalated", "low");
    escalated.escalation_reason = Some("no vendor".into());
    let events = vec![
        ticket_event("gw1", 1, snapshot("gw1-000011", "b1", "new", "normal"), 1),
        ticket_event(
            "gw1",
            2,
            snapshot("gw1-000012", "b1", "new", "emergency"),
            1,
        ),
        ticket_event("gw1", 3, escalated, 1),
        ticket_event(
            "gw1",
            4,
            snapshot("gw1-000013", "b1", "closed", "emergency"),
            1,
        ),
    ];
    store.accept_events(&gw, events, NOW).await.unwrap();
    let listed = store.list_tickets(&TicketFilter::default()).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["gw1-000010", "gw1-000012", "gw1-000011", "gw1-000013"]
    );
    assert_eq!(listed[0].escalation_reason.as_deref(), Some("no vendor"));
    let open = TicketFilter {
        open_only: true,
        urgency: Some("emergency".into()),
        ..TicketFilter::default()
    };
    let ids: Vec<String> = store
        .list_tickets(&open)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec!["gw1-000012".to_string()]);
    let other = TicketFilter {
        building: Some("b2".into()),
        ..TicketFilter::default()
    };
    assert!(store.list_tickets(&other).await.unwrap().is_empty());
}

both_backends!(audit_and_relay_stored);
async fn audit_and_relay_stored(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let id = "gw1-000020";
    let mut dispatched = snapshot(id, "b1", "dispatched", "urgent");
    dispatched.vendor = Some("pipes-ltd".into());
    let entry = |hash: &str, ts_ms: i64| AuditEntry {
        ticket: id.into(),
        ts_ms,
        actor: "rule:vendor".into(),
        action: "dispatch".into(),
        detail: json!({"vendor": "pipes-ltd"}),
        hash: hash.into(),
    };
    let update = TenantUpdate {
        ticket: id.into(),
        unit: "3B".into(),
        language: "en".into(),
        template: "booked".into(),
        text: "A plumber comes tomorrow".into(),
        ts_ms: NOW,
    };
    let events = vec![
        ticket_event("gw1", 1, dispatched, 1),
        envelope(
            "gw1",
            2,
            EventKind::Audit,
            Some(id),
            serde_json::to_value(entry("h2", NOW + 2)).unwrap(),
        ),
        envelope(
            "gw1",
            3,
            EventKind::Audit,
            Some(id),
            serde_json::to_value(entry("h1", NOW + 1)).unwrap(),
        ),
        envelope(
            "gw1",
            4,
            EventKind::TenantUpdate,
            Some(id),
            serde_json::to_value(&update).unwrap(),
        ),
    ];
    let outcome = store.accept_events(&gw, events, NOW).await.unwrap();
    assert_eq!(outcome.acked.len(), 4);
    let kinds: Vec<&str> = outcome.relayed.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, vec!["vendor_dispatch", "tenant_update"]);
    let audit = store.ticket_audit(id).await.unwrap();
    let hashes: Vec<&str> = audit.iter().map(|a| a.hash.as_str()).collect();
    assert_eq!(hashes, vec!["h1", "h2"]);
    assert_eq!(audit[0].detail["vendor"], "pipes-ltd");
    let relay = store.relay_after(0, 10).await.unwrap();
    assert_eq!(relay.len(), 2);
    assert_eq!(relay[0].subject, "pipes-ltd");
    assert_eq!(relay[1].subject, "booked");
    assert!(relay[1].payload.contains("A plumber comes tomorrow"));
    assert!(store.relay_after(relay[1].id, 10).await.unwrap().is_empty());
}

both_backends!(transitions_in_one_batch);
async fn transitions_in_one_batch(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let id = "gw1-000030";
    // Three transitions of one ticket in one batch, the highest first.
    let events = vec![
        ticket_event("gw1", 3, snapshot(id, "b1", "scheduled", "normal"), 3),
        ticket_event("gw1", 1, snapshot(id, "b1", "new", "normal"), 1),
        ticket_event("gw1", 2, snapshot(id, "b1", "dispatched", "normal"), 2),
    ];
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let outcome = store.accept_events(&gw, events, NOW).await.unwrap();
    assert_eq!(outcome.acked, ids);
    assert_eq!(outcome.stored_kinds.len(), 3);
    let ticket = store.ticket(id).await.unwrap().expect("ticket stored");
    assert_eq!(ticket.state, "scheduled");
    assert_eq!(ticket.seq, 3);
    let seqs: Vec<i64> = store
        .ticket_history(id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);

    // A later batch moves the ticket on only with a higher seq. Of two snapshots with the
    // same seq in one batch, the first one stays.
    let mut first_four = snapshot(id, "b1", "in_progress", "urgent");
    first_four.summary = "first snapshot with seq 4".into();
    let mut second_four = snapshot(id, "b1", "in_progress", "low");
    second_four.summary = "second snapshot with seq 4".into();
    let events = vec![
        ticket_event("gw1", 4, snapshot(id, "b1", "new", "normal"), 2),
        ticket_event("gw1", 5, first_four, 4),
        ticket_event("gw1", 6, second_four, 4),
    ];
    let outcome = store.accept_events(&gw, events, NOW).await.unwrap();
    assert_eq!(outcome.acked.len(), 3);
    let ticket = store.ticket(id).await.unwrap().unwrap();
    assert_eq!(ticket.seq, 4);
    assert_eq!(ticket.urgency, "urgent");
    assert_eq!(ticket.summary, "first snapshot with seq 4");
    let history = store.ticket_history(id).await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(
        history[1].to, "dispatched",
        "a repeated seq keeps its first row"
    );
    assert_eq!(store.event_count().await.unwrap(), 6);
}

both_backends!(repeats_in_one_batch_stored_once);
async fn repeats_in_one_batch_stored_once(store: Arc<dyn CentralStore>) {
    let gw = identity("gw1", "b1");
    let id = "gw1-000040";
    let update = |template: &str| TenantUpdate {
        ticket: id.into(),
        unit: "3B".into(),
        language: "en".into(),
        template: template.into(),
        text: format!("update {template}"),
        ts_ms: NOW,
    };
    let update_event = |seq: i64, template: &str| {
        envelope(
            "gw1",
            seq,
            EventKind::TenantUpdate,
            Some(id),
            serde_json::to_value(update(template)).unwrap(),
        )
    };
    let audit = |seq: i64| {
        let entry = AuditEntry {
            ticket: id.into(),
            ts_ms: NOW,
            actor: "rule:vendor".into(),
            action: "dispatch".into(),
            detail: json!({"attempt": seq}),
            hash: "same-hash".into(),
        };
        envelope(
            "gw1",
            seq,
            EventKind::Audit,
            Some(id),
            serde_json::to_value(entry).unwrap(),
        )
    };
    let mut dispatched = snapshot(id, "b1", "dispatched", "urgent");
    dispatched.vendor = Some("pipes-ltd".into());
    let received = update_event(1, "received");
    let dispatch = ticket_event("gw1", 2, dispatched, 1);
    let booked = update_event(3, "booked");
    let events = vec![
        received.clone(),
        dispatch.clone(),
        received.clone(),
        booked.clone(),
        audit(4),
        audit(5),
    ];
    let outcome = store.accept_events(&gw, events.clone(), NOW).await.unwrap();
    let expected: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(outcome.acked, expected);
    assert_eq!(outcome.duplicates, 1, "the repeated event id");
    assert_eq!(outcome.stored_kinds.len(), 5);
    assert_eq!(store.event_count().await.unwrap(), 5);
    let audit_rows = store.ticket_audit(id).await.unwrap();
    assert_eq!(audit_rows.len(), 1, "one audit row per ticket and hash");
    assert_eq!(audit_rows[0].detail["attempt"], 4, "the first one stays");

    // Relay entries follow the batch order, with increasing ids.
    let subjects: Vec<&str> = outcome.relayed.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, vec!["received", "pipes-ltd", "booked"]);
    let ids: Vec<i64> = outcome.relayed.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    let stored = store.relay_after(0, 10).await.unwrap();
    assert_eq!(stored, outcome.relayed);

    // The same batch again stores nothing and relays nothing.
    let again = store.accept_events(&gw, events, NOW).await.unwrap();
    assert_eq!(again.acked, expected);
    assert_eq!(again.duplicates, 6);
    assert!(again.stored_kinds.is_empty());
    assert!(again.relayed.is_empty());
    assert_eq!(store.event_count().await.unwrap(), 5);
    assert_eq!(store.relay_after(0, 10).await.unwrap().len(), 3);
}
