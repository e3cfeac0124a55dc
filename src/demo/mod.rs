//! `caretaker demo`: the main job end to end on loopback, with nothing to set up.
//!
//! It starts Modbus TCP devices that replay the plant simulation (or recorded series), an
//! MQTT broker (embedded, or an existing one with `--broker`) and the gateway itself on an
//! accelerated clock. It sends scripted tenant messages over MQTT and HTTP, prints a timeline
//! of what the gateway stores, and ends with a summary of every stage.

pub mod broker;
pub mod central;
pub mod clock;
pub mod device;
pub mod recorded;
pub mod replay;
pub mod setup;
pub mod summary;
pub mod tenants;
pub mod timeline;

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub use run::run;
pub use summary::{Stage, StageStatus, Summary};

/// Options of `caretaker demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Gateway config the demo runs, with its addresses, ports, database and bridge token
    /// rewritten for the run. Default: firmware-config/demo/gateway.toml.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Replay recorded series instead of the plant simulation: a CSV file, or a folder searched
    /// for SKAB runs (`;` separated, datetime column) and NAB series (timestamp,value). At most
    /// 16 files are replayed, one Modbus device each.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Use the MQTT broker at HOST:PORT, such as a local Mosquitto that allows anonymous
    /// clients, instead of the embedded one.
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<String>,
    /// Real seconds the replay runs before the summary (default 150; with --data, at most as
    /// long as the longest series takes).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// How many times faster than real time the demo's clock runs (default 120; with --data,
    /// fast enough to replay one row every 100 ms).
    #[arg(long, value_name = "FACTOR")]
    pub speed: Option<f64>,
    /// Simulated seconds between two device updates and two Modbus polls (default 10; with
    /// --data, the median row spacing of the series).
    #[arg(long, value_name = "SECS")]
    pub step: Option<f64>,
    /// Seed of the simulation's noise. The same seed gives the same plant.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the summary as one JSON object on stdout, and no timeline.
    #[arg(long)]
    pub json: bool,
    /// Stay up after the summary, until SIGINT or SIGTERM, so that the dashboard can be
    /// browsed.
    #[arg(long)]
    pub keep_running: bool,
}

/// Runs `caretaker demo`: exit status 0 when every stage produced something, 1 naming the
/// stages that produced nothing, 2 when the demo could not start.
pub fn main(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let json = args.json;
    let keep_running = args.keep_running;
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(summary) => {
            if json {
                match serde_json::to_string_pretty(&summary) {
                    Ok(text) => println!("{text}"),
                    Err(err) => eprintln!("error: cannot write the summary as JSON: {err}"),
                }
            } else if !keep_running {
                // With --keep-running the summary was printed before the wait.
                print!("{}", summary.render());
            }
            let empty = summary.empty_stages();
            if empty.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "error: these stages produced nothing: {}; the timeline above and the log on \
                     stderr show where the pipeline stopped",
                    empty.join(", ")
                );
                ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("error: the demo could not run: {err:#}");
            ExitCode::from(2)
        }
    }
}
