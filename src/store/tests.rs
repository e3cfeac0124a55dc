use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::reading::{Quality, Source, Value};
use crate::time::{ManualClock, TimeKeeper, TimePolicy};

const NOW_MS: i64 = 1_750_000_000_000;

fn keeper(clock: Arc<ManualClock>) -> Arc<TimeKeeper> {
    let policy = TimePolicy {
        earliest_valid_ms: 1_600_000_000_000,
        max_future_ms: 300_000,
    };
    Arc::new(TimeKeeper::new(clock, policy))
}

fn reading(sensor: &str, ts_ms: i64, value: f64) -> Reading {
    Reading {
        sensor_id: sensor.to_string(),
        asset: "pump-1".to_string(),
        metric: "pressure".to_string(),
        unit: "bar".to_string(),
        value: Some(Value::Number(value)),
        quality: Quality::Good,
        source: Source::Mqtt,
        source_ts_ms: ts_ms,
        receive_ts_ms: ts_ms,
        detail: None,
    }
}

fn batch(readings: Vec<Reading>) -> Batch {
    Batch {
        readings,
        ..Batch::default()
    }
}

fn count(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Fixture {
            _dir: dir,
            path,
            clock: Arc::new(ManualClock::new(NOW_MS)),
            metrics: Arc::new(Metrics::new()),
        }
    }

    fn options(&self) -> StoreOptions {
        let mut options = StoreOptions::new(&self.path);
        options.maintenance_interval = Duration::from_millis(50);
        options
    }

    fn open(&self, options: StoreOptions) -> (StoreHandle, StoreWriter) {
        open(options, keeper(self.clock.clone()), self.metrics.clone()).unwrap()
    }
}

