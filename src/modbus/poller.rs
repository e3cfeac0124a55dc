//! Per-device poll state: which blocks to read in a cycle, how replies become readings, and
//! whether the device is online.
//!
//! Outcomes per block:
//! - a good reply gives each point a reading with good quality (uncertain-time while the wall
//!   clock is not trusted), or bad quality when its value is NaN or infinite;
//! - an exception gives the block's points bad quality with the exception's name, and the
//!   block is retried after 1, 2, 4 … cycles (at most `backoff_max / poll_interval` and at
//!   most 64 cycles). When a block of several points gets "illegal data address", it is split
//!   into one read per point from the next cycle on, so one missing register costs only its
//!   own points;
//! - a reply that does not fit the request (wrong length, garbled) is never decoded: points
//!   with a value read earlier in this run repeat it with stale quality, the others get bad
//!   quality; the block is retried like an exception;
//! - silence (timeout, refused connection, failed port) gives bad quality to the block and to
//!   the blocks not yet read in this cycle, which are not tried, so a dead unit costs at most
//!   one timeout per cycle.
//!
//! A device whose polls fail `offline_after` times in a row (silence only) is offline and is
//! polled after a growing wait: the poll interval, doubled after every further failure, up to
//! `backoff_max`. One answered poll brings it back online.

use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::metrics::{DeviceLabel, DeviceOutcomeLabel, Metrics};
use crate::modbus::codec::{decode_bit, decode_registers};
use crate::modbus::config::DeviceSetup;
use crate::modbus::link::{CallError, Operation, Reply};
use crate::modbus::map::Point;
use crate::modbus::plan::{plan_reads, plan_subset, ReadBlock};
use crate::reading::{Quality, Reading, Source, Value};
use crate::time::{format_ms, ReceiveTime};

/// Most cycles a failing block is skipped between two attempts, whatever the backoff allows.
const MAX_BLOCK_SKIP: u32 = 64;

#[derive(Debug)]
struct BlockState {
    block: ReadBlock,
    failures: u32,
    /// Cycles left before the next attempt.
    skip: u32,
    /// Kind of the current problem, for logging each change once.
    problem: Option<String>,
}

impl BlockState {
    fn new(block: ReadBlock) -> Self {
        BlockState {
            block,
            failures: 0,
            skip: 0,
            problem: None,
        }
    }
}

/// Progress of one poll of a device: the blocks due, the readings so far and the outcome.
#[derive(Debug, Default)]
pub struct Cycle {
    /// Blocks to read in this cycle, as indices into the device's plan.
    pub due: Vec<usize>,
    readings: Vec<Reading>,
    answered: bool,
    problems: bool,
    silence: Option<CallError>,
    splits: Vec<usize>,
}

impl Cycle {
    pub fn silence(&self) -> Option<&CallError> {
        self.silence.as_ref()
    }
}

/// The poll state of one device.
pub struct DeviceRunner {
    pub setup: Arc<DeviceSetup>,
    blocks: Vec<BlockState>,
    /// Last good value of each point in this run, with its receive time.
    last_good: Vec<Option<(Value, i64)>>,
    failures: u32,
    online: Option<bool>,
    pub next_due: Instant,
    metrics: Arc<Metrics>,
}

impl DeviceRunner {
    pub fn new(setup: Arc<DeviceSetup>, metrics: Arc<Metrics>, first_due: Instant) -> Self {
        let blocks = plan_reads(&setup.map.points)
            .into_iter()
            .map(BlockState::new)
            .collect();
        metrics
            .modbus_device_online
            .get_or_create(&DeviceLabel {
                device: setup.name.clone(),
            })
            .set(0);
        DeviceRunner {
            last_good: vec![None; setup.map.points.len()],
            setup,
            blocks,
            failures: 0,
            online: None,
            next_due: first_due,
            metrics,
        }
    }

    /// Returns the planned reads, for tests and diagnostics.
    pub fn blocks(&self) -> Vec<ReadBlock> {
        self.blocks
            .iter()
            .map(|state| state.block.clone())
            .collect()
    }

    pub fn is_online(&self) -> Option<bool> {
        self.online
    }

