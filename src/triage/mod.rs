//! Tenant message triage: language, intent, category, urgency, human handover, unit and
//! personal data, from a small local model and rules.

use std::process::ExitCode;

/// Arguments of `caretaker triage`.
#[derive(Debug, clap::Args)]
pub struct TriageArgs {}

/// Arguments of `caretaker train-triage`.
#[derive(Debug, clap::Args)]
pub struct TrainTriageArgs {}

pub fn main(args: TriageArgs) -> ExitCode {
    let _ = args;
    eprintln!("error: triage is not built yet");
    ExitCode::from(2)
}

pub fn train_main(args: TrainTriageArgs) -> ExitCode {
    let _ = args;
    eprintln!("error: train-triage is not built yet");
    ExitCode::from(2)
}
