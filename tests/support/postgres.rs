//! A fresh PostgreSQL database for a test.
//!
//! With `CARETAKER_TEST_PG_URL` set (a URL of a role that may create databases, such as
//! `postgres://postgres@127.0.0.1:5432/postgres`), each [`PgDatabase`] is a new database on
//! that server, dropped at the end. Without it, each one starts its own cluster with `initdb`
//! and `pg_ctl` in a temporary folder on a free loopback port, as the `postgres` user when the
//! tests run as root (PostgreSQL refuses to run as root), and stops it at the end.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A database that exists while this value lives.
pub struct PgDatabase {
    /// URL of the database, for `caretaker central --db`.
    pub url: String,
    admin_url: String,
    name: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    folder: tempfile::TempDir,
    data: PathBuf,
    as_postgres_user: bool,
    bin: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral loopback port")
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Finds the folder of `initdb` and `pg_ctl`: on PATH, or Debian's versioned folder.
fn postgres_bin() -> PathBuf {
    if let Ok(output) = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
    {
        let found = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if output.status.success() && !found.is_empty() {
            let path = std::fs::canonicalize(&found).unwrap_or_else(|_| PathBuf::from(&found));
            return path.parent().unwrap().to_path_buf();
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|bin| bin.join("pg_ctl").exists())
        .expect(
            "PostgreSQL is not installed (no pg_ctl on PATH or in /usr/lib/postgresql); run \
             scripts/install-test-deps.sh or set CARETAKER_TEST_PG_URL",
        )
}

fn check(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn start() -> (Cluster, u16) {
        let bin = postgres_bin();
        let folder = tempfile::Builder::new()
            .prefix("caretaker-pg-")
            .tempdir()
            .expect("create a folder for the PostgreSQL cluster");
        let as_postgres_user = running_as_root();
        let data = folder.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_postgres_user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            check(
                Command::new("chown")
                    .arg("postgres:")
                    .arg(&data)
                    .output()
                    .unwrap(),
                "chown of the cluster folder",
            );
        }
        let cluster = Cluster {
            folder,
            data,
            as_postgres_user,
            bin,
        };
        check(
            cluster
                .command("initdb")
                .arg("-D")
                .arg(&cluster.data)
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .output()
                .expect("run initdb"),
            "initdb",
        );
        // A port can be taken between the probe and the start, so a failed start retries.
        for attempt in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                cluster.data.display()
            );
            let output = cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(&cluster.data)
                .args(["-o", &options, "-l"])
                .arg(cluster.data.join("server.log"))
                .args(["-w", "-t", "60", "start"])
                .output()
                .expect("run pg_ctl start");
            if output.status.success() {
                return (cluster, port);
            }
            if attempt == 4 {
                let log =
                    std::fs::read_to_string(cluster.data.join("server.log")).unwrap_or_default();
                panic!(
                    "pg_ctl start failed: {}\n{log}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        unreachable!()
    }

    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    fn path(&self) -> &Path {
        self.folder.path()
    }
}

fn psql(admin_url: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(admin_url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("run psql (Debian package postgresql-client)")
}

fn database_url(admin_url: &str, name: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("CARETAKER_TEST_PG_URL has the form postgres://USER@HOST:PORT/DB");
    format!("{base}/{name}")
}

impl PgDatabase {
    /// Creates a new, empty database.
    pub fn fresh() -> PgDatabase {
        let name = format!("caretaker_test_{:016x}", fastrand::u64(..));
        let (admin_url, cluster) = match std::env::var("CARETAKER_TEST_PG_URL") {
            Ok(url) if !url.trim().is_empty() => (url.trim().to_string(), None),
            _ => {
                let (cluster, port) = Cluster::start();
                (
                    format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    Some(cluster),
                )
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = psql(&admin_url, &format!("CREATE DATABASE {name}"));
            if output.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "CREATE DATABASE on {admin_url} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        PgDatabase {
            url: database_url(&admin_url, &name),
            admin_url,
            name,
            cluster,
        }
    }

    /// Runs one SQL statement on this database and returns psql's unaligned output.
    pub fn query(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .arg(&self.url)
            .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .output()
            .expect("run psql");
        let output = check(output, sql);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The folder of the test's own cluster, if it started one.
    pub fn cluster_folder(&self) -> Option<&Path> {
        self.cluster.as_ref().map(Cluster::path)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        match &self.cluster {
            Some(cluster) => cluster.stop(),
            None => {
                let _ = psql(
                    &self.admin_url,
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                );
            }
        }
    }
}
