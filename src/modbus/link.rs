//! One Modbus request at a time over TCP or a serial line, with a timeout, a check of the
//! reply against the request, and errors that keep "the device answered with an exception"
//! apart from "the link failed".

use std::fmt;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{rtu, tcp, Client, Context};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{Request, Response, Slave};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use crate::modbus::config::{Parity, SerialLine};
use crate::modbus::map::Table;
use crate::modbus::rtu::{RtuFraming, SharedFraming};

/// One request to a unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Read {
        table: Table,
        start: u16,
        count: u16,
    },
    WriteCoil {
        address: u16,
        value: bool,
    },
    WriteRegisters {
        address: u16,
        words: Vec<u16>,
    },
}

impl Operation {
    fn request(&self) -> Request<'static> {
        match self {
            Operation::Read {
                table,
                start,
                count,
            } => match table {
                Table::Coil => Request::ReadCoils(*start, *count),
                Table::DiscreteInput => Request::ReadDiscreteInputs(*start, *count),
                Table::InputRegister => Request::ReadInputRegisters(*start, *count),
                Table::HoldingRegister => Request::ReadHoldingRegisters(*start, *count),
            },
            Operation::WriteCoil { address, value } => Request::WriteSingleCoil(*address, *value),
            Operation::WriteRegisters { address, words } if words.len() == 1 => {
                Request::WriteSingleRegister(*address, words[0])
            }
            Operation::WriteRegisters { address, words } => {
                Request::WriteMultipleRegisters(*address, words.clone().into())
            }
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Read {
                table,
                start,
                count,
            } => {
                write!(f, "read {count} {table} from {start}")
            }
            Operation::WriteCoil { address, value } => {
                write!(f, "write coil {address} = {}", u8::from(*value))
            }
            Operation::WriteRegisters { address, words } => {
                write!(f, "write {} holding register(s) at {address}", words.len())
            }
        }
    }
}

/// A checked reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Bits(Vec<bool>),
    Words(Vec<u16>),
    Written,
}

/// Failure of a request: the reason no usable reply came back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The device replied with a Modbus exception.
    #[error("exception {code} ({})", exception_name(*code))]
    Exception { code: u8 },
    #[error("no reply within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection or serial port failed.
    #[error("link failed: {0}")]
    Link(String),
    /// A reply arrived but does not fit the request (wrong length, wrong address, garbled).
    #[error("reply rejected: {0}")]
    Rejected(String),
}

impl CallError {
    /// Returns true when the device never replied, so the rest of the poll is not worth trying.
    pub fn is_silence(&self) -> bool {
        matches!(
            self,
            CallError::Timeout(_) | CallError::Connect(_) | CallError::Link(_)
        )
    }
}

/// Names a Modbus exception code as the application protocol specification (V1.1b3, 7) does.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}

/// Checks a reply against its request. tokio-modbus cannot check read lengths because its
/// decoder does not know the requested quantity.
fn check_reply(operation: &Operation, response: Response) -> Result<Reply, CallError> {
    let reject = |message: String| Err(CallError::Rejected(message));
    match (operation, response) {
        (
            Operation::Read { table, count, .. },
            Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits),
        ) if table.is_bits() => {
            // tokio-modbus unpacks whole bytes, so a correct reply has count rounded up to 8.
            let expected = usize::from(*count).div_ceil(8) * 8;
            if bits.len() != expected {
                return reject(format!(
                    "reply carries {} byte(s) of bits, expected {} for {count} bit(s)",
                    bits.len() / 8,
                    expected / 8
                ));
            }
            bits.truncate(usize::from(*count));
            Ok(Reply::Bits(bits))
        }
        (
            Operation::Read { table, count, .. },
            Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words),
        ) if !table.is_bits() => {
            if words.len() != usize::from(*count) {
                return reject(format!(
                    "reply carries {} register(s), expected {count}",
                    words.len()
                ));
            }
            Ok(Reply::Words(words))
        }
        (
            Operation::WriteCoil { address, value },
            Response::WriteSingleCoil(got_address, got_value),
        ) => {
            if (got_address, got_value) != (*address, *value) {
                return reject(format!(
                    "write reply names coil {got_address} = {}, expected coil {address} = {}",
                    u8::from(got_value),
                    u8::from(*value)
                ));
            }
            Ok(Reply::Written)
        }
        (
            Operation::WriteRegisters { address, words },
            Response::WriteSingleRegister(got_address, got_word),
        ) => {
            if words.len() != 1 || (got_address, got_word) != (*address, words[0]) {
                return reject(format!(
                    "write reply names register {got_address} = {got_word}, expected register {address}"
                ));
            }
            Ok(Reply::Written)
        }
        (
            Operation::WriteRegisters { address, words },
            Response::WriteMultipleRegisters(got_address, got_count),
        ) => {
            if (got_address, usize::from(got_count)) != (*address, words.len()) {
                return reject(format!(
                    "write reply names {got_count} register(s) at {got_address}, expected {} at {address}",
                    words.len()
                ));
            }
            Ok(Reply::Written)
        }
        (operation, response) => reject(format!("unexpected reply {response:?} to {operation}")),
    }
}

