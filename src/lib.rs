//! Caretaker, a building gateway: sensor ingest over MQTT and Modbus into a crash-safe
//! SQLite store, on-board anomaly detection and tenant message triage.

pub mod central;
pub mod cli;
pub mod config;
pub mod demo;
pub mod detect;
pub mod dispatch;
pub mod gateway;
pub mod http;
pub mod intake;
pub mod logging;
pub mod metrics;
pub mod modbus;
pub mod mqtt;
pub mod protocol;
pub mod secret;
pub mod sim;
pub mod store;
pub mod sync;
pub mod systemd;
pub mod time;
pub mod triage;

pub use caretaker_wire::reading;
