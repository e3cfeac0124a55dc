//! A scripted MQTT 3.1.1 broker on loopback for faults that Mosquitto does not produce on
//! demand: a redelivery with the DUP flag and a new packet id, a connection dropped right
//! after a PUBLISH, a PUBREL the client never saw the PUBLISH for. It is used beside the tests
//! against Mosquitto, never instead of them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A packet the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Subscribe { pkid: u16 },
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    PingReq,
    Disconnect,
    Other(u8),
}

/// One accepted client connection, with its CONNECT already read.
pub struct Conn {
    stream: TcpStream,
    /// The clean-session flag of the client's CONNECT.
    pub clean_session: bool,
    pub received: Vec<Received>,
    /// Whether the client closed the connection.
    pub closed: bool,
}

/// Listens on a free loopback port; [`FakeBroker::accept`] takes the next client.
pub struct FakeBroker {
    listener: TcpListener,
    pub port: u16,
}

impl FakeBroker {
    pub fn bind() -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        FakeBroker { listener, port }
    }

    /// Accepts the next connection and reads its CONNECT.
    pub fn accept(&self) -> Conn {
        let (stream, _) = self.listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut conn = Conn {
            stream,
            clean_session: false,
            received: Vec::new(),
            closed: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no CONNECT from the client");
            if let Some((header, body)) = conn.read_packet() {
                assert_eq!(
                    header >> 4,
                    1,
                    "expected CONNECT, got packet type {}",
                    header >> 4
                );
                // Protocol name (2-byte length + "MQTT"), level, then the connect flags.
                let name_len = u16::from_be_bytes([body[0], body[1]]) as usize;
                let flags = body[2 + name_len + 1];
                conn.clean_session = flags & 0x02 != 0;
                return conn;
            }
        }
    }
}

impl Conn {
    /// Reads one packet, or `None` on timeout or a closed connection.
    fn read_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 1];
        match self.stream.read(&mut header) {
            Ok(1) => {}
            Ok(_) => {
                self.closed = true;
                return None;
            }
            Err(_) => return None,
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut length = 0usize;
        for shift in 0..4 {
            let mut byte = [0u8; 1];
            self.stream.read_exact(&mut byte).ok()?;
            length |= ((byte[0] & 0x7f) as usize) << (7 * shift);
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).ok()?;
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Some((header[0], body))
    }

    fn write_packet(&mut self, header: u8, body: &[u8]) {
        let mut packet = vec![header];
        let mut length = body.len();
        loop {
            let mut byte = (length % 128) as u8;
            length /= 128;
            if length > 0 {
                byte |= 0x80;
            }
            packet.push(byte);
            if length == 0 {
                break;
            }
        }
        packet.extend_from_slice(body);
        // The client may already have closed the connection; the script decides what matters.
        let _ = self.stream.write_all(&packet);
    }

    /// Reads what the client sent for up to `timeout`, replying to SUBSCRIBE and PINGREQ, and
    /// stops early once `done` holds for what was received or the client closes.
    pub fn pump(&mut self, timeout: Duration, mut done: impl FnMut(&[Received]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !self.closed {
            if done(&self.received) {
                return true;
            }
            let Some((header, body)) = self.read_packet() else {
                continue;
            };
            let pkid = || u16::from_be_bytes([body[0], body[1]]);
            let packet = match header >> 4 {
                8 => {
                    // One granted QoS 1 per filter: each filter is a 2-byte length, the
                    // filter and a QoS byte.
                    let mut filters = 0;
                    let mut at = 2;
                    while at + 2 <= body.len() {
                        at += 2 + u16::from_be_bytes([body[at], body[at + 1]]) as usize + 1;
                        filters += 1;
                    }
                    let mut suback = pkid().to_be_bytes().to_vec();
                    suback.extend(std::iter::repeat_n(1u8, filters));
                    self.write_packet(0x90, &suback);
                    Received::Subscribe { pkid: pkid() }
                }
                4 => Received::PubAck(pkid()),
                5 => Received::PubRec(pkid()),
                7 => Received::PubComp(pkid()),
                12 => {
                    self.write_packet(0xd0, &[]);
                    Received::PingReq
                }
                14 => Received::Disconnect,
                other => Received::Other(other),
            };
            self.received.push(packet);
        }
        done(&self.received)
    }

    pub fn connack(&mut self, session_present: bool) {
        self.write_packet(0x20, &[u8::from(session_present), 0]);
    }

    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, dup: bool, pkid: u16) {
        let header = 0x30 | (u8::from(dup) << 3) | (qos << 1);
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        if qos > 0 {
            body.extend_from_slice(&pkid.to_be_bytes());
        }
        body.extend_from_slice(payload);
        self.write_packet(header, &body);
    }

    pub fn pubrel(&mut self, pkid: u16) {
        self.write_packet(0x62, &pkid.to_be_bytes());
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
