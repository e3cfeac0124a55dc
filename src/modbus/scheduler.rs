//! The task that owns one link: a TCP device, or a serial line with all its units.
//!
//! The task polls whichever device is due first, so units on a line take turns in order of
//! their due times and a unit polled late is polled next. Queued writes go ahead of polls:
//! the task serves them before each request, so a write waits for at most one request in
//! flight. After a timeout the rest of that unit's poll is skipped, so a silent unit costs its
//! line at most one timeout per cycle.
//!
//! Each poll's readings go to the store as one batch. The task polls on without waiting for
//! that batch's commit. It waits for the commit only when it submits the next batch, so at
//! most one batch per link is in flight.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::modbus::link::{CallError, Link, Operation};
use crate::modbus::poller::DeviceRunner;
use crate::store::{Batch, Pending, StoreHandle};
use crate::time::TimeKeeper;

/// A write waiting for its turn on a link.
#[derive(Debug)]
pub struct WriteJob {
    pub unit: u8,
    pub operation: Operation,
    pub timeout: Duration,
    pub retries: u32,
    pub reply: oneshot::Sender<Result<(), CallError>>,
}

pub struct Scheduler {
    pub link: Link,
    pub runners: Vec<DeviceRunner>,
    pub writes: mpsc::Receiver<WriteJob>,
    pub store: StoreHandle,
    pub keeper: Arc<TimeKeeper>,
    pub cancel: CancellationToken,
    pending: Option<Pending>,
    store_failing: bool,
    writes_open: bool,
}

impl Scheduler {
    pub fn new(
        link: Link,
        runners: Vec<DeviceRunner>,
        writes: mpsc::Receiver<WriteJob>,
        store: StoreHandle,
        keeper: Arc<TimeKeeper>,
        cancel: CancellationToken,
    ) -> Self {
        Scheduler {
            link,
            runners,
            writes,
            store,
            keeper,
            cancel,
            pending: None,
            store_failing: false,
            writes_open: true,
        }
    }

    /// Polls and writes until cancelled; a poll in progress is finished and submitted first.
    pub async fn run(mut self) {
        tracing::info!(link = %self.link.describe(), devices = self.runners.len(), "modbus polling started");
        while !self.cancel.is_cancelled() && !self.runners.is_empty() {
            if self.serve_queued_writes().await {
                continue;
            }
            let (index, due) = self.earliest_due();
            if due > Instant::now() {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break,
                    job = self.writes.recv(), if self.writes_open => match job {
                        Some(job) => self.serve_write(job).await,
                        None => self.writes_open = false,
                    },
                    _ = tokio::time::sleep_until(due) => {}
                }
                continue;
            }
            self.poll(index).await;
        }
        if let Some(pending) = self.pending.take() {
            if let Err(error) = pending.await {
                tracing::error!(link = %self.link.describe(), error = %error, "last modbus readings not committed");
            }
        }
        tracing::info!(link = %self.link.describe(), "modbus polling stopped");
    }

    fn earliest_due(&self) -> (usize, Instant) {
        let mut best = (0, self.runners[0].next_due);
        for (index, runner) in self.runners.iter().enumerate().skip(1) {
            if runner.next_due < best.1 {
                best = (index, runner.next_due);
            }
        }
        best
    }

    /// Serves every write already queued. Returns whether there was one.
    async fn serve_queued_writes(&mut self) -> bool {
        let mut served = false;
        while let Ok(job) = self.writes.try_recv() {
            self.serve_write(job).await;
            served = true;
        }
        served
    }

    async fn serve_write(&mut self, job: WriteJob) {
        let result = self
            .link
            .call_with_retries(job.unit, &job.operation, job.timeout, job.retries)
            .await
            .map(|_| ());
        // The caller may have gone away; the write happened either way.
        let _ = job.reply.send(result);
    }

    async fn poll(&mut self, index: usize) {
        let mut cycle = self.runners[index].start_cycle();
        let due = cycle.due.clone();
        let (unit, timeout, retries) = {
            let setup = &self.runners[index].setup;
            (setup.unit_id, setup.timeout, setup.retries)
        };
        for (position, &block) in due.iter().enumerate() {
            self.serve_queued_writes().await;
            let operation = self.runners[index].operation(block);
            let result = self
                .link
                .call_with_retries(unit, &operation, timeout, retries)
                .await;
            let received = self.keeper.receive_time();
            let runner = &mut self.runners[index];
            runner.record(&mut cycle, block, result, received);
            if let Some(cause) = cycle.silence().cloned() {
                runner.skip_rest(&mut cycle, &due[position + 1..], &cause, received);
                break;
            }
        }
        let readings = self.runners[index].finish(cycle, Instant::now());
        if !readings.is_empty() {
            self.submit(Batch {
                readings,
                ..Batch::default()
            })
            .await;
        }
    }

    async fn submit(&mut self, batch: Batch) {
        if let Some(previous) = self.pending.take() {
            let committed = previous.await;
            self.note_store_result(committed.map(|_| ()));
        }
        match self.store.submit(batch).await {
            Ok(pending) => self.pending = Some(pending),
            Err(error) => self.note_store_result(Err(error)),
        }
    }

    fn note_store_result(&mut self, result: Result<(), crate::store::StoreError>) {
        match result {
            Ok(()) => {
                if self.store_failing {
                    tracing::info!(link = %self.link.describe(), "modbus readings are committed again");
                }
                self.store_failing = false;
            }
            Err(error) => {
                if !self.store_failing {
                    tracing::error!(
                        link = %self.link.describe(),
                        error = %error,
                        "modbus readings not committed; polling goes on"
                    );
                }
                self.store_failing = true;
            }
        }
    }
}
