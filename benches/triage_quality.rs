//! Triage quality benchmark. It scores the built-in model on the corpus test split, by k-fold
//! cross-validation on the corpus train split, on the boundary set and on the example set of the
//! shared datasets, each separately. Then it measures speed per message, model size and
//! classifier memory.
//!
//! Usage: `cargo bench --bench triage_quality [-- --folds K] [-- --no-cv]`. The options
//! `--alpha A`, `--max-columns N`, `--max-iterations N`, `--min-df N`,
//! `--prior-correction S`, `--ranking-alpha A`, `--no-ranking` and `--no-idf` change the
//! training settings of the cross-validation only, for choosing them; the built-in model keeps
//! its own. The corpus is read from
//! `$CARETAKER_TRIAGE_CORPUS`, a path relative to the repository root (default
//! `corpus/triage`), and the boundary set from `$CARETAKER_TRIAGE_BOUNDARY` (default
//! `corpus/triage-boundary`, skipped when that folder is missing). The example set is read from
//! `$CARETAKER_DATASETS/triage/examples.jsonl`
//! (default `../shared/datasets`, beside the repository). Each prediction file is cross-checked
//! with `python3 $CARETAKER_DATASETS/../tools/triage_score.py GOLD PRED` when that script exists.
//! Prints the figures and writes them as JSON to `target/bench/triage.json`. Without the
//! `--bench` argument that `cargo bench` passes, as under `cargo test --all-targets`, it runs
//! nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use caretaker::triage::score::{self, Record, Scores};
use caretaker::triage::train::{self, TrainOptions};
use caretaker::triage::{builtin_model_json, Classifier, Triage, BUILTIN_MODEL_COMPRESSED_BYTES};
use serde_json::json;

/// Counts the bytes the process holds on the heap, so that the classifier's memory is
/// measured by what it allocates rather than by RSS, which the allocator rounds to pages.
struct Counting;

