//! Two `caretaker central` processes on one PostgreSQL database, as behind a load balancer:
//! the same events sent to both are stored once, a ticket ends at its highest transition,
//! office changes added through both stores reach the gateway in id order with none skipped,
//! and a token made once works on both.

#[path = "support/central.rs"]
mod central;
#[path = "support/postgres.rs"]
mod postgres;

use caretaker::protocol::{
    Change, Envelope, EventKind, TicketAction, TicketEvent, TicketSnapshot, Transition,
};
use central::Central;
use postgres::PgDatabase;
use serde_json::{json, Value};
use uuid::Uuid;

fn ticket_envelope(ticket: &str, transition_seq: i64, outbox_seq: i64) -> Envelope {
    let state = format!("state-{transition_seq}");
    let event = TicketEvent {
        ticket: TicketSnapshot {
            id: ticket.into(),
            building: "b1".into(),
            state: state.clone(),
            category: "electrical".into(),
            urgency: "urgent".into(),
            needs_human: false,
            escalation_reason: None,
            unit: None,
            asset: Some("pump-1".into()),
            summary: "pump trips".into(),
            sources: vec![],
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            ack_due_ms: None,
            onsite_due_ms: None,
            resolve_due_ms: None,
            opened_ms: 1_000,
            updated_ms: 1_000 + transition_seq,
        },
        transition: Transition {
            seq: transition_seq,
            ts_ms: 1_000 + transition_seq,
            from: None,
            to: state,
            actor: "rule:test".into(),
            reason: "step".into(),
        },
    };
    Envelope {
        event_id: Uuid::now_v7(),
        gateway: "gw1".into(),
        seq: outbox_seq,
        kind: EventKind::Ticket,
        ticket: Some(ticket.into()),
        ts_ms: 1_000 + outbox_seq,
        payload: serde_json::to_value(event).unwrap(),
    }
}

async fn send(client: &reqwest::Client, url: &str, token: &str, events: &[Envelope]) -> Value {
    let response = client
        .post(format!("{url}/v1/events"))
        .bearer_auth(token)
        .header("Caretaker-Protocol", "1")
        .json(&json!({ "gateway": "gw1", "events": events }))
        .send()
        .await
        .expect("send batch");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_database() {
    let database = tokio::task::spawn_blocking(PgDatabase::fresh)
        .await
        .unwrap();
    // Both processes create the schema at the same moment on first start.
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Central::start(&database.url, &[]));
        let b = scope.spawn(|| Central::start(&database.url, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let token = first.add_token("gw1", "b1");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();

    // 20 tickets with 5 transitions each; every batch goes to both processes at once, as a
    // gateway's retry through a load balancer may.
    let mut batches = Vec::new();
    let mut outbox_seq = 0;
    for transition in 1..=5 {
        let batch: Vec<Envelope> = (1..=20)
            .map(|n| {
                outbox_seq += 1;
                ticket_envelope(&format!("gw1-{n:06}"), transition, outbox_seq)
            })
            .collect();
        batches.push(batch);
    }
    for batch in &batches {
        let (a, b) = tokio::join!(
            send(&client, &first.url, &token, batch),
            send(&client, &second.url, &token, batch)
        );
        assert_eq!(a["acked"].as_array().unwrap().len(), 20, "{a}");
        assert_eq!(b["acked"].as_array().unwrap().len(), 20, "{b}");
    }
    assert_eq!(database.query("SELECT count(*) FROM events"), "100");
    assert_eq!(database.query("SELECT count(*) FROM ticket_history"), "100");
    assert_eq!(
        database.query("SELECT count(*) FROM tickets WHERE seq = 5 AND state = 'state-5'"),
        "20"
    );

    // Office changes added concurrently through two connections pools (as two processes'
    // dashboards would) come out of both processes' feeds in the same increasing order.
    let store_a = caretaker::central::store::open(&database.url)
        .await
        .unwrap();
    let store_b = caretaker::central::store::open(&database.url)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = if n % 2 == 0 {
            store_a.clone()
        } else {
            store_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let change = Change::Ticket {
                ticket: format!("gw1-{:06}", n % 20 + 1),
                action: TicketAction::Acknowledge,
                vendor: None,
                slot_start_ms: None,
                slot_end_ms: None,
                note: Some(format!("change {n}")),
            };
            store
                .add_change("b1", "office:ann", change, n)
                .await
                .unwrap()
                .id
        }));
    }
    let mut added = Vec::new();
    for task in tasks {
        added.push(task.await.unwrap());
    }
    added.sort();
    for central in [&first, &second] {
        let mut cursor = 0;
        let mut pulled = Vec::new();
        loop {
            let reply: Value = client
                .get(format!("{}/v1/changes?after={cursor}&limit=7", central.url))
                .bearer_auth(&token)
                .header("Caretaker-Protocol", "1")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let changes = reply["changes"].as_array().unwrap();
            if changes.is_empty() {
                break;
            }
            for change in changes {
                let id = change["id"].as_i64().unwrap();
                assert!(id > cursor, "id {id} after cursor {cursor}");
                cursor = id;
                pulled.push(id);
            }
        }
        assert_eq!(pulled, added);
    }

    let (status, _) = first.stop();
    assert!(status.success());
    // The other process carries on alone.
    let again = send(&client, &second.url, &token, &batches[0]).await;
    assert_eq!(again["acked"].as_array().unwrap().len(), 20);
    assert_eq!(database.query("SELECT count(*) FROM events"), "100");
}