    /// Starts a poll: every block not waiting out a backoff is due.
    pub fn start_cycle(&mut self) -> Cycle {
        let mut cycle = Cycle::default();
        for (index, state) in self.blocks.iter_mut().enumerate() {
            if state.skip > 0 {
                state.skip -= 1;
            } else {
                cycle.due.push(index);
            }
        }
        cycle
    }

    pub fn operation(&self, block: usize) -> Operation {
        let block = &self.blocks[block].block;
        Operation::Read {
            table: block.table,
            start: block.start,
            count: block.count,
        }
    }

    fn reading(
        &self,
        point: &Point,
        value: Option<Value>,
        quality: Quality,
        received: &ReceiveTime,
        detail: Option<String>,
    ) -> Reading {
        let quality = if quality == Quality::Good && received.uncertain {
            Quality::UncertainTime
        } else {
            quality
        };
        Reading {
            sensor_id: format!("{}.{}", self.setup.name, point.name),
            asset: self.setup.asset.clone(),
            metric: point.metric.clone(),
            unit: point.unit.clone(),
            value,
            quality,
            source: Source::Modbus,
            source_ts_ms: received.ts_ms,
            receive_ts_ms: received.ts_ms,
            detail,
        }
    }

    /// Records the result of reading one block.
    pub fn record(
        &mut self,
        cycle: &mut Cycle,
        block: usize,
        result: Result<Reply, CallError>,
        received: ReceiveTime,
    ) {
        match result {
            Ok(reply) => {
                cycle.answered = true;
                self.decode_block(cycle, block, reply, &received);
                self.block_recovered(block);
            }
            Err(error) => {
                if error.is_silence() {
                    self.bad_block(cycle, block, &error.to_string(), &received);
                    cycle.silence = Some(error);
                    return;
                }
                cycle.answered = true;
                cycle.problems = true;
                match &error {
                    CallError::Rejected(_) => self.stale_block(cycle, block, &error, &received),
                    _ => self.bad_block(cycle, block, &error.to_string(), &received),
                }
                let splittable = self.blocks[block].block.points.len() > 1
                    && plan_subset(
                        &self.setup.map.points,
                        &self.blocks[block].block.points,
                        false,
                    )
                    .len()
                        > 1;
                if matches!(error, CallError::Exception { code: 2 }) && splittable {
                    cycle.splits.push(block);
                }
                self.block_failed(block, &error);
            }
        }
    }

    /// Gives bad quality to blocks that were due but not read because the device is silent.
    pub fn skip_rest(
        &mut self,
        cycle: &mut Cycle,
        blocks: &[usize],
        cause: &CallError,
        received: ReceiveTime,
    ) {
        let detail = format!("not read: an earlier request of this poll failed: {cause}");
        for &block in blocks {
            self.bad_block(cycle, block, &detail, &received);
        }
    }

    fn decode_block(
        &mut self,
        cycle: &mut Cycle,
        block: usize,
        reply: Reply,
        received: &ReceiveTime,
    ) {
        let state = &self.blocks[block];
        let start = usize::from(state.block.start);
        let indices = state.block.points.clone();
        for index in indices {
            let point = &self.setup.map.points[index];
            let offset = usize::from(point.address) - start;
            let count = usize::from(point.count());
            let decoded = match &reply {
                Reply::Words(words) => words
                    .get(offset..offset + count)
                    .ok_or_else(|| {
                        format!("reply has no register {} for this point", point.address)
                    })
                    .and_then(|slice| {
                        decode_registers(&point.encoding, slice).map_err(|error| error.to_string())
                    }),
                Reply::Bits(bits) => bits
                    .get(offset)
                    .map(|&bit| decode_bit(bit))
                    .ok_or_else(|| format!("reply has no bit {} for this point", point.address)),
                Reply::Written => Err("a write reply came back to a read".to_string()),
            };
            let reading = match decoded {
                Ok(value) => {
                    self.last_good[index] = Some((value.clone(), received.ts_ms));
                    self.reading(point, Some(value), Quality::Good, received, None)
                }
                Err(detail) => {
                    cycle.problems = true;
                    self.reading(point, None, Quality::Bad, received, Some(detail))
                }
            };
            cycle.readings.push(reading);
        }
    }

