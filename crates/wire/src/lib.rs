//! The decoders of what sensors send to a Caretaker gateway: MQTT payloads, Modbus registers
//! and device timestamps, into the reading model that every ingest source shares.
//!
//! They are pure functions of their input, with no I/O, so that they can be fuzzed on their
//! own, without the gateway's network and storage stack.

pub mod codec;
pub mod payload;
pub mod reading;
pub mod timestamp;
