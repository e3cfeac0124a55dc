//! Caretaker, a building gateway: sensor ingest over MQTT and Modbus into a crash-safe
//! SQLite store, on-board anomaly detection and tenant message triage.

pub mod cli;
pub mod config;
pub mod detect;
pub mod gateway;
pub mod http;
pub mod intake;
pub mod logging;
pub mod metrics;
pub mod modbus;
pub mod mqtt;
pub mod protocol;
pub mod reading;
pub mod secret;
pub mod sim;
pub mod store;
pub mod time;
pub mod triage;
