//! A framing adapter between a serial stream and tokio-modbus's RTU client.
//!
//! tokio-modbus 0.17 decodes whatever arrives after a request. A stray byte that looks like a
//! header makes it wait for a frame that never comes. An echo of the request glued to the
//! reply fails the CRC, and a reply from another unit fails the call at once. The adapter
//! sits on the serial stream and passes the client only a frame that fits the last request:
//!
//! - it remembers the request the client wrote, and drops bytes that were waiting on the line
//!   before it;
//! - with echo suppression on, it drops the first exact copy of the request; with it off, a
//!   copy of a read or multiple-write request is an "echo detected" error (for single writes
//!   the reply is a copy of the request, so a copy is taken as the reply);
//! - it searches the received bytes for a frame with the request's unit id, its function code
//!   (or the matching exception code), the length the request implies and a valid
//!   CRC-16/MODBUS, skipping noise, truncated frames and frames of other units;
//! - it never waits for more bytes than the longest frame the request allows (256 bytes).
//!
//! The caller bounds each request with a timeout; the adapter itself never gives up waiting,
//! so a foreign unit's reply only costs the time until the right reply arrives.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest Modbus RTU frame (Modbus over serial line specification V1.02, 2.5.1.1).
pub const MAX_FRAME_LEN: usize = 256;
/// Received bytes kept while searching for a frame; older bytes are dropped.
const MAX_PENDING: usize = 4 * MAX_FRAME_LEN;

/// Message of the error returned when the request comes back and echo suppression is off.
pub const ECHO_DETECTED: &str =
    "echo detected: the line returned a copy of the request; enable echo_suppression for this port";

/// Computes the CRC-16/MODBUS of `data` (polynomial 0xA001 reflected, initial value 0xFFFF).
/// On the wire the CRC follows the frame low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            if crc & 1 == 1 {
                crc = (crc >> 1) ^ 0xA001;
            } else {
                crc >>= 1;
            }
        }
    }
    crc
}

/// Appends the CRC to a frame body, low byte first.
pub fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut frame = body.to_vec();
    frame.extend_from_slice(&crc16(body).to_le_bytes());
    frame
}

fn crc_ok(frame: &[u8]) -> bool {
    let Some(body_len) = frame.len().checked_sub(2) else {
        return false;
    };
    crc16(&frame[..body_len]).to_le_bytes() == frame[body_len..]
}

/// The expected shape of the reply to one request.
#[derive(Debug, Clone)]
struct Expected {
    request: Vec<u8>,
    unit: u8,
    function: u8,
    shape: ReplyShape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyShape {
    /// Unit, function, byte count, data, CRC.
    Counted { byte_count: u8 },
    /// The reply repeats the request (function 05 and 06).
    Copy,
    /// Unit, function, address and quantity as in the request, CRC (function 0F and 10).
    AddressQuantity,
    /// A function the adapter does not know; bytes pass through unchecked.
    Unknown,
}

impl Expected {
    fn from_request(request: &[u8]) -> Option<Expected> {
        if request.len() < 4 || !crc_ok(request) {
            return None;
        }
        let unit = request[0];
        let function = request[1];
        let quantity = || request.get(4..6).map(|q| u16::from_be_bytes([q[0], q[1]]));
        let shape = match function {
            0x01 | 0x02 => {
                let bytes = quantity()?.div_ceil(8);
                ReplyShape::Counted {
                    byte_count: u8::try_from(bytes).ok()?,
                }
            }
            0x03 | 0x04 => ReplyShape::Counted {
                byte_count: u8::try_from(quantity()?.checked_mul(2)?).ok()?,
            },
            0x05 | 0x06 => ReplyShape::Copy,
            0x0F | 0x10 => ReplyShape::AddressQuantity,
            _ => ReplyShape::Unknown,
        };
        Some(Expected {
            request: request.to_vec(),
            unit,
            function,
            shape,
        })
    }

    /// Returns true when a copy of the request can only be an echo, never the reply.
    fn copy_is_echo(&self) -> bool {
        self.shape != ReplyShape::Copy
    }

