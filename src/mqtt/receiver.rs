//! The receive loop: polls rumqttc's event loop, reconnects with backoff, subscribes when the
//! broker has no session, forwards each PUBLISH to the batcher, and on shutdown keeps the
//! connection until the committed messages are acknowledged.
//!
//! A started `EventLoop::poll` is never dropped while connected. rumqttc takes a queued
//! acknowledgement from its request channel first and writes it to the socket afterwards, so
//! a poll dropped in between loses that acknowledgement, and the broker redelivers a message
//! that is already stored. Shutdown therefore waits for the poll in flight to finish; queueing
//! the remaining acknowledgements and the DISCONNECT wakes it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Packet, StateError, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{AckGate, Delivery};
use super::config::MqttConfig;
use super::connection::{Backoff, ConnectionLog};
use crate::metrics::Metrics;

/// A connection that lasted this long counts as stable: the next failure starts the backoff
/// from the minimum again.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Connections in a row dropped for an unsolicited PUBREL before the next one clears the
/// session; see [`Receiver::after_error`].
const UNSOLICITED_DROPS_BEFORE_CLEAN: u32 = 3;

/// How long shutdown waits for the broker to close the connection after the DISCONNECT.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Stage of the receive loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forwarding messages to the batcher.
    Receiving,
    /// Cancelled: new messages are left unacknowledged while the batcher and the acker finish.
    Draining,
    /// Everything committed is acknowledged and the DISCONNECT is queued; waiting for the
    /// broker to close the connection.
    Disconnecting,
}

/// The receive loop's connection state.
pub(super) struct Receiver {
    filters: Vec<SubscribeFilter>,
    log: ConnectionLog,
    backoff: Backoff,
    client: AsyncClient,
    gate: Arc<AckGate>,
    metrics: Arc<Metrics>,
    /// `None` once shutdown started, so that no new message reaches the batcher.
    deliveries: Option<mpsc::Sender<Delivery>>,
    phase: Phase,
    /// When the current connection was established; `None` while disconnected.
    connected_at: Option<Instant>,
    unsolicited_drops: u32,
    /// Whether the batcher and the acker have finished.
    drained: bool,
    disconnect_deadline: Option<tokio::time::Instant>,
}

impl Receiver {
    pub(super) fn new(
        config: &MqttConfig,
        filters: Vec<SubscribeFilter>,
        client: AsyncClient,
        gate: Arc<AckGate>,
        deliveries: mpsc::Sender<Delivery>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Receiver {
            filters,
            log: ConnectionLog::new(config),
            backoff: Backoff::new(
                Duration::from_millis(config.reconnect_min_ms),
                Duration::from_millis(config.reconnect_max_ms),
            ),
            client,
            gate,
            metrics,
            deliveries: Some(deliveries),
            phase: Phase::Receiving,
            connected_at: None,
            unsolicited_drops: 0,
            drained: false,
            disconnect_deadline: None,
        }
    }

    pub(super) fn broker(&self) -> &str {
        self.log.broker()
    }

