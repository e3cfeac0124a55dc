//! `caretaker train`: fits an asset model on normal operation and writes it with its card.

use std::process::ExitCode;

/// Arguments of `caretaker train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {}

pub fn main(args: TrainArgs) -> ExitCode {
    let _ = args;
    eprintln!("error: train is not built yet");
    ExitCode::from(2)
}
