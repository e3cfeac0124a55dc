//! The sync task against a fault-making double of the central office: an office that is
//! down and comes back, random 500s and timeouts, rejected events, the pull of office
//! changes and the heartbeat.

mod support;
#[path = "support/sync_double.rs"]
mod sync_double;
#[path = "support/sync_harness.rs"]
mod sync_harness;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caretaker::protocol::{Change, EventKind, OfficeChange, TicketAction};
use caretaker::sync::ApplyChange;
use sync_double::{Double, Fault};
use sync_harness::{assert_order_per_ticket, wait_for, Harness, TOKEN};
use uuid::Uuid;

const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_down_then_back_delivers_each_event_once() {
    let port = support::free_port();
    let mut harness = Harness::new();
    harness.start_sync(harness.config(&format!("http://127.0.0.1:{port}")), None);
    harness.run_clock(Duration::from_millis(100));

    let mut produced = Vec::new();
    for round in 0..15 {
        for ticket in ["gw-sync-000001", "gw-sync-000002", "gw-sync-000003"] {
            let payload = serde_json::json!({ "round": round, "ticket": ticket });
            produced.push(
                harness
                    .enqueue(EventKind::Ticket, Some(ticket), payload)
                    .await,
            );
        }
        let anomaly = serde_json::json!({ "round": round });
        produced.push(harness.enqueue(EventKind::Anomaly, None, anomaly).await);
    }
    // The office is unreachable for a while of clock time: nothing may leave the outbox.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(harness.outbox_count(), 60);

    let double = Double::start(port, TOKEN).await;
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; {} events left",
        harness.outbox_count()
    );
    let stored = double.stored_ids();
    assert_eq!(stored.len(), 60);
    assert_eq!(
        stored.iter().copied().collect::<HashSet<Uuid>>(),
        produced.iter().copied().collect::<HashSet<Uuid>>()
    );
    let per_ticket = assert_order_per_ticket(&double.state().deliveries);
    assert_eq!(per_ticket.len(), 3);
    assert!(per_ticket.values().all(|seqs| seqs.len() == 15));
    assert_eq!(harness.metric("caretaker_sync_events_sent_total"), 60.0);
    assert!(
        wait_for(Duration::from_secs(10), || harness
            .metric("caretaker_outbox_events")
            == 0.0)
        .await
    );
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_failures_lose_nothing() {
    let double = Double::start(0, TOKEN).await;
    double.set_fault(Fault::Random {
        fail_before: 0.2,
        fail_after: 0.2,
        hang: 0.1,
    });
    let mut harness = Harness::new();
    let mut config = harness.config(&double.url());
    config.batch_max_events = 8;
    harness.start_sync(config, None);
    harness.run_clock(Duration::from_millis(100));

    let mut produced = Vec::new();
    for i in 0..150 {
        let ticket = format!("gw-sync-{:06}", i % 5 + 1);
        let payload = serde_json::json!({ "step": i });
        produced.push(
            harness
                .enqueue(EventKind::Ticket, Some(&ticket), payload)
                .await,
        );
    }
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; {} events left",
        harness.outbox_count()
    );
    double.release();

    {
        let state = double.state();
        let stored: HashSet<Uuid> = state.stored.iter().map(|e| e.event_id).collect();
        assert_eq!(state.stored.len(), 150, "each event stored once");
        assert_eq!(stored, produced.iter().copied().collect::<HashSet<Uuid>>());
        // A redelivered event carries the same idempotency key, sequence and payload.
        for delivery in &state.deliveries {
            let first = state
                .stored
                .iter()
                .find(|e| e.event_id == delivery.event_id)
                .expect("every delivery is of a stored event");
            assert_eq!(first, delivery);
        }
        assert!(
            state.deliveries.len() > 150,
            "no event was redelivered, so the faults did not bite"
        );
        assert!(state.requests.iter().any(|r| r.status == 500));
        assert_order_per_ticket(&state.deliveries);
    }
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_event_is_kept_not_resent() {
    let double = Double::start(0, TOKEN).await;
    double
        .state()
        .reject_tickets
        .insert("other-000001".to_string());
    let mut harness = Harness::new();
    harness.start_sync(harness.config(&double.url()), None);
    harness.run_clock(Duration::from_millis(100));

    let foreign = harness
        .enqueue(
            EventKind::Ticket,
            Some("other-000001"),
            serde_json::json!({"x": 1}),
        )
        .await;
    let own = harness
        .enqueue(
            EventKind::Ticket,
            Some("gw-sync-000001"),
            serde_json::json!({"x": 2}),
        )
        .await;
    assert!(wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await);
    assert_eq!(double.stored_ids(), vec![own]);
    let (event_id, status, error): (String, u16, String) = harness
        .connect()
        .query_row(
            "SELECT event_id, status, error FROM sync_rejected",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(event_id, foreign.to_string());
    assert_eq!(status, 403);
    assert!(error.contains("another building"), "{error}");
    assert_eq!(harness.metric("caretaker_sync_events_rejected_total"), 1.0);

    // Later rounds do not send it again.
    let deliveries = double.state().deliveries.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(double.state().deliveries.len(), deliveries);
    harness.shutdown().await;
}

/// Records each applied change in a table of its own; fails once on `fail_on` to show that a
/// failed pull applies nothing and is retried.
struct Recorder {
    fail_on: i64,
    failed: AtomicBool,
}

impl ApplyChange for Recorder {
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        change: &OfficeChange,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        if change.id == self.fail_on && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(rusqlite::Error::InvalidQuery);
        }
        tx.execute(
            "INSERT INTO test_applied (change_id, applied_ms) VALUES (?1, ?2)",
            rusqlite::params![change.id, now_ms],
        )?;
        Ok(())
    }
}