    /// Receives until `cancel` fires or the batcher stops, then waits for `drained` (the
    /// batcher and the acker finishing) while the connection stays up, and disconnects.
    pub(super) async fn run(
        &mut self,
        eventloop: &mut EventLoop,
        cancel: &CancellationToken,
        drained: impl Future<Output = ()>,
    ) {
        tokio::pin!(drained);
        let mut connection = self.gate.current();
        while let Some(event) = self.next_event(eventloop, cancel, drained.as_mut()).await {
            match event {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let delivery = Delivery {
                        publish,
                        connection,
                    };
                    self.forward(delivery, cancel).await;
                }
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    self.after_connack(eventloop, connack.session_present);
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    self.check_suback(&suback.return_codes)
                }
                Ok(_) => {}
                // The broker closes the connection after a DISCONNECT. Closing it first,
                // with the broker's last packets unread, would send a TCP reset, and the
                // broker would discard the acknowledgements it has not read yet.
                Err(_) if self.phase == Phase::Disconnecting => break,
                Err(err) => {
                    self.forward_buffered(eventloop, connection, cancel).await;
                    self.after_error(eventloop, &err);
                    connection = self.gate.current();
                    if self.phase != Phase::Receiving {
                        break;
                    }
                    let delay = self.backoff.next_delay();
                    self.log.failed(&err, delay);
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.stop_receiving();
        if !self.drained {
            drained.await;
        }
    }

    /// Polls the event loop once, handling cancellation, the end of draining and the
    /// disconnect deadline meanwhile. Returns `None` when the loop should stop polling.
    async fn next_event(
        &mut self,
        eventloop: &mut EventLoop,
        cancel: &CancellationToken,
        mut drained: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Result<Event, ConnectionError>> {
        let poll = eventloop.poll();
        tokio::pin!(poll);
        loop {
            let deadline = self.disconnect_deadline;
            tokio::select! {
                event = &mut poll => return Some(event),
                _ = cancel.cancelled(), if self.phase == Phase::Receiving => {
                    self.stop_receiving();
                    // Without a connection the poll is a connection attempt, which carries no
                    // acknowledgement and can be dropped.
                    self.connected_at?;
                }
                _ = drained.as_mut(), if self.phase == Phase::Draining && !self.drained => {
                    self.drained = true;
                    self.phase = Phase::Disconnecting;
                    if self.client.try_disconnect().is_err() {
                        return None;
                    }
                    self.disconnect_deadline = Some(tokio::time::Instant::now() + DISCONNECT_TIMEOUT);
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    tracing::warn!(
                        broker = %self.log.broker(),
                        timeout_secs = DISCONNECT_TIMEOUT.as_secs(),
                        "the mqtt broker did not close the connection after the DISCONNECT in time"
                    );
                    return None;
                }
            }
        }
    }

    /// Leaves new messages unacknowledged from now on; the broker keeps them for the next run.
    fn stop_receiving(&mut self) {
        self.deliveries = None;
        if self.phase == Phase::Receiving {
            self.phase = Phase::Draining;
        }
    }

    /// Hands a message to the batcher, waiting while its queue is full.
    async fn forward(&mut self, delivery: Delivery, cancel: &CancellationToken) {
        let Some(deliveries) = self.deliveries.clone() else {
            return;
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => self.stop_receiving(),
            sent = deliveries.send(delivery) => {
                if sent.is_err() {
                    tracing::error!("mqtt ingest stops receiving because the batcher has stopped");
                    self.stop_receiving();
                }
            }
        }
    }

    /// Forwards the publishes that rumqttc read in the same batch as a failure.
    ///
    /// rumqttc keeps such packets and returns them after the next CONNACK. They are stored
    /// under the failed connection, so their acknowledgements are dropped, because their
    /// packet ids mean nothing to the next session.
    async fn forward_buffered(
        &mut self,
        eventloop: &mut EventLoop,
        connection: u64,
        cancel: &CancellationToken,
    ) {
        let buffered: Vec<Event> = eventloop.state.events.drain(..).collect();
        for event in buffered {
            if let Event::Incoming(Packet::Publish(publish)) = event {
                let delivery = Delivery {
                    publish,
                    connection,
                };
                self.forward(delivery, cancel).await;
            }
        }
    }

    fn after_connack(&mut self, eventloop: &mut EventLoop, session_present: bool) {
        self.connected_at = Some(Instant::now());
        self.metrics.mqtt_connected.set(1);
        self.log.connected(session_present);
        if eventloop.mqtt_options.clean_session() {
            eventloop.mqtt_options.set_clean_session(false);
            self.unsolicited_drops = 0;
        }
        // The broker keeps the subscriptions of a persistent session. Without one (first
        // start, or a broker restarted without persistence) they must be sent again.
        if !session_present {
            if let Err(err) = self.client.try_subscribe_many(self.filters.clone()) {
                tracing::error!(error = %err, "cannot queue the mqtt subscriptions");
            }
        }
    }

    fn check_suback(&self, codes: &[SubscribeReasonCode]) {
        for (filter, code) in self.filters.iter().zip(codes) {
            match code {
                SubscribeReasonCode::Success(granted) => {
                    tracing::info!(filter = %filter.path, granted_qos = ?granted, "subscribed")
                }
                SubscribeReasonCode::Failure => tracing::error!(
                    filter = %filter.path,
                    "the mqtt broker rejected the subscription; check its access control list for this user"
                ),
            }
        }
    }

    /// Closes the connection's acknowledgements and decides the backoff after an error.
    ///
    /// rumqttc 0.25 clears the packet ids of incoming QoS 2 messages when a connection
    /// drops. If the broker then resends a PUBREL for one of them, rumqttc rejects it as
    /// unsolicited and drops the connection, and the broker resends it on every reconnect.
    /// After a few such drops in a row the next connection clears the session, which ends
    /// the loop but loses the messages the broker had queued for it.
    fn after_error(&mut self, eventloop: &mut EventLoop, err: &ConnectionError) {
        self.gate.close_connection();
        self.metrics.mqtt_connection_errors.inc();
        if let Some(since) = self.connected_at.take() {
            self.metrics.mqtt_connected.set(0);
            if since.elapsed() >= STABLE_CONNECTION {
                self.backoff.reset();
            }
        }
        if matches!(err, ConnectionError::MqttState(StateError::Unsolicited(_))) {
            self.unsolicited_drops += 1;
            if self.unsolicited_drops >= UNSOLICITED_DROPS_BEFORE_CLEAN {
                tracing::error!(
                    broker = %self.log.broker(),
                    drops = self.unsolicited_drops,
                    "the broker keeps resending an unknown QoS 2 release; starting a clean session, which drops the messages it queued for this gateway"
                );
                eventloop.mqtt_options.set_clean_session(true);
            }
        } else {
            self.unsolicited_drops = 0;
        }
    }
}