static HEAP_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`, as `alloc` above did.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let datasets = std::env::var_os("CARETAKER_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/datasets"));
    let run_cv = !args.iter().any(|a| a == "--no-cv");
    let defaults = TrainOptions::default();
    let folds = number_arg(args, "--folds")?.unwrap_or(defaults.folds);
    let cv_options = TrainOptions {
        folds,
        alpha: number_arg(args, "--alpha")?.unwrap_or(defaults.alpha),
        max_columns: number_arg(args, "--max-columns")?.unwrap_or(defaults.max_columns),
        intent_prior_correction: number_arg(args, "--prior-correction")?
            .unwrap_or(defaults.intent_prior_correction),
        max_iterations: number_arg(args, "--max-iterations")?.unwrap_or(defaults.max_iterations),
        min_df: number_arg(args, "--min-df")?.unwrap_or(defaults.min_df),
        idf: defaults.idf && !args.iter().any(|a| a == "--no-idf"),
        ranking_alpha: if args.iter().any(|a| a == "--no-ranking") {
            None
        } else {
            number_arg(args, "--ranking-alpha")?.or(defaults.ranking_alpha)
        },
    };
    let out_dir = repo.join("target/bench");
    fs::create_dir_all(&out_dir)
        .with_context(|| format!("failed to create {}", out_dir.display()))?;
    let scorer = datasets.join("../tools/triage_score.py");

    // Memory: heap held by the loaded classifier once every lazily built rule table exists.
    let before = HEAP_BYTES.load(Ordering::Relaxed);
    let classifier = Classifier::builtin()?;
    let _warm = classifier.classify("Hej, der lugter af gas i 2. tv. Mvh Anna, +45 11 22 33 44");
    let classifier_bytes = HEAP_BYTES.load(Ordering::Relaxed) - before;

    let corpus = repo.join(
        std::env::var_os("CARETAKER_TRIAGE_CORPUS")
            .map_or_else(|| "corpus/triage".into(), PathBuf::from),
    );
    let records = train::load_corpus(&corpus)?;
    let train_split: Vec<&Record> = records
        .iter()
        .filter(|r| r.split.as_deref() != Some("test"))
        .collect();
    let test_split: Vec<&Record> = records
        .iter()
        .filter(|r| r.split.as_deref() == Some("test"))
        .collect();
    let boundary_dir = repo.join(
        std::env::var_os("CARETAKER_TRIAGE_BOUNDARY")
            .map_or_else(|| "corpus/triage-boundary".into(), PathBuf::from),
    );
    let boundary = if boundary_dir.is_dir() {
        train::load_corpus(&boundary_dir)?
    } else {
        eprintln!(
            "no boundary set at {}; set CARETAKER_TRIAGE_BOUNDARY",
            boundary_dir.display()
        );
        Vec::new()
    };
    let boundary: Vec<&Record> = boundary.iter().collect();
    let examples_path = datasets.join("triage/examples.jsonl");
    let (examples, bad) = score::read_records(&examples_path).with_context(|| {
        format!(
            "failed to read {}; set CARETAKER_DATASETS",
            examples_path.display()
        )
    })?;
    anyhow::ensure!(
        bad.is_empty(),
        "{} unreadable lines in {}",
        bad.len(),
        examples_path.display()
    );
    let examples: Vec<&Record> = examples.iter().collect();

    let mut figures: BTreeMap<String, f64> = BTreeMap::new();
    let mut sets: Vec<(&str, Vec<&Record>, Vec<Triage>)> = Vec::new();
    let (_, test_predictions) = train::evaluate(&classifier, &test_split);
    sets.push(("test", test_split.clone(), test_predictions));
    if run_cv {
        let started = Instant::now();
        let predictions = train::cross_validate(&train_split, &cv_options)?;
        eprintln!(
            "cross-validation: {folds} folds in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        sets.push(("cv", train_split.clone(), predictions));
    }
    if !boundary.is_empty() {
        let (_, predictions) = train::evaluate(&classifier, &boundary);
        sets.push(("boundary", boundary.clone(), predictions));
    }
    let (_, example_predictions) = train::evaluate(&classifier, &examples);
    sets.push(("examples", examples.clone(), example_predictions));

    for (name, records, predictions) in &sets {
        let gold: Vec<_> = records.iter().map(|r| &r.labels).collect();
        let refs: Vec<&Triage> = predictions.iter().collect();
        let scores = score::score(&gold, &refs);
        print_scores(name, &scores);
        add_figures(&mut figures, name, &scores);
        let gold_path = out_dir.join(format!("triage_{name}_gold.jsonl"));
        let pred_path = out_dir.join(format!("triage_{name}_pred.jsonl"));
        write_jsonl(
            &gold_path,
            records
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default()),
        )?;
        write_jsonl(
            &pred_path,
            records.iter().zip(predictions).map(|(r, p)| {
                let mut value = serde_json::to_value(p).unwrap_or_default();
                value["id"] = json!(r.id);
                value
            }),
        )?;
        cross_check(&scorer, &gold_path, &pred_path);
    }

    // Speed: every test and example message, classified until at least two seconds passed.
    let texts: Vec<&str> = test_split
        .iter()
        .chain(&examples)
        .map(|r| r.text.as_str())
        .collect();
    let started = Instant::now();
    let mut classified = 0usize;
    while started.elapsed().as_secs_f64() < 2.0 || classified < 1000 {
        for text in &texts {
            std::hint::black_box(classifier.classify(text));
        }
        classified += texts.len();
    }
    let us_per_message = started.elapsed().as_secs_f64() * 1e6 / classified as f64;
    figures.insert("triage.us_per_message".into(), us_per_message);
    let model_bytes = builtin_model_json()?.len();
    figures.insert("triage.model_bytes".into(), model_bytes as f64);
    figures.insert(
        "triage.model_compressed_bytes".into(),
        BUILTIN_MODEL_COMPRESSED_BYTES as f64,
    );
    figures.insert(
        "triage.classifier_mib".into(),
        classifier_bytes as f64 / (1024.0 * 1024.0),
    );
    println!(
        "speed: {us_per_message:.1} µs per message over {classified} messages; model {} bytes \
         ({} in the binary); classifier heap {:.2} MiB",
        model_bytes,
        BUILTIN_MODEL_COMPRESSED_BYTES,
        classifier_bytes as f64 / (1024.0 * 1024.0)
    );

    let json_path = out_dir.join("triage.json");
    let report = json!({
        "model_version": classifier.model().model_version,
        "corpus": {
            "train": train_split.len(),
            "test": test_split.len(),
            "examples": examples.len(),
        },
        "folds": if run_cv { json!(folds) } else { json!(null) },
        "figures": figures,
    });
    fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("failed to write {}", json_path.display()))?;
    println!("wrote {}", json_path.display());
    Ok(())
}

/// Parses the value after `name` in `args`, or returns `None` when `name` is absent.
fn number_arg<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<Option<T>> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args.get(i + 1).map(String::as_str).unwrap_or("");
    match value.parse() {
        Ok(v) => Ok(Some(v)),
        Err(_) => anyhow::bail!("{name} needs a number, got '{value}'"),
    }
}

fn add_figures(figures: &mut BTreeMap<String, f64>, set: &str, s: &Scores) {
    let mut add = |name: &str, value: f64| {
        figures.insert(format!("triage.{set}.{name}"), value);
    };
    add("intent_macro_f1", s.intent_macro_f1);
    add("emergency_recall", s.emergency_recall);
    add("emergency_precision", s.emergency_precision);
    add("needs_human_recall", s.needs_human_recall);
    add("unit_exact", s.unit_exact);
    add("pii_exact", s.pii_exact);
    add("category_accuracy", s.category_accuracy);
    add("urgency_accuracy", s.urgency_accuracy);
    add("language_accuracy", s.language_accuracy);
}

fn print_scores(set: &str, s: &Scores) {
    println!(
        "{set:<9} n={:<5} intent F1 {:.3}  emergency R {:.3} P {:.3}  needs_human R {:.3} P {:.3}  \
         unit {:.3}  pii {:.3}  category {:.3}  urgency {:.3}  language {:.3}",
        s.n,
        s.intent_macro_f1,
        s.emergency_recall,
        s.emergency_precision,
        s.needs_human_recall,
        s.needs_human_precision,
        s.unit_exact,
        s.pii_exact,
        s.category_accuracy,
        s.urgency_accuracy,
        s.language_accuracy
    );
}

fn write_jsonl(path: &Path, values: impl Iterator<Item = serde_json::Value>) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(
        fs::File::create(path).with_context(|| format!("failed to create {}", path.display()))?,
    );
    for value in values {
        writeln!(file, "{value}").with_context(|| format!("failed to write {}", path.display()))?;
    }
    file.flush()
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

/// Runs the reference scorer on a prediction file and prints its final line.
fn cross_check(scorer: &Path, gold: &Path, pred: &Path) {
    if !scorer.exists() {
        println!(
            "  reference scorer {} not found; cross-check skipped",
            scorer.display()
        );
        return;
    }
    match Command::new("python3")
        .arg(scorer)
        .arg(gold)
        .arg(pred)
        .output()
    {
        Ok(out) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout.lines().last().unwrap_or("");
            println!("  reference scorer: {last}");
        }
        Ok(out) => println!(
            "  reference scorer failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => println!("  reference scorer could not run: {e}"),
    }
}
