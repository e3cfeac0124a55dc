//! `caretaker audit` and `caretaker erase`, which work on the gateway's database directly.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

/// Arguments of `caretaker audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The gateway's SQLite database (the config's `store.path`).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Print this ticket's story: its history, decisions and updates, in order.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Recompute the audit log's hash chain and list every row that does not match. Exits 1
    /// when the chain is broken.
    #[arg(long)]
    pub verify: bool,
}

/// Arguments of `caretaker erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The gateway's SQLite database (the config's `store.path`).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// The unit whose tenant's texts and personal data are removed, such as `2.th`.
    #[arg(long, value_name = "UNIT")]
    pub unit: String,
}

pub fn audit_main(args: AuditArgs) -> ExitCode {
    if args.ticket.is_none() && !args.verify {
        eprintln!("error: nothing to do; pass --ticket ID, --verify or both");
        return ExitCode::from(2);
    }
    match run_audit(&args) {
        Ok(intact) if intact => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn open(db: &Path) -> anyhow::Result<Connection> {
    anyhow::ensure!(
        db.exists(),
        "database {} not found; pass the config's store.path",
        db.display()
    );
    Ok(crate::store::connect(db, true)?)
}

fn run_audit(args: &AuditArgs) -> anyhow::Result<bool> {
    let conn = open(&args.db)?;
    let mut intact = true;
    if let Some(ticket) = &args.ticket {
        print_story(&conn, ticket)?;
    }
    if args.verify {
        let result = crate::store::audit::verify(&conn).context("cannot read the audit log")?;
        for problem in &result.problems {
            println!("TAMPERED {problem}");
        }
        println!(
            "audit chain: {} row(s) verified, {} row(s) from before the chain, {} problem(s)",
            result.chained,
            result.unchained,
            result.problems.len()
        );
        intact = result.is_intact();
    }
    Ok(intact)
}

fn print_story(conn: &Connection, ticket: &str) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT {} FROM tickets WHERE id = ?1",
        super::tickets::COLUMNS
    );
    let found = conn
        .query_row(&sql, [ticket], super::tickets::Ticket::from_row)
        .optional()?;
    let Some(found) = found else {
        anyhow::bail!("ticket {ticket:?} not found in the tickets table");
    };
    println!("ticket {ticket}");
    println!(
        "  state {}, category {}, urgency {}, unit {}, asset {}, vendor {}, opened {}",
        found.state,
        found.category,
        found.urgency,
        found.unit.as_deref().unwrap_or("-"),
        found.asset.as_deref().unwrap_or("-"),
        found.vendor.as_deref().unwrap_or("-"),
        crate::time::format_ms(found.opened_ms)
    );
    println!("history:");
    let mut history = conn.prepare(
        "SELECT seq, ts_ms, from_state, to_state, actor, reason FROM ticket_history
         WHERE ticket = ?1 ORDER BY seq",
    )?;
    let rows = history.query_map([ticket], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (seq, ts, from, to, actor, reason) = row?;
        println!(
            "  #{seq} {} {} -> {to} by {actor}: {reason}",
            crate::time::format_ms(ts),
            from.as_deref().unwrap_or("(none)")
        );
    }
    println!("decisions:");
    let mut audit = conn.prepare(
        "SELECT id, ts_ms, actor, action, detail, hash FROM audit WHERE subject = ?1 ORDER BY id",
    )?;
    let rows = audit.query_map([ticket], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    for row in rows {
        let (id, ts, actor, action, detail, hash) = row?;
        let short = hash
            .as_deref()
            .map(|h| &h[..h.len().min(12)])
            .unwrap_or("-");
        println!(
            "  [{id} {short}] {} {action} by {actor}: {detail}",
            crate::time::format_ms(ts)
        );
    }
    Ok(())
}

pub fn erase_main(args: EraseArgs) -> ExitCode {
    match open(&args.db).and_then(|mut conn| {
        erase_unit(
            &mut conn,
            &args.unit,
            crate::time::Clock::wall_ms(&crate::time::SystemClock::new()),
        )
    }) {
        Ok(report) => {
            println!("erased unit {}: {report}", args.unit);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Removes the texts and personal data of a unit's tenant everywhere in the store: messages
/// from the unit or its contacts, the directory entry and contacts, the updates to the unit,
/// quarantined payloads that name a contact or the unit's topic, and outbox events not yet
/// sent that carry any of them. Ticket rows keep the unit and the triage fields, and the
/// audit log is left as it is because it never holds texts or contacts. The erase itself
/// is recorded in the audit log with counts only. Returns the counts.
pub fn erase_unit(conn: &mut Connection, unit: &str, now_ms: i64) -> anyhow::Result<Value> {
    let tx = conn.transaction()?;
    let mut identifiers: Vec<String> = tx
        .prepare("SELECT address FROM tenant_contacts WHERE unit = ?1")?
        .query_map([unit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let message_filter = "unit = ?1 OR stated_unit = ?1
        OR sender IN (SELECT address FROM tenant_contacts WHERE unit = ?1)";
    let senders: Vec<String> = tx
        .prepare(&format!(
            "SELECT DISTINCT sender FROM messages WHERE {message_filter}"
        ))?
        .query_map([unit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    identifiers.extend(senders);
    identifiers.sort();
    identifiers.dedup();
    let texts: Vec<String> = tx
        .prepare(&format!("SELECT text FROM messages WHERE {message_filter}"))?
        .query_map([unit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;

    let messages = tx.execute(
        &format!("DELETE FROM messages WHERE {message_filter}"),
        [unit],
    )?;
    let mut removed_messages = messages;
    for sender in &identifiers {
        removed_messages += tx.execute("DELETE FROM messages WHERE sender = ?1", [sender])?;
    }
    let contacts = tx.execute("DELETE FROM tenant_contacts WHERE unit = ?1", [unit])?;
    let directory = tx.execute("DELETE FROM tenants WHERE unit = ?1", [unit])?;
    let updates = tx.execute("DELETE FROM tenant_updates WHERE unit = ?1", [unit])?;

    // Unsent outbox events: updates to the unit, and any event that quotes a contact or text.
    let mut outbox = tx.execute(
        "DELETE FROM outbox WHERE kind = 'tenant_update' AND json_extract(payload, '$.unit') = ?1",
        [unit],
    )?;
    let mut needles: Vec<String> = identifiers.clone();
    needles.extend(texts.iter().filter(|t| t.len() >= 8).cloned());
    for needle in &needles {
        outbox += tx.execute("DELETE FROM outbox WHERE instr(payload, ?1) > 0", [needle])?;
    }

    // Quarantined MQTT payloads from the unit's topic, and any that quote a contact.
    let mut quarantine = tx.execute(
        "DELETE FROM quarantine WHERE origin LIKE '%/' || ?1 || '/%' OR origin = ?1",
        [unit],
    )?;
    for needle in &needles {
        quarantine += tx.execute(
            "DELETE FROM quarantine
             WHERE instr(CAST(raw AS TEXT), ?1) > 0 OR instr(reason, ?1) > 0",
            [needle],
        )?;
    }
    let sources = tx.execute(
        "UPDATE ticket_sources SET unit = NULL WHERE unit = ?1 AND kind = 'message'",
        [unit],
    )?;

    let report = json!({
        "messages": removed_messages,
        "directory_entries": directory,
        "contacts": contacts,
        "updates": updates,
        "outbox_events": outbox,
        "quarantined": quarantine,
        "ticket_sources_unlinked": sources,
    });
    let record = crate::store::AuditRecord {
        ts_ms: now_ms,
        actor: "operator:cli".into(),
        action: "erase".into(),
        subject: format!("unit:{unit}"),
        detail: report.clone(),
    };
    crate::store::audit::insert(&tx, &record)?;
    tx.commit()?;
    Ok(report)
}

/// Lists every `table.column` of the database whose text contains `needle`, so that a check
/// can show that a value appears nowhere.
pub fn find_everywhere(conn: &Connection, needle: &str) -> rusqlite::Result<Vec<String>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut found = Vec::new();
    for table in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for column in columns {
            let sql = format!(
                "SELECT count(*) FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), ?1) > 0"
            );
            let count: i64 = conn.query_row(&sql, params![needle], |r| r.get(0))?;
            if count > 0 {
                found.push(format!("{table}.{column}"));
            }
        }
    }
    Ok(found)
}