fn office_change(id: i64) -> OfficeChange {
    OfficeChange {
        id,
        ts_ms: 1_000 + id,
        actor: "office:alice".to_string(),
        change: Change::Ticket {
            ticket: "gw-sync-000001".to_string(),
            action: TicketAction::Acknowledge,
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            note: Some(format!("change {id}")),
        },
    }
}

fn applied_ids(harness: &Harness) -> Vec<i64> {
    harness
        .connect()
        .prepare("SELECT change_id FROM test_applied ORDER BY rowid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn pull_cursor(harness: &Harness) -> Option<i64> {
    harness
        .connect()
        .query_row(
            "SELECT value FROM meta WHERE key = 'sync_pull_cursor'",
            [],
            |row| row.get(0),
        )
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_applies_changes_once_in_order() {
    let double = Double::start(0, TOKEN).await;
    double.state().changes = (1..=7).map(office_change).collect();
    let mut harness = Harness::new();
    harness
        .store
        .transact(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS test_applied (change_id INTEGER, applied_ms INTEGER)",
            )
        })
        .await
        .unwrap();
    let mut config = harness.config(&double.url());
    config.pull_limit = 3;
    let recorder = Arc::new(Recorder {
        fail_on: 5,
        failed: AtomicBool::new(false),
    });
    harness.start_sync(config, Some(recorder.clone()));
    harness.run_clock(Duration::from_millis(100));

    assert!(wait_for(DRAIN_TIMEOUT, || pull_cursor(&harness) == Some(7)).await);
    assert!(
        recorder.failed.load(Ordering::SeqCst),
        "the failure never happened"
    );
    assert_eq!(applied_ids(&harness), (1..=7).collect::<Vec<_>>());

    double.state().changes.extend((8..=10).map(office_change));
    assert!(wait_for(DRAIN_TIMEOUT, || pull_cursor(&harness) == Some(10)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(applied_ids(&harness), (1..=10).collect::<Vec<_>>());
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_reports_config_hash_and_outbox() {
    let double = Double::start(0, TOKEN).await;
    double.set_fault(Fault::Status(503));
    let mut harness = Harness::new();
    harness.start_sync(harness.config(&double.url()), None);
    for i in 0..3 {
        harness
            .enqueue(EventKind::Telemetry, None, serde_json::json!({ "i": i }))
            .await;
    }
    double.release();
    harness.run_clock(Duration::from_millis(100));
    assert!(wait_for(DRAIN_TIMEOUT, || !double.state().heartbeats.is_empty()).await);

    let beat = double.state().heartbeats[0].clone();
    assert_eq!(beat.gateway, "gw-sync");
    assert_eq!(beat.protocol, 1);
    assert_eq!(beat.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(beat.outbox_events, 3);
    assert_eq!(
        beat.config_hash,
        caretaker::sync::config_hash(&harness.config_file)
    );
    assert_eq!(beat.config_hash.len(), 64);
    assert_eq!(beat.health, "ok");
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_drains_at_bounded_rate() {
    let double = Double::start(0, TOKEN).await;
    let mut harness = Harness::new();
    for i in 0..50 {
        let ticket = format!("gw-sync-{:06}", i % 7 + 1);
        harness
            .enqueue(
                EventKind::Ticket,
                Some(&ticket),
                serde_json::json!({ "i": i }),
            )
            .await;
    }
    let mut config = harness.config(&double.url());
    config.drain_events_per_sec = 10;
    config.batch_max_events = 10;
    harness.start_sync(config, None);

    // 10 events per second of clock time: each second releases one batch of 10, and while
    // the clock is stopped nothing more goes out.
    for batch in 1..=5 {
        assert!(
            wait_for(Duration::from_secs(30), || double.stored_ids().len()
                == batch * 10)
            .await,
            "batch {batch}: {} events stored",
            double.stored_ids().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(double.stored_ids().len(), batch * 10);
        harness.clock.advance(Duration::from_secs(1));
    }
    assert!(wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await);
    harness.shutdown().await;
}
