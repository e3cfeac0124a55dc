//! The load publisher: a rumqttc client that records when each message went out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// QoS 1 messages the publisher may have unacknowledged, and the capacity of its request queue.
const INFLIGHT: u16 = 1000;

/// Send times of the messages published while recording is on.
#[derive(Default)]
struct SendLog {
    recording: AtomicBool,
    stopping: AtomicBool,
    times: Mutex<Vec<Instant>>,
}

/// A connected publisher. Its event loop runs on a Tokio task until [`Publisher::disconnect`].
pub struct Publisher {
    client: AsyncClient,
    log: Arc<SendLog>,
    event_loop: JoinHandle<anyhow::Result<()>>,
}

impl Publisher {
    /// Connects to the broker on loopback `port` with a clean session.
    pub async fn connect(port: u16, client_id: &str) -> anyhow::Result<Publisher> {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_inflight(INFLIGHT);
        let (client, mut event_loop) = AsyncClient::new(options, usize::from(INFLIGHT));
        // Sends each PUBLISH at once, instead of holding small packets back until earlier
        // data is acknowledged (Nagle's algorithm), so send times are the times of the publish.
        let mut network = event_loop.network_options();
        network.set_tcp_nodelay(true);
        event_loop.set_network_options(network);
        let log = Arc::new(SendLog::default());
        let (connected_tx, connected_rx) = oneshot::channel();

        let loop_log = log.clone();
        let event_loop = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match event_loop.poll().await {
                    // rumqttc reports an outgoing PUBLISH after writing and flushing it.
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                        if loop_log.recording.load(Ordering::Relaxed) {
                            let now = Instant::now();
                            loop_log
                                .times
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(now);
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) if loop_log.stopping.load(Ordering::Relaxed) => return Ok(()),
                    Err(err) => {
                        return Err(anyhow!(
                            "the publisher's connection to the broker failed: {err}"
                        ))
                    }
                }
            }
        });

        match tokio::time::timeout(Duration::from_secs(10), connected_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(event_loop
                    .await
                    .context("the publisher's event loop panicked")?
                    .err()
                    .unwrap_or_else(|| anyhow!("the publisher stopped before connecting")));
            }
            Err(_) => bail!("the publisher did not connect to 127.0.0.1:{port} within 10 s"),
        }
        Ok(Publisher {
            client,
            log,
            event_loop,
        })
    }

    pub async fn publish(&self, topic: String, qos: QoS, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, qos, false, payload)
            .await
            .context("cannot queue a PUBLISH")
    }

    /// Starts recording the send time of every message published from now on.
    pub fn start_recording(&self) {
        self.log.recording.store(true, Ordering::Relaxed);
    }

    /// Waits until `count` recorded messages have been sent and returns their send times.
    pub async fn wait_sent(
        &mut self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Instant>> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self
                .log
                .times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len();
            if sent >= count {
                break;
            }
            if self.event_loop.is_finished() {
                let result = (&mut self.event_loop)
                    .await
                    .context("the publisher's event loop panicked")?;
                result?;
                bail!(
                    "the publisher's event loop stopped after sending {sent} of {count} messages"
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the publisher sent only {sent} of {count} messages within {} s",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let times = std::mem::take(&mut *self.log.times.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(times)
    }

    /// Fails when the publisher's connection has failed.
    pub fn ensure_connected(&self) -> anyhow::Result<()> {
        if self.event_loop.is_finished() {
            bail!("the publisher's event loop stopped");
        }
        Ok(())
    }

    pub async fn disconnect(mut self) {
        self.log.stopping.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect().await;
        let stopped = tokio::time::timeout(Duration::from_secs(5), &mut self.event_loop).await;
        if stopped.is_err() {
            eprintln!("the publisher did not disconnect within 5 s; stopping its event loop");
            self.event_loop.abort();
        }
    }
}