    fn bad_block(&self, cycle: &mut Cycle, block: usize, detail: &str, received: &ReceiveTime) {
        for &index in &self.blocks[block].block.points {
            let point = &self.setup.map.points[index];
            let reading = self.reading(
                point,
                None,
                Quality::Bad,
                received,
                Some(detail.to_string()),
            );
            cycle.readings.push(reading);
        }
    }

    /// Repeats the last good value of each point, marked stale, after a rejected reply.
    fn stale_block(
        &self,
        cycle: &mut Cycle,
        block: usize,
        error: &CallError,
        received: &ReceiveTime,
    ) {
        for &index in &self.blocks[block].block.points {
            let point = &self.setup.map.points[index];
            let reading = match &self.last_good[index] {
                Some((value, read_at)) => self.reading(
                    point,
                    Some(value.clone()),
                    Quality::Stale,
                    received,
                    Some(format!("{error}; value read at {}", format_ms(*read_at))),
                ),
                None => self.reading(point, None, Quality::Bad, received, Some(error.to_string())),
            };
            cycle.readings.push(reading);
        }
    }

    fn block_failed(&mut self, block: usize, error: &CallError) {
        let max_skip = self.max_block_skip();
        let device = self.setup.name.clone();
        let state = &mut self.blocks[block];
        state.failures = state.failures.saturating_add(1);
        let exponent = (state.failures - 1).min(16);
        state.skip = ((1u32 << exponent) - 1).min(max_skip);
        let kind = match error {
            CallError::Exception { code } => format!("exception {code}"),
            other => discriminant_name(other).to_string(),
        };
        if state.problem.as_deref() != Some(kind.as_str()) {
            tracing::warn!(
                device = %device,
                table = %state.block.table,
                start = state.block.start,
                count = state.block.count,
                error = %error,
                "modbus block read failed; its points get bad quality and it is retried with backoff"
            );
            state.problem = Some(kind);
        }
    }

    fn block_recovered(&mut self, block: usize) {
        let device = self.setup.name.clone();
        let state = &mut self.blocks[block];
        state.failures = 0;
        state.skip = 0;
        if state.problem.take().is_some() {
            tracing::info!(
                device = %device,
                table = %state.block.table,
                start = state.block.start,
                count = state.block.count,
                "modbus block read recovered"
            );
        }
    }

    fn max_block_skip(&self) -> u32 {
        let interval = self.setup.poll_interval.as_millis().max(1);
        let ratio = self.setup.backoff_max.as_millis() / interval;
        (ratio as u32).clamp(1, MAX_BLOCK_SKIP)
    }

    /// Ends a poll: updates health, metrics and the next due time, and returns the readings.
    pub fn finish(&mut self, mut cycle: Cycle, now: Instant) -> Vec<Reading> {
        for &block in cycle.splits.iter().rev() {
            let points = self.blocks[block].block.points.clone();
            let parts: Vec<BlockState> = plan_subset(&self.setup.map.points, &points, false)
                .into_iter()
                .map(BlockState::new)
                .collect();
            tracing::info!(
                device = %self.setup.name,
                reads = parts.len(),
                "modbus block split into one read per register range after an illegal data address"
            );
            self.blocks.splice(block..=block, parts);
        }
        let outcome = if let Some(error) = cycle.silence.take() {
            self.poll_failed(&error);
            Some("failed")
        } else if cycle.answered {
            self.poll_answered();
            Some(if cycle.problems { "partial" } else { "ok" })
        } else {
            None
        };
        if let Some(outcome) = outcome {
            self.metrics
                .modbus_polls
                .get_or_create(&DeviceOutcomeLabel {
                    device: self.setup.name.clone(),
                    outcome,
                })
                .inc();
        }
        self.schedule_next(now);
        cycle.readings
    }