    /// Checks the bytes at the start of `data` against the expected reply.
    fn check(&self, data: &[u8]) -> Candidate {
        let Some(&unit) = data.first() else {
            return Candidate::Incomplete;
        };
        if unit != self.unit {
            return Candidate::NoMatch;
        }
        let Some(&function) = data.get(1) else {
            return Candidate::Incomplete;
        };
        let length = if function == self.function | 0x80 {
            5
        } else if function != self.function {
            return Candidate::NoMatch;
        } else {
            match self.shape {
                ReplyShape::Counted { byte_count } => {
                    let Some(&count) = data.get(2) else {
                        return Candidate::Incomplete;
                    };
                    if count != byte_count {
                        return Candidate::NoMatch;
                    }
                    5 + usize::from(byte_count)
                }
                ReplyShape::Copy | ReplyShape::AddressQuantity => 8,
                ReplyShape::Unknown => return Candidate::NoMatch,
            }
        };
        let Some(frame) = data.get(..length) else {
            return Candidate::Incomplete;
        };
        if !crc_ok(frame) {
            return Candidate::NoMatch;
        }
        let fits = match (function == self.function, self.shape) {
            (false, _) => true,
            (true, ReplyShape::Copy) => frame == self.request.as_slice(),
            (true, ReplyShape::AddressQuantity) => frame.get(2..6) == self.request.get(2..6),
            (true, _) => true,
        };
        if fits {
            Candidate::Match(length)
        } else {
            Candidate::NoMatch
        }
    }
}

enum Candidate {
    Match(usize),
    Incomplete,
    NoMatch,
}

enum Scan {
    Frame(Vec<u8>),
    Echo,
    NeedMore,
}

/// The adapter's state; see the module documentation.
#[derive(Debug)]
pub struct RtuFraming<S> {
    inner: S,
    echo_suppression: bool,
    /// Bytes of the request being written.
    written: Vec<u8>,
    /// Set after a flush: the next write starts a new request.
    request_complete: bool,
    expected: Option<Expected>,
    echo_dropped: bool,
    /// Bytes received and not yet matched.
    received: Vec<u8>,
    /// A matched frame, handed to the reader from `ready_pos` on.
    ready: Vec<u8>,
    ready_pos: usize,
    /// Bytes dropped while searching, for the debug log.
    skipped: usize,
}

impl<S> RtuFraming<S> {
    pub fn new(inner: S, echo_suppression: bool) -> Self {
        RtuFraming {
            inner,
            echo_suppression,
            written: Vec::new(),
            request_complete: true,
            expected: None,
            echo_dropped: false,
            received: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            skipped: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Searches the received bytes for the expected reply.
    fn scan(&mut self) -> Scan {
        let Some(expected) = &self.expected else {
            // No request is pending, so nothing received can be a reply.
            self.skipped += self.received.len();
            self.received.clear();
            return Scan::NeedMore;
        };
        if expected.shape == ReplyShape::Unknown {
            return Scan::Frame(std::mem::take(&mut self.received));
        }
        if !self.echo_dropped && (self.echo_suppression || expected.copy_is_echo()) {
            if let Some(position) = find(&self.received, &expected.request) {
                if !self.echo_suppression {
                    self.received.clear();
                    self.expected = None;
                    return Scan::Echo;
                }
                self.received.drain(..position + expected.request.len());
                self.echo_dropped = true;
            } else if self.echo_suppression && is_prefix_of(&self.received, &expected.request) {
                // Part of the echo has arrived; a reply cannot come before it.
                return Scan::NeedMore;
            }
        }
        for start in 0..self.received.len() {
            match expected.check(&self.received[start..]) {
                Candidate::Match(length) => {
                    let frame = self.received[start..start + length].to_vec();
                    self.skipped += start;
                    if self.skipped > 0 {
                        tracing::debug!(
                            skipped = self.skipped,
                            "rtu reply found after skipping bytes"
                        );
                    }
                    self.received.clear();
                    self.expected = None;
                    return Scan::Frame(frame);
                }
                Candidate::Incomplete | Candidate::NoMatch => {}
            }
        }
        if self.received.len() > MAX_PENDING {
            let excess = self.received.len() - MAX_FRAME_LEN;
            self.received.drain(..excess);
            self.skipped += excess;
        }
        Scan::NeedMore
    }

    fn start_request(&mut self) {
        self.written.clear();
        self.received.clear();
        self.ready.clear();
        self.ready_pos = 0;
        self.expected = None;
        self.echo_dropped = false;
        self.skipped = 0;
        self.request_complete = false;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Returns true when `data` is a non-empty start of `request`, so the rest may still arrive.
fn is_prefix_of(data: &[u8], request: &[u8]) -> bool {
    !data.is_empty() && data.len() < request.len() && request.starts_with(data)
}

impl<S: AsyncRead + Unpin> RtuFraming<S> {
    /// Drops bytes that are already waiting on the line, without blocking.
    fn discard_waiting(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; MAX_FRAME_LEN];
        for _ in 0..64 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    tracing::debug!(
                        bytes = buf.filled().len(),
                        "rtu dropped stale bytes before a request"
                    );
                }
                _ => break,
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RtuFraming<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_pos < this.ready.len() {
                let remaining = &this.ready[this.ready_pos..];
                let take = remaining.len().min(buf.remaining());
                buf.put_slice(&remaining[..take]);
                this.ready_pos += take;
                return Poll::Ready(Ok(()));
            }
            match this.scan() {
                Scan::Frame(frame) => {
                    this.ready = frame;
                    this.ready_pos = 0;
                    continue;
                }
                Scan::Echo => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        ECHO_DETECTED,
                    )));
                }
                Scan::NeedMore => {}
            }
            let mut scratch = [0u8; MAX_FRAME_LEN];
            let mut chunk = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {
                    if chunk.filled().is_empty() {
                        // End of stream: report it as such to the reader.
                        return Poll::Ready(Ok(()));
                    }
                    this.received.extend_from_slice(chunk.filled());
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RtuFraming<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.request_complete {
            this.start_request();
            this.discard_waiting(cx);
        }
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.written.extend_from_slice(&data[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        if !this.request_complete && !this.written.is_empty() {
            this.expected = Expected::from_request(&this.written);
            if this.expected.is_none() {
                tracing::warn!(
                    bytes = this.written.len(),
                    "rtu request not understood; its reply will be dropped"
                );
            }
            this.request_complete = true;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A cloneable handle to one adapter, so that a fresh tokio-modbus client can be attached
/// to the same serial stream after an error. Only one task uses it at a time; the lock is
/// held for one poll call and never across an await.
#[derive(Debug)]
pub struct SharedFraming<S> {
    inner: Arc<Mutex<RtuFraming<S>>>,
}

impl<S> Clone for SharedFraming<S> {
    fn clone(&self) -> Self {
        SharedFraming {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> SharedFraming<S> {
    pub fn new(framing: RtuFraming<S>) -> Self {
        SharedFraming {
            inner: Arc::new(Mutex::new(framing)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RtuFraming<S>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SharedFraming<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut framing = self.lock();
        Pin::new(&mut *framing).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SharedFraming<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut framing = self.lock();
        Pin::new(&mut *framing).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut framing = self.lock();
        Pin::new(&mut *framing).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut framing = self.lock();
        Pin::new(&mut *framing).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_modbus::client::{rtu, Client};
    use tokio_modbus::{Request, Response, Slave};

    const REQUEST: [u8; 8] = [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B];
    const GOOD_REPLY: [u8; 9] = [0x01, 0x03, 0x04, 0x00, 0x0A, 0xF0, 0xE0, 0x9F, 0xB9];
    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Plays a device on the far end of an in-memory line: reads one request, checks it and
    /// sends the scripted chunks with a pause between them.
    async fn device(mut line: DuplexStream, chunks: Vec<Vec<u8>>) -> DuplexStream {
        let mut request = [0u8; 8];
        line.read_exact(&mut request).await.unwrap();
        assert_eq!(request, REQUEST);
        for chunk in chunks {
            line.write_all(&chunk).await.unwrap();
            // More than 3.5 character times at 9600 bit/s.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        line
    }

    type CallOutcome = Result<tokio_modbus::Result<Response>, tokio::time::error::Elapsed>;

    /// Sends the read request of the field reports through the adapter while the far end
    /// plays `chunks`.
    async fn read_two(echo_suppression: bool, chunks: Vec<Vec<u8>>) -> CallOutcome {
        let (near, far) = tokio::io::duplex(1024);
        let peer = tokio::spawn(device(far, chunks));
        let mut client = rtu::attach_slave(RtuFraming::new(near, echo_suppression), Slave(1));
        let result =
            tokio::time::timeout(TIMEOUT, client.call(Request::ReadHoldingRegisters(0, 2))).await;
        drop(peer.await.unwrap());
        result
    }

    fn registers(result: CallOutcome) -> Vec<u16> {
        match result {
            Ok(Ok(Ok(Response::ReadHoldingRegisters(words)))) => words,
            other => panic!("expected registers, got {other:?}"),
        }
    }

    #[test]
    fn crc_of_known_frames() {
        assert_eq!(with_crc(&REQUEST[..6]), REQUEST.to_vec());
        assert_eq!(with_crc(&GOOD_REPLY[..7]), GOOD_REPLY.to_vec());
        assert_eq!(
            with_crc(&[0x05, 0x03, 0x00, 0x00, 0x00, 0x02]),
            vec![0x05, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC5, 0x8F]
        );
        assert_eq!(
            with_crc(&[0x02, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78]),
            vec![0x02, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78, 0xB2, 0x07]
        );
    }

    #[tokio::test]
    async fn truncated_exception_noise_then_reply() {
        let noise = vec![0x01, 0x83, 0x02, 0x01, 0x83, 0x02, 0x01, 0x83, 0x02];
        let result = read_two(false, vec![noise, GOOD_REPLY.to_vec()]).await;
        assert_eq!(registers(result), vec![10, 61664]);
    }

    #[tokio::test]
    async fn echo_then_reply_with_suppression() {
        let glued = [REQUEST.as_slice(), GOOD_REPLY.as_slice()].concat();
        let result = read_two(true, vec![glued]).await;
        assert_eq!(registers(result), vec![10, 61664]);
    }

    #[tokio::test]
    async fn echo_without_suppression_is_an_error() {
        let glued = [REQUEST.as_slice(), GOOD_REPLY.as_slice()].concat();
        let result = read_two(false, vec![glued]).await;
        match result {
            Ok(Err(tokio_modbus::Error::Transport(error))) => {
                assert!(error.to_string().contains("echo detected"), "{error}");
            }
            other => panic!("expected an echo error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn echo_only_times_out_or_errors_without_panic() {
        let with_suppression = read_two(true, vec![REQUEST.to_vec()]).await;
        assert!(with_suppression.is_err(), "{with_suppression:?}");
        let without = read_two(false, vec![REQUEST.to_vec()]).await;
        assert!(matches!(without, Ok(Err(_))), "{without:?}");
    }

    #[tokio::test]
    async fn foreign_unit_ignored_within_one_timeout() {
        let foreign = vec![0x02, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78, 0xB2, 0x07];
        let started = tokio::time::Instant::now();
        let result = read_two(false, vec![foreign, GOOD_REPLY.to_vec()]).await;
        assert_eq!(registers(result), vec![10, 61664]);
        assert!(started.elapsed() < TIMEOUT);
    }

    #[tokio::test]
    async fn announced_huge_frame_does_not_stall() {
        // A byte count of 0xFF would make a plain decoder wait for 260 bytes.
        let stray = vec![0x01, 0x03, 0xFF, 0x00];
        let result = read_two(false, vec![stray, GOOD_REPLY.to_vec()]).await;
        assert_eq!(registers(result), vec![10, 61664]);
    }

    #[tokio::test]
    async fn exception_reply_passes() {
        let exception = with_crc(&[0x01, 0x83, 0x02]);
        let result = read_two(false, vec![exception]).await;
        match result {
            Ok(Ok(Err(code))) => assert_eq!(u8::from(code), 2),
            other => panic!("expected exception 2, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn single_write_reply_is_a_copy() {
        let (near, mut far) = tokio::io::duplex(256);
        let request = with_crc(&[0x03, 0x05, 0x00, 0x07, 0xFF, 0x00]);
        let expected = request.clone();
        let peer = tokio::spawn(async move {
            let mut got = vec![0u8; expected.len()];
            far.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expected);
            // Echo first, then the device's reply, as a converter with echo would send.
            far.write_all(&got).await.unwrap();
            far.write_all(&got).await.unwrap();
            far
        });
        let mut client = rtu::attach_slave(RtuFraming::new(near, true), Slave(3));
        let result =
            tokio::time::timeout(TIMEOUT, client.call(Request::WriteSingleCoil(7, true))).await;
        assert!(
            matches!(result, Ok(Ok(Ok(Response::WriteSingleCoil(7, true))))),
            "{result:?}"
        );
        let _ = peer.await.unwrap();
        let _ = request;
    }

    #[test]
    fn random_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(request in proptest::collection::vec(any::<u8>(), 0..20), data in proptest::collection::vec(any::<u8>(), 0..600), echo in any::<bool>())| {
            let mut framing = RtuFraming::new(tokio::io::empty(), echo);
            framing.expected = Expected::from_request(&with_crc(&request));
            framing.received = data;
            let _ = framing.scan();
        });
    }
}
