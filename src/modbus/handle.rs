//! Writes to writable points, queued on the scheduler of the device's link and audited.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{DeviceOutcomeLabel, Metrics};
use crate::modbus::codec::{encode_bit, encode_value, EncodeError};
use crate::modbus::config::DeviceSetup;
use crate::modbus::link::{CallError, Operation};
use crate::modbus::map::{Point, Table};
use crate::modbus::scheduler::WriteJob;
use crate::store::{AuditRecord, Batch, StoreHandle};
use crate::time::TimeKeeper;

/// A write the device confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    pub device: String,
    pub point: String,
    /// The value asked for, in the point's unit.
    pub value: f64,
    pub table: Table,
    pub address: u16,
    /// Registers written in wire order, or 0 or 1 for a coil.
    pub raw: Vec<u16>,
}

/// Failure of a write: it was not sent, or the device did not confirm it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("unknown Modbus device `{0}`")]
    UnknownDevice(String),
    #[error("device `{device}` has no point `{point}`")]
    UnknownPoint { device: String, point: String },
    #[error("point `{device}.{point}` is not writable; mark it writable in the device map if the device accepts writes")]
    NotWritable { device: String, point: String },
    #[error("cannot write to `{device}.{point}`: {error}")]
    InvalidValue {
        device: String,
        point: String,
        error: EncodeError,
    },
    #[error(
        "value {value} for `{device}.{point}` is outside its range {} to {} in the device map",
        min.map_or("-inf".to_string(), |m| m.to_string()),
        max.map_or("+inf".to_string(), |m| m.to_string())
    )]
    OutOfRange {
        device: String,
        point: String,
        value: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    #[error("write to `{device}.{point}` failed: {error}")]
    Device {
        device: String,
        point: String,
        error: CallError,
    },
    #[error("the Modbus task of device `{0}` has stopped; the write was not sent")]
    Stopped(String),
}

impl WriteError {
    /// Label for the `modbus_writes` metric.
    fn outcome(&self) -> &'static str {
        match self {
            WriteError::Device { .. } | WriteError::Stopped(_) => "failed",
            _ => "rejected",
        }
    }
}

pub(crate) struct HandleDevice {
    pub(crate) setup: Arc<DeviceSetup>,
    pub(crate) queue: mpsc::Sender<WriteJob>,
}

struct HandleInner {
    devices: HashMap<String, HandleDevice>,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
}

/// A cheap, cloneable handle for writing to Modbus devices while they are polled.
#[derive(Clone)]
pub struct ModbusHandle {
    inner: Arc<HandleInner>,
}

impl ModbusHandle {
    pub(crate) fn new(
        devices: HashMap<String, HandleDevice>,
        store: StoreHandle,
        keeper: Arc<TimeKeeper>,
        metrics: Arc<Metrics>,
    ) -> Self {
        ModbusHandle {
            inner: Arc::new(HandleInner {
                devices,
                store,
                keeper,
                metrics,
            }),
        }
    }

    /// Names of the configured devices.
    pub fn devices(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.devices.keys().cloned().collect();
        names.sort();
        names
    }

