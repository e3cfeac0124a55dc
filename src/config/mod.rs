//! Gateway configuration: TOML files validated as a whole before anything starts.

pub mod diag;

pub use diag::{Diagnostic, Diagnostics, TomlFile};
