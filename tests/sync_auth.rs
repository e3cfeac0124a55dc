//! A gateway with a wrong token: the office responds with 401, the gateway logs one clear error per
//! backoff step and keeps its events queued.

mod support;
#[path = "support/sync_double.rs"]
mod sync_double;
#[path = "support/sync_harness.rs"]
mod sync_harness;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caretaker::protocol::EventKind;
use caretaker::secret::Secret;
use sync_double::Double;
use sync_harness::{wait_for, Harness};

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, text: &str) -> usize {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_logs_once_per_backoff_step() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let double = Double::start(0, "the-office-token-0123456789").await;
    let mut harness = Harness::new();
    for i in 0..5 {
        let ticket = format!("gw-sync-{:06}", i + 1);
        harness
            .enqueue(
                EventKind::Ticket,
                Some(&ticket),
                serde_json::json!({ "i": i }),
            )
            .await;
    }
    let mut config = harness.config(&double.url());
    config.token = Secret::new("a-wrong-token-0123456789");
    config.backoff_initial = Duration::from_secs(1);
    config.backoff_max = Duration::from_secs(8);
    harness.start_sync(config, None);

    let unauthorized = |double: &Double| {
        double
            .state()
            .requests
            .iter()
            .filter(|r| r.status == 401)
            .count()
    };
    for step in 1..=5 {
        assert!(
            wait_for(Duration::from_secs(30), || unauthorized(&double) == step).await,
            "step {step}: {} requests got 401",
            unauthorized(&double)
        );
        assert!(
            wait_for(Duration::from_secs(10), || captured
                .lines_with("rejected the token (HTTP 401)")
                == step)
            .await,
            "step {step}: {} error lines",
            captured.lines_with("rejected the token (HTTP 401)")
        );
        // While the clock is stopped, the backoff lasts and nothing more is sent or logged.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(unauthorized(&double), step);
        assert_eq!(captured.lines_with("rejected the token (HTTP 401)"), step);
        // The longest step is 8 s; moving past it ends the current backoff.
        harness.clock.advance(Duration::from_secs(9));
    }

    assert_eq!(harness.outbox_count(), 5, "events must stay queued");
    assert!(double.state().stored.is_empty());
    let secret_leaked = captured.lines_with("a-wrong-token-0123456789");
    assert_eq!(secret_leaked, 0, "the token reached the log");
    harness.shutdown().await;
}
