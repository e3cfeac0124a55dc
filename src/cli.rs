//! Command-line interface.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Caretaker, a building gateway: reads sensors over MQTT and Modbus into a local SQLite
/// store that survives power loss.
#[derive(Debug, Parser)]
#[command(name = "caretaker", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway until SIGTERM or SIGINT, after validating the config as
    /// `check-config` does.
    Run {
        /// Gateway config file (TOML). Relative paths in it resolve from its folder.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// Log as JSON lines instead of the config's `log.format` (default text).
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a gateway config and every file it references. Prints each problem as
    /// FILE:LINE:COLUMN: KEY: message; exits 0 when valid and 1 when not.
    CheckConfig {
        /// Gateway config file (TOML).
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Replay a recorded series (CSV) through the same detectors as `run` and write one
    /// score row per input row.
    Detect(crate::detect::replay::DetectArgs),
    /// Score `detect` outputs against labelled windows (NAB) or labelled runs (SKAB).
    Evaluate(crate::detect::eval::EvaluateArgs),
    /// Train an asset model on normal operation and write it with its model card.
    Train(crate::detect::train::TrainArgs),
    /// Classify tenant messages (JSON lines in, JSON lines out).
    Triage(crate::triage::TriageArgs),
    /// Rebuild the triage model from the project's labelled corpus.
    TrainTriage(crate::triage::TrainTriageArgs),
    /// Run the main job end to end on loopback: simulated (or recorded) devices, an MQTT
    /// broker, the gateway on an accelerated clock and scripted tenant messages. Prints a
    /// timeline and a summary; exits 1 when a stage produced nothing.
    Demo(crate::demo::DemoArgs),
    /// Run the central office (`--listen ADDR --db URL`), or manage its gateway tokens
    /// (`token add|revoke|list`) and office users (`user add`).
    Central(crate::central::CentralArgs),
    /// Print a ticket's story from the gateway's database, or verify the audit log's hash
    /// chain (exit 1 when a row was edited, removed or reordered).
    Audit(crate::dispatch::cli::AuditArgs),
    /// Remove a unit's tenant texts and personal data from the gateway's database and record
    /// the erasure in the audit log.
    Erase(crate::dispatch::cli::EraseArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig { path } => check_config(&path),
        Command::Detect(args) => crate::detect::replay::main(args),
        Command::Evaluate(args) => crate::detect::eval::main(args),
        Command::Train(args) => crate::detect::train::main(args),
        Command::Triage(args) => crate::triage::main(args),
        Command::TrainTriage(args) => crate::triage::train_main(args),
        Command::Demo(args) => crate::demo::main(args),
        Command::Central(args) => crate::central::main(args),
        Command::Audit(args) => crate::dispatch::cli::audit_main(args),
        Command::Erase(args) => crate::dispatch::cli::erase_main(args),
        Command::Run { config, log_json } => {
            let config = match crate::config::load(&config) {
                Ok(config) => config,
                Err(diags) => {
                    eprintln!("{diags}");
                    eprintln!(
                        "error: {} problem(s) in the configuration; nothing was started",
                        diags.len()
                    );
                    return ExitCode::from(1);
                }
            };
            let json = log_json || config.log.format == "json";
            crate::logging::init(&config.log.level, json);
            for warning in &config.warnings {
                tracing::warn!(
                    file = %warning.file.display(),
                    line = warning.line,
                    key = %warning.key,
                    "{}",
                    warning.message
                );
            }
            match crate::gateway::run_blocking(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "gateway stopped with an error");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match crate::config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("{}", warning.warning_line());
            }
            let devices = config.modbus.as_ref().map_or(0, |m| m.devices.len());
            let subscriptions = config.mqtt.as_ref().map_or(0, |m| m.subscriptions.len());
            println!(
                "{}: valid (gateway {}, {} MQTT subscription(s), {} Modbus device(s))",
                path.display(),
                config.gateway.id,
                subscriptions,
                devices
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprintln!("{diags}");
            ExitCode::from(1)
        }
    }
}
