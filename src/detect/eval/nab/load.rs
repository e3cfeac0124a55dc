//! Loading of a NAB corpus: the windows file, one detector output per series and, for the row
//! check, the corpus files themselves.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{NabCorpus, NabSeries};
use crate::detect::eval::outputs::{format_ms, DetectionRule, DetectorOutput, Table, TIME_COLUMNS};
use crate::detect::replay::parse_time_ms;

impl NabCorpus {
    /// Loads every series listed in `windows_path` from its detector output under
    /// `results_dir`: `results_dir/<dir>/<file>.csv`, or the only `<dir>/*_<file>.csv` there
    /// (NAB's own results layout). With `data_dir`, each output must have the rows of the
    /// corpus file `data_dir/<dir>/<file>.csv`, with the same timestamps.
    pub fn load(
        windows_path: &Path,
        results_dir: &Path,
        data_dir: Option<&Path>,
        rule: DetectionRule,
    ) -> anyhow::Result<Self> {
        let windows = read_windows(windows_path)?;
        let mut warnings = Vec::new();
        let mut series = Vec::new();
        let mut declared_windows = 0;
        for (name, spans) in &windows {
            let path = find_output(results_dir, name, data_dir)?;
            let mut output = DetectorOutput::read(&path)?;
            if let Some(data_dir) = data_dir {
                check_rows_match(&output, &data_dir.join(name))?;
            }
            // A score that is not a number counts as 0, so that one bad cell does not stop the
            // scoring. The warning names the first such line.
            let (invalid, first_line) = output.invalid_scores();
            if let Some(line) = first_line {
                warnings.push(format!(
                    "{}:{line}: {invalid} anomaly_score cell(s) are not numbers and count as 0",
                    output.source
                ));
                for score in &mut output.scores {
                    if score.is_nan() {
                        *score = 0.0;
                    }
                }
            }
            let detections = rule.apply(&output);
            declared_windows += spans.len();
            series.push(NabSeries::new(
                name,
                &output.source,
                &output.times_ms,
                output.scores,
                detections,
                spans,
                &mut warnings,
            )?);
        }
        Ok(NabCorpus {
            series,
            declared_windows,
            rule,
            warnings,
        })
    }
}

type WindowsFile = BTreeMap<String, Vec<(i64, i64)>>;

/// Reads `{"<dir>/<file>.csv": [[start, end], ...]}` with times as text.
fn read_windows(path: &Path) -> anyhow::Result<WindowsFile> {
    let source = path.display();
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {source}"))?;
    let parsed: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(&text)
        .with_context(|| {
            format!(
                "{source}: invalid windows file; expected {{\"<dir>/<file>.csv\": [[\"START\", \
                 \"END\"], ...]}}"
            )
        })?;
    let mut windows = BTreeMap::new();
    for (name, spans) in parsed {
        let mut times = Vec::new();
        for (start, end) in spans {
            let parse = |text: &str| {
                parse_time_ms(text).with_context(|| {
                    format!(
                        "{source}: {name}: invalid window time `{text}`; expected a time such \
                         as `2014-04-10 07:15:00.000000`"
                    )
                })
            };
            let (start_ms, end_ms) = (parse(&start)?, parse(&end)?);
            if end_ms < start_ms {
                bail!("{source}: {name}: the window {start} .. {end} ends before it starts");
            }
            times.push((start_ms, end_ms));
        }
        windows.insert(name, times);
    }
    Ok(windows)
}

/// Finds the detector output of corpus file `name` (`<dir>/<file>.csv`).
fn find_output(results_dir: &Path, name: &str, data_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let direct = results_dir.join(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let relative = Path::new(name);
    let folder = results_dir.join(relative.parent().unwrap_or(Path::new("")));
    let file_name = relative
        .file_name()
        .map(|file| file.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!("_{file_name}");
    let mut matches = Vec::new();
    if let Ok(entries) = fs::read_dir(&folder) {
        for entry in entries.flatten() {
            let candidate = entry.file_name().to_string_lossy().into_owned();
            if candidate.ends_with(&suffix) && !candidate.ends_with("_scores.csv") {
                matches.push(entry.path());
            }
        }
    }
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => {
            let input = data_dir.map_or_else(
                || format!("CORPUS/{name}"),
                |data_dir| data_dir.join(name).display().to_string(),
            );
            bail!(
                "no detector output for the series {name}: {} not found; run `caretaker detect \
                 --input {input} --output {}`, or point --results at the folder that holds the \
                 outputs",
                direct.display(),
                direct.display()
            )
        }
        _ => bail!(
            "several detector outputs match the series {name} in {}; keep one of them",
            folder.display()
        ),
    }
}

/// Checks that a detector output has one row per row of its input, with the same times.
fn check_rows_match(output: &DetectorOutput, data_path: &Path) -> anyhow::Result<()> {
    let data = Table::read(data_path)?;
    let hint = "The corpus file needs a time column.";
    let times = data.times_ms(data.require_column(&TIME_COLUMNS, hint)?)?;
    if times.len() != output.len() {
        bail!(
            "{}: {} rows, but its input {} has {}; run `caretaker detect` on that input again",
            output.source,
            output.len(),
            data.source,
            times.len()
        );
    }
    for (index, (&expected, &found)) in times.iter().zip(&output.times_ms).enumerate() {
        if expected != found {
            bail!(
                "{}:{}: unknown timestamp {}; line {} of {} has {}; the output rows must follow \
                 the input rows in order",
                output.source,
                output.lines[index],
                format_ms(found),
                data.line(index),
                data.source,
                format_ms(expected)
            );
        }
    }
    Ok(())
}
