//! SQLite "database is locked" under contention: ingest at 200 rows/s while a reader holds a
//! long read transaction and another process holds the write lock for 10 s. Reproduces
//! thingsboard/thingsboard-gateway#1446, where a second connection's uncommitted delete made
//! writes fail and the failed rows were lost.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caretaker::metrics::Metrics;
use caretaker::reading::{Quality, Reading, Source, Value};
use caretaker::store::{self, Batch, StoreOptions};
use caretaker::time::{SystemClock, TimeKeeper, TimePolicy};
use rusqlite::Connection;

fn reading(index: i64, now_ms: i64) -> Reading {
    Reading {
        sensor_id: format!("poller.p{}", index % 10),
        asset: "ahu-1".into(),
        metric: "temperature".into(),
        unit: "degC".into(),
        value: Some(Value::Number(index as f64)),
        quality: Quality::Good,
        source: Source::Modbus,
        source_ts_ms: now_ms + index,
        receive_ts_ms: now_ms,
        detail: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_locks_delay_writes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let policy = TimePolicy {
        earliest_valid_ms: 1_600_000_000_000,
        max_future_ms: 300_000,
    };
    let keeper = Arc::new(TimeKeeper::new(Arc::new(SystemClock::new()), policy));
    let metrics = Arc::new(Metrics::new());
    let mut options = StoreOptions::new(&path);
    // Retention and the size cap run every second, as a third party competing for the lock.
    options.maintenance_interval = Duration::from_secs(1);
    let (handle, writer) = store::open(options, keeper, metrics.clone()).unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();

    // A diagnostics query that keeps a read transaction open for 5 s.
    let reader_path = path.clone();
    let reader = std::thread::spawn(move || {
        let conn = Connection::open(&reader_path).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let _: i64 = conn
            .query_row("SELECT COUNT(*) FROM readings", [], |row| row.get(0))
            .unwrap();
        std::thread::sleep(Duration::from_secs(5));
        conn.execute_batch("COMMIT").unwrap();
    });

    // Another process takes the write lock for 10 s, from the sqlite3 shell.
    let mut locker = Command::new("sqlite3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sqlite3 is not installed; run the README's test command to install it");
    {
        use std::io::Write;
        let stdin = locker.stdin.as_mut().unwrap();
        writeln!(stdin, ".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 1;").unwrap();
        stdin.flush().unwrap();
    }
    let lock_taken = Instant::now();

    // 200 readings a second in batches of 20, for 15 s.
    let mut produced = 0i64;
    let mut pending = Vec::new();
    let mut released = false;
    for tick in 0..150i64 {
        let readings = (0..20).map(|i| reading(tick * 20 + i, now_ms)).collect();
        let batch = Batch {
            readings,
            ..Batch::default()
        };
        pending.push(handle.submit(batch).await.unwrap());
        produced += 20;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !released && lock_taken.elapsed() >= Duration::from_secs(10) {
            let stdin = locker.stdin.as_mut().unwrap();
            use std::io::Write;
            writeln!(stdin, "COMMIT;\n.quit").unwrap();
            released = true;
        }
    }
    assert!(
        released,
        "the loop ended before the external lock was released"
    );
    let mut stored = 0;
    for commit in pending {
        stored += tokio::time::timeout(Duration::from_secs(60), commit)
            .await
            .expect("a commit did not finish after the locks were released")
            .expect("commit")
            .stored;
    }
    locker.wait().unwrap();
    reader.join().unwrap();
    drop(handle);
    writer.join();

    assert_eq!(stored as i64, produced);
    let conn = Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM readings", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, produced);
    let text = metrics.render();
    assert!(
        !text.contains("caretaker_store_commit_errors_total 0\n"),
        "the external lock never made a commit wait past the busy timeout: {text}"
    );
}
