//! The MQTT connection: a persistent session with manual acknowledgements.
//!
//! Three tasks share the work, so that the event loop keeps being polled (and keep-alive pings
//! keep flowing) while batches wait for their commit:
//!
//! 1. the receive loop ([`Receiver`]) polls rumqttc's event loop, reconnects with backoff,
//!    subscribes when the broker has no session, and forwards each PUBLISH to the batcher;
//! 2. the batcher takes every message that is ready (up to [`MAX_BATCH_MESSAGES`]), decodes
//!    them into one store batch and submits it;
//! 3. the acker awaits the commits in submission order and only then acknowledges the QoS 1
//!    and 2 messages of each batch to the broker.
//!
//! Acknowledgements are tied to the connection that delivered the message. Packet ids are
//! only meaningful within a session, and after a broker restart without persistence they
//! start again at 1, so an acknowledgement left over from an earlier connection could confirm
//! a different, uncommitted message. [`AckGate`] drops such acknowledgements. A broker that
//! kept the session redelivers those messages, and the store drops the duplicates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, NetworkOptions, Publish, QoS, SubscribeFilter, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{MqttConfig, MQTT_MAX_PAYLOAD_BYTES};
use super::connection::PayloadLog;
use super::ingest::{Ingest, Outcome};
use super::receiver::Receiver;
use super::tls::{self, TlsError};
use crate::intake::{Intake, MqttOutcome, Untriaged};
use crate::metrics::Metrics;
use crate::store::{Batch, Pending, StoreHandle};
use crate::time::TimeKeeper;

/// Maximum number of messages in one store batch.
const MAX_BATCH_MESSAGES: usize = 500;

/// Messages waiting for the batcher before the receive loop stops reading from the broker.
const DELIVERY_QUEUE: usize = 4096;

/// Submitted batches waiting for their commit before the batcher waits.
const TICKET_QUEUE: usize = 64;

/// Capacity of rumqttc's request queue. A broker has at most 65535 unacknowledged messages
/// per session (one per packet id), so acknowledgements always fit.
const REQUEST_QUEUE: usize = 65_536 + 64;

/// Starts MQTT ingest. It runs until `cancel` fires, then stops reading, waits for the
/// pending commits, acknowledges them and disconnects.
pub fn spawn(
    config: MqttConfig,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    spawn_with_intake(config, store, keeper, metrics, None, cancel)
}

/// Starts MQTT ingest like [`spawn`], and with `intake` also subscribes to the tenant message
/// topic and hands its messages to the intake. Messages and readings share the batches, so a
/// message is acknowledged after its commit like a reading.
pub fn spawn_with_intake(
    config: MqttConfig,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    intake: Option<Arc<Intake>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(config, store, keeper, metrics, intake, cancel))
}

/// One message on its way to the batcher, with the connection it arrived on.
pub(super) struct Delivery {
    pub(super) publish: Publish,
    pub(super) connection: u64,
}

/// Packet id and QoS of one message, with the connection that delivered it.
#[derive(Debug, Clone, Copy)]
struct AckToken {
    qos: QoS,
    pkid: u16,
    connection: u64,
}

/// A submitted batch and the messages to acknowledge once it is committed.
struct Ticket {
    pending: Pending,
    acks: Vec<AckToken>,
    /// Tenant messages of the batch, for triage after the commit.
    messages: Vec<Untriaged>,
}

/// Numbers the connections, so that acknowledgements from an earlier one are dropped.
#[derive(Debug, Default)]
pub(super) struct AckGate {
    connection: Mutex<u64>,
}