    fn poll_failed(&mut self, error: &CallError) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.setup.offline_after && self.online != Some(false) {
            tracing::warn!(
                device = %self.setup.name,
                failures = self.failures,
                error = %error,
                "modbus device offline; polling it with backoff"
            );
            self.online = Some(false);
            self.set_online_gauge(0);
        } else if self.failures == 1 {
            tracing::debug!(device = %self.setup.name, error = %error, "modbus poll failed");
        }
    }

    fn poll_answered(&mut self) {
        self.failures = 0;
        match self.online {
            Some(true) => {}
            Some(false) => {
                tracing::info!(device = %self.setup.name, "modbus device back online");
            }
            None => {
                tracing::info!(device = %self.setup.name, "modbus device online");
            }
        }
        if self.online != Some(true) {
            self.online = Some(true);
            self.set_online_gauge(1);
        }
    }

    fn set_online_gauge(&self, value: i64) {
        self.metrics
            .modbus_device_online
            .get_or_create(&DeviceLabel {
                device: self.setup.name.clone(),
            })
            .set(value);
    }

    /// Returns the wait before the next poll of an offline device.
    pub fn backoff(&self) -> Duration {
        let exponent = self
            .failures
            .saturating_sub(self.setup.offline_after)
            .min(20);
        let wait = self.setup.poll_interval.saturating_mul(1u32 << exponent);
        wait.min(self.setup.backoff_max)
    }

    fn schedule_next(&mut self, now: Instant) {
        if self.online == Some(false) {
            self.next_due = now + self.backoff();
            return;
        }
        // Fixed rate while the device replies. After an overrun, poll again at once rather
        // than in a burst.
        let next = self.next_due + self.setup.poll_interval;
        self.next_due = next.max(now);
    }
}

