//! Scoring of `detect` outputs against labels: NAB and SKAB.

use std::process::ExitCode;

/// Arguments of `caretaker evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {}

pub fn main(args: EvaluateArgs) -> ExitCode {
    let _ = args;
    eprintln!("error: evaluate is not built yet");
    ExitCode::from(2)
}