    /// Writes `value` (in the point's unit) to a writable coil or holding register point.
    ///
    /// The value is encoded like a read in reverse: offset subtracted, divided by scale,
    /// rounded for integer types and checked against the type's range. The write is queued
    /// on the device's link ahead of polls and waits for the device's confirmation (at most
    /// the device's timeout per attempt). Every attempt, including a rejected one, is written
    /// to the audit log with action `modbus.write`. When the store cannot commit that record,
    /// the error is logged and the write's result is returned all the same, because the
    /// device has already acted.
    pub async fn write(
        &self,
        device: &str,
        point: &str,
        value: f64,
        actor: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let mut detail = json!({
            "device": device,
            "point": point,
            "value": if value.is_finite() { json!(value) } else { json!(value.to_string()) },
        });
        let result = self.perform(device, point, value, &mut detail).await;
        match &result {
            Ok(_) => detail["outcome"] = json!("written"),
            Err(error) => {
                detail["outcome"] = json!(error.outcome());
                detail["error"] = json!(error.to_string());
            }
        }
        if let Some(entry) = self.inner.devices.get(device) {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(error) => error.outcome(),
            };
            self.inner
                .metrics
                .modbus_writes
                .get_or_create(&DeviceOutcomeLabel {
                    device: entry.setup.name.clone(),
                    outcome,
                })
                .inc();
        }
        let record = AuditRecord {
            ts_ms: self.inner.keeper.receive_time().ts_ms,
            actor: actor.to_string(),
            action: "modbus.write".to_string(),
            subject: format!("{device}.{point}"),
            detail,
        };
        let batch = Batch {
            audit: vec![record],
            ..Batch::default()
        };
        if let Err(error) = self.inner.store.write(batch).await {
            tracing::error!(device, point, error = %error, "modbus write not audited");
        }
        match &result {
            Ok(_) => tracing::info!(device, point, value, actor, "modbus write done"),
            Err(error) => {
                tracing::warn!(device, point, value, actor, error = %error, "modbus write failed")
            }
        }
        result
    }

    async fn perform(
        &self,
        device: &str,
        point_name: &str,
        value: f64,
        detail: &mut serde_json::Value,
    ) -> Result<WriteOutcome, WriteError> {
        let entry = self
            .inner
            .devices
            .get(device)
            .ok_or_else(|| WriteError::UnknownDevice(device.to_string()))?;
        let setup = &entry.setup;
        let point = setup
            .map
            .point(point_name)
            .ok_or_else(|| WriteError::UnknownPoint {
                device: device.to_string(),
                point: point_name.to_string(),
            })?;
        detail["unit_id"] = json!(setup.unit_id);
        detail["table"] = json!(point.table.as_str());
        detail["address"] = json!(point.address);

        if !point.writable || !point.table.is_writable() {
            return Err(WriteError::NotWritable {
                device: device.to_string(),
                point: point_name.to_string(),
            });
        }
        // The plausible range of a writable point is also the range an operator may set:
        // a setpoint outside it could damage the plant.
        let below = point.min.is_some_and(|min| value < min);
        let above = point.max.is_some_and(|max| value > max);
        if below || above || !value.is_finite() {
            return Err(WriteError::OutOfRange {
                device: device.to_string(),
                point: point_name.to_string(),
                value,
                min: point.min,
                max: point.max,
            });
        }
        let (operation, raw) =
            encode_write(point, value).map_err(|error| WriteError::InvalidValue {
                device: device.to_string(),
                point: point_name.to_string(),
                error,
            })?;
        detail["raw"] = json!(raw);

        // The scheduler of the device's link sends the request ahead of its next poll.
        let (reply, done) = oneshot::channel();
        let job = WriteJob {
            unit: setup.unit_id,
            operation,
            timeout: setup.timeout,
            retries: setup.retries,
            reply,
        };
        let stopped = || WriteError::Stopped(device.to_string());
        entry.queue.send(job).await.map_err(|_| stopped())?;
        let confirmed = done.await.map_err(|_| stopped())?;
        confirmed.map_err(|error| WriteError::Device {
            device: device.to_string(),
            point: point_name.to_string(),
            error,
        })?;

        Ok(WriteOutcome {
            device: device.to_string(),
            point: point_name.to_string(),
            value,
            table: point.table,
            address: point.address,
            raw,
        })
    }
}

/// Builds the request for writing `value` to `point`, with the raw words it carries.
pub fn encode_write(point: &Point, value: f64) -> Result<(Operation, Vec<u16>), EncodeError> {
    if point.table == Table::Coil {
        let bit = encode_bit(value)?;
        let operation = Operation::WriteCoil {
            address: point.address,
            value: bit,
        };
        return Ok((operation, vec![u16::from(bit)]));
    }
    let words = encode_value(&point.encoding, value)?;
    let operation = Operation::WriteRegisters {
        address: point.address,
        words: words.clone(),
    };
    Ok((operation, words))
}
