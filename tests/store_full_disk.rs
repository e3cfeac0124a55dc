//! The store on a filesystem that fills up: commits are retried after evicting the oldest
//! raw readings, nothing acknowledged is lost, and the database stays intact.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use caretaker::metrics::Metrics;
use caretaker::reading::{Quality, Reading, Source, Value};
use caretaker::store::{self, Batch, StoreOptions};
use caretaker::time::{ManualClock, TimeKeeper, TimePolicy};
use rusqlite::Connection;

const NOW_MS: i64 = 1_750_000_000_000;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.success() {
            return Err(format!("mount exited with {status}"));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn reading(sensor: usize, ts_ms: i64) -> Reading {
    Reading {
        sensor_id: format!("meter.s{sensor}"),
        asset: "meter-1".into(),
        metric: "power".into(),
        unit: "kW".into(),
        value: Some(Value::Number(ts_ms as f64 / 1000.0)),
        quality: Quality::Good,
        source: Source::Modbus,
        source_ts_ms: ts_ms,
        receive_ts_ms: ts_ms,
        detail: Some("padding so that the disk fills after a few thousand rows".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_evicts_and_keeps_committing() {
    // SAFETY of the check: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("full_disk_evicts_and_keeps_committing needs root to mount a tmpfs; not run");
        return;
    }
    let tmpfs = Tmpfs::mount("12m").expect("mount a 12 MiB tmpfs");
    let path = tmpfs.dir.path().join("store.db");
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let policy = TimePolicy {
        earliest_valid_ms: 1_600_000_000_000,
        max_future_ms: 300_000,
    };
    let keeper = Arc::new(TimeKeeper::new(clock, policy));
    let metrics = Arc::new(Metrics::new());
    let mut options = StoreOptions::new(&path);
    // A cap far above the filesystem, so that the disk fills before the cap applies.
    options.max_size_bytes = 1 << 30;
    options.maintenance_interval = Duration::from_secs(3600);
    let (handle, writer) = store::open(options, keeper, metrics.clone()).unwrap();

    let mut written = 0i64;
    for batch_index in 0..200i64 {
        let readings = (0..500)
            .map(|i| reading(i % 20, NOW_MS + batch_index * 1_000 + i as i64))
            .collect();
        let batch = Batch {
            readings,
            ..Batch::default()
        };
        let committed = tokio::time::timeout(Duration::from_secs(120), handle.write(batch))
            .await
            .expect("a commit on a full disk must not hang")
            .expect("commit");
        assert_eq!(committed.stored, 500);
        written += 500;
    }
    drop(handle);
    writer.join();

    let conn = Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let kept: i64 = conn
        .query_row("SELECT COUNT(*) FROM readings", [], |row| row.get(0))
        .unwrap();
    let evicted: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(rows), 0) FROM evictions WHERE kind = 'raw'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(evicted > 0, "the disk never filled; make the tmpfs smaller");
    assert_eq!(kept + evicted, written);
    let newest: i64 = conn
        .query_row("SELECT MAX(source_ts_ms) FROM readings", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(newest, NOW_MS + 199 * 1_000 + 499);
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
