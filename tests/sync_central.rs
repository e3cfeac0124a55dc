//! The sync task against a real `caretaker central`. Behind the fault-making proxy, the office
//! is unreachable and comes back, or returns random 500s and timeouts. Over HTTPS, the gateway
//! trusts the right or a wrong CA. The local `/healthz` reports sync while the office is
//! stopped. The office's own database must end with each event exactly once.

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
use caretaker::sync::SyncHealth;
use central::{Central, TlsFiles};
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

/// Returns the event ids stored in the office's SQLite database `db`.
fn office_event_ids(db: &Path) -> HashSet<Uuid> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = conn.prepare("SELECT event_id FROM events").unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|id| Uuid::parse_str(&id.unwrap()).unwrap())
        .collect()
}

/// Enqueues transitions 1 to `count` of one ticket and returns their event ids.
async fn enqueue_ticket(harness: &Harness, ticket: &str, count: i64) -> HashSet<Uuid> {
    let mut ids = HashSet::new();
    for seq in 1..=count {
        let payload = ticket_payload(ticket, BUILDING, seq);
        ids.insert(
            harness
                .enqueue(EventKind::Ticket, Some(ticket), payload)
                .await,
        );
    }
    ids
}

/// Fetches the local API's `/healthz` and returns its JSON body.
async fn healthz(port: u16) -> serde_json::Value {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("GET /healthz");
    assert_eq!(response.status(), 200);
    response.json().await.expect("/healthz returns JSON")
}

