use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    abort_on_panic();
    let cli = caretaker::cli::Cli::parse();
    caretaker::cli::run(cli)
}

/// Ends the process at the first panic, in any thread. A panic in a task would otherwise end
/// only that task, and the gateway would run on without its MQTT ingest, say; aborted, it is
/// restarted whole by systemd. The default hook prints the message and location first.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}