/// Sends one request and waits at most `timeout` for its checked reply.
pub async fn call(
    context: &mut Context,
    unit: u8,
    operation: &Operation,
    timeout: Duration,
) -> Result<Reply, CallError> {
    context.set_slave(Slave(unit));
    let request = operation.request();
    match tokio::time::timeout(timeout, context.call(request)).await {
        Err(_) => Err(CallError::Timeout(timeout)),
        Ok(Err(tokio_modbus::Error::Transport(error))) => {
            if error.kind() == std::io::ErrorKind::InvalidData {
                Err(CallError::Rejected(error.to_string()))
            } else {
                Err(CallError::Link(error.to_string()))
            }
        }
        Ok(Err(tokio_modbus::Error::Protocol(error))) => {
            Err(CallError::Rejected(error.to_string()))
        }
        Ok(Ok(Err(exception))) => Err(CallError::Exception {
            code: u8::from(exception),
        }),
        Ok(Ok(Ok(response))) => check_reply(operation, response),
    }
}

/// A connection to one TCP device, opened on first use and dropped after any failure so
/// that a late or garbled reply never reaches the next request.
pub struct TcpLink {
    address: String,
    context: Option<Context>,
}

impl TcpLink {
    pub fn new(address: String) -> Self {
        TcpLink {
            address,
            context: None,
        }
    }

    async fn connect(&mut self, timeout: Duration) -> Result<&mut Context, CallError> {
        if self.context.is_none() {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(self.address.as_str()))
                .await
                .map_err(|_| {
                    CallError::Connect(format!(
                        "{} did not accept a connection within {} ms",
                        self.address,
                        timeout.as_millis()
                    ))
                })?
                .map_err(|error| CallError::Connect(format!("{}: {error}", self.address)))?;
            let _ = stream.set_nodelay(true);
            self.context = Some(tcp::attach(stream));
        }
        // Set just above; never None here.
        self.context
            .as_mut()
            .ok_or_else(|| CallError::Connect(self.address.clone()))
    }

    pub async fn call(
        &mut self,
        unit: u8,
        operation: &Operation,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let context = self.connect(timeout).await?;
        let result = call(context, unit, operation, timeout).await;
        if matches!(&result, Err(error) if !matches!(error, CallError::Exception { .. })) {
            self.context = None;
        }
        result
    }
}

/// One serial line: the port, the framing adapter and a tokio-modbus RTU client on it.
pub struct RtuLink {
    line: SerialLine,
    port: Option<SharedFraming<SerialStream>>,
    context: Option<Context>,
}

impl RtuLink {
    pub fn new(line: SerialLine) -> Self {
        RtuLink {
            line,
            port: None,
            context: None,
        }
    }

    pub fn line(&self) -> &SerialLine {
        &self.line
    }

    /// Silence required between frames: 3.5 character times, and at least 1.75 ms above
    /// 19200 bit/s (Modbus over serial line specification V1.02, 2.5.1.1).
    fn frame_gap(&self) -> Duration {
        let bits_per_char =
            1 + 8 + u32::from(self.line.parity != Parity::None) + u32::from(self.line.stop_bits);
        let micros =
            3_500_000u64 * u64::from(bits_per_char) / u64::from(self.line.baud_rate.max(1));
        Duration::from_micros(micros.max(1_750))
    }

    fn open(&mut self) -> Result<(), CallError> {
        if self.port.is_some() {
            return Ok(());
        }
        let parity = match self.line.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        };
        let stop_bits = if self.line.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        };
        let path = self.line.port.to_string_lossy().into_owned();
        let stream = tokio_serial::new(path.as_str(), self.line.baud_rate)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(parity)
            .stop_bits(stop_bits)
            .open_native_async()
            .map_err(|error| {
                CallError::Connect(format!("cannot open serial port {path}: {error}"))
            })?;
        self.port = Some(SharedFraming::new(RtuFraming::new(
            stream,
            self.line.echo_suppression,
        )));
        Ok(())
    }

    pub async fn call(
        &mut self,
        unit: u8,
        operation: &Operation,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        self.open()?;
        tokio::time::sleep(self.frame_gap()).await;
        if self.context.is_none() {
            if let Some(port) = &self.port {
                self.context = Some(rtu::attach(port.clone()));
            }
        }
        let Some(context) = self.context.as_mut() else {
            return Err(CallError::Link("serial port is not open".into()));
        };
        let result = call(context, unit, operation, timeout).await;
        match &result {
            Ok(_) | Err(CallError::Exception { .. }) => {}
            Err(CallError::Link(_)) => {
                // The port itself failed (unplugged adapter): reopen it on the next request.
                self.context = None;
                self.port = None;
            }
            Err(_) => {
                // tokio-modbus's reader ends its stream once after an error; a fresh client
                // on the same port starts clean.
                self.context = None;
            }
        }
        result
    }
}