/// Waits until sync has failed at least `rounds` rounds in a row.
async fn wait_for_failures(health: &SyncHealth, rounds: u32) {
    let reached = wait_for(Duration::from_secs(60), || {
        health.report().consecutive_failures >= rounds
    })
    .await;
    assert!(
        reached,
        "sync did not fail {rounds} rounds in a row: {:?}",
        health.report()
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_degrades_after_office_stops() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let office = Central::start_sqlite(&[]);
    let office_url = office.url.clone();
    let token = office.add_token(GATEWAY, BUILDING);
    let mut harness = Harness::new();
    let mut config = harness.config(&office_url);
    config.token = Secret::new(token.clone());
    config.unreachable_warn = Duration::from_secs(120);
    config.outbox_warn_events = 5;
    harness.start_sync(config, None);
    let port = harness.serve_api().await;
    let health = harness.health.clone().unwrap();

    let ticket = format!("{GATEWAY}-000001");
    let sent = enqueue_ticket(&harness, &ticket, 3).await;
    harness.run_clock(Duration::from_millis(100));
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained; office log:\n{}",
        office.read_log()
    );
    harness.stop_clock();
    assert_eq!(office_event_ids(&office.folder().join("central.db")), sent);

    let body = healthz(port).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["sync"]["status"], "ok", "{body}");
    assert_eq!(body["sync"]["url"], office_url.as_str());
    assert_eq!(body["sync"]["outbox_events"], 0);
    assert_eq!(body["sync"]["outbox_bytes"], 0);
    assert!(body["sync"]["oldest_event_age_secs"].is_null(), "{body}");
    assert!(body["sync"]["last_push"].is_string(), "{body}");
    assert_eq!(body["sync"]["consecutive_failures"], 0);
    assert_eq!(body["sync"]["rejected_events"], 0);

    let (status, _log) = office.stop();
    assert!(status.success(), "the office exited with {status:?}");
    let waiting = enqueue_ticket(&harness, &format!("{GATEWAY}-000002"), 4).await;
    assert_eq!(waiting.len(), 4);
    harness.clock.advance(Duration::from_secs(2));
    wait_for_failures(&health, 1).await;

    // One failure, 2 s after the last success: below the 120 s warning level.
    let body = healthz(port).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["sync"]["consecutive_failures"], 1);
    assert_eq!(body["sync"]["outbox_events"], 4);
    assert!(body["sync"]["outbox_bytes"].as_i64().unwrap() > 0, "{body}");
    let last_error = body["sync"]["last_error"].as_str().unwrap();
    assert!(last_error.contains(&office_url), "{last_error}");

    harness.clock.advance(Duration::from_secs(121));
    wait_for_failures(&health, 2).await;
    let body = healthz(port).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["sync"]["status"], "degraded", "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    let problem = problems[0].as_str().unwrap();
    assert!(problem.contains("no successful request"), "{problem}");
    assert!(problem.contains(&office_url), "{problem}");
    assert!(
        body["sync"]["unreachable_secs"].as_u64().unwrap() >= 123,
        "{body}"
    );
    assert!(
        body["sync"]["oldest_event_age_secs"].as_i64().unwrap() >= 123,
        "{body}"
    );

    enqueue_ticket(&harness, &format!("{GATEWAY}-000003"), 1).await;
    let body = healthz(port).await;
    let problems = body["sync"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{body}");
    let outbox_problem = problems[1].as_str().unwrap();
    assert!(
        outbox_problem.contains("outbox holds 5 events"),
        "{outbox_problem}"
    );
    assert!(
        !body.to_string().contains(&token),
        "the token reached /healthz"
    );
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_office_with_configured_ca_stores_events() {
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::create(certs.path());
    let office = Central::start_sqlite(&tls.central_args());
    assert!(office.url.starts_with("https://"), "{}", office.url);
    let mut harness = Harness::new();
    let mut config = harness.config(&office.url);
    config.token = Secret::new(office.add_token(GATEWAY, BUILDING));
    config.ca_file = Some(tls.ca.clone());

    let sent = enqueue_ticket(&harness, &format!("{GATEWAY}-000001"), 5).await;
    harness.start_sync(config, None);
    harness.run_clock(Duration::from_millis(100));
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained over HTTPS; last error {:?}; office log:\n{}",
        harness.health.as_ref().unwrap().report().last_error,
        office.read_log()
    );
    assert_eq!(office_event_ids(&office.folder().join("central.db")), sent);
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_wrong_ca_keeps_events_queued() {
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::create(certs.path());
    let office = Central::start_sqlite(&tls.central_args());
    let token = office.add_token(GATEWAY, BUILDING);
    let db = office.folder().join("central.db");
    let mut harness = Harness::new();
    let sent = enqueue_ticket(&harness, &format!("{GATEWAY}-000001"), 3).await;

    let mut config = harness.config(&office.url);
    config.token = Secret::new(token.clone());
    config.ca_file = Some(tls.other_ca.clone());
    harness.start_sync(config, None);
    let health = harness.health.clone().unwrap();
    harness.run_clock(Duration::from_millis(100));
    wait_for_failures(&health, 2).await;
    harness.stop_clock();
    let error = health.report().last_error.unwrap();
    assert!(error.contains(&office.url), "{error}");
    assert!(error.contains("certificate is not trusted"), "{error}");
    assert!(error.contains("set [sync] ca_file"), "{error}");
    let other_ca = tls.other_ca.display().to_string();
    assert!(error.contains(&other_ca), "{error}");
    assert_eq!(harness.outbox_count(), 3);
    assert!(office_event_ids(&db).is_empty());

    harness.stop_sync().await;
    let mut config = harness.config(&office.url);
    config.token = Secret::new(token);
    config.ca_file = Some(tls.ca.clone());
    harness.start_sync(config, None);
    harness.run_clock(Duration::from_millis(100));
    assert!(
        wait_for(DRAIN_TIMEOUT, || harness.outbox_count() == 0).await,
        "outbox not drained with the right CA; office log:\n{}",
        office.read_log()
    );
    assert_eq!(office_event_ids(&db), sent);
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_healthz_shows_sync_section() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let office = Central::start_sqlite(&[]);
    let token = office.add_token("gw-health", BUILDING);
    let dir = tempfile::tempdir().unwrap();
    let http_port = support::free_port();
    // Nothing listens there: the gateway needs a source of readings, not a broker.
    let broker_port = support::free_port();
    let config = format!(
        "[gateway]\nid = \"gw-health\"\n\n[store]\npath = \"store.db\"\n\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {broker_port}\nclient_id = \"gw-health\"\n\n\
         [[mqtt.subscription]]\nfilter = \"sensors/#\"\nformat = \"json\"\n\
         value_path = \"v\"\ntimestamp_path = \"ts\"\n\n\
         [sync]\nurl = \"{}\"\ntoken = \"{token}\"\noutbox_warn_events = 7\n\
         unreachable_warn_secs = 3600\ntelemetry_interval_secs = 0\n",
        office.url
    );
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("gateway.log");
    let gateway = support::Gateway::start(&config_path, &log);

    let url = format!("http://127.0.0.1:{http_port}/healthz");
    let mut body = serde_json::Value::Null;
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(&url).await {
            body = response.json().await.expect("/healthz returns JSON");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        body["sync"]["url"],
        office.url.as_str(),
        "{body}; log:\n{}",
        support::read_log(&log)
    );
    assert_eq!(body["sync"]["outbox_warn_events"], 7, "{body}");
    assert_eq!(body["sync"]["unreachable_warn_secs"], 3600, "{body}");
    assert_eq!(body["sync"]["outbox_events"], 0, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    let status = gateway.terminate();
    assert!(status.success(), "gateway exited with {status}");
}
