//! The sync task against a real `caretaker central`, behind the fault-making proxy: an office
//! that is unreachable and comes back, and one behind random 500s and timeouts. The office's
//! own database must end with each event exactly once.

#[path = "support/central.rs"]
mod central;
mod support;
#[path = "support/sync_double.rs"]
mod sync_double;
#[path = "support/sync_harness.rs"]
mod sync_harness;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use caretaker::protocol::EventKind;
use caretaker::secret::Secret;
use central::Central;
use sync_double::{Double, Fault};
use sync_harness::{assert_order_per_ticket, ticket_payload, wait_for, Harness, GATEWAY};
use uuid::Uuid;

const BUILDING: &str = "building-sync";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

fn office_count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// Starts the office, the proxy in front of it with `fault`, and a gateway store with sync
/// pointed at the proxy.
async fn setup(batch_max_events: usize, fault: Fault) -> (Central, Double, Harness) {
    let office = Central::start_sqlite(&[]);
    let token = office.add_token(GATEWAY, BUILDING);
    let proxy = Double::start(0, "unused-by-a-proxy").await;
    proxy.state().upstream = Some(office.url.clone());
    proxy.set_fault(fault);
    let mut harness = Harness::new();
    let mut config = harness.config(&proxy.url());
    config.token = Secret::new(token);
    config.batch_max_events = batch_max_events;
    harness.start_sync(config, None);
    (office, proxy, harness)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_unreachable_then_back_stores_each_event_once() {
    let (office, proxy, mut harness) = setup(500, Fault::Status(502)).await;

    let mut produced = Vec::new();
    for seq in 1..=10 {
        for n in 1..=4 {
            let ticket = format!("{GATEWAY}-{n:06}");
            let payload = ticket_payload(&ticket, BUILDING, seq);
            produced.push(
                harness
                    .enqueue(EventKind::Ticket, Some(&ticket), payload)
                    .await,
            );
        }
        let anomaly = serde_json::json!({ "asset": "pump-1", "step": seq });
        produced.push(harness.enqueue(EventKind::Anomaly, None, anomaly).await);
    }
    for _ in 0..50 {
        harness.clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(harness.outbox_count(), 50);
    assert!(proxy.state().requests.iter().all(|r| r.status == 502));

    proxy.release();
    harness.run_clock(Duration::from_millis(100));
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; {} events left; office log:\n{}",
        harness.outbox_count(),
        office.read_log()
    );

    let db = office.folder().join("central.db");
    assert_eq!(office_count(&db, "SELECT COUNT(*) FROM events"), 50);
    assert_eq!(office_count(&db, "SELECT COUNT(*) FROM ticket_history"), 40);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: HashSet<Uuid> = conn
        .prepare("SELECT event_id FROM events")
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|id| Uuid::parse_str(&id.unwrap()).unwrap())
        .collect();
    assert_eq!(stored, produced.iter().copied().collect::<HashSet<_>>());
    let per_ticket = assert_order_per_ticket(&proxy.state().deliveries);
    assert_eq!(per_ticket.len(), 4);
    assert_eq!(harness.metric("caretaker_sync_events_sent_total"), 50.0);
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_failures_before_office_store_once() {
    let fault = Fault::Random {
        fail_before: 0.2,
        fail_after: 0.2,
        hang: 0.1,
    };
    let (office, proxy, mut harness) = setup(8, fault).await;
    harness.run_clock(Duration::from_millis(100));

    for seq in 1..=20 {
        for n in 1..=5 {
            let ticket = format!("{GATEWAY}-{n:06}");
            let payload = ticket_payload(&ticket, BUILDING, seq);
            harness
                .enqueue(EventKind::Ticket, Some(&ticket), payload)
                .await;
        }
    }
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; {} events left; office log:\n{}",
        harness.outbox_count(),
        office.read_log()
    );
    proxy.release();

    let db = office.folder().join("central.db");
    assert_eq!(office_count(&db, "SELECT COUNT(*) FROM events"), 100);
    assert_eq!(
        office_count(
            &db,
            "SELECT COUNT(DISTINCT ticket || '/' || seq) FROM ticket_history"
        ),
        100
    );
    {
        let state = proxy.state();
        assert!(
            state.deliveries.len() > 100,
            "no event was redelivered, so the faults did not bite"
        );
        assert!(state.requests.iter().any(|r| r.status == 500));
        assert_order_per_ticket(&state.deliveries);
    }
    let rejected: i64 = harness
        .connect()
        .query_row("SELECT COUNT(*) FROM sync_rejected", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rejected, 0, "the office rejected events");
    harness.shutdown().await;
}
