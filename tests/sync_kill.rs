//! `kill -9` of a running `caretaker run` after a real `caretaker central` stored a batch and
//! before the acknowledgement reached the gateway (a proxy delays it): after a restart
//! the batch is sent again, and the office ends with every event exactly once.

#[path = "support/central.rs"]
mod central;
mod support;
#[path = "support/sync_double.rs"]
mod sync_double;
#[path = "support/sync_harness.rs"]
mod sync_harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use caretaker::protocol::EventKind;
use support::{free_port, Gateway};
use sync_double::{Double, Fault};
use uuid::Uuid;

const BUILDING: &str = "building-kill";
const EVENTS: usize = 20;

fn write_config(dir: &Path, office_url: &str, token: &str) -> PathBuf {
    let config = format!(
        r#"
[gateway]
id = "kill-test"

[store]
path = "store.db"

[time]
earliest_valid = "2020-01-01T00:00:00Z"

[http]
listen = "127.0.0.1:{http}"

[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "kill-test-gateway"
reconnect_min_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscription]]
filter = "sensors/#"
qos = 1
format = "json"
value_path = "v"
timestamp_path = "ts"

[sync]
url = "{office_url}"
token = "{token}"
poll_interval_secs = 1
backoff_initial_ms = 200
backoff_max_secs = 1
request_timeout_secs = 60
telemetry_interval_secs = 0
"#,
        http = free_port(),
        broker = free_port(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn outbox_ids(db: &Path) -> Vec<Uuid> {
    let conn = caretaker::store::connect(db, false).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT event_id FROM outbox ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids.iter().map(|id| Uuid::parse_str(id).unwrap()).collect()
}

/// Reads the event ids in the office's database, which stores each id at most once.
fn office_event_ids(db: &Path) -> Vec<Uuid> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let Ok(mut statement) = conn.prepare("SELECT event_id FROM events") else {
        return Vec::new();
    };
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|id| Uuid::parse_str(&id.unwrap()).unwrap())
        .collect()
}

async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_between_send_and_ack_redelivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let office = central::Central::start_sqlite(&[]);
    let token = office.add_token("kill-test", BUILDING);
    let office_db = office.folder().join("central.db");
    let double = Double::start(0, "unused-by-a-proxy").await;
    double.state().upstream = Some(office.url.clone());
    double.set_fault(Fault::HoldAfterStore);
    let config = write_config(dir.path(), &double.url(), &token);
    let db = dir.path().join("store.db");

    // Events queued before the gateway starts, as if produced before a power cut.
    {
        let mut conn = caretaker::store::connect(&db, true).unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..EVENTS {
            let ticket = format!("kill-test-{:06}", i % 4 + 1);
            let payload = sync_harness::ticket_payload(&ticket, BUILDING, i as i64 / 4 + 1);
            caretaker::store::outbox::enqueue(
                &tx,
                EventKind::Ticket,
                Some(&ticket),
                1_000,
                &payload,
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let produced = outbox_ids(&db);
    assert_eq!(produced.len(), EVENTS);

    let log = dir.path().join("gateway.log");
    let gateway = Gateway::start(&config, &log);
    let stored_all = wait_for(Duration::from_secs(60), || {
        office_event_ids(&office_db).len() == EVENTS
    })
    .await;
    assert!(
        stored_all,
        "the office stored {} events; gateway log:\n{}",
        office_event_ids(&office_db).len(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The office has stored the batch and the proxy delays the response, so the gateway has
    // no ack yet.
    gateway.kill_hard();
    double.release();
    assert_eq!(
        outbox_ids(&db),
        produced,
        "events left the outbox without an ack"
    );

    let gateway = Gateway::start(&config, &log);
    let drained = wait_for(Duration::from_secs(60), || outbox_ids(&db).is_empty()).await;
    assert!(
        drained,
        "outbox not drained after restart; gateway log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = gateway.terminate();

    let mut stored = office_event_ids(&office_db);
    stored.sort();
    let mut expected = produced.clone();
    expected.sort();
    assert_eq!(stored, expected, "each event stored once");
    let state = double.state();
    for id in &produced {
        let copies = state
            .deliveries
            .iter()
            .filter(|e| e.event_id == *id)
            .count();
        assert_eq!(
            copies, 2,
            "event {id} delivered {copies} times, expected a redelivery"
        );
    }
}
