//! Wiring of `caretaker run`: store, ingest tasks, local API and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::metrics::Metrics;
use crate::time::{Clock, SystemClock, TimeKeeper};

/// How long shutdown waits for ingest tasks to commit and acknowledge what they hold.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the gateway on its own Tokio runtime until SIGTERM or SIGINT.
pub fn run_blocking(config: GatewayConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let cancel = CancellationToken::new();
    let signal_cancel = cancel.clone();
    runtime.spawn(async move {
        wait_for_signal().await;
        signal_cancel.cancel();
    });
    let result = runtime.block_on(run(config, Arc::new(SystemClock::new()), cancel));
    // Blocking work still running here (a store writer waiting on a lock held by another
    // process) must not keep the process alive: what it holds was never acknowledged.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
}

/// Runs the gateway until `cancel` fires, then stops every task and commits what is pending.
pub async fn run(
    config: GatewayConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::new());
    let keeper = Arc::new(TimeKeeper::new(clock, config.time));
    let (store, writer) = crate::store::open(config.store.clone(), keeper.clone(), metrics.clone())
        .context("cannot open the store")?;
    tracing::info!(
        gateway = %config.gateway.id,
        database = %config.store.path.display(),
        version = env!("CARGO_PKG_VERSION"),
        "gateway starting"
    );

    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (http.listen); is another process using it?",
                config.http_listen
            )
        })?;
    tracing::info!(address = %config.http_listen, "local API listening");

    // Without a central office nothing would ever drain the outbox, so nothing is queued.
    let office = config.sync.is_some();
    store
        .transact(move |tx| crate::store::outbox::set_enabled(tx, office))
        .await
        .context("cannot record whether the outbox is used")?;
    if !office {
        tracing::info!(
            "no [sync] section: ticket changes are kept in the store but not queued for a \
             central office"
        );
    }

    let mut tasks = Vec::new();
    if config.detect.enabled {
        let setup = crate::detect::engine::EngineSetup::from_config(&config);
        tasks.push(crate::detect::engine::spawn(
            setup,
            store.clone(),
            keeper.clone(),
            metrics.clone(),
            cancel.clone(),
        ));
    }
    let mut modbus_handle = None;
    let mqtt_configured = config.mqtt.is_some();
    if let Some(setup) = config.modbus {
        let (handle, handles) = crate::modbus::spawn(
            setup,
            store.clone(),
            keeper.clone(),
            metrics.clone(),
            cancel.clone(),
        );
        modbus_handle = Some(handle);
        tasks.extend(handles);
    }
    let intake = config.intake.map(|intake| {
        let (intake, task) = crate::intake::Intake::spawn(
            intake,
            store.clone(),
            keeper.clone(),
            metrics.clone(),
            config.store.path.clone(),
            cancel.clone(),
        );
        tasks.push(task);
        intake
    });
    let dispatcher = config.dispatch.clone().map(|dispatch| {
        crate::dispatch::Dispatcher::new(config.gateway.id.clone(), Arc::new(dispatch))
    });
    if let Some(dispatcher) = &dispatcher {
        let tickets_open = metrics.tickets_open.clone();
        tasks.push(crate::dispatch::spawn(
            dispatcher.clone(),
            store.clone(),
            config.store.path.clone(),
            config.mqtt.clone(),
            keeper.clock().clone(),
            Some(Arc::new(move |open| {
                tickets_open.set(open);
            })),
            cancel.clone(),
        ));
    }
    if let Some(mqtt) = config.mqtt {
        tasks.push(crate::mqtt::spawn_with_intake(
            mqtt,
            store.clone(),
            keeper.clone(),
            metrics.clone(),
            intake.clone(),
            cancel.clone(),
        ));
    }
    let mut sync_health = None;
    if let Some(sync) = config.sync {
        let setup = crate::sync::SyncSetup {
            config: sync,
            gateway: config.gateway.id.clone(),
            db_path: config.store.path.clone(),
            applier: dispatcher
                .clone()
                .map(|d| Arc::new(d) as Arc<dyn crate::sync::ApplyChange>),
        };
        let (task, health) = crate::sync::spawn(
            setup,
            store.clone(),
            keeper.clock().clone(),
            metrics.clone(),
            cancel.clone(),
        )
        .context("cannot start sync with the central office")?;
        tasks.push(task);
        sync_health = Some(health);
    }
    let state = crate::http::ApiState {
        metrics: metrics.clone(),
        keeper: keeper.clone(),
        store: store.clone(),
        modbus: modbus_handle,
        mqtt_configured,
        write_token: config.write_token,
        intake,
        sync: sync_health,
    };
    let api = tokio::spawn(crate::http::serve(listener, state, cancel.clone()));
    tasks.extend(crate::systemd::spawn_watchdog(
        store.clone(),
        cancel.clone(),
    ));
    drop(store);
    crate::systemd::notify_ready(&format!("gateway {} running", config.gateway.id));

    cancel.cancelled().await;
    crate::systemd::notify_stopping();
    let aborts: Vec<_> = tasks.iter().map(|task| task.abort_handle()).collect();
    let wait_all = async {
        for task in tasks {
            let _ = task.await;
        }
        let _ = api.await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, wait_all)
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "ingest tasks did not stop in time; stopping them, and unacknowledged input stays \
             with its sender"
        );
        // Aborting drops their store handles, so that the writer can finish.
        for abort in aborts {
            abort.abort();
        }
    }
    // The writer stops once the last store handle is gone, after committing what is queued.
    let joined = tokio::task::spawn_blocking(move || writer.join());
    if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
        tracing::warn!("the store writer did not stop in time");
    }
    tracing::info!("gateway stopped");
    Ok(())
}
