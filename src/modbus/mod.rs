//! Modbus ingest: polls TCP and RTU devices by their register maps and stores the readings.
//!
//! - [`map`] loads device register maps, [`config`] the gateway's `[modbus]` section.
//! - [`codec`] decodes registers into values and encodes values for writes.
//! - [`plan`] coalesces points into read requests.
//! - [`poller`] keeps each device's poll state and turns replies into readings.
//! - [`scheduler`] runs one task per link: a TCP device, or a serial line with its units.
//! - [`link`] sends one request over TCP or RTU; [`rtu`] filters the serial stream beneath
//!   tokio-modbus's RTU client.
//! - [`handle`] queues writes on the right scheduler and audits them.

pub mod config;
pub mod handle;
pub mod link;
pub mod map;
pub mod plan;
pub mod poller;
pub mod rtu;
pub mod scheduler;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::StoreHandle;
use crate::time::TimeKeeper;

pub use caretaker_wire::codec;
pub use codec::{decode_registers, DecodeError, Encoding, ValueType, WordOrder};
pub use config::{load, DeviceSetup, ModbusSetup, Transport};
pub use handle::{ModbusHandle, WriteError, WriteOutcome};
pub use map::{load_map, parse_reference, DeviceMap, Point, Table};

use handle::HandleDevice;
use link::{Link, RtuLink, TcpLink};
use poller::DeviceRunner;
use scheduler::Scheduler;

/// Writes that may wait for one link before callers wait for a free place.
const WRITE_QUEUE: usize = 16;

/// Starts one task per TCP device and one per serial port, and returns the handle for
/// writes with the tasks' join handles. Must be called inside a tokio runtime.
///
/// On `cancel`, each task finishes the poll in progress, submits it, waits for its commit
/// and exits.
pub fn spawn(
    setup: ModbusSetup,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> (ModbusHandle, Vec<JoinHandle<()>>) {
    let now = Instant::now();
    let mut groups: Vec<(Link, Vec<Arc<DeviceSetup>>)> = Vec::new();
    let mut lines: HashMap<PathBuf, usize> = HashMap::new();
    for device in setup.devices {
        let device = Arc::new(device);
        match &device.transport {
            Transport::Tcp { address } => {
                groups.push((Link::Tcp(TcpLink::new(address.clone())), vec![device]));
            }
            Transport::Rtu { line } => match lines.get(&line.port) {
                Some(&group) => groups[group].1.push(device),
                None => {
                    lines.insert(line.port.clone(), groups.len());
                    groups.push((Link::Rtu(RtuLink::new(line.clone())), vec![device]));
                }
            },
        }
    }
    let mut devices = HashMap::new();
    let mut tasks = Vec::new();
    for (link, members) in groups {
        let (queue, writes) = mpsc::channel(WRITE_QUEUE);
        let runners = members
            .iter()
            .map(|device| {
                devices.insert(
                    device.name.clone(),
                    HandleDevice {
                        setup: Arc::clone(device),
                        queue: queue.clone(),
                    },
                );
                DeviceRunner::new(Arc::clone(device), Arc::clone(&metrics), now)
            })
            .collect();
        let scheduler = Scheduler::new(
            link,
            runners,
            writes,
            store.clone(),
            Arc::clone(&keeper),
            cancel.clone(),
        );
        tasks.push(tokio::spawn(scheduler.run()));
    }
    let handle = ModbusHandle::new(devices, store, keeper, metrics);
    (handle, tasks)
}
