//! The demo's orchestration: setup, the replay, the timeline and the summary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rumqttc::{AsyncClient, MqttOptions};
use tokio_util::sync::CancellationToken;
use toml_edit::DocumentMut;

use super::clock::AcceleratedClock;
use super::device::{self, RegisterBank};
use super::recorded::{self, Series};
use super::replay::{self, Replay, ServedDevice, Source};
use super::setup::{self, RunSettings};
use super::summary::{stages, Summary};
use super::tenants::{self, HttpIntake, SCRIPT};
use super::timeline::{Counts, Line, Watcher};
use super::DemoArgs;
use crate::sim::Plant;
use crate::time::Clock;

/// Real seconds the replay runs by default.
const DEFAULT_DURATION_SECS: f64 = 150.0;
/// How many times faster than real time the simulation runs by default.
const DEFAULT_SPEED: f64 = 120.0;
/// Real milliseconds per row of a recorded series by default.
const RECORDED_ROW_REAL_MS: f64 = 100.0;
/// Simulated seconds between device updates by default.
const DEFAULT_STEP_SECS: f64 = 10.0;
/// Shortest real poll interval. The gateway accepts 10 ms and up.
const MIN_POLL_MS: u64 = 20;
/// Real time the demo waits after the replay for triage, detection and sync to catch up.
const DRAIN: Duration = Duration::from_secs(8);
/// Real time between two reads of the store for the timeline.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Everything the demo started, for the main loop.
struct Running {
    clock: Arc<AcceleratedClock>,
    database: PathBuf,
    mqtt: AsyncClient,
    http: HttpIntake,
    steps: u64,
    step_ms: i64,
    progress: Arc<AtomicU64>,
    gateway: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Runs the demo and returns its summary.
pub async fn run(args: DemoArgs) -> anyhow::Result<Summary> {
    let work_dir = std::env::temp_dir().join(format!(
        "caretaker-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create the folder {}", work_dir.display()))?;
    let cancel = CancellationToken::new();
    let result = run_in(&args, &work_dir, &cancel).await;
    cancel.cancel();
    if let Err(err) = std::fs::remove_dir_all(&work_dir) {
        tracing::warn!(folder = %work_dir.display(), error = %err, "cannot remove the demo's folder");
    }
    result
}

async fn run_in(
    args: &DemoArgs,
    work_dir: &Path,
    cancel: &CancellationToken,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(setup::default_config_path);
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "cannot read the demo config {}; pass --config PATH",
            config_path.display()
        )
    })?;
    let mut document: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", config_path.display()))?;

    let series = match &args.data {
        Some(dir) => {
            let (series, left_out) = recorded::load_dir(dir)?;
            if left_out > 0 {
                eprintln!(
                    "note: replaying the first {} files of {}; {left_out} more were left out",
                    series.len(),
                    dir.display()
                );
            }
            Some(series)
        }
        None => None,
    };
    let step_secs = args.step.unwrap_or_else(|| match &series {
        Some(series) => median_step_secs(series),
        None => DEFAULT_STEP_SECS,
    });
    if !(step_secs.is_finite() && step_secs > 0.0) {
        anyhow::bail!("--step {step_secs} must be a positive number of seconds");
    }
    let step_ms = (step_secs * 1000.0).round().max(1.0) as i64;
    let speed = match (args.speed, &series) {
        (Some(speed), _) => speed,
        (None, Some(_)) => step_ms as f64 / RECORDED_ROW_REAL_MS,
        (None, None) => DEFAULT_SPEED,
    };
    if !(speed.is_finite() && speed > 0.0) {
        anyhow::bail!("--speed {speed} must be a positive number");
    }
    let poll_interval_ms = ((step_ms as f64 / speed).round() as u64).max(MIN_POLL_MS);
    let duration_secs = match (&series, args.duration) {
        (_, Some(duration)) => duration,
        (Some(series), None) => {
            let rows = series.iter().map(|s| s.rows.len()).max().unwrap_or(1) as f64;
            (rows * step_ms as f64 / 1000.0 / speed).min(DEFAULT_DURATION_SECS)
        }
        (None, None) => DEFAULT_DURATION_SECS,
    };
    if !(duration_secs.is_finite() && duration_secs > 0.0) {
        anyhow::bail!("--duration {duration_secs} must be a positive number of seconds");
    }
    let span_ms = (duration_secs * 1000.0 * speed) as i64;
    let steps = (span_ms / step_ms).max(1) as u64;

    // Addresses: the broker, the local API and one Modbus device each.
    let (broker_host, broker_port, embedded) = match &args.broker {
        Some(address) => {
            let (host, port) = parse_host_port(address)?;
            (host, port, false)
        }
        None => {
            let address = setup::free_loopback_address()?;
            ("127.0.0.1".to_string(), address.port(), true)
        }
    };
    let device_total = match &series {
        Some(series) => series.len(),
        None => setup::device_count(&document),
    };
    let mut listeners = Vec::new();
    for _ in 0..device_total {
        listeners.push(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("cannot open a loopback port for a demo Modbus device")?,
        );
    }
    let addresses: Vec<SocketAddr> = listeners
        .iter()
        .map(|listener| listener.local_addr())
        .collect::<Result<_, _>>()?;
    let mut rng = fastrand::Rng::with_seed(args.seed);

    // The clock starts a span before now, so the replay ends at about the real time.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let start_ms = (now_ms - span_ms).div_euclid(60_000) * 60_000;
    let clock = Arc::new(AcceleratedClock::new(start_ms, speed));

    let gateway_id = document
        .get("gateway")
        .and_then(|gateway| gateway.get("id"))
        .and_then(|id| id.as_str())
        .ok_or_else(|| anyhow::anyhow!("the demo config has no [gateway] id"))?
        .to_string();
    let office = super::central::start(
        &work_dir.join("central.db"),
        &gateway_id,
        &gateway_id,
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    )
    .await
    .context("cannot start the central office")?;

    let run_settings = RunSettings {
        database: work_dir.join("gateway.db"),
        http_listen: setup::free_loopback_address()?,
        broker: (broker_host.clone(), broker_port),
        bridge_token: setup::random_token(&mut fastrand::Rng::new()),
        poll_interval_ms,
        sync: Some((office.url(), office.gateway_token.clone())),
    };
    setup::rewrite(&mut document, &run_settings, &addresses, series.as_deref())?;
    let config = crate::config::load_text(&config_path, document.to_string()).map_err(|diags| {
        anyhow::anyhow!(
            "the demo config is invalid after rewriting its addresses:\n{diags}\ncheck it with \
             `caretaker check-config {}`",
            config_path.display()
        )
    })?;
    // rumqttd logs every client that disconnects as an error, the demo's own probes too.
    crate::logging::init(&format!("{},rumqttd=off", config.log.level), false);

    // Devices: register banks filled with step 0 before the servers start.
    let modbus = config
        .modbus
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the demo config has no [modbus] section"))?;
    let mut devices = Vec::new();
    for device in &modbus.devices {
        let source = match &series {
            Some(series) => {
                let index = series
                    .iter()
                    .position(|s| s.name == device.name)
                    .ok_or_else(|| anyhow::anyhow!("no series for device {}", device.name))?;
                Source::Recorded(index)
            }
            None => match device.map.device.kind.as_str() {
                "circulation-pump" => Source::Pump,
                "district-heating-substation" => Source::Substation,
                other => anyhow::bail!(
                    "Modbus device {:?} has a map of kind {other:?}, which the plant simulation \
                     does not replay; use circulation-pump or district-heating-substation maps",
                    device.name
                ),
            },
        };
        devices.push(ServedDevice {
            name: device.name.clone(),
            map: device.map.clone(),
            bank: Arc::new(RwLock::new(RegisterBank::default())),
            source,
        });
    }
    let mut plant = Plant::new(args.seed);
    replay::inject_faults(&mut plant, start_ms, span_ms);
    let mut replay = Replay {
        plant,
        series: series.clone().unwrap_or_default(),
        devices,
        start_ms,
        step_ms,
        supply_shortfall: 0.0,
        rng: fastrand::Rng::with_seed(rng.u64(..)),
        rejected: Vec::new(),
    };
    replay.step_devices(0);
    for (listener, device) in listeners.into_iter().zip(&replay.devices) {
        tokio::spawn(device::serve(listener, device.bank.clone(), cancel.clone()));
    }

    if embedded {
        let listen: SocketAddr = format!("127.0.0.1:{broker_port}").parse()?;
        tokio::task::spawn_blocking(move || super::broker::start(listen)).await??;
    }

    // The gateway.
    let http = HttpIntake {
        address: config.http_listen,
        token: run_settings.bridge_token.clone(),
    };
    let database = config.store.path.clone();
    let gateway = tokio::spawn(crate::gateway::run(
        config,
        clock.clone() as Arc<dyn Clock>,
        cancel.child_token(),
    ));

    // The demo's own MQTT client, for room sensors and tenant messages.
    let mut options = MqttOptions::new(
        format!("caretaker-demo-{}", std::process::id()),
        broker_host.clone(),
        broker_port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (mqtt, mut eventloop) = AsyncClient::new(options, 256);
    let mqtt_cancel = cancel.clone();
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = mqtt_cancel.cancelled() => break,
                event = eventloop.poll() => {
                    if let Err(err) = event {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(50) {
                            tracing::warn!(error = %err, failures, "the demo's MQTT client lost its broker; retrying");
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    });

    let progress = Arc::new(AtomicU64::new(0));
    tokio::spawn(replay::run(
        replay,
        clock.clone(),
        mqtt.clone(),
        progress.clone(),
        cancel.clone(),
    ));

    let running = Running {
        clock,
        database,
        mqtt,
        http,
        steps,
        step_ms,
        progress,
        gateway,
    };
    let data = match &args.data {
        Some(dir) => dir.display().to_string(),
        None => "simulation".to_string(),
    };
    let broker = match &args.broker {
        Some(address) => address.clone(),
        None => "embedded".to_string(),
    };
    let metrics_url = format!("http://{}/metrics", run_settings.http_listen);
    let (counts, dispatch, problems, gateway) = watch(args, running, cancel).await?;
    let end_ms = start_ms + span_ms;
    let summary = Summary {
        seed: args.seed,
        speed,
        step_secs,
        real_secs: started.elapsed().as_secs_f64(),
        simulated_start: crate::time::format_ms(start_ms),
        simulated_end: crate::time::format_ms(end_ms),
        data,
        broker,
        dashboard_url: Some(format!("{}/", office.url())),
        dashboard_login: Some(format!(
            "{} / {}",
            super::central::DASHBOARD_USER,
            office.dashboard_password
        )),
        metrics_url,
        stages: stages(&counts, dispatch),
        counts,
        problems,
    };
    if args.keep_running {
        if !args.json {
            print!("{}", summary.render());
        }
        println!("The demo keeps running; stop it with Ctrl-C.");
        wait_for_signal().await;
    }
    cancel.cancel();
    match tokio::time::timeout(Duration::from_secs(15), gateway).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::error!(error = format!("{err:#}"), "the gateway failed"),
        Ok(Err(err)) => tracing::error!(error = %err, "the gateway task panicked"),
        Err(_) => tracing::warn!("the gateway did not stop within 15 s"),
    }
    Ok(summary)
}