impl AckGate {
    pub(super) fn current(&self) -> u64 {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the current connection as gone.
    pub(super) fn close_connection(&self) {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    /// Queues acknowledgements for the messages that arrived on the current connection.
    ///
    /// The lock is held while queueing so that [`AckGate::close_connection`] cannot slip in
    /// between the check and the queueing. rumqttc drops queued PUBACKs when a connection
    /// fails, and any that were queued after that are sent on the next connection before the
    /// gateway subscribes again, while the broker has no message of a new session in flight yet.
    fn ack(&self, client: &AsyncClient, tokens: &[AckToken]) {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        for token in tokens {
            if token.connection != *connection {
                continue;
            }
            let mut publish = Publish::new("", token.qos, Vec::new());
            publish.pkid = token.pkid;
            if let Err(err) = client.try_ack(&publish) {
                tracing::error!(
                    error = %err,
                    pkid = token.pkid,
                    "cannot queue an mqtt acknowledgement; the broker redelivers the message after a reconnect"
                );
            }
        }
    }
}

async fn run(
    config: MqttConfig,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
    metrics: Arc<Metrics>,
    intake: Option<Arc<Intake>>,
    cancel: CancellationToken,
) {
    let options = match connection_options(&config) {
        Ok(options) => options,
        Err(err) => {
            tracing::error!(error = %err, "mqtt ingest not started: cannot load the TLS files of [mqtt.tls]");
            return;
        }
    };
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);

    let gate = Arc::new(AckGate::default());
    let (delivery_tx, delivery_rx) = mpsc::channel(DELIVERY_QUEUE);
    let (ticket_tx, ticket_rx) = mpsc::channel(TICKET_QUEUE);
    let batcher = tokio::spawn(batch_deliveries(
        delivery_rx,
        ticket_tx,
        Ingest::new(&config),
        intake.clone(),
        store,
        keeper,
    ));
    let acker = tokio::spawn(ack_committed(
        ticket_rx,
        client.clone(),
        gate.clone(),
        intake.clone(),
    ));

    let mut filters: Vec<SubscribeFilter> = config
        .subscriptions
        .iter()
        .map(|s| SubscribeFilter::new(s.filter.clone(), qos(s.qos)))
        .collect();
    if let Some(filter) = intake.as_ref().and_then(|intake| intake.mqtt_filter()) {
        filters.push(SubscribeFilter::new(filter, QoS::AtLeastOnce));
    }
    let mut receiver = Receiver::new(&config, filters, client, gate, delivery_tx, metrics.clone());
    let drained = async move {
        let _ = batcher.await;
        let _ = acker.await;
    };
    receiver.run(&mut eventloop, &cancel, drained).await;
    metrics.mqtt_connected.set(0);
    tracing::info!(broker = %receiver.broker(), "mqtt ingest stopped");
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Builds rumqttc's options. Never log the result with `{:?}`: it prints the password.
fn connection_options(config: &MqttConfig) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_keep_alive(Duration::from_secs(config.keep_alive_secs));
    // Accept every packet the protocol allows: a packet above rumqttc's limit would drop the
    // connection, and the broker would redeliver it forever. Oversized payloads are
    // quarantined by `max_payload_bytes` instead.
    options.set_max_packet_size(MQTT_MAX_PAYLOAD_BYTES + 5, 64 * 1024);
    if let Some(username) = &config.username {
        let password = config.password.as_ref().map(|p| p.expose()).unwrap_or("");
        options.set_credentials(username.clone(), password);
    }
    if let Some(files) = &config.tls {
        let client_config = tls::client_config(files)?;
        options.set_transport(Transport::tls_with_config(client_config.into()));
    }
    Ok(options)
}

/// Decodes every ready message into one batch, submits it and passes it on for acknowledging.
async fn batch_deliveries(
    mut deliveries: mpsc::Receiver<Delivery>,
    tickets: mpsc::Sender<Ticket>,
    ingest: Ingest,
    intake: Option<Arc<Intake>>,
    store: StoreHandle,
    keeper: Arc<TimeKeeper>,
) {
    let mut log = PayloadLog::new();
    let mut ready = Vec::with_capacity(MAX_BATCH_MESSAGES);
    while deliveries.recv_many(&mut ready, MAX_BATCH_MESSAGES).await > 0 {
        let mut batch = Batch::default();
        let mut acks = Vec::new();
        let mut messages = Vec::new();
        for Delivery {
            publish,
            connection,
        } in ready.drain(..)
        {
            let received = keeper.receive_time();
            let message = intake.as_ref().and_then(|intake| {
                // A retained message is replayed on every new subscription, so it counts as a
                // redelivery for the duplicate check, like one with the DUP flag.
                intake.mqtt_message(
                    &publish.topic,
                    &publish.payload,
                    publish.dup || publish.retain,
                    received,
                    &mut batch,
                )
            });
            if let Some(outcome) = message {
                if let MqttOutcome::Accepted(untriaged) = outcome {
                    messages.push(untriaged);
                }
                if publish.qos != QoS::AtMostOnce {
                    acks.push(AckToken {
                        qos: publish.qos,
                        pkid: publish.pkid,
                        connection,
                    });
                }
                continue;
            }
            let outcome = ingest.message(
                &publish.topic,
                &publish.payload,
                publish.retain,
                received,
                &keeper,
                &mut batch,
            );
            match &outcome {
                Outcome::Quarantined { reason } => log.quarantined(&publish.topic, reason),
                Outcome::Stored {
                    missing,
                    missing_reasons: Some(reason),
                    ..
                } => log.missing_values(&publish.topic, *missing, reason),
                _ => {}
            }
            if publish.qos != QoS::AtMostOnce {
                acks.push(AckToken {
                    qos: publish.qos,
                    pkid: publish.pkid,
                    connection,
                });
            }
        }
        let pending = match store.submit(batch).await {
            Ok(pending) => pending,
            Err(err) => {
                tracing::error!(error = %err, "mqtt ingest stops because the store writer has stopped");
                return;
            }
        };
        let ticket = Ticket {
            pending,
            acks,
            messages,
        };
        if tickets.send(ticket).await.is_err() {
            return;
        }
    }
}

/// Awaits each batch's commit in order, then acknowledges its messages.
async fn ack_committed(
    mut tickets: mpsc::Receiver<Ticket>,
    client: AsyncClient,
    gate: Arc<AckGate>,
    intake: Option<Arc<Intake>>,
) {
    while let Some(ticket) = tickets.recv().await {
        match ticket.pending.await {
            Ok(_) => {
                gate.ack(&client, &ticket.acks);
                if let Some(intake) = &intake {
                    intake.committed(ticket.messages);
                }
            }
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "an mqtt batch was not committed; its messages stay unacknowledged and the broker redelivers them after a reconnect"
                );
                return;
            }
        }
    }
}
