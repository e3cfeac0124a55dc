use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    abort_on_panic();
    let cli = caretaker::cli::Cli::parse();
    caretaker::cli::run(cli)
}

/// Ends the process at the first panic, in any thread, after the default hook has printed the
/// message and location. Otherwise a panic would end only its task, such as the MQTT ingest,
/// and the gateway would run on without it. After an abort, systemd restarts the whole gateway.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}
