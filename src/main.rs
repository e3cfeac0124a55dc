use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = caretaker::cli::Cli::parse();
    caretaker::cli::run(cli)
}
