//! `caretaker check-config` on a `[dispatch]` section: the shipped files are valid, and
//! problems in the referenced files are reported as FILE:LINE:COLUMN: KEY: message, every
//! one of them in a single run.

#[path = "support/dispatch_fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use caretaker::triage::CATEGORIES;
use tempfile::TempDir;

/// Runs check-config; returns whether it passed, with its stderr.
fn check_config(path: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_caretaker"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A folder with a gateway config and copies of the shipped dispatch files, in which a test
/// replaces the files it breaks.
struct Setup {
    dir: TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(dispatch_extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let shipped = fixture::shipped();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        for name in [
            "vendors.toml",
            "sla.toml",
            "escalation.toml",
            "building.toml",
            "templates/da.toml",
            "templates/en.toml",
        ] {
            std::fs::copy(shipped.join(name), dir.path().join(name)).unwrap();
        }
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "[gateway]\nid = \"gw\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"gw\"\n\n\
                 [[mqtt.subscription]]\nfilter = \"sensors/+/+\"\nformat = \"json\"\n\
                 value_path = \"v\"\n\n[dispatch]\n{dispatch_extra}"
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    /// Replaces one dispatch file, such as `vendors.toml` or `templates/en.toml`.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Asserts that every line of `expected` starts a line of `stderr`.
fn assert_reported(stderr: &str, expected: &[String]) {
    for line in expected {
        assert!(
            stderr
                .lines()
                .any(|reported| reported.starts_with(line.as_str())),
            "missing {line:?} in:\n{stderr}"
        );
    }
}

#[test]
fn shipped_dispatch_files_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture::write_config(dir.path(), 1883, 9780, "");
    let (ok, stderr) = check_config(&config);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn shipped_gateway_configs_valid() {
    let shipped = fixture::shipped();
    for config in ["gateway.toml", "demo/gateway.toml"] {
        let (ok, stderr) = check_config(&shipped.join(config));
        assert!(ok, "{config}: {stderr}");
        assert!(!stderr.contains("warning"), "{config}: {stderr}");
    }
}

#[test]
fn broken_dispatch_files_reported() {
    let setup = Setup::new("update_topic = \"tenants/updates\"\n");
    let english = std::fs::read_to_string(fixture::shipped().join("templates/en.toml"))
        .unwrap()
        .replace("is on the way.", "is on the way to {flat}.");
    let english = setup.write("templates/en.toml", &english);
    let vendors = setup.write(
        "vendors.toml",
        "[[vendor]]\nname = \"Late VVS\"\ntrades = [\"plumbing\"]\n\
         time_zone = \"Europe/Kobenhavn\"\n\
         hours = [\"Mon-Fri 16:00-07:00\"]\ndaily_capacity = 0\ncost_cap = 100\n",
    );

    let (ok, stderr) = check_config(&setup.config);
    assert!(!ok);
    assert_reported(
        &stderr,
        &[
            format!(
                "{}:14:16: dispatch.update_topic: invalid topic",
                setup.config.display()
            ),
            format!("{vendors}:4:13: vendor[0].time_zone: unknown time zone \"Europe/Kobenhavn\""),
            format!("{vendors}:5:10: vendor[0].hours[0]: invalid window \"Mon-Fri 16:00-07:00\""),
            format!("{vendors}:6:18: vendor[0].daily_capacity: invalid daily_capacity 0"),
            format!("{english}:5:14: on_the_way: unknown placeholder {{flat}}"),
        ],
    );
}

#[test]
fn every_vendor_problem_reported() {
    let setup = Setup::new("");
    let vendors = setup.write(
        "vendors.toml",
        r#"[[vendor]]
name = "A"
trades = ["plumbing", "roofing"]
time_zone = "europe/copenhagen"
hours = ["Mon-Fri 16:00-07:00", "Mnd 08:00-09:00"]
daily_capacity = "four"
cost_cap = -1

[[vendor]]
name = "B"
trades = ["gardening"]
hours = ["Mon-Fri 07:00-16:00"]
emergency = true
daily_capacity = 0
cost_cap = 0
colour = "red"

[[vendor]]
name = "A"
"#,
    );

    let (ok, stderr) = check_config(&setup.config);
    assert!(!ok);
    assert_reported(
        &stderr,
        &[
            format!("{vendors}:3:23: vendor[0].trades[1]: unknown trade \"roofing\"; expected a triage category: plumbing,"),
            format!("{vendors}:4:13: vendor[0].time_zone: unknown time zone \"europe/copenhagen\"; did you mean \"Europe/Copenhagen\"?"),
            format!("{vendors}:5:10: vendor[0].hours[0]: invalid window"),
            format!("{vendors}:5:33: vendor[0].hours[1]: invalid weekday \"Mnd\""),
            format!("{vendors}:6:18: vendor[0].daily_capacity: invalid type: string \"four\""),
            format!("{vendors}:7:12: vendor[0].cost_cap: invalid cost_cap -1"),
            format!("{vendors}:11:11: vendor[1].trades[0]: unknown trade \"gardening\""),
            format!("{vendors}:9:1: vendor[1].on_call: emergency = true needs on_call hours"),
            format!("{vendors}:14:18: vendor[1].daily_capacity: invalid daily_capacity 0"),
            format!("{vendors}:15:12: vendor[1].cost_cap: invalid cost_cap 0"),
            format!("{vendors}:16:1: vendor[1].colour: unknown key"),
            format!("{vendors}:19:8: vendor[2].name: duplicate vendor \"A\""),
            format!("{vendors}:18:1: vendor[2].trades: missing trades"),
            format!("{vendors}:18:1: vendor[2].hours: missing hours"),
            format!("{vendors}:18:1: vendor[2].daily_capacity: missing daily_capacity"),
            format!("{vendors}:18:1: vendor[2].cost_cap: missing cost_cap"),
        ],
    );
    let vendor_lines = stderr.lines().filter(|l| l.starts_with(&vendors)).count();
    assert_eq!(vendor_lines, 16, "each problem once:\n{stderr}");
}

#[test]
fn zero_and_inverted_sla_rejected() {
    let setup = Setup::new("");
    let sla = setup.write(
        "sla.toml",
        r#"warn_percent = 100

[urgency.emergency]
acknowledge_mins = 0
on_site_mins = 120
resolve_mins = 1440
job_mins = 120

[urgency.urgent]
acknowledge_mins = 120
on_site_mins = 60
resolve_mins = 30
job_mins = 1441

[urgency.routine]
acknowledge_mins = "soon"
on_site_mins = 10080
job_mins = 120

[urgency.whenever]
acknowledge_mins = 1

[job_cost]
plumbing = -5
roofing = 3000
"#,
    );

    let (ok, stderr) = check_config(&setup.config);
    assert!(!ok);
    assert_reported(
        &stderr,
        &[
            format!("{sla}:1:16: warn_percent: invalid warn_percent 100;"),
            format!("{sla}:4:20: urgency.emergency.acknowledge_mins: invalid acknowledge_mins 0; expected minutes, at least 1"),
            format!("{sla}:11:16: urgency.urgent.on_site_mins: on_site_mins 60 is before acknowledge_mins 120;"),
            format!("{sla}:12:16: urgency.urgent.resolve_mins: resolve_mins 30 is before on_site_mins 60;"),
            format!("{sla}:13:12: urgency.urgent.job_mins: invalid job_mins 1441; expected minutes, from 1 to 1440"),
            format!("{sla}:16:20: urgency.routine.acknowledge_mins: invalid type: string \"soon\""),
            format!("{sla}:15:1: urgency.routine.resolve_mins: missing resolve_mins; add it, such as resolve_mins = 4320"),
            format!("{sla}:20:1: urgency.whenever: unknown urgency \"whenever\""),
            format!("{sla}:24:12: job_cost.plumbing: invalid plumbing -5"),
            format!("{sla}:25:11: job_cost.roofing: unknown trade \"roofing\""),
        ],
    );
    let sla_lines = stderr.lines().filter(|l| l.starts_with(&sla)).count();
    assert_eq!(sla_lines, 10, "each problem once:\n{stderr}");
}

#[test]
fn equal_sla_limits_accepted() {
    let setup = Setup::new("");
    let shipped = std::fs::read_to_string(fixture::shipped().join("sla.toml")).unwrap();
    setup.write(
        "sla.toml",
        &shipped.replace("on_site_mins = 120\n", "on_site_mins = 15\n"),
    );
    let (ok, stderr) = check_config(&setup.config);
    assert!(ok, "on site at the acknowledge time is allowed:\n{stderr}");
}

#[test]
fn escalation_and_building_problems_reported() {
    let setup = Setup::new("");
    let escalation = setup.write(
        "escalation.toml",
        r#"[[contact]]
name = "Duty"
topic = "caretaker/page/+"
on_call = ["Mon-Sun 00:00-24:00", "Weekdays 08:00-16:00"]

[[contact]]
topic = ""

[handover]
stop_automation = ["legal", "weather"]
"#,
    );
    let building = setup.write(
        "building.toml",
        r#"time_zone = 1

[[asset]]
name = "pump"
trades = ["heating", "roofing"]
units = []

[[asset]]
name = "pump"
"#,
    );

    let (ok, stderr) = check_config(&setup.config);
    assert!(!ok);
    assert_reported(
        &stderr,
        &[
            format!("{escalation}:3:9: contact[0].topic: invalid topic \"caretaker/page/+\": '+' and '#' are wildcards"),
            format!("{escalation}:4:35: contact[0].on_call[1]: invalid weekday \"Weekdays\""),
            format!("{escalation}:7:9: contact[1].topic: invalid topic \"\": a topic must not be empty"),
            format!("{escalation}:6:1: contact[1].name: missing name"),
            format!("{escalation}:6:1: contact[1].on_call: missing on_call"),
            format!("{escalation}:10:29: handover.stop_automation[1]: unknown rule \"weather\""),
            format!("{building}:1:13: time_zone: invalid time_zone; expected an IANA name in quotes"),
            format!("{building}:5:22: asset[0].trades[1]: unknown trade \"roofing\""),
            format!("{building}:6:9: asset[0].units: no units"),
            format!("{building}:9:8: asset[1].name: duplicate asset \"pump\""),
            format!("{building}:8:1: asset[1].units: missing units"),
        ],
    );
}

#[test]
fn every_template_problem_reported() {
    let setup = Setup::new("");
    let danish = std::fs::read_to_string(fixture::shipped().join("templates/da.toml"))
        .unwrap()
        .replace("Dit sagsnummer er {ticket}.", "Dit sagsnummer er {ticket")
        .replace(
            "Sag {ticket} er annulleret.",
            "Sag {tiket} er annulleret {flat}. {tiket}",
        )
        .replace("er på vej.", "er på vej }.");
    let danish = setup.write("templates/da.toml", &danish);

    let (ok, stderr) = check_config(&setup.config);
    assert!(!ok);
    let known = "expected one of {ticket}, {category}, {vendor}, {slot_start}, {slot_end}, \
                 {unit}, {reason}, {urgency}";
    assert_reported(
        &stderr,
        &[
            format!("{danish}:3:12: received: unclosed placeholder \"{{ticket\" at character 52; close it with '}}'"),
            format!("{danish}:5:14: on_the_way: '}}' without '{{' at character 34;"),
            format!("{danish}:8:13: cancelled: unknown placeholder {{tiket}}; {known}"),
            format!("{danish}:8:13: cancelled: unknown placeholder {{flat}}; {known}"),
        ],
    );
    let template_lines = stderr.lines().filter(|l| l.starts_with(&danish)).count();
    assert_eq!(template_lines, 4, "each problem once:\n{stderr}");
    assert!(
        !stderr.contains(&setup.path("templates/en.toml")),
        "{stderr}"
    );
}

#[test]
fn uncovered_trades_warn_but_pass() {
    let setup = Setup::new("");
    let vendors = setup.write(
        "vendors.toml",
        r#"[[vendor]]
name = "Only VVS"
trades = ["plumbing", "gas"]
hours = ["Mon-Fri 07:00-16:00"]
on_call = ["Sat-Sun 00:00-24:00"]
daily_capacity = 4
cost_cap = 8000
"#,
    );

    let (ok, stderr) = check_config(&setup.config);
    assert!(ok, "warnings do not fail the check:\n{stderr}");
    let uncovered = CATEGORIES
        .iter()
        .filter(|category| !["plumbing", "gas"].contains(category));
    for category in uncovered {
        let line = format!(
            "{vendors}:1:1: vendor: warning: no vendor takes category \"{category}\", so its \
             tickets escalate to a human"
        );
        assert_reported(&stderr, &[line]);
    }
    for category in ["plumbing", "gas"] {
        let line = format!(
            "{vendors}:1:1: vendor: warning: no vendor with emergency = true takes category \
             \"{category}\""
        );
        assert_reported(&stderr, &[line]);
    }
    assert_reported(
        &stderr,
        &[format!(
            "{vendors}:5:11: vendor[0].on_call: warning: on_call hours are not used because \
             emergency is false"
        )],
    );
    assert_eq!(stderr.lines().count(), 15, "{stderr}");
}

#[test]
fn job_cost_over_every_cap_warns() {
    let setup = Setup::new("");
    setup.write(
        "vendors.toml",
        r#"[[vendor]]
name = "Cheap VVS"
trades = ["plumbing", "gas"]
hours = ["Mon-Fri 07:00-16:00"]
on_call = ["Mon-Sun 00:00-24:00"]
emergency = true
daily_capacity = 4
cost_cap = 3000
"#,
    );
    let sla = setup.path("sla.toml");

    let (ok, stderr) = check_config(&setup.config);
    assert!(ok, "warnings do not fail the check:\n{stderr}");
    let gas = stderr
        .lines()
        .find(|line| line.contains("job_cost.gas: warning"))
        .unwrap_or_else(|| panic!("no warning for the gas job cost:\n{stderr}"));
    assert!(gas.starts_with(&format!("{sla}:")), "{gas}");
    assert!(gas.contains("job cost 4000"), "{gas}");
    assert!(gas.contains("highest 3000"), "{gas}");
    assert!(
        !stderr.contains("job_cost.plumbing"),
        "plumbing costs 2500, under the cap:\n{stderr}"
    );
}
