//! The demo's embedded MQTT broker (rumqttd), on a loopback port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Starts an MQTT 3.1.1 broker on `listen` in threads of its own, and waits until it accepts
/// connections. The broker runs until the process exits: rumqttd has no way to stop it.
pub fn start(listen: SocketAddr) -> anyhow::Result<()> {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 1_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "demo".to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 16 << 20,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("demo".to_string(), server)])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("demo-broker".to_string())
        .spawn(move || {
            if let Err(err) = broker.start() {
                tracing::error!(error = %err, "the demo's MQTT broker stopped");
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("the embedded MQTT broker did not start listening on {listen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
