//! Counts of what a consumer has stored, polled at a fixed interval on a thread of their own.
//!
//! The gateway is counted through its `/metrics` endpoint, `mosquitto_sub` by the lines of the
//! file it writes. Each poll that sees a new count records the time its response arrived, so a
//! count is seen at most one poll interval plus one poll's duration after it was reached.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// Something that returns how many readings a consumer has stored so far.
pub trait StoredCount: Send {
    fn read(&mut self) -> anyhow::Result<u64>;
}

/// An HTTP/1.1 client for the gateway's `/metrics`, keeping its connection open between polls.
pub struct MetricsClient {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl MetricsClient {
    pub fn new(addr: SocketAddr) -> MetricsClient {
        MetricsClient { addr, stream: None }
    }

    /// Fetches `/metrics` and returns its body. After an error the next call reconnects.
    pub fn fetch(&mut self) -> anyhow::Result<String> {
        let result = self.fetch_on_connection();
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn fetch_on_connection(&mut self) -> anyhow::Result<String> {
        let reader = match &mut self.stream {
            Some(reader) => reader,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.set_nodelay(true)?;
                self.stream.insert(BufReader::new(stream))
            }
        };
        reader
            .get_mut()
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;

        let status = read_line(reader)?;
        if !status.starts_with("HTTP/1.1 200") {
            bail!("GET /metrics returned {:?}", status.trim_end());
        }
        let mut length = None;
        let mut close = false;
        loop {
            let line = read_line(reader)?;
            if line == "\r\n" {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("invalid HTTP header line {line:?}");
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("invalid Content-Length")?);
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
        let length = length.ok_or_else(|| anyhow!("/metrics response has no Content-Length"))?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if close {
            self.stream = None;
        }
        String::from_utf8(body).context("/metrics body is not UTF-8")
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("connection closed by the gateway");
    }
    Ok(line)
}

/// Returns the value of one series from Prometheus or OpenMetrics text, where `series` is the
/// metric name with its labels as printed, such as
/// `caretaker_readings_stored_total{source="mqtt"}`.
pub fn series_value(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(value as u64)
    })
}

pub const STORED_SERIES: &str = "caretaker_readings_stored_total{source=\"mqtt\"}";

/// The gateway's count of MQTT readings stored.
pub struct GatewayStored(pub MetricsClient);

impl StoredCount for GatewayStored {
    fn read(&mut self) -> anyhow::Result<u64> {
        let text = self.0.fetch()?;
        series_value(&text, STORED_SERIES)
            .ok_or_else(|| anyhow!("/metrics has no {STORED_SERIES} line"))
    }
}

/// Lines in a file that another process appends to, counted incrementally.
pub struct FileLines {
    file: File,
    lines: u64,
    buffer: Vec<u8>,
}

impl FileLines {
    pub fn open(path: &Path) -> anyhow::Result<FileLines> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(FileLines {
            file,
            lines: 0,
            buffer: vec![0; 1 << 16],
        })
    }
}

impl StoredCount for FileLines {
    fn read(&mut self) -> anyhow::Result<u64> {
        loop {
            let read = self.file.read(&mut self.buffer)?;
            if read == 0 {
                return Ok(self.lines);
            }
            let newlines = self.buffer[..read].iter().filter(|&&b| b == b'\n').count();
            self.lines += newlines as u64;
        }
    }
}

/// Every change of the count that the sampler saw, and how long its polls took.
pub struct SampleLog {
    /// Time each new count was first seen (when the poll's response arrived), in order.
    pub changes: Vec<(Instant, u64)>,
    pub polls: u64,
    /// Time spent inside successful polls.
    pub poll_time: Duration,
}

impl SampleLog {
    /// Returns the time the count was first seen at `count` or above.
    pub fn first_at_least(&self, count: u64) -> Option<Instant> {
        let index = self.changes.partition_point(|&(_, seen)| seen < count);
        self.changes.get(index).map(|&(time, _)| time)
    }
}

struct Shared {
    stop: AtomicBool,
    /// Latest count, or `u64::MAX` before the first successful poll.
    latest: AtomicU64,
    /// Time of the latest change, in microseconds since the sampler started.
    changed_at_us: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Polls a [`StoredCount`] every `interval` on its own thread.
pub struct Sampler {
    shared: Arc<Shared>,
    started: Instant,
    thread: JoinHandle<SampleLog>,
}

impl Sampler {
    pub fn start(mut counter: Box<dyn StoredCount>, interval: Duration) -> Sampler {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            latest: AtomicU64::new(u64::MAX),
            changed_at_us: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let started = Instant::now();
        let thread_shared = shared.clone();
        let thread = std::thread::spawn(move || {
            let shared = thread_shared;
            let mut log = SampleLog {
                changes: Vec::new(),
                polls: 0,
                poll_time: Duration::ZERO,
            };
            let mut next = Instant::now();
            while !shared.stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                match counter.read() {
                    Ok(count) => {
                        let seen = Instant::now();
                        log.polls += 1;
                        log.poll_time += seen - sent;
                        if log.changes.last().map(|&(_, last)| last) != Some(count) {
                            log.changes.push((seen, count));
                            let since_start = (seen - started).as_micros() as u64;
                            shared.changed_at_us.store(since_start, Ordering::Relaxed);
                        }
                        shared.latest.store(count, Ordering::Release);
                    }
                    Err(err) => {
                        *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(format!("{err:#}"));
                    }
                }
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    // A slow poll: start the next one now instead of polling in a burst.
                    next = now;
                }
            }
            log
        });
        Sampler {
            shared,
            started,
            thread,
        }
    }

    /// Returns the latest count, or `None` before the first successful poll.
    pub fn latest(&self) -> Option<u64> {
        match self.shared.latest.load(Ordering::Acquire) {
            u64::MAX => None,
            count => Some(count),
        }
    }

    /// Returns when the count last changed.
    pub fn last_change(&self) -> Instant {
        let micros = self.shared.changed_at_us.load(Ordering::Relaxed);
        self.started + Duration::from_micros(micros)
    }

    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stop(self) -> SampleLog {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler thread panicked")
    }
}
