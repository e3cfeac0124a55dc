//! `caretaker triage` as a process: JSON lines in and one line out per input line, in order. A
//! malformed line gets an error line, and the run goes on.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const CARETAKER: &str = env!("CARGO_BIN_EXE_caretaker");

fn run_triage(args: &[&str], input: &[u8]) -> (Vec<Value>, std::process::Output) {
    let mut child = Command::new(CARETAKER)
        .arg("triage")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caretaker starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input written");
    let output = child.wait_with_output().expect("caretaker exits");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect();
    (lines, output)
}

#[test]
fn triage_answers_every_line_in_order() {
    let input = concat!(
        "{\"id\": \"a\", \"text\": \"Det lugter af gas i opgangen\"}\n",
        "not json at all\n",
        "{\"id\": 7, \"text\": 12}\n",
        "{\"text\": \"When is the bulky waste collected?\"}\n",
        "{\"id\": \"b\"}\n",
        "[1, 2]\n",
        "{\"id\": \"c\", \"text\": \"The kitchen tap drips. Flat 12\"}\n",
    );
    let (lines, output) = run_triage(&[], input.as_bytes());
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(lines.len(), 7, "one output line per input line");

    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["intent"], "emergency");
    assert_eq!(lines[0]["category"], "gas");
    assert!(lines[0]["explanation"].is_object());
    assert!(lines[0]["confidence"].is_number());
    for field in [
        "language",
        "intent",
        "category",
        "urgency",
        "needs_human",
        "unit",
        "pii",
    ] {
        assert!(lines[0].get(field).is_some(), "field {field} missing");
    }

    assert!(
        lines[1]["error"].as_str().unwrap_or("").contains("line 2"),
        "{}",
        lines[1]
    );
    assert!(lines[1].get("id").is_none());
    assert_eq!(lines[2]["id"], 7);
    assert!(lines[2]["error"].is_string());
    assert!(
        lines[3]["intent"].is_string(),
        "a line without id is still classified"
    );
    assert_eq!(lines[4]["id"], "b");
    assert!(lines[4]["error"].is_string());
    assert!(lines[5]["error"].is_string());
    assert_eq!(lines[6]["id"], "c");
    assert_eq!(lines[6]["unit"], "Flat 12");
}

#[test]
fn triage_reads_and_writes_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.jsonl");
    let output_path = dir.path().join("out.jsonl");
    std::fs::write(
        &input,
        // A byte order mark, as editors on Windows write, then a line that is no UTF-8.
        b"\xef\xbb\xbf{\"id\": \"x\", \"text\": \"K\xc3\xb8leskabet er d\xc3\xb8d\"}\n\xff\xfe\n",
    )
    .expect("input written");
    let status = Command::new(CARETAKER)
        .args(["triage", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output_path)
        .status()
        .expect("caretaker runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&output_path).expect("output written");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["language"], "da");
    assert!(
        lines[1]["error"].as_str().unwrap_or("").contains("UTF-8"),
        "{}",
        lines[1]
    );
}

#[test]
fn triage_rejects_a_bad_model_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("model.json");
    std::fs::write(&model, "{\"format_version\": 99}").expect("model written");
    let (lines, output) = run_triage(&["--model", model.to_str().expect("UTF-8 path")], b"");
    assert!(!output.status.success());
    assert!(lines.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("model.json"),
        "the error names the file: {stderr}"
    );
}

#[test]
fn dash_means_standard_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(CARETAKER)
        .current_dir(dir.path())
        .args(["triage", "--input", "-", "--output", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("caretaker starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{\"id\": \"a\", \"text\": \"The kitchen tap drips\"}\n")
        .expect("input written");
    let output = child.wait_with_output().expect("caretaker exits");
    assert!(output.status.success());
    let line: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(line["id"], "a");
    assert!(!dir.path().join("-").exists());
}
