//! Schema migrations, applied in order at open. `PRAGMA user_version` holds the number of
//! migrations applied, so a database from an older release is brought up to date in place.

use rusqlite::Connection;

/// Each entry is one migration; never edit a released one, append a new one instead.
const MIGRATIONS: &[&str] = &[
    // 1: readings, rollups, quarantine and audit.
    "
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- One row per sensor, so that each reading stores a small integer instead of its names.
    CREATE TABLE sensors (
        id INTEGER PRIMARY KEY,
        sensor_id TEXT NOT NULL UNIQUE,
        asset TEXT NOT NULL,
        metric TEXT NOT NULL,
        unit TEXT NOT NULL,
        source TEXT NOT NULL
    );

    -- Raw readings in insertion order (the id), which is also eviction order. AUTOINCREMENT
    -- keeps ids from being reused after eviction empties the table, which would put new rows
    -- below the rollup watermark.
    -- quality: 0 good, 1 stale, 2 bad, 3 uncertain-time.
    -- uncertain_run is the run whose wall clock was not trusted when the row arrived; its
    -- receive time is re-based when that run's clock steps past the floor.
    CREATE TABLE readings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sensor INTEGER NOT NULL REFERENCES sensors(id),
        source_ts_ms INTEGER NOT NULL,
        receive_ts_ms INTEGER NOT NULL,
        value REAL,
        text_value TEXT,
        quality INTEGER NOT NULL,
        detail TEXT,
        uncertain_run INTEGER
    );
    -- Time first, so that new readings of every sensor land on the same rightmost index
    -- pages and a commit rewrites few pages.
    CREATE UNIQUE INDEX readings_time_sensor ON readings(source_ts_ms, sensor);

    -- Summaries of good numeric readings per minute and per hour of source time.
    CREATE TABLE rollup_minute (
        sensor INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        sum REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (sensor, bucket_ms)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_hour (
        sensor INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        sum REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (sensor, bucket_ms)
    ) WITHOUT ROWID;

    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        origin TEXT NOT NULL,
        reason TEXT NOT NULL,
        raw BLOB NOT NULL,
        receive_ts_ms INTEGER NOT NULL
    );

    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    -- Rows removed by retention or the size cap, per kind of row.
    CREATE TABLE evictions (
        kind TEXT PRIMARY KEY,
        rows INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE VIEW readings_view AS
    SELECT r.id, s.sensor_id, s.asset, s.metric, s.unit, s.source, r.value, r.text_value,
           CASE r.quality WHEN 0 THEN 'good' WHEN 1 THEN 'stale' WHEN 2 THEN 'bad'
                          ELSE 'uncertain-time' END AS quality,
           r.source_ts_ms, r.receive_ts_ms, r.detail
    FROM readings r JOIN sensors s ON s.id = r.sensor;
    ",
    // 2: anomaly events and the maintenance requests that detection and health checks raise.
    "
    -- One row per alarm episode: opened when a detector's score stays above its threshold,
    -- closed when it falls below the clear level. alarm_key names the condition (asset,
    -- detector, fault kind and sensor), so that one condition has at most one open event.
    -- sensors is a JSON array of sensor ids; contributions is a JSON array of objects with
    -- sensor, value and contribution.
    CREATE TABLE anomaly_events (
        id INTEGER PRIMARY KEY,
        alarm_key TEXT NOT NULL,
        asset TEXT NOT NULL,
        sensors TEXT NOT NULL,
        detector TEXT NOT NULL,
        fault_kind TEXT NOT NULL,
        score REAL NOT NULL,
        threshold REAL NOT NULL,
        contributions TEXT NOT NULL,
        opened_ms INTEGER NOT NULL,
        closed_ms INTEGER
    );
    CREATE UNIQUE INDEX anomaly_events_open ON anomaly_events(alarm_key)
        WHERE closed_ms IS NULL;
    CREATE INDEX anomaly_events_asset ON anomaly_events(asset, opened_ms);

    -- Structured requests that enter triage: from detectors (source 'detector' or
    -- 'forecast') and from the gateway's own health (source 'health').
    -- state: 'open' or 'closed'. At most one open request per alarm_key.
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE,
        alarm_key TEXT NOT NULL,
        event INTEGER REFERENCES anomaly_events(id),
        source TEXT NOT NULL,
        asset TEXT NOT NULL,
        fault_kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        category TEXT NOT NULL,
        urgency TEXT NOT NULL,
        audience TEXT NOT NULL,
        summary TEXT NOT NULL,
        forecast_ms INTEGER,
        forecast_uncertainty_ms INTEGER,
        explanation TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
        opened_ms INTEGER NOT NULL,
        closed_ms INTEGER
    );
    CREATE UNIQUE INDEX requests_open ON requests(alarm_key) WHERE state = 'open';
    CREATE INDEX requests_state ON requests(state, opened_ms);
    ",
    // 3: tenant messages from MQTT and HTTP, with their triage.
    "
    -- id is a ULID assigned by the gateway. received_ts_ms is the gateway's receive time and
    -- sent_ts_ms the payload's received_at, when given. uncertain_run is the run whose wall
    -- clock was not trusted on receipt, as for readings; received_ts_ms is re-based when
    -- that run's clock steps past the floor.
    -- state: 'received' until the classifier's verdict is written, then 'triaged'.
    -- pii is a JSON array of kinds, explanation a JSON object.
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        received_ts_ms INTEGER NOT NULL,
        uncertain_run INTEGER,
        sent_ts_ms INTEGER,
        transport TEXT NOT NULL,
        bridge TEXT,
        channel TEXT NOT NULL,
        sender TEXT NOT NULL,
        unit TEXT,
        text TEXT NOT NULL,
        language TEXT,
        intent TEXT,
        category TEXT,
        urgency TEXT,
        needs_human INTEGER,
        stated_unit TEXT,
        pii TEXT,
        confidence REAL,
        explanation TEXT,
        state TEXT NOT NULL CHECK (state IN ('received', 'triaged')),
        triaged_ts_ms INTEGER
    ) WITHOUT ROWID;
    -- Duplicate checks look a message up by sender and received_at.
    CREATE INDEX messages_sender ON messages(sender, sent_ts_ms);
    CREATE INDEX messages_received ON messages(received_ts_ms);
    CREATE INDEX messages_untriaged ON messages(id) WHERE state = 'received';
    ",
    // 4: the outbox of events for the central office.
    "
    -- seq is the gateway's sequence of events; event_id (a UUIDv7) is the idempotency key.
    -- kind: ticket, tenant_update, anomaly or telemetry; telemetry rows go first when the
    -- outbox is full and ticket rows never. payload is the event's JSON payload.
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL
            CHECK (kind IN ('ticket', 'tenant_update', 'anomaly', 'audit', 'telemetry')),
        ticket TEXT,
        ts_ms INTEGER NOT NULL,
        payload TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX outbox_ticket ON outbox(ticket, seq);
    CREATE INDEX outbox_kind ON outbox(kind, seq);
    ",
    // 5: tickets, their history, the tenant directory and dispatch.
    "
    -- The audit log becomes a hash chain: hash = SHA-256 of prev_hash and the row's fields.
    -- Rows from before this migration keep NULL in both.
    ALTER TABLE audit ADD COLUMN prev_hash TEXT;
    ALTER TABLE audit ADD COLUMN hash TEXT;
    CREATE INDEX audit_subject ON audit(subject, id);

    -- id is GATEWAYID-NNNNNN; number is the gateway's ticket number.
    -- state: new, triaged, dispatched, scheduled, in_progress, resolved, closed, escalated,
    -- cancelled. fault is the merge key: the fault kind of a request or the category of a
    -- message. automation_stopped is 1 once a human has taken over.
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        number INTEGER NOT NULL UNIQUE,
        state TEXT NOT NULL,
        category TEXT NOT NULL,
        urgency TEXT NOT NULL,
        confidence REAL NOT NULL,
        needs_human INTEGER NOT NULL,
        escalation_reason TEXT,
        automation_stopped INTEGER NOT NULL DEFAULT 0,
        unit TEXT,
        asset TEXT,
        fault TEXT NOT NULL,
        summary TEXT NOT NULL,
        language TEXT NOT NULL,
        vendor TEXT,
        slot_start_ms INTEGER,
        slot_end_ms INTEGER,
        ack_due_ms INTEGER,
        onsite_due_ms INTEGER,
        resolve_due_ms INTEGER,
        acked_ms INTEGER,
        sla_escalated INTEGER NOT NULL DEFAULT 0,
        opened_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        closed_ms INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX tickets_state ON tickets(state, opened_ms);
    CREATE INDEX tickets_unit ON tickets(unit, fault);
    CREATE INDEX tickets_asset ON tickets(asset, state);

    -- seq counts per ticket from 1, so the order never depends on the clock.
    CREATE TABLE ticket_history (
        ticket TEXT NOT NULL REFERENCES tickets(id),
        seq INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (ticket, seq)
    ) WITHOUT ROWID;

    -- Every message and request dispatch has handled, with the ticket it went to (NULL when
    -- it opened none, such as a thank-you message). kind: message or request.
    CREATE TABLE ticket_sources (
        kind TEXT NOT NULL,
        source_id TEXT NOT NULL,
        ticket TEXT REFERENCES tickets(id),
        unit TEXT,
        asset TEXT,
        ts_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        PRIMARY KEY (kind, source_id)
    ) WITHOUT ROWID;
    CREATE INDEX ticket_sources_ticket ON ticket_sources(ticket);

    -- The tenant directory, synced from the central office. availability and opt_outs are
    -- JSON arrays of strings.
    CREATE TABLE tenants (
        unit TEXT PRIMARY KEY,
        language TEXT NOT NULL,
        quiet_from TEXT,
        quiet_until TEXT,
        consent INTEGER NOT NULL,
        opt_outs TEXT NOT NULL,
        permission_to_enter INTEGER NOT NULL,
        availability TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE tenant_contacts (
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        unit TEXT NOT NULL REFERENCES tenants(unit) ON DELETE CASCADE,
        PRIMARY KEY (channel, address)
    ) WITHOUT ROWID;
    CREATE INDEX tenant_contacts_address ON tenant_contacts(address);

    -- Updates for tenants (audience tenant) and the operator (audience operator). due_ms is
    -- when quiet hours end; published_ms is set on the broker's PUBACK.
    CREATE TABLE tenant_updates (
        id INTEGER PRIMARY KEY,
        ticket TEXT NOT NULL,
        unit TEXT,
        audience TEXT NOT NULL CHECK (audience IN ('tenant', 'operator')),
        language TEXT NOT NULL,
        template TEXT NOT NULL,
        text TEXT NOT NULL,
        topic TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,
        published_ms INTEGER
    );
    CREATE INDEX tenant_updates_unpublished ON tenant_updates(due_ms) WHERE published_ms IS NULL;

    -- The escalation queue: tickets a human must look at, with the reason.
    CREATE TABLE escalations (
        id INTEGER PRIMARY KEY,
        ticket TEXT NOT NULL REFERENCES tickets(id),
        rule TEXT NOT NULL,
        reason TEXT NOT NULL,
        contact TEXT,
        paged INTEGER NOT NULL,
        opened_ms INTEGER NOT NULL,
        resolved_ms INTEGER
    );
    CREATE INDEX escalations_open ON escalations(opened_ms) WHERE resolved_ms IS NULL;

    -- Office changes applied, so that each is applied once.
    CREATE TABLE office_changes (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        applied_ms INTEGER NOT NULL
    );
    ",
    // 6: sync state beyond the outbox.
    "
    -- Events taken out of the outbox because the central office rejected them for good
    -- (status 4xx, such as 403 for another building's ticket) or because one alone exceeds
    -- the office's request size limit (status 413). Kept for the operator, never sent again.
    CREATE TABLE sync_rejected (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        ticket TEXT,
        ts_ms INTEGER NOT NULL,
        payload TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        status INTEGER NOT NULL,
        error TEXT NOT NULL,
        rejected_ms INTEGER NOT NULL
    );
    CREATE INDEX sync_rejected_time ON sync_rejected(rejected_ms);
    ",
];

/// Brings the schema up to date, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let applied = applied.max(0) as usize;
    if applied > MIGRATIONS.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the database has schema version {applied}, newer than this release's {}; \
                 run a newer caretaker or restore a backup",
                MIGRATIONS.len()
            )),
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
    }

    #[test]
    fn audit_rejects_update() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO audit (ts_ms, actor, action, subject, detail) VALUES (1, 'a', 'b', 'c', '{}')",
            [],
        )
        .unwrap();
        let err = conn
            .execute("UPDATE audit SET actor = 'x'", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}