/// The link a scheduler owns: one TCP device or one serial line.
pub enum Link {
    Tcp(TcpLink),
    Rtu(RtuLink),
}

impl Link {
    pub async fn call(
        &mut self,
        unit: u8,
        operation: &Operation,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        match self {
            Link::Tcp(link) => link.call(unit, operation, timeout).await,
            Link::Rtu(link) => link.call(unit, operation, timeout).await,
        }
    }

    /// Sends a request, repeating it up to `retries` times after a failure other than an
    /// exception. On a serial line a timeout is not repeated, because every unit on the line
    /// would wait for the repeat.
    pub async fn call_with_retries(
        &mut self,
        unit: u8,
        operation: &Operation,
        timeout: Duration,
        retries: u32,
    ) -> Result<Reply, CallError> {
        let mut attempt = 0;
        loop {
            let result = self.call(unit, operation, timeout).await;
            let retry = match &result {
                Ok(_) | Err(CallError::Exception { .. }) => false,
                Err(CallError::Timeout(_)) => matches!(self, Link::Tcp(_)),
                Err(_) => true,
            };
            if !retry || attempt >= retries {
                return result;
            }
            attempt += 1;
        }
    }

    /// Name for logs: the TCP address or the serial port.
    pub fn describe(&self) -> String {
        match self {
            Link::Tcp(link) => link.address.clone(),
            Link::Rtu(link) => link.line.port.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(table: Table, count: u16) -> Operation {
        Operation::Read {
            table,
            start: 10,
            count,
        }
    }

    #[test]
    fn short_register_reply_rejected() {
        let result = check_reply(
            &read(Table::HoldingRegister, 2),
            Response::ReadHoldingRegisters(vec![9]),
        );
        assert_eq!(
            result,
            Err(CallError::Rejected(
                "reply carries 1 register(s), expected 2".into()
            ))
        );
        let long = check_reply(
            &read(Table::InputRegister, 2),
            Response::ReadInputRegisters(vec![1, 2, 3]),
        );
        assert!(matches!(long, Err(CallError::Rejected(_))));
        let right = check_reply(
            &read(Table::InputRegister, 2),
            Response::ReadInputRegisters(vec![0, 7]),
        );
        assert_eq!(right, Ok(Reply::Words(vec![0, 7])));
    }

    #[test]
    fn bit_replies_checked_by_whole_bytes() {
        let ok = check_reply(
            &read(Table::Coil, 3),
            Response::ReadCoils(vec![true, false, true, false, false, false, false, false]),
        );
        assert_eq!(ok, Ok(Reply::Bits(vec![true, false, true])));
        let short = check_reply(&read(Table::Coil, 9), Response::ReadCoils(vec![false; 8]));
        assert!(matches!(short, Err(CallError::Rejected(_))));
        let wrong_kind = check_reply(
            &read(Table::Coil, 8),
            Response::ReadHoldingRegisters(vec![0]),
        );
        assert!(matches!(wrong_kind, Err(CallError::Rejected(_))));
    }

    #[test]
    fn exceptions_named() {
        assert_eq!(
            CallError::Exception { code: 2 }.to_string(),
            "exception 2 (illegal data address)"
        );
        assert_eq!(
            CallError::Exception { code: 0x0B }.to_string(),
            "exception 11 (gateway target device failed to respond)"
        );
    }

    #[test]
    fn write_reply_must_echo_request() {
        let operation = Operation::WriteRegisters {
            address: 5,
            words: vec![1, 2],
        };
        assert_eq!(
            check_reply(&operation, Response::WriteMultipleRegisters(5, 2)),
            Ok(Reply::Written)
        );
        assert!(check_reply(&operation, Response::WriteMultipleRegisters(5, 1)).is_err());
        let coil = Operation::WriteCoil {
            address: 3,
            value: true,
        };
        assert!(check_reply(&coil, Response::WriteSingleCoil(3, false)).is_err());
    }

    #[test]
    fn frame_gap_follows_baud_rate() {
        let mut line = SerialLine {
            port: "/dev/null".into(),
            baud_rate: 9600,
            parity: Parity::Even,
            data_bits: 8,
            stop_bits: 1,
            echo_suppression: false,
        };
        // 11 bits per character, 3.5 characters at 9600 bit/s.
        assert_eq!(
            RtuLink::new(line.clone()).frame_gap(),
            Duration::from_micros(4_010)
        );
        line.baud_rate = 115_200;
        assert_eq!(RtuLink::new(line).frame_gap(), Duration::from_micros(1_750));
    }
}
