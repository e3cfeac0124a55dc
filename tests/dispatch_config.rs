//! `caretaker check-config` on a `[dispatch]` section: the shipped files are valid, and
//! problems in the referenced files are reported as FILE:LINE:COLUMN: KEY: message.

#[path = "support/dispatch_fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::Command;

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

#[test]
fn shipped_dispatch_files_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture::write_config(dir.path(), 1883, 9780, "");
    let (ok, stderr) = check_config(&config);
    assert!(ok, "{stderr}");
}

#[test]
fn broken_dispatch_files_reported() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = fixture::shipped();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::copy(shipped.join("templates/da.toml"), templates.join("da.toml")).unwrap();
    let english = std::fs::read_to_string(shipped.join("templates/en.toml"))
        .unwrap()
        .replace("is on the way.", "is on the way to {flat}.");
    std::fs::write(templates.join("en.toml"), english).unwrap();
    std::fs::write(
        dir.path().join("vendors.toml"),
        "[[vendor]]\nname = \"Late VVS\"\ntrades = [\"plumbing\"]\n\
         time_zone = \"Europe/Kobenhavn\"\n\
         hours = [\"Mon-Fri 16:00-07:00\"]\ndaily_capacity = 0\ncost_cap = 100\n",
    )
    .unwrap();
    std::fs::copy(shipped.join("sla.toml"), dir.path().join("sla.toml")).unwrap();
    std::fs::copy(
        shipped.join("escalation.toml"),
        dir.path().join("escalation.toml"),
    )
    .unwrap();
    std::fs::copy(
        shipped.join("building.toml"),
        dir.path().join("building.toml"),
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[gateway]\nid = \"gw\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"gw\"\n\n\
         [[mqtt.subscription]]\nfilter = \"sensors/+/+\"\nformat = \"json\"\nvalue_path = \"v\"\n\n\
         [dispatch]\nupdate_topic = \"tenants/updates\"\n",
    )
    .unwrap();

    let (ok, stderr) = check_config(&config);
    assert!(!ok);
    let vendors = dir.path().join("vendors.toml").display().to_string();
    let english = templates.join("en.toml").display().to_string();
    let expected = [
        format!(
            "{}:14:16: dispatch.update_topic: invalid topic",
            config.display()
        ),
        format!("{vendors}:4:13: vendor[0].time_zone: unknown time zone \"Europe/Kobenhavn\""),
        format!("{vendors}:5:9: vendor[0].hours: invalid window"),
        format!("{vendors}:6:18: vendor[0].daily_capacity: must be greater than 0"),
        format!("{english}:"),
    ];
    for line in expected {
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
    assert!(stderr.contains("unknown placeholder {flat}"), "{stderr}");
}