fn discriminant_name(error: &CallError) -> &'static str {
    match error {
        CallError::Exception { .. } => "exception",
        CallError::Timeout(_) => "timeout",
        CallError::Connect(_) => "connect",
        CallError::Link(_) => "link",
        CallError::Rejected(_) => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::codec::{Encoding, ValueType, WordOrder};
    use crate::modbus::config::Transport;
    use crate::modbus::map::{DeviceInfo, DeviceMap, Table};

    fn point(name: &str, address: u16, value_type: ValueType) -> Point {
        Point {
            name: name.into(),
            metric: name.into(),
            unit: "V".into(),
            table: Table::HoldingRegister,
            address,
            encoding: Encoding::new(value_type, WordOrder::ABCD),
            min: None,
            max: None,
            alarm_high: None,
            alarm_low: None,
            writable: false,
        }
    }

    fn runner(points: Vec<Point>) -> DeviceRunner {
        let map = DeviceMap {
            path: "map.toml".into(),
            device: DeviceInfo {
                kind: "energy-meter".into(),
                manufacturer: "M".into(),
                model: "X".into(),
                asset_kind: "meter".into(),
                description: None,
            },
            points,
        };
        let setup = DeviceSetup {
            name: "meter".into(),
            asset: "meter-1".into(),
            unit_id: 1,
            map: Arc::new(map),
            transport: Transport::Tcp {
                address: "127.0.0.1:1".into(),
            },
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
            retries: 0,
            backoff_max: Duration::from_secs(8),
            offline_after: 3,
        };
        DeviceRunner::new(Arc::new(setup), Arc::new(Metrics::new()), Instant::now())
    }

    fn received(ts_ms: i64) -> ReceiveTime {
        ReceiveTime {
            ts_ms,
            monotonic_ms: ts_ms,
            uncertain: false,
        }
    }

    #[test]
    fn exception_block_bad_others_kept() {
        let mut runner = runner(vec![
            point("a", 1455, ValueType::U16),
            point("b", 1466, ValueType::U32),
        ]);
        let mut cycle = runner.start_cycle();
        assert_eq!(cycle.due, vec![0, 1]);
        runner.record(&mut cycle, 0, Ok(Reply::Words(vec![7])), received(1000));
        runner.record(
            &mut cycle,
            1,
            Err(CallError::Exception { code: 2 }),
            received(1001),
        );
        let readings = runner.finish(cycle, Instant::now());
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].sensor_id, "meter.a");
        assert_eq!(readings[0].value, Some(Value::Number(7.0)));
        assert_eq!(readings[0].quality, Quality::Good);
        assert_eq!(readings[1].quality, Quality::Bad);
        assert_eq!(readings[1].value, None);
        assert_eq!(
            readings[1].detail.as_deref(),
            Some("exception 2 (illegal data address)")
        );
        assert_eq!(runner.is_online(), Some(true));
    }

    #[test]
    fn failing_block_retried_with_backoff() {
        let mut runner = runner(vec![
            point("a", 0, ValueType::U16),
            point("b", 100, ValueType::U16),
        ]);
        let mut attempts = Vec::new();
        for cycle_number in 0..12 {
            let mut cycle = runner.start_cycle();
            if cycle.due.contains(&1) {
                attempts.push(cycle_number);
            }
            for block in cycle.due.clone() {
                let result = if block == 1 {
                    Err(CallError::Exception { code: 2 })
                } else {
                    Ok(Reply::Words(vec![1]))
                };
                runner.record(&mut cycle, block, result, received(cycle_number));
            }
            runner.finish(cycle, Instant::now());
        }
        assert_eq!(
            attempts,
            vec![0, 1, 3, 7, 15]
                .into_iter()
                .filter(|&c| c < 12)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejected_reply_keeps_old_value_stale() {
        let mut runner = runner(vec![point("energy", 10, ValueType::U32)]);
        let mut cycle = runner.start_cycle();
        runner.record(&mut cycle, 0, Ok(Reply::Words(vec![0, 7])), received(1000));
        let first = runner.finish(cycle, Instant::now());
        assert_eq!(first[0].value, Some(Value::Number(7.0)));
        let mut cycle = runner.start_cycle();
        runner.record(
            &mut cycle,
            0,
            Err(CallError::Rejected(
                "reply carries 1 register(s), expected 2".into(),
            )),
            received(2000),
        );
        let second = runner.finish(cycle, Instant::now());
        assert_eq!(second[0].quality, Quality::Stale);
        assert_eq!(second[0].value, Some(Value::Number(7.0)));
        assert!(second[0].detail.as_deref().unwrap().contains("expected 2"));
    }

    #[test]
    fn nan_is_bad_not_a_number() {
        let mut runner = runner(vec![point("f", 0, ValueType::F64)]);
        let mut cycle = runner.start_cycle();
        runner.record(
            &mut cycle,
            0,
            Ok(Reply::Words(vec![0x7FFB, 0x3A70, 0xCE88, 0xFB3F])),
            received(1),
        );
        let readings = runner.finish(cycle, Instant::now());
        assert_eq!(readings[0].quality, Quality::Bad);
        assert_eq!(readings[0].value, None);
        assert!(readings[0].detail.as_deref().unwrap().contains("NaN"));
    }

    #[test]
    fn offline_after_three_silent_polls_then_back() {
        let mut runner = runner(vec![
            point("a", 0, ValueType::U16),
            point("b", 50, ValueType::U16),
        ]);
        let start = Instant::now();
        for n in 0..5 {
            let mut cycle = runner.start_cycle();
            let due = cycle.due.clone();
            let timeout = CallError::Timeout(Duration::from_millis(100));
            runner.record(&mut cycle, due[0], Err(timeout.clone()), received(n));
            runner.skip_rest(&mut cycle, &due[1..], &timeout, received(n));
            let readings = runner.finish(cycle, start);
            assert_eq!(readings.len(), 2);
            assert!(readings.iter().all(|r| r.quality == Quality::Bad));
            let expected_online = if n >= 2 { Some(false) } else { None };
            assert_eq!(runner.is_online(), expected_online, "after poll {n}");
        }
        // Failures 3, 4, 5: waits of 1 s, 2 s, 4 s, capped at 8 s.
        assert_eq!(runner.backoff(), Duration::from_secs(4));
        assert_eq!(runner.next_due, start + Duration::from_secs(4));
        let mut cycle = runner.start_cycle();
        for block in cycle.due.clone() {
            runner.record(&mut cycle, block, Ok(Reply::Words(vec![3])), received(10));
        }
        runner.finish(cycle, start);
        assert_eq!(runner.is_online(), Some(true));
    }

    #[test]
    fn illegal_address_splits_block() {
        let mut runner = runner(vec![
            point("a", 0, ValueType::U16),
            point("b", 1, ValueType::U16),
            point("c", 2, ValueType::U16),
        ]);
        assert_eq!(runner.blocks().len(), 1);
        let mut cycle = runner.start_cycle();
        runner.record(
            &mut cycle,
            0,
            Err(CallError::Exception { code: 2 }),
            received(1),
        );
        runner.finish(cycle, Instant::now());
        let blocks = runner.blocks();
        assert_eq!(blocks.len(), 3);
        assert!(blocks.iter().all(|b| b.count == 1));
    }
}