#[tokio::test]
async fn duplicates_stored_once_and_counted() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    let first = store
        .write(batch(vec![
            reading("a", NOW_MS, 1.0),
            reading("a", NOW_MS + 1, 2.0),
        ]))
        .await
        .unwrap();
    assert_eq!(
        first,
        Committed {
            stored: 2,
            duplicates: 0
        }
    );
    let again = store
        .write(batch(vec![reading("a", NOW_MS, 1.0)]))
        .await
        .unwrap();
    assert_eq!(
        again,
        Committed {
            stored: 0,
            duplicates: 1
        }
    );
    drop(store);
    writer.join();
    assert_eq!(count(&fixture.path, "SELECT COUNT(*) FROM readings"), 2);
    let text = fixture.metrics.render();
    assert!(
        text.contains("caretaker_readings_stored_total{source=\"mqtt\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("caretaker_readings_duplicate_total{source=\"mqtt\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn non_finite_value_never_stored_as_number() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    store
        .write(batch(vec![
            reading("a", NOW_MS, f64::NAN),
            reading("b", NOW_MS, f64::INFINITY),
        ]))
        .await
        .unwrap();
    drop(store);
    writer.join();
    let numbers = count(
        &fixture.path,
        "SELECT COUNT(*) FROM readings WHERE value IS NOT NULL",
    );
    assert_eq!(numbers, 0);
    let bad = count(
        &fixture.path,
        "SELECT COUNT(*) FROM readings_view WHERE quality = 'bad'",
    );
    assert_eq!(bad, 2);
}

#[tokio::test]
async fn rollups_summarise_good_numbers() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    let minute = NOW_MS - NOW_MS % 60_000;
    let mut readings: Vec<Reading> = (0..6)
        .map(|i| reading("a", minute + i * 5_000, i as f64))
        .collect();
    let mut stale = reading("a", minute + 40_000, 100.0);
    stale.quality = Quality::Stale;
    readings.push(stale);
    store.write(batch(readings)).await.unwrap();
    drop(store);
    writer.join();
    let conn = Connection::open(&fixture.path).unwrap();
    let (min, max, sum, n): (f64, f64, f64, i64) = conn
        .query_row(
            "SELECT min, max, sum, count FROM rollup_minute WHERE bucket_ms = ?1",
            [minute],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!((min, max, sum, n), (0.0, 5.0, 15.0, 6));
    let hours = count(&fixture.path, "SELECT SUM(count) FROM rollup_hour");
    assert_eq!(hours, 6);
}

#[tokio::test]
async fn retention_keeps_rollups_after_raw_rows_expire() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    let old = NOW_MS - 20 * 86_400_000;
    store
        .write(batch(vec![
            reading("a", old, 1.0),
            reading("a", NOW_MS, 2.0),
        ]))
        .await
        .unwrap();
    drop(store);
    writer.join();
    assert_eq!(count(&fixture.path, "SELECT COUNT(*) FROM readings"), 1);
    assert_eq!(
        count(&fixture.path, "SELECT COUNT(*) FROM rollup_minute"),
        2
    );
    let evicted = count(
        &fixture.path,
        "SELECT rows FROM evictions WHERE kind = 'raw'",
    );
    assert_eq!(evicted, 1);
}

#[tokio::test]
async fn size_cap_evicts_raw_readings_first() {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.max_size_bytes = 256 * 1024;
    let (store, writer) = fixture.open(options);
    for chunk in 0..20 {
        let readings = (0..1_000)
            .map(|i| {
                reading(
                    &format!("s{}", i % 50),
                    NOW_MS + chunk * 1_000 + i,
                    i as f64,
                )
            })
            .collect();
        store.write(batch(readings)).await.unwrap();
    }
    drop(store);
    writer.join();
    let remaining = count(&fixture.path, "SELECT COUNT(*) FROM readings");
    assert!(remaining < 20_000, "{remaining} readings left");
    let evicted = count(
        &fixture.path,
        "SELECT rows FROM evictions WHERE kind = 'raw'",
    );
    let minute = count(
        &fixture.path,
        "SELECT COALESCE(SUM(rows), 0) FROM evictions WHERE kind != 'raw'",
    );
    assert_eq!(
        evicted + remaining,
        20_000,
        "minute/hour evictions {minute}"
    );
    let summarised = count(&fixture.path, "SELECT SUM(count) FROM rollup_hour");
    assert_eq!(summarised, 20_000);
}

#[tokio::test]
async fn uncertain_rows_rebased_when_clock_steps() {
    let fixture = Fixture::new();
    fixture.clock.set_wall(36_000);
    let keeper = keeper(fixture.clock.clone());
    let (store, writer) = open(fixture.options(), keeper.clone(), fixture.metrics.clone()).unwrap();
    let received = keeper.receive_time();
    assert!(received.uncertain);
    let mut early = reading("a", received.ts_ms, 264.342);
    early.quality = Quality::UncertainTime;
    store.write(batch(vec![early])).await.unwrap();

    fixture.clock.advance(Duration::from_secs(90));
    let stepped = 1_748_932_336_000;
    fixture.clock.set_wall(stepped);
    let now = keeper.receive_time();
    assert!(!now.uncertain);
    store
        .write(batch(vec![reading("a", now.ts_ms, 264.343)]))
        .await
        .unwrap();
    drop(store);
    writer.join();
    let conn = Connection::open(&fixture.path).unwrap();
    let first: i64 = conn
        .query_row(
            "SELECT receive_ts_ms FROM readings ORDER BY id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(first, stepped - 90_000);
    let uncertain: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM readings WHERE uncertain_run IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(uncertain, 0);
}

#[tokio::test]
async fn reopen_keeps_rows_and_sensor_ids() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    store
        .write(batch(vec![reading("a", NOW_MS, 1.0)]))
        .await
        .unwrap();
    drop(store);
    writer.join();
    let (store, writer) = fixture.open(fixture.options());
    let again = store
        .write(batch(vec![
            reading("a", NOW_MS, 1.0),
            reading("a", NOW_MS + 5, 3.0),
        ]))
        .await
        .unwrap();
    assert_eq!(
        again,
        Committed {
            stored: 1,
            duplicates: 1
        }
    );
    drop(store);
    writer.join();
    assert_eq!(count(&fixture.path, "SELECT COUNT(*) FROM sensors"), 1);
}

#[tokio::test]
async fn second_writer_on_same_file_rejected() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    let second = open(
        fixture.options(),
        keeper(fixture.clock.clone()),
        fixture.metrics.clone(),
    );
    let err = second
        .err()
        .expect("a second writer must not open the database");
    assert!(
        err.to_string().contains("another caretaker process"),
        "{err}"
    );
    drop(store);
    writer.join();
    let (store, writer) = fixture.open(fixture.options());
    drop(store);
    writer.join();
}

#[tokio::test]
async fn transact_commits_or_rolls_back() {
    let fixture = Fixture::new();
    let (store, writer) = fixture.open(fixture.options());
    let inserted = store
        .transact(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('transact-test', 7)",
                [],
            )?;
            tx.query_row(
                "SELECT COUNT(*) FROM meta WHERE key = 'transact-test'",
                [],
                |row| row.get::<_, i64>(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let failed = store
        .transact(|tx| {
            tx.execute("DELETE FROM meta WHERE key = 'transact-test'", [])?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])
        })
        .await;
    assert!(
        matches!(&failed, Err(StoreError::Rejected(message)) if message.contains("no_such_table")),
        "{failed:?}"
    );
    // Readings batches still commit around a rejected transaction.
    store
        .write(batch(vec![reading("a", NOW_MS, 1.0)]))
        .await
        .unwrap();
    drop(store);
    writer.join();
    assert_eq!(
        count(
            &fixture.path,
            "SELECT COUNT(*) FROM meta WHERE key = 'transact-test'"
        ),
        1
    );
    assert_eq!(count(&fixture.path, "SELECT COUNT(*) FROM readings"), 1);
}
