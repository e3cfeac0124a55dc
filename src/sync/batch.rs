//! Batches of outbox events for one `POST /v1/events` request: in sequence order, within the
//! office's body limit, and never past an event of a ticket that is still waiting.

use std::collections::HashSet;

use uuid::Uuid;

use crate::protocol::{Envelope, EventKind};

/// One outbox row, with its envelope serialized as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub seq: i64,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub ticket: Option<String>,
    /// The envelope as JSON text.
    pub json: String,
}

impl Pending {
    /// Serializes the row's envelope. Fails when the stored payload is not JSON.
    pub fn new(
        gateway: &str,
        seq: i64,
        event_id: Uuid,
        kind: EventKind,
        ticket: Option<String>,
        ts_ms: i64,
        payload: &str,
    ) -> Result<Pending, serde_json::Error> {
        let envelope = Envelope {
            event_id,
            gateway: gateway.to_string(),
            seq,
            kind,
            ticket: ticket.clone(),
            ts_ms,
            payload: serde_json::from_str(payload)?,
        };
        Ok(Pending {
            seq,
            event_id,
            kind,
            ticket,
            json: serde_json::to_string(&envelope)?,
        })
    }
}

/// Builds request bodies `{"gateway": ID, "events": [...]}` and computes their exact size.
#[derive(Debug, Clone)]
pub struct BodyWriter {
    gateway_json: String,
}

impl BodyWriter {
    pub fn new(gateway: &str) -> BodyWriter {
        BodyWriter {
            gateway_json: serde_json::Value::from(gateway).to_string(),
        }
    }

    /// Size in bytes of a body without events.
    fn overhead(&self) -> usize {
        r#"{"gateway":,"events":[]}"#.len() + self.gateway_json.len()
    }

    /// Size in bytes of the body that carries `events`.
    pub fn size<'a>(&self, events: impl IntoIterator<Item = &'a Pending>) -> usize {
        let mut size = self.overhead();
        for (index, event) in events.into_iter().enumerate() {
            size += event.json.len() + usize::from(index > 0);
        }
        size
    }

    pub fn body<'a>(&self, events: impl IntoIterator<Item = &'a Pending>) -> String {
        let mut body = String::with_capacity(256);
        body.push_str(r#"{"gateway":"#);
        body.push_str(&self.gateway_json);
        body.push_str(r#","events":["#);
        for (index, event) in events.into_iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            body.push_str(&event.json);
        }
        body.push_str("]}");
        body
    }
}

/// The decision for a run of pending events.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// Indices of the events for the next request, in sequence order.
    pub batch: Vec<usize>,
    /// Indices of events that exceed the body limit even alone.
    pub too_large: Vec<usize>,
    /// Sequence number of the last event this plan decided about: sent, too large or held
    /// back behind its ticket. The next plan starts after it.
    pub through_seq: Option<i64>,
}

/// Takes events in sequence order into one batch until the next one would exceed
/// `max_body_bytes` or `max_events`. Events of a ticket in `blocked` are passed over and stay
/// queued; an event too large on its own is listed in `too_large` instead.
pub fn plan(
    events: &[Pending],
    writer: &BodyWriter,
    blocked: &HashSet<String>,
    max_body_bytes: usize,
    max_events: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut size = writer.overhead();
    for (index, event) in events.iter().enumerate() {
        if event
            .ticket
            .as_ref()
            .is_some_and(|ticket| blocked.contains(ticket))
        {
            plan.through_seq = Some(event.seq);
            continue;
        }
        if writer.overhead() + event.json.len() > max_body_bytes {
            plan.too_large.push(index);
            plan.through_seq = Some(event.seq);
            continue;
        }
        let added = event.json.len() + usize::from(!plan.batch.is_empty());
        if plan.batch.len() >= max_events || size + added > max_body_bytes {
            break;
        }
        size += added;
        plan.batch.push(index);
        plan.through_seq = Some(event.seq);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, ticket: Option<&str>, payload_bytes: usize) -> Pending {
        let payload = serde_json::json!({ "note": "x".repeat(payload_bytes) }).to_string();
        Pending::new(
            "gw-1",
            seq,
            Uuid::now_v7(),
            EventKind::Ticket,
            ticket.map(str::to_string),
            1_000,
            &payload,
        )
        .unwrap()
    }

    #[test]
    fn body_size_matches_body_text() {
        let writer = BodyWriter::new("gw-\"1\"");
        let events = vec![event(1, Some("a"), 10), event(2, None, 30)];
        assert_eq!(writer.size(&events), writer.body(&events).len());
        assert_eq!(writer.size(&[]), writer.body(&[]).len());
        let body: serde_json::Value = serde_json::from_str(&writer.body(&events)).unwrap();
        assert_eq!(body["events"].as_array().unwrap().len(), 2);
        assert_eq!(body["gateway"], "gw-\"1\"");
    }

    #[test]
    fn batch_stops_at_body_limit() {
        let writer = BodyWriter::new("gw-1");
        let events: Vec<Pending> = (1..=10).map(|seq| event(seq, Some("t"), 50)).collect();
        let limit = writer.size(&events[..3]);
        let plan = plan(&events, &writer, &HashSet::new(), limit, 100);
        assert_eq!(plan.batch, vec![0, 1, 2]);
        assert!(plan.too_large.is_empty());
        assert_eq!(plan.through_seq, Some(3));
    }

    #[test]
    fn batch_stops_at_event_count() {
        let writer = BodyWriter::new("gw-1");
        let events: Vec<Pending> = (1..=10).map(|seq| event(seq, None, 5)).collect();
        let plan = plan(&events, &writer, &HashSet::new(), 1 << 20, 4);
        assert_eq!(plan.batch, vec![0, 1, 2, 3]);
    }

    #[test]
    fn oversized_event_is_listed_not_sent() {
        let writer = BodyWriter::new("gw-1");
        let events = vec![
            event(1, Some("a"), 10),
            event(2, Some("b"), 500),
            event(3, Some("c"), 10),
        ];
        let limit = writer.size(&events[..1]) * 2;
        let plan = plan(&events, &writer, &HashSet::new(), limit, 100);
        assert_eq!(plan.batch, vec![0, 2]);
        assert_eq!(plan.too_large, vec![1]);
        assert_eq!(plan.through_seq, Some(3));
    }

    #[test]
    fn blocked_ticket_is_passed_over() {
        let writer = BodyWriter::new("gw-1");
        let events = vec![
            event(1, Some("a"), 10),
            event(2, Some("b"), 10),
            event(3, Some("a"), 10),
            event(4, None, 10),
        ];
        let blocked: HashSet<String> = ["a".to_string()].into();
        let plan = plan(&events, &writer, &blocked, 1 << 20, 100);
        assert_eq!(plan.batch, vec![1, 3]);
    }

    #[test]
    fn tight_limit_sends_one_per_request() {
        let writer = BodyWriter::new("gw-1");
        let events: Vec<Pending> = (1..=5).map(|seq| event(seq, Some("t"), 40)).collect();
        let limit = events.iter().map(|e| writer.size([e])).max().unwrap();
        let mut start = 0;
        let mut requests = 0;
        while start < events.len() {
            let plan = plan(&events[start..], &writer, &HashSet::new(), limit, 100);
            assert!(!plan.batch.is_empty());
            let batch: Vec<&Pending> = plan.batch.iter().map(|&i| &events[start + i]).collect();
            assert!(writer.size(batch.iter().copied()) <= limit);
            start += plan.batch.len();
            requests += 1;
        }
        assert_eq!(requests, 5);
    }
}
