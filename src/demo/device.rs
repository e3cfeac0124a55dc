//! The demo's Modbus TCP devices: one server per device on a loopback port, serving a
//! register bank that the replay task fills from the plant simulation or a recorded series.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;

use crate::modbus::codec::encode_value;
use crate::modbus::{DeviceMap, Table, ValueType};

/// The four Modbus tables of one device. Addresses never written read as 0.
#[derive(Debug, Default)]
pub struct RegisterBank {
    words: HashMap<(Table, u16), u16>,
    bits: HashMap<(Table, u16), bool>,
}

impl RegisterBank {
    /// Writes each `(point, value)` into the registers or bits of the map's point of that
    /// name. Returns the names of points the map lacks or whose value its type cannot hold.
    pub fn set_points(&mut self, map: &DeviceMap, values: &[(&str, f64)]) -> Vec<String> {
        let mut rejected = Vec::new();
        for (name, value) in values {
            let Some(point) = map.point(name) else {
                rejected.push((*name).to_string());
                continue;
            };
            if point.table.is_bits() {
                self.bits
                    .insert((point.table, point.address), *value != 0.0);
                continue;
            }
            let words = match point.encoding.value_type {
                ValueType::Bool => Ok(vec![u16::from(*value != 0.0)]),
                ValueType::Bitfield { bit, bits } => {
                    let key = (point.table, point.address);
                    let word = self.words.get(&key).copied().unwrap_or(0);
                    match set_bitfield(word, bit, bits, *value) {
                        Some(word) => Ok(vec![word]),
                        None => {
                            rejected.push((*name).to_string());
                            continue;
                        }
                    }
                }
                _ => encode_value(&point.encoding, *value),
            };
            match words {
                Ok(words) => {
                    for (offset, word) in words.into_iter().enumerate() {
                        let address = point.address.wrapping_add(offset as u16);
                        self.words.insert((point.table, address), word);
                    }
                }
                Err(_) => rejected.push((*name).to_string()),
            }
        }
        rejected
    }

    fn read_words(
        &self,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, ExceptionCode> {
        check_range(address, count, table.max_read())?;
        Ok((0..count)
            .map(|offset| {
                let key = (table, address + offset);
                self.words.get(&key).copied().unwrap_or(0)
            })
            .collect())
    }

    fn read_bits(
        &self,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<bool>, ExceptionCode> {
        check_range(address, count, table.max_read())?;
        Ok((0..count)
            .map(|offset| {
                let key = (table, address + offset);
                self.bits.get(&key).copied().unwrap_or(false)
            })
            .collect())
    }
}

/// Returns `word` with its `bits` bits from `bit` set to `value`, or `None` when `value` is
/// not a whole number that fits them.
fn set_bitfield(word: u16, bit: u8, bits: u8, value: f64) -> Option<u16> {
    let width = u32::from(bits).min(16);
    let max = (1u32 << width) - 1;
    if value.fract() != 0.0 || value < 0.0 || value > f64::from(max) || u32::from(bit) >= 16 {
        return None;
    }
    let mask = (max << bit) as u16;
    Some((word & !mask) | (((value as u32) << bit) as u16 & mask))
}

/// Rejects an empty read, one longer than the table allows, or one past address 65535.
fn check_range(address: u16, count: u16, max: u16) -> Result<(), ExceptionCode> {
    if count == 0 || count > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    if u32::from(address) + u32::from(count) > 65_536 {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(())
}

/// A register bank shared by a device's server and the replay task.
pub type SharedBank = Arc<RwLock<RegisterBank>>;

/// Answers Modbus requests from one register bank. Writes change the bank, as a real
/// device's setpoints would change.
struct BankService {
    bank: SharedBank,
}

impl BankService {
    fn answer(&self, request: Request<'static>) -> Result<Response, ExceptionCode> {
        match request {
            Request::ReadCoils(address, count) => {
                let bank = self.bank.read().unwrap_or_else(|e| e.into_inner());
                Ok(Response::ReadCoils(bank.read_bits(
                    Table::Coil,
                    address,
                    count,
                )?))
            }
            Request::ReadDiscreteInputs(address, count) => {
                let bank = self.bank.read().unwrap_or_else(|e| e.into_inner());
                let bits = bank.read_bits(Table::DiscreteInput, address, count)?;
                Ok(Response::ReadDiscreteInputs(bits))
            }
            Request::ReadInputRegisters(address, count) => {
                let bank = self.bank.read().unwrap_or_else(|e| e.into_inner());
                let words = bank.read_words(Table::InputRegister, address, count)?;
                Ok(Response::ReadInputRegisters(words))
            }
            Request::ReadHoldingRegisters(address, count) => {
                let bank = self.bank.read().unwrap_or_else(|e| e.into_inner());
                let words = bank.read_words(Table::HoldingRegister, address, count)?;
                Ok(Response::ReadHoldingRegisters(words))
            }
            Request::WriteSingleRegister(address, word) => {
                let mut bank = self.bank.write().unwrap_or_else(|e| e.into_inner());
                bank.words.insert((Table::HoldingRegister, address), word);
                Ok(Response::WriteSingleRegister(address, word))
            }
            Request::WriteMultipleRegisters(address, words) => {
                check_range(address, words.len() as u16, 123)?;
                let mut bank = self.bank.write().unwrap_or_else(|e| e.into_inner());
                for (offset, word) in words.iter().enumerate() {
                    let key = (Table::HoldingRegister, address + offset as u16);
                    bank.words.insert(key, *word);
                }
                Ok(Response::WriteMultipleRegisters(
                    address,
                    words.len() as u16,
                ))
            }
            Request::WriteSingleCoil(address, bit) => {
                let mut bank = self.bank.write().unwrap_or_else(|e| e.into_inner());
                bank.bits.insert((Table::Coil, address), bit);
                Ok(Response::WriteSingleCoil(address, bit))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl tokio_modbus::server::Service for BankService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        ready(self.answer(request))
    }
}

/// Serves `bank` as a Modbus TCP device on `listener` until `cancel` fires.
pub async fn serve(listener: TcpListener, bank: SharedBank, cancel: CancellationToken) {
    let address = listener.local_addr().ok();
    let server = Server::new(listener);
    let on_connected = |stream, peer: SocketAddr| {
        let bank = bank.clone();
        async move {
            accept_tcp_connection(stream, peer, |_| {
                Ok(Some(BankService { bank: bank.clone() }))
            })
        }
    };
    let on_error = |err: std::io::Error| {
        tracing::debug!(error = %err, "a demo Modbus connection ended with an error");
    };
    if let Err(err) = server
        .serve_until(&on_connected, on_error, cancel.cancelled_owned())
        .await
    {
        tracing::error!(?address, error = %err, "the demo Modbus device stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfield_sets_only_its_bits() {
        assert_eq!(set_bitfield(0b0000_0001, 4, 3, 5.0), Some(0b0101_0001));
        assert_eq!(set_bitfield(0b0111_0001, 4, 3, 0.0), Some(0b0000_0001));
        assert_eq!(set_bitfield(0, 0, 1, 2.0), None);
        assert_eq!(set_bitfield(0, 0, 1, 0.5), None);
    }

    #[test]
    fn reads_beyond_the_address_space_are_rejected() {
        let bank = RegisterBank::default();
        assert_eq!(
            bank.read_words(Table::HoldingRegister, 65_535, 2),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            bank.read_words(Table::HoldingRegister, 0, 0),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(bank.read_words(Table::InputRegister, 10, 2), Ok(vec![0, 0]));
    }
}
