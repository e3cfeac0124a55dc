//! The dispatch task: a pass of [`Dispatcher::step`] on a timer, then the due tenant updates
//! published over MQTT with QoS 1. An update is marked published only on the broker's
//! PUBACK, so an update queued before a crash or a broker outage is sent after it. A PUBACK
//! lost on the way may make the broker deliver an update twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Dispatcher;
use crate::mqtt::MqttConfig;
use crate::store::StoreHandle;
use crate::time::Clock;

/// How long a publish may wait for its PUBACK before it is tried again on a later pass.
const PUBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Updates published per pass.
const PUBLISH_BATCH: i64 = 50;

/// Starts the dispatch task. Without `mqtt`, updates stay queued in the store (and reach the
/// office through the outbox).
pub fn spawn(
    dispatcher: Dispatcher,
    store: StoreHandle,
    db_path: PathBuf,
    mqtt: Option<MqttConfig>,
    clock: Arc<dyn Clock>,
    metrics_open: Option<Arc<dyn Fn(i64) + Send + Sync>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_millis(dispatcher.config().interval_ms);
        let mut publisher = mqtt.and_then(|config| match Publisher::connect(&config) {
            Ok(publisher) => Some(publisher),
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "dispatch cannot set up its MQTT client; updates stay queued"
                );
                None
            }
        });
        tracing::info!("dispatch started");
        loop {
            let now_ms = clock.wall_ms();
            let step = dispatcher.clone();
            match store.transact(move |tx| step.step(tx, now_ms)).await {
                Ok(report) if report != super::StepReport::default() => {
                    tracing::info!(
                        messages = report.messages,
                        requests = report.requests,
                        opened = report.tickets_opened,
                        merged = report.merged,
                        escalated = report.escalated,
                        "dispatch pass"
                    );
                }
                Ok(_) => {}
                Err(crate::store::StoreError::Closed) => break,
                Err(err) => tracing::error!(error = %err, "dispatch pass failed; retrying"),
            }
            if let Some(publisher) = publisher.as_mut() {
                publisher
                    .publish_due(&store, &db_path, clock.wall_ms(), &cancel)
                    .await;
            }
            if let Some(report_open) = &metrics_open {
                if let Ok(conn) = crate::store::connect(&db_path, false) {
                    if let Ok(open) = Dispatcher::open_tickets(&conn) {
                        report_open(open);
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        tracing::info!("dispatch stopped");
    })
}

/// Events the MQTT event loop passes to the publisher.
enum Signal {
    Sent(u16),
    Acked(u16),
}

struct Publisher {
    client: AsyncClient,
    signals: mpsc::UnboundedReceiver<Signal>,
}

impl Publisher {
    /// Creates the client with the gateway's credentials and a client id of its own, and
    /// drives its event loop on a task that reconnects after errors.
    fn connect(config: &MqttConfig) -> Result<Publisher, crate::mqtt::tls::TlsError> {
        let mut options = MqttOptions::new(
            format!("{}-dispatch", config.client_id),
            config.host.clone(),
            config.port,
        );
        options.set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)));
        if let Some(username) = &config.username {
            let password = config.password.as_ref().map(|p| p.expose()).unwrap_or("");
            options.set_credentials(username.clone(), password);
        }
        if let Some(files) = &config.tls {
            let client_config = crate::mqtt::tls::client_config(files)?;
            options.set_transport(Transport::tls_with_config(client_config.into()));
        }
        let (client, eventloop) = AsyncClient::new(options, 64);
        let (tx, signals) = mpsc::unbounded_channel();
        tokio::spawn(drive(eventloop, tx));
        Ok(Publisher { client, signals })
    }

    async fn publish_due(
        &mut self,
        store: &StoreHandle,
        db_path: &std::path::Path,
        now_ms: i64,
        cancel: &CancellationToken,
    ) {
        let due = match due_updates(db_path, now_ms) {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the tenant updates to publish");
                return;
            }
        };
        for (id, topic, text) in due {
            if cancel.is_cancelled() {
                return;
            }
            while self.signals.try_recv().is_ok() {}
            if let Err(err) = self
                .client
                .publish(topic.clone(), QoS::AtLeastOnce, false, text.into_bytes())
                .await
            {
                tracing::warn!(error = %err, update = id, "cannot queue a tenant update for MQTT");
                return;
            }
            if !self.wait_for_puback().await {
                tracing::warn!(
                    update = id,
                    topic = %topic,
                    "no PUBACK for a tenant update; it is sent again later"
                );
                return;
            }
            let result = store
                .transact(move |tx| {
                    tx.execute(
                        "UPDATE tenant_updates SET published_ms = ?2 WHERE id = ?1",
                        rusqlite::params![id, now_ms],
                    )?;
                    Ok(())
                })
                .await;
            if let Err(err) = result {
                tracing::warn!(
                    error = %err,
                    update = id,
                    "cannot mark a tenant update as published"
                );
                return;
            }
            tracing::debug!(update = id, topic = %topic, "tenant update published");
        }
    }

    async fn wait_for_puback(&mut self) -> bool {
        let wait = async {
            let mut sent: Option<u16> = None;
            while let Some(signal) = self.signals.recv().await {
                match signal {
                    Signal::Sent(pkid) => sent = Some(pkid),
                    Signal::Acked(pkid) if sent == Some(pkid) => return true,
                    Signal::Acked(_) => {}
                }
            }
            false
        };
        tokio::time::timeout(PUBACK_TIMEOUT, wait)
            .await
            .unwrap_or(false)
    }
}

async fn drive(mut eventloop: EventLoop, signals: mpsc::UnboundedSender<Signal>) {
    let mut failures = 0u32;
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let _ = signals.send(Signal::Sent(pkid));
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let _ = signals.send(Signal::Acked(ack.pkid));
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                tracing::info!("dispatch connected to the MQTT broker");
            }
            Ok(_) => {}
            Err(err) => {
                if signals.is_closed() {
                    return;
                }
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(
                        error = %err,
                        failures,
                        "dispatch MQTT connection failed; retrying"
                    );
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(10)))).await;
            }
        }
    }
}

/// Unpublished updates whose quiet hours are over, oldest first, each with its topic and
/// its JSON payload `{ticket, template, language, text}`.
fn due_updates(
    db_path: &std::path::Path,
    now_ms: i64,
) -> Result<Vec<(i64, String, String)>, crate::store::StoreError> {
    let conn = crate::store::connect(db_path, false)?;
    let mut statement = conn.prepare(
        "SELECT id, topic, ticket, template, language, text FROM tenant_updates
         WHERE published_ms IS NULL AND due_ms <= ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = statement.query_map(rusqlite::params![now_ms, PUBLISH_BATCH], |row| {
        let payload = serde_json::json!({
            "ticket": row.get::<_, String>(2)?,
            "template": row.get::<_, String>(3)?,
            "language": row.get::<_, String>(4)?,
            "text": row.get::<_, String>(5)?,
        });
        Ok((row.get(0)?, row.get(1)?, payload.to_string()))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
