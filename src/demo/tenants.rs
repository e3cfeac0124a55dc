//! The demo's tenant messages, in Danish and English, sent over MQTT and the HTTP intake at
//! fixed shares of the simulated span.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a message reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Published on `tenants/<unit>/messages` from the tenant app.
    Mqtt,
    /// Posted to `POST /v1/messages` by the SMS bridge.
    Http,
}

/// One scripted tenant message.
#[derive(Debug, Clone, Copy)]
pub struct ScriptedMessage {
    /// Share of the simulated span after which it is sent.
    pub at_share: f64,
    pub route: Route,
    pub unit: &'static str,
    pub sender: &'static str,
    /// `da` or `en`, the tenant's language in the demo's tenant directory.
    pub language: &'static str,
    pub text: &'static str,
}

/// The fixed script. The heating complaints come while the pump's bearing wear and the
/// substation's sticking valve are under way, so that dispatch can merge them with the
/// detector's tickets. The gas smell must reach a human.
pub const SCRIPT: [ScriptedMessage; 7] = [
    ScriptedMessage {
        at_share: 0.08,
        route: Route::Mqtt,
        unit: "2.tv",
        sender: "app-user-2tv",
        language: "da",
        text: "Hej, køkkenhanen drypper hele tiden. Kan I sende en VVS'er?",
    },
    ScriptedMessage {
        at_share: 0.18,
        route: Route::Http,
        unit: "1.th",
        sender: "+4520000101",
        language: "en",
        text: "The light in the stairwell on the 3rd floor has been broken for two days.",
    },
    ScriptedMessage {
        at_share: 0.6,
        route: Route::Mqtt,
        unit: "3.tv",
        sender: "app-user-3tv",
        language: "da",
        text: "Radiatorerne er kolde i hele lejligheden, og vi fryser.",
    },
    ScriptedMessage {
        at_share: 0.64,
        route: Route::Http,
        unit: "4.th",
        sender: "+4520000404",
        language: "en",
        text: "No heating in my flat since this morning, all radiators are cold.",
    },
    ScriptedMessage {
        at_share: 0.72,
        route: Route::Mqtt,
        unit: "2.th",
        sender: "app-user-2th",
        language: "da",
        text: "Der lugter kraftigt af gas i opgangen! Kom hurtigt!",
    },
    ScriptedMessage {
        at_share: 0.8,
        route: Route::Http,
        unit: "1.tv",
        sender: "+4520000111",
        language: "en",
        text: "Water is leaking through the bathroom ceiling, it is getting worse.",
    },
    ScriptedMessage {
        at_share: 0.88,
        route: Route::Mqtt,
        unit: "5.tv",
        sender: "app-user-5tv",
        language: "da",
        text: "Tak for den hurtige hjælp med hoveddøren i går.",
    },
];

/// Where and how the HTTP route posts.
#[derive(Debug, Clone)]
pub struct HttpIntake {
    pub address: SocketAddr,
    pub token: String,
}

/// Sends one scripted message. Returns an error naming the route when it was not accepted.
pub async fn send(
    message: &ScriptedMessage,
    mqtt: &AsyncClient,
    http: &HttpIntake,
) -> anyhow::Result<()> {
    match message.route {
        Route::Mqtt => {
            let payload = json!({
                "text": message.text,
                "sender": message.sender,
                "channel": "app",
            });
            mqtt.publish(
                format!("tenants/{}/messages", message.unit),
                QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .await
            .map_err(|err| anyhow::anyhow!("cannot publish a tenant message on MQTT: {err}"))
        }
        Route::Http => {
            let body = json!({
                "text": message.text,
                "sender": message.sender,
                "channel": "sms",
                "unit": message.unit,
            });
            let status = post_json(http, "/v1/messages", &body.to_string()).await?;
            if status == 202 {
                Ok(())
            } else {
                anyhow::bail!("POST /v1/messages returned HTTP {status}, expected 202")
            }
        }
    }
}

/// Posts `body` with the bridge's bearer token and returns the HTTP status. The gateway's
/// local API speaks HTTP/1.1 on loopback, so a minimal client is enough.
async fn post_json(http: &HttpIntake, path: &str, body: &str) -> anyhow::Result<u16> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(http.address).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            http.address,
            http.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("POST {path} to {} timed out", http.address))?
        .map_err(|err| anyhow::anyhow!("POST {path} to {} failed: {err}", http.address))?;
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("POST {path} returned no HTTP status line"))
}
