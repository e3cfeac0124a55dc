//! Helpers of the dispatch tests: a gateway config that uses the shipped vendor, SLA,
//! escalation, template and building files, rows as intake and detection write them, and
//! [`Flow`], a dispatcher on a fresh store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caretaker::dispatch::{Dispatcher, StepReport};
use caretaker::protocol::{Change, Contact, OfficeChange, TenantRecord, TicketAction};
use caretaker::triage::Triage;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Europe::Copenhagen;
use rusqlite::{params, Connection};

pub const GATEWAY: &str = "dispatch-test";
/// The id of the first ticket a fresh store opens.
pub const FIRST_TICKET: &str = "dispatch-test-000001";

/// Returns the instant of a local time `YYYY-MM-DD HH:MM` in the building's time zone.
pub fn local_ms(text: &str) -> i64 {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    Copenhagen
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .timestamp_millis()
}

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

/// Points the config at a copy of the shipped vendor list, in the config's folder, with
/// `vendors` (`[[vendor]]` tables) appended.
pub fn extend_vendors(config: &Path, vendors: &str) {
    let shipped_list = shipped().join("vendors.toml");
    let mut list = std::fs::read_to_string(&shipped_list).unwrap();
    list.push_str(vendors);
    let copy = config.parent().unwrap().join("vendors.toml");
    std::fs::write(&copy, list).unwrap();
    let text = std::fs::read_to_string(config).unwrap().replace(
        &shipped_list.display().to_string(),
        &copy.display().to_string(),
    );
    std::fs::write(config, text).unwrap();
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
    let change = OfficeChange {
        id: change_id,
        ts_ms: 0,
        actor: "office:test".into(),
        change: Change::TenantUpsert(tenant_record(unit, language, contacts)),
    };
    let tx = conn.transaction().unwrap();
    dispatcher.apply_office_change(&tx, &change, 0).unwrap();
    tx.commit().unwrap();
}

/// Fills the directory of the store at `db` with `(unit, language, sender)` entries, through
/// the office change path of the dispatcher that `config` describes.
pub fn seed_directory(config: &Path, db: &Path, entries: &[(&str, &str, &str)]) {
    let dispatcher = dispatcher(config);
    let mut conn = open(db);
    for (index, (unit, language, sender)) in entries.iter().enumerate() {
        let change_id = index as i64 + 1;
        add_tenant(
            &dispatcher,
            &mut conn,
            change_id,
            unit,
            language,
            &[("sms", sender)],
        );
    }
}

/// Returns a consenting directory entry without quiet hours.
pub fn tenant_record(unit: &str, language: &str, contacts: &[(&str, &str)]) -> TenantRecord {
    TenantRecord {
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
    }
}

/// Stores a tenant message with the built-in classifier's verdict, as intake does.
pub fn add_message(conn: &Connection, id: &str, sender: &str, unit: &str, text: &str, at_ms: i64) {
    let triage = caretaker::triage::classify(text);
    add_triaged(conn, id, sender, unit, text, &triage, at_ms);
}

/// Stores a tenant message with the verdict `triage`, as intake does.
pub fn add_triaged(
    conn: &Connection,
    id: &str,
    sender: &str,
    unit: &str,
    text: &str,
    triage: &Triage,
    at_ms: i64,
) {
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

/// A dispatcher with the shipped files on a fresh store in a temporary folder.
pub struct Flow {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub dispatcher: Dispatcher,
    pub conn: Connection,
}

impl Flow {
    pub fn new() -> Flow {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), 1883, 9999, "");
        let db = dir.path().join("store.db");
        Flow {
            dispatcher: dispatcher(&config),
            conn: open(&db),
            db,
            dir,
        }
    }

    /// Adds a directory entry with change id `change_id`.
    pub fn tenant(
        &mut self,
        change_id: i64,
        unit: &str,
        language: &str,
        contacts: &[(&str, &str)],
    ) {
        add_tenant(
            &self.dispatcher,
            &mut self.conn,
            change_id,
            unit,
            language,
            contacts,
        );
    }

    /// Stores a message with the built-in classifier's verdict.
    pub fn message(&self, id: &str, sender: &str, unit: &str, text: &str, at_ms: i64) {
        add_message(&self.conn, id, sender, unit, text, at_ms);
    }

    /// Stores a message with the verdict `triage`.
    pub fn triaged(
        &self,
        id: &str,
        sender: &str,
        unit: &str,
        text: &str,
        triage: &Triage,
        at_ms: i64,
    ) {
        add_triaged(&self.conn, id, sender, unit, text, triage, at_ms);
    }

    /// Stores an anomaly and its request, returning the request id.
    pub fn anomaly(&self, asset: &str, fault: &str, category: &str, at_ms: i64) -> String {
        add_anomaly(&self.conn, asset, fault, category, at_ms)
    }

    /// Runs one dispatch pass at `now_ms`.
    pub fn step(&mut self, now_ms: i64) -> StepReport {
        step(&self.dispatcher, &mut self.conn, now_ms)
    }

    /// Applies one office change at `now_ms` in its own transaction.
    pub fn apply(&mut self, change: &OfficeChange, now_ms: i64) {
        let tx = self.conn.transaction().unwrap();
        self.dispatcher
            .apply_office_change(&tx, change, now_ms)
            .unwrap();
        tx.commit().unwrap();
    }

    /// Closes the store connection, so that a `caretaker` subcommand can use the file alone.
    pub fn close(&mut self) {
        self.conn = Connection::open_in_memory().unwrap();
    }

    /// Opens the store again after [`Flow::close`].
    pub fn reopen(&mut self) {
        self.conn = open(&self.db);
    }

    /// Returns the first column of the only row of `sql`, as text.
    pub fn single(&self, sql: &str) -> String {
        self.conn
            .query_row(sql, [], |row| row.get::<_, String>(0))
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// Returns the first column of every row of `sql`, as text.
    pub fn strings(&self, sql: &str) -> Vec<String> {
        strings(&self.conn, sql)
    }

    /// Returns the integer that `sql` selects.
    pub fn number(&self, sql: &str) -> i64 {
        self.conn
            .query_row(sql, [], |row| row.get::<_, i64>(0))
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }
}

/// Returns a vendor's or the office's change to a ticket, without vendor, slot or note.
pub fn ticket_change(id: i64, actor: &str, ticket: &str, action: TicketAction) -> OfficeChange {
    OfficeChange {
        id,
        ts_ms: 0,
        actor: actor.into(),
        change: Change::Ticket {
            ticket: ticket.into(),
            action,
            vendor: None,
            slot_start_ms: None,
            slot_end_ms: None,
            note: None,
        },
    }
}
