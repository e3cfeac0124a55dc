//! Helpers of the dispatch tests: a gateway config that uses the shipped vendor, SLA,
//! escalation, template and building files, and rows as intake and detection write them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caretaker::dispatch::Dispatcher;
use caretaker::protocol::{Change, Contact, OfficeChange, TenantRecord};
use rusqlite::{params, Connection};

pub const GATEWAY: &str = "dispatch-test";

/// Returns the repository's `firmware-config` folder.
pub fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config")
}

/// Writes a gateway config whose `[dispatch]` uses the shipped files, and returns its path.
pub fn write_config(dir: &Path, broker_port: u16, http_port: u16, mqtt_extra: &str) -> PathBuf {
    let shipped = shipped();
    let text = format!(
        r#"
[gateway]
id = "{GATEWAY}"

[store]
path = "store.db"
commit_delay_ms = 5

[time]
earliest_valid = "2020-01-01T00:00:00Z"

[log]
level = "caretaker=debug,info"

[http]
listen = "127.0.0.1:{http_port}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "dispatch-test-gateway"
reconnect_min_ms = 100
reconnect_max_ms = 1000
{mqtt_extra}

[[mqtt.subscription]]
filter = "sensors/+/+"
format = "json"
value_path = "v"

[intake]
mqtt_topic = "tenants/{{unit}}/messages"

[dispatch]
vendors = "{vendors}"
sla = "{sla}"
escalation = "{escalation}"
templates = "{templates}"
building = "{building}"
operator_topic = "caretaker/test/operator"
interval_ms = 200
"#,
        vendors = shipped.join("vendors.toml").display(),
        sla = shipped.join("sla.toml").display(),
        escalation = shipped.join("escalation.toml").display(),
        templates = shipped.join("templates").display(),
        building = shipped.join("building.toml").display(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Loads the config and returns the dispatcher it describes.
pub fn dispatcher(config: &Path) -> Dispatcher {
    let config = caretaker::config::load(config).unwrap_or_else(|diags| panic!("{diags}"));
    Dispatcher::new(
        GATEWAY,
        Arc::new(config.dispatch.expect("a [dispatch] section")),
    )
}

/// Opens the store at `db`, creating and migrating it.
pub fn open(db: &Path) -> Connection {
    caretaker::store::connect(db, true).unwrap()
}

/// Adds a directory entry through the same path as a synced office change.
pub fn add_tenant(
    dispatcher: &Dispatcher,
    conn: &mut Connection,
    change_id: i64,
    unit: &str,
    language: &str,
    contacts: &[(&str, &str)],
) {
    let record = TenantRecord {
        unit: unit.into(),
        language: language.into(),
        contacts: contacts
            .iter()
            .map(|(channel, address)| Contact {
                channel: channel.to_string(),
                address: address.to_string(),
            })
            .collect(),
        quiet_from: None,
        quiet_until: None,
        consent: true,
        opt_outs: Vec::new(),
        permission_to_enter: true,
        availability: Vec::new(),
    };
    let change = OfficeChange {
        id: change_id,
        ts_ms: 0,
        actor: "office:test".into(),
        change: Change::TenantUpsert(record),
    };
    let tx = conn.transaction().unwrap();
    dispatcher.apply_office_change(&tx, &change, 0).unwrap();
    tx.commit().unwrap();
}

/// Stores a tenant message with the built-in classifier's verdict, as intake does.
pub fn add_message(conn: &Connection, id: &str, sender: &str, unit: &str, text: &str, at_ms: i64) {
    let triage = caretaker::triage::classify(text);
    conn.execute(
        "INSERT INTO messages (id, received_ts_ms, transport, channel, sender, unit, text,
             language, intent, category, urgency, needs_human, stated_unit, pii, confidence,
             explanation, state, triaged_ts_ms)
         VALUES (?1, ?2, 'mqtt', 'app', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 'triaged', ?2)",
        params![
            id,
            at_ms,
            sender,
            unit,
            text,
            triage.language,
            triage.intent,
            triage.category,
            triage.urgency,
            triage.needs_human,
            triage.unit,
            serde_json::to_string(&triage.pii).unwrap(),
            f64::from(triage.confidence),
            triage.explanation.to_string(),
        ],
    )
    .unwrap();
}

/// Stores an anomaly event and the request it raised, as the detect engine does.
pub fn add_anomaly(
    conn: &Connection,
    asset: &str,
    fault: &str,
    category: &str,
    at_ms: i64,
) -> String {
    let key = format!("{asset}:{fault}");
    conn.execute(
        "INSERT INTO anomaly_events (alarm_key, asset, sensors, detector, fault_kind, score,
             threshold, contributions, opened_ms)
         VALUES (?1, ?2, '[\"substation/supply_temp\"]', 'stream', ?3, 0.93, 0.8, '[]', ?4)",
        params![key, asset, fault, at_ms],
    )
    .unwrap();
    let event = conn.last_insert_rowid();
    let request_id = format!("req-{event}");
    conn.execute(
        "INSERT INTO requests (request_id, alarm_key, event, source, asset, fault_kind,
             severity, category, urgency, audience, summary, explanation, state, opened_ms)
         VALUES (?1, ?2, ?3, 'detector', ?4, ?5, 'warning', ?6, 'routine', 'tenants',
                 'supply temperature falling', '{\"sensors\": [\"substation/supply_temp\"]}',
                 'open', ?7)",
        params![request_id, key, event, asset, fault, category, at_ms],
    )
    .unwrap();
    request_id
}

/// Runs one dispatch pass at `now_ms` in its own transaction.
pub fn step(
    dispatcher: &Dispatcher,
    conn: &mut Connection,
    now_ms: i64,
) -> caretaker::dispatch::StepReport {
    let tx = conn.transaction().unwrap();
    let report = dispatcher.step(&tx, now_ms).unwrap();
    tx.commit().unwrap();
    report
}

/// Returns the first column of every row of `sql`, as text.
pub fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
