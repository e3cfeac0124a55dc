//! Store-and-forward cases seen in other gateways: events produced during an outage must all
//! arrive in order, and a batch over the office's size limit must be split, with an event too
//! large on its own kept visibly instead of dropped.

mod support;
#[path = "support/sync_double.rs"]
mod sync_double;
#[path = "support/sync_harness.rs"]
mod sync_harness;

use std::time::Duration;

use caretaker::protocol::EventKind;
use sync_double::{Double, Fault};
use sync_harness::{payload_of_size, wait_for, Harness, TOKEN};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// A: the office responds with 503 for 10 minutes of clock time while ticket T-1 gets 12 events
/// (open, acknowledge, 9 comments, close); afterwards all 12 arrive in order, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_all_twelve_events_in_order() {
    let double = Double::start(0, TOKEN).await;
    double.set_fault(Fault::Status(503));
    let mut harness = Harness::new();
    harness.start_sync(harness.config(&double.url()), None);

    let steps: Vec<String> = std::iter::once("open".to_string())
        .chain(std::iter::once("acknowledge".to_string()))
        .chain((1..=9).map(|n| format!("comment {n}")))
        .chain(std::iter::once("close".to_string()))
        .collect();
    let mut produced = Vec::new();
    for step in &steps {
        let payload = serde_json::json!({ "step": step });
        produced.push(
            harness
                .enqueue(EventKind::Ticket, Some("T-1"), payload)
                .await,
        );
        // 12 steps of 50 s: the outage lasts 10 minutes of clock time.
        for _ in 0..10 {
            harness.clock.advance(Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(double.state().requests.iter().all(|r| r.status == 503));
    assert!(double.state().requests.len() > 3, "sync did not retry");
    assert_eq!(harness.outbox_count(), 12);

    double.release();
    harness.run_clock(Duration::from_millis(100));
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; {} events left",
        harness.outbox_count()
    );

    {
        let state = double.state();
        let stored_steps: Vec<String> = state
            .stored
            .iter()
            .map(|e| e.payload["step"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(stored_steps, steps);
        let stored_ids: Vec<_> = state.stored.iter().map(|e| e.event_id).collect();
        assert_eq!(stored_ids, produced, "idempotency keys or order differ");
        assert!(stored_ids.iter().all(|id| id.get_version_num() == 7));
        assert_eq!(state.deliveries.len(), 12, "an event was delivered twice");
    }
    assert_eq!(harness.metric("caretaker_sync_events_sent_total"), 12.0);
    harness.shutdown().await;
}

/// B: the office accepts at most 400 bytes per request. Ten tickets with 659 bytes of JSON in
/// all go in at least two requests. A ticket of 450 bytes cannot fit, so it is rejected
/// visibly.
async fn split_case(announce_limit: bool) {
    let double = Double::start(0, TOKEN).await;
    {
        let mut state = double.state();
        state.max_body_bytes = Some(400);
        state.announce_limit = announce_limit;
    }
    let mut harness = Harness::new();

    // Nine payloads of 66 bytes and one of 65: 659 bytes of JSON.
    let sizes: Vec<usize> = (0..10).map(|i| if i == 0 { 65 } else { 66 }).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 659);
    let mut small = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let ticket = format!("gw-sync-{:06}", i + 1);
        small.push(
            harness
                .enqueue(EventKind::Ticket, Some(&ticket), payload_of_size(*size))
                .await,
        );
    }
    let large = harness
        .enqueue(
            EventKind::Ticket,
            Some("gw-sync-000011"),
            payload_of_size(450),
        )
        .await;

    harness.start_sync(harness.config(&double.url()), None);
    harness.run_clock(Duration::from_millis(100));
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; {} events left",
        harness.outbox_count()
    );

    let mut stored = double.stored_ids();
    stored.sort();
    small.sort();
    assert_eq!(
        stored, small,
        "all ten small tickets delivered, the large one not"
    );
    let accepted = double.event_requests_with(200);
    assert!(accepted >= 2, "only {accepted} requests");
    {
        let state = double.state();
        for request in state.requests.iter().filter(|r| r.status == 200) {
            assert!(
                request.bytes <= 400,
                "a request of {} bytes passed",
                request.bytes
            );
        }
        if !announce_limit {
            assert!(
                state.requests.iter().any(|r| r.status == 413),
                "the limit was never learned from a 413"
            );
        }
    }

    let (event_id, status, error): (String, u16, String) = harness
        .connect()
        .query_row(
            "SELECT event_id, status, error FROM sync_rejected",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(event_id, large.to_string());
    assert_eq!(status, 413);
    assert!(error.contains("limit"), "{error}");
    // The task counts sent and rejected events after their transaction commits, so the
    // outbox can be empty a moment before the counters move.
    for (name, expected) in [
        ("caretaker_sync_events_sent_total", 10.0),
        ("caretaker_sync_events_rejected_total", 1.0),
    ] {
        let counted = wait_for(Duration::from_secs(10), || harness.metric(name) == expected).await;
        assert!(
            counted,
            "{name} is {}, expected {expected}",
            harness.metric(name)
        );
    }
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_batch_split_with_announced_limit() {
    split_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_batch_split_after_413() {
    split_case(false).await;
}
