//! `caretaker central tenant`: edits a building's tenant directory. Each edit is an office
//! change in the building's feed, so the building's gateway applies it on its next pull.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::store::CentralStore;
use crate::protocol::{Change, Contact, TenantRecord};
use crate::time::Clock;

/// Channels a contact may name.
const CHANNELS: [&str; 3] = ["sms", "email", "mqtt"];

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a unit's entry or replace it whole.
    Set(TenantArgs),
    /// Remove a unit's entry; its senders become unknown senders.
    Remove {
        #[arg(long)]
        building: String,
        #[arg(long)]
        unit: String,
    },
    /// List a building's entries as JSON lines.
    List {
        #[arg(long)]
        building: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct TenantArgs {
    /// The building, as bound to its gateway's token.
    #[arg(long)]
    pub building: String,
    /// The unit as the gateway writes it, such as `2.tv` or `st.th`.
    #[arg(long)]
    pub unit: String,
    /// Language of the tenant's updates: `da` or `en`.
    #[arg(long, default_value = "da")]
    pub language: String,
    /// A sender that maps to the unit, as CHANNEL:ADDRESS with CHANNEL sms, email or mqtt,
    /// such as `sms:+4512345678`. Repeat for several.
    #[arg(long = "contact", value_name = "CHANNEL:ADDRESS")]
    pub contacts: Vec<String>,
    /// Local hours in which only emergencies are sent, as HH:MM-HH:MM, such as 22:00-07:00.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub quiet: Option<String>,
    /// The tenant has not agreed to receive updates.
    #[arg(long)]
    pub no_consent: bool,
    /// A channel the tenant opted out of. Repeat for several.
    #[arg(long = "opt-out", value_name = "CHANNEL")]
    pub opt_outs: Vec<String>,
    /// A vendor may enter when nobody is home.
    #[arg(long)]
    pub permission_to_enter: bool,
    /// Local hours when someone is home, such as "Mon-Fri 16:00-20:00". Repeat for several.
    #[arg(long = "available", value_name = "DAYS HH:MM-HH:MM")]
    pub availability: Vec<String>,
}

/// Checks the arguments and builds the directory entry, naming the first invalid value.
pub fn record(args: &TenantArgs) -> anyhow::Result<TenantRecord> {
    let unit = args.unit.trim();
    if unit.is_empty() || unit.len() > 32 || unit.contains(['/', '+', '#']) {
        bail!(
            "invalid --unit {:?}: give the unit as the gateway writes it, such as 2.tv, in at \
             most 32 characters without '/', '+' or '#'",
            args.unit
        );
    }
    if !["da", "en"].contains(&args.language.as_str()) {
        bail!("invalid --language {:?}: give da or en", args.language);
    }
    let mut contacts = Vec::new();
    for contact in &args.contacts {
        let Some((channel, address)) = contact.split_once(':') else {
            bail!("invalid --contact {contact:?}: give CHANNEL:ADDRESS, such as sms:+4512345678");
        };
        if !CHANNELS.contains(&channel) || address.trim().is_empty() {
            bail!(
                "invalid --contact {contact:?}: the channel must be sms, email or mqtt and the \
                 address must not be empty"
            );
        }
        contacts.push(Contact {
            channel: channel.to_string(),
            address: address.trim().to_string(),
        });
    }
    for channel in &args.opt_outs {
        if !CHANNELS.contains(&channel.as_str()) {
            bail!("invalid --opt-out {channel:?}: give sms, email or mqtt");
        }
    }
    let (quiet_from, quiet_until) = match &args.quiet {
        None => (None, None),
        Some(text) => {
            let Some((from, until)) = text.split_once('-') else {
                bail!("invalid --quiet {text:?}: give HH:MM-HH:MM, such as 22:00-07:00");
            };
            for value in [from, until] {
                crate::dispatch::hours::minute_of_day(value, text)
                    .map_err(|err| anyhow::anyhow!("invalid --quiet: {err}"))?;
            }
            (
                Some(from.trim().to_string()),
                Some(until.trim().to_string()),
            )
        }
    };
    crate::dispatch::hours::parse_all(&args.availability)
        .map_err(|err| anyhow::anyhow!("invalid --available: {err}"))?;
    Ok(TenantRecord {
        unit: unit.to_string(),
        language: args.language.clone(),
        contacts,
        quiet_from,
        quiet_until,
        consent: !args.no_consent,
        opt_outs: args.opt_outs.clone(),
        permission_to_enter: args.permission_to_enter,
        availability: args.availability.clone(),
    })
}

/// Runs one `caretaker central tenant` command.
pub async fn command(
    command: TenantCommand,
    store: Arc<dyn CentralStore>,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Set(args) => {
            let record = record(&args)?;
            let served = store
                .list_tokens()
                .await?
                .iter()
                .any(|token| token.building == args.building && token.revoked_ms.is_none());
            if !served {
                bail!(
                    "building {:?} has no gateway token, so no gateway would pull this entry; \
                     add one first with `caretaker central token add --gateway ID --building {}`",
                    args.building,
                    args.building
                );
            }
            let unit = record.unit.clone();
            let change = store
                .add_change(
                    &args.building,
                    "office:cli",
                    Change::TenantUpsert(record),
                    clock.wall_ms(),
                )
                .await
                .with_context(|| format!("cannot record unit {unit} of {}", args.building))?;
            eprintln!(
                "unit {unit} of {} set (change {}); its gateway applies it on its next pull",
                args.building, change.id
            );
        }
        TenantCommand::Remove { building, unit } => {
            let known = store.tenants(&building).await?;
            if !known.iter().any(|record| record.unit == unit) {
                bail!(
                    "building {building:?} has no directory entry for unit {unit:?}; \
                     `caretaker central tenant list --building {building}` shows its entries"
                );
            }
            let change = store
                .add_change(
                    &building,
                    "office:cli",
                    Change::TenantRemove { unit: unit.clone() },
                    clock.wall_ms(),
                )
                .await?;
            eprintln!("unit {unit} of {building} removed (change {})", change.id);
        }
        TenantCommand::List { building } => {
            for record in store.tenants(&building).await? {
                println!("{}", serde_json::to_string(&record)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> TenantArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: TenantArgs,
        }
        let mut argv = vec!["tenant", "--building", "b-7", "--unit", "2.tv"];
        argv.extend_from_slice(extra);
        <Wrapper as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .args
    }

    #[test]
    fn builds_the_entry_from_valid_arguments() {
        let record = record(&args(&[
            "--language",
            "en",
            "--contact",
            "sms:+4512345678",
            "--contact",
            "email:tenant@example.org",
            "--quiet",
            "22:00-07:00",
            "--available",
            "Mon-Fri 16:00-20:00",
            "--permission-to-enter",
        ]))
        .unwrap();
        assert_eq!(record.unit, "2.tv");
        assert_eq!(record.language, "en");
        assert_eq!(record.contacts.len(), 2);
        assert_eq!(record.contacts[0].channel, "sms");
        assert_eq!(record.quiet_from.as_deref(), Some("22:00"));
        assert_eq!(record.quiet_until.as_deref(), Some("07:00"));
        assert!(record.consent);
        assert!(record.permission_to_enter);
    }

    #[test]
    fn names_the_invalid_value() {
        let cases: [(&[&str], &str); 5] = [
            (&["--language", "de"], "\"de\""),
            (&["--contact", "fax:123"], "\"fax:123\""),
            (&["--contact", "+4512345678"], "CHANNEL:ADDRESS"),
            (&["--quiet", "22:00-31:00"], "31:00"),
            (&["--available", "Someday 10:00-12:00"], "Someday"),
        ];
        for (extra, named) in cases {
            let err = record(&args(extra)).unwrap_err().to_string();
            assert!(err.contains(named), "{extra:?}: {err}");
        }
    }
}