type WatchResult = (
    Counts,
    bool,
    Vec<String>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Follows the store and sends the scripted messages until the replay and the drain are
/// over. Returns the counts, the problems met and the gateway's task.
async fn watch(
    args: &DemoArgs,
    running: Running,
    cancel: &CancellationToken,
) -> anyhow::Result<WatchResult> {
    let Running {
        clock,
        database,
        mqtt,
        http,
        steps,
        step_ms,
        progress,
        gateway,
    } = running;
    let bar = (!args.json && std::io::stdout().is_terminal()).then(|| {
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps, {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let print = |line: &Line| {
        if args.json {
            return;
        }
        let time = chrono::DateTime::from_timestamp_millis(line.ts_ms)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let text = format!("{time}  {:<13} {}", line.stage, line.text);
        match &bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    };

    let mut problems = Vec::new();
    let mut watcher = None;
    let mut next_message = 0;
    let mut drain_until: Option<Instant> = None;
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    let span_ms = step_ms * steps as i64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = cancel.cancelled() => break,
        }
        if gateway.is_finished() {
            let outcome = gateway.await;
            let reason = match outcome {
                Ok(Ok(())) => "the gateway stopped early".to_string(),
                Ok(Err(err)) => format!("the gateway failed: {err:#}"),
                Err(err) => format!("the gateway task panicked: {err}"),
            };
            anyhow::bail!(reason);
        }
        let now_ms = clock.wall_ms();
        let elapsed_share = (now_ms - clock.start_wall_ms()) as f64 / span_ms.max(1) as f64;
        while next_message < SCRIPT.len() && SCRIPT[next_message].at_share <= elapsed_share {
            let message = &SCRIPT[next_message];
            if let Err(err) = tenants::send(message, &mqtt, &http).await {
                problems.push(format!("message from unit {}: {err:#}", message.unit));
            }
            next_message += 1;
        }
        if watcher.is_none() && database.exists() {
            match Watcher::open(&database) {
                Ok(opened) => watcher = Some(opened),
                Err(err) => tracing::debug!(error = %err, "the store is not ready yet"),
            }
        }
        if let Some(watcher) = watcher.as_mut() {
            match watcher.poll(now_ms) {
                Ok(lines) => lines.iter().for_each(print),
                Err(err) => tracing::debug!(error = %err, "cannot read the store; retrying"),
            }
        }
        let done = progress.load(Ordering::Relaxed);
        if let Some(bar) = &bar {
            bar.set_position(done.min(steps));
            bar.set_message(crate::time::format_ms(now_ms));
        }
        if done >= steps && next_message == SCRIPT.len() {
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() >= until {
                break;
            }
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let dispatch = watcher.as_ref().is_some_and(Watcher::has_dispatch);
    let counts = watcher.map(|w| w.counts().clone()).unwrap_or_default();
    Ok((counts, dispatch, problems, gateway))
}

/// Returns the median row spacing of the series in seconds, or the default step when no
/// series has parseable timestamps.
fn median_step_secs(series: &[Series]) -> f64 {
    let mut intervals: Vec<i64> = series.iter().filter_map(|s| s.median_interval_ms).collect();
    if intervals.is_empty() {
        return DEFAULT_STEP_SECS;
    }
    intervals.sort_unstable();
    intervals[intervals.len() / 2] as f64 / 1000.0
}

fn parse_host_port(text: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| {
        anyhow::anyhow!("--broker {text:?} must be HOST:PORT, such as 127.0.0.1:1883")
    })?;
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--broker {text:?} has an invalid port {port:?}"))?;
    if host.is_empty() {
        anyhow::bail!("--broker {text:?} has no host; use HOST:PORT such as 127.0.0.1:1883");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
