//! `caretaker central tenant`: edits a building's tenant directory. Each edit is an office
//! change in the building's feed, so the building's gateway applies it on its next pull.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::store::CentralStore;
use crate::intake::message::MAX_SENDER_BYTES;
use crate::protocol::{Change, Contact, TenantRecord};
use crate::time::Clock;

/// Channels a contact may name.
const CHANNELS: [&str; 3] = ["sms", "email", "mqtt"];

/// Fewest digits of a phone number, country code included. E.164 sets only the maximum of
/// 15; seven fits the shortest numbers in use, such as Niue's (+683 and four digits).
// NOTE: numbers are not checked against each country's numbering plan, so +4512345 passes.
const MIN_PHONE_DIGITS: usize = 7;

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
    /// A sender that maps to the unit, as CHANNEL:ADDRESS: `sms:` with an E.164 number such
    /// as `sms:+4512345678`, `email:` with an address such as `email:tenant@example.org`, or
    /// `mqtt:` with a topic without wildcards. Repeat for several.
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
        let address = address.trim();
        if let Err(reason) = check_address(channel, address) {
            bail!("invalid --contact {contact:?}: {reason}");
        }
        contacts.push(Contact {
            channel: channel.to_string(),
            address: address.to_string(),
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

/// Finds a contact of `record` that another unit of the building already has. A sender maps
/// to one unit, so a shared address would send one tenant's updates to another. Returns the
/// message for the operator.
fn contact_clash(record: &TenantRecord, known: &[TenantRecord]) -> Option<String> {
    for other in known.iter().filter(|other| other.unit != record.unit) {
        for contact in &record.contacts {
            let shared = other
                .contacts
                .iter()
                .any(|c| c.channel == contact.channel && same_address(c, contact));
            if shared {
                return Some(format!(
                    "contact {}:{} already belongs to unit {}; a sender maps to one unit, so \
                     remove it there first with `caretaker central tenant set` for that unit",
                    contact.channel, contact.address, other.unit
                ));
            }
        }
    }
    None
}

/// Compares two addresses of one channel; e-mail addresses are compared without case, as
/// mail systems treat them in practice.
fn same_address(a: &Contact, b: &Contact) -> bool {
    if a.channel == "email" {
        a.address.eq_ignore_ascii_case(&b.address)
    } else {
        a.address == b.address
    }
}

/// Checks a contact's address for its channel: an E.164 number for `sms`, an e-mail address
/// for `email` and a topic for `mqtt`. Returns what is wrong and what to give.
pub fn check_address(channel: &str, address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("the address is empty; give CHANNEL:ADDRESS, such as sms:+4512345678".into());
    }
    // A longer sender is rejected by intake, so such a contact could never match a message.
    if address.len() > MAX_SENDER_BYTES {
        return Err(format!(
            "the address is longer than {MAX_SENDER_BYTES} bytes, the longest sender intake \
             accepts"
        ));
    }
    match channel {
        "sms" => check_phone(address),
        "email" => check_email(address),
        "mqtt" => crate::dispatch::config::validate_topic(address),
        _ => Err(format!(
            "unknown channel {channel:?}; give one of {}",
            CHANNELS.join(", ")
        )),
    }
}

/// Checks an E.164 number: `+`, then a country code that does not start with 0, and at most
/// 15 digits in all, without spaces.
fn check_phone(number: &str) -> Result<(), String> {
    let digits = number.strip_prefix('+').unwrap_or("");
    let valid = digits.chars().all(|c| c.is_ascii_digit())
        && (MIN_PHONE_DIGITS..=15).contains(&digits.len())
        && !digits.starts_with('0');
    if valid {
        return Ok(());
    }
    Err(format!(
        "{number:?} is not an E.164 phone number; give + with the country code and the \
         number, {MIN_PHONE_DIGITS} to 15 digits without spaces, such as +4512345678"
    ))
}

/// Checks an e-mail address: a local part, `@`, and a domain of at least two labels of
/// letters, digits and inner hyphens, such as `tenant@example.org`. Quoted local parts and
/// address literals such as `user@[192.0.2.1]` are rejected.
fn check_email(address: &str) -> Result<(), String> {
    let invalid = |why: &str| {
        Err(format!(
            "{address:?} is not an e-mail address: {why}; give one such as tenant@example.org"
        ))
    };
    let Some((local, domain)) = address.rsplit_once('@') else {
        return invalid("it has no '@'");
    };
    let local_valid = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !local_valid {
        return invalid("the part before '@' is empty or has a character mail servers reject");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_valid = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_valid) || domain.len() > 253 {
        return invalid("the domain after '@' needs at least two labels, such as example.org");
    }
    Ok(())
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
            let known = store.tenants(&args.building).await?;
            if let Some(message) = contact_clash(&record, &known) {
                bail!("{message}");
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

    fn entry(unit: &str, contacts: &[(&str, &str)]) -> TenantRecord {
        let mut record = record(&args(&[])).unwrap();
        record.unit = unit.to_string();
        record.contacts = contacts
            .iter()
            .map(|(channel, address)| Contact {
                channel: channel.to_string(),
                address: address.to_string(),
            })
            .collect();
        record
    }

    #[test]
    fn shared_contact_between_units_rejected() {
        let known = vec![entry(
            "1.tv",
            &[("sms", "+4511111111"), ("email", "Ida@Example.org")],
        )];
        let phone = contact_clash(&entry("1.th", &[("sms", "+4511111111")]), &known);
        let message = phone.expect("a phone number of 1.tv given to 1.th");
        assert!(message.contains("+4511111111"), "{message}");
        assert!(message.contains("1.tv"), "{message}");
        let email = contact_clash(&entry("1.th", &[("email", "ida@example.org")]), &known);
        assert!(email.is_some());
        let same_unit = contact_clash(&entry("1.tv", &[("sms", "+4511111111")]), &known);
        assert!(same_unit.is_none());
        let other = contact_clash(&entry("1.th", &[("sms", "+4522222222")]), &known);
        assert!(other.is_none());
    }

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
    fn contact_accepts_valid_addresses() {
        for contact in [
            "sms:+4512345678",
            "sms:+6831234",
            "email:tenant@example.org",
            "email:first.last+updates@mail.example.dk",
            "mqtt:tenants/2.tv/messages",
            "mqtt:2.tv",
        ] {
            let result = record(&args(&["--contact", contact]));
            assert!(result.is_ok(), "{contact}: {:?}", result.err());
        }
    }

    #[test]
    fn contact_rejects_invalid_addresses() {
        let cases = [
            ("sms:+45", "E.164"),
            ("sms:4512345678", "E.164"),
            ("sms:+45 12 34 56 78", "E.164"),
            ("sms:+0451234567", "E.164"),
            ("sms:+4512345678901234", "E.164"),
            ("email:foo", "no '@'"),
            ("email:foo@localhost", "two labels"),
            ("email:@example.org", "before '@'"),
            ("email:a b@example.org", "before '@'"),
            ("email:tenant@-example.org", "two labels"),
            ("email:tenant@example..org", "two labels"),
            ("mqtt:tenants/+/messages", "wildcard"),
            ("mqtt:tenants/#", "wildcard"),
            ("mqtt:a\u{0}b", "NUL"),
            ("sms:", "empty"),
        ];
        for (contact, reason) in cases {
            let err = record(&args(&["--contact", contact]))
                .expect_err(contact)
                .to_string();
            assert!(err.contains(&format!("{contact:?}")), "{contact}: {err}");
            assert!(err.contains(reason), "{contact}: {err}");
        }
    }

    #[test]
    fn contact_rejects_overlong_address() {
        let contact = format!("email:{}@example.org", "a".repeat(300));
        let err = record(&args(&["--contact", &contact]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than 256 bytes"), "{err}");
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
