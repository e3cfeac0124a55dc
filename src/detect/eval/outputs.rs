//! Reading of CSV tables for scoring: detector outputs (`timestamp,anomaly_score[,is_anomaly]
//! [,changepoint]`) and labelled series, with the line of every row kept for error messages.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};

use crate::detect::replay::parse_time_ms;

/// A CSV table read whole: header names and the cells of every row, each with its line number.
pub struct Table {
    pub source: String,
    pub header: Vec<String>,
    pub rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    /// Reads a CSV file whose delimiter is `;` when its first line has more `;` than `,`, else
    /// `,`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let source = path.display().to_string();
        let mut text = Vec::new();
        File::open(path)
            .and_then(|mut file| file.read_to_end(&mut text))
            .with_context(|| format!("cannot read {source}"))?;
        Self::parse(&text, source)
    }

    pub fn parse(text: &[u8], source: String) -> anyhow::Result<Self> {
        let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let semicolons = first_line.iter().filter(|&&b| b == b';').count();
        let commas = first_line.iter().filter(|&&b| b == b',').count();
        let delimiter = if semicolons > commas { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(text);
        let header: Vec<String> = reader
            .headers()
            .with_context(|| format!("{source}: cannot read the header row"))?
            .iter()
            .map(|name| name.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("{source}: malformed CSV"))?;
            let line = record.position().map_or(0, |position| position.line());
            rows.push((line, record));
        }
        Ok(Table {
            source,
            header,
            rows,
        })
    }

    /// Index of the first of `names` that the header has.
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|name| self.header.iter().position(|column| column == name))
    }

    /// Index of the first of `names` that the header has, or an error naming the file and the
    /// columns it has.
    pub fn require_column(&self, names: &[&str], hint: &str) -> anyhow::Result<usize> {
        match self.column(names) {
            Some(index) => Ok(index),
            None => bail!(
                "{}: missing column {}; the header has {}. {hint}",
                self.source,
                names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.header.join(", ")
            ),
        }
    }

    /// Returns the cell at `column` of row `index`, trimmed, or `""` when the row is short.
    pub fn cell(&self, index: usize, column: usize) -> &str {
        self.rows[index].1.get(column).unwrap_or_default().trim()
    }

    /// Line number of row `index` in the file (the header is line 1).
    pub fn line(&self, index: usize) -> u64 {
        self.rows[index].0
    }

    /// Reads the time of every row from `column`, in Unix milliseconds.
    pub fn times_ms(&self, column: usize) -> anyhow::Result<Vec<i64>> {
        (0..self.rows.len())
            .map(|index| {
                let text = self.cell(index, column);
                parse_time_ms(text).with_context(|| {
                    format!(
                        "{}:{}: invalid timestamp `{text}` in column `{}`; expected a time such \
                         as `2014-04-01 00:05:00`",
                        self.source,
                        self.line(index),
                        self.header[column]
                    )
                })
            })
            .collect()
    }

    /// Reads a 0/1 flag cell: a number equal to 1 is set, any other number is not.
    pub fn flag(&self, index: usize, column: usize) -> anyhow::Result<bool> {
        let text = self.cell(index, column);
        match text.parse::<f64>() {
            Ok(value) if !value.is_nan() => Ok(value == 1.0),
            _ => bail!(
                "{}:{}: invalid value `{text}` in column `{}`; expected 0 or 1",
                self.source,
                self.line(index),
                self.header[column]
            ),
        }
    }
}

/// Names a time column may have, in order of preference.
pub const TIME_COLUMNS: [&str; 3] = ["timestamp", "datetime", "time"];

/// One detector output file: a score per row and, when the file has them, the detector's own
/// flag and changepoint columns.
pub struct DetectorOutput {
    pub source: String,
    /// Line number of each row in the file.
    pub lines: Vec<u64>,
    pub times_ms: Vec<i64>,
    /// `anomaly_score` of each row; NaN where the cell is not a number.
    pub scores: Vec<f64>,
    /// `is_anomaly` of each row, when the file has that column.
    pub flags: Option<Vec<bool>>,
    /// `changepoint` of each row, when the file has that column.
    pub changepoints: Option<Vec<bool>>,
}

impl DetectorOutput {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        Self::from_table(Table::read(path)?)
    }

    pub fn from_table(table: Table) -> anyhow::Result<Self> {
        let hint = "Write detector outputs as `caretaker detect` does: \
                    timestamp,anomaly_score,is_anomaly,changepoint.";
        let time_column = table.require_column(&TIME_COLUMNS, hint)?;
        let score_column = table.require_column(&["anomaly_score"], hint)?;
        let times_ms = table.times_ms(time_column)?;
        let scores = (0..table.rows.len())
            .map(|index| {
                table
                    .cell(index, score_column)
                    .parse::<f64>()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let flags = read_flags(&table, "is_anomaly")?;
        let changepoints = read_flags(&table, "changepoint")?;
        Ok(DetectorOutput {
            lines: (0..table.rows.len())
                .map(|index| table.line(index))
                .collect(),
            source: table.source,
            times_ms,
            scores,
            flags,
            changepoints,
        })
    }

    pub fn len(&self) -> usize {
        self.times_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times_ms.is_empty()
    }

    /// Rows whose score is not a number, and the line of the first of them.
    pub fn invalid_scores(&self) -> (usize, Option<u64>) {
        let mut count = 0;
        let mut first = None;
        for (score, &line) in self.scores.iter().zip(&self.lines) {
            if score.is_nan() {
                count += 1;
                first.get_or_insert(line);
            }
        }
        (count, first)
    }
}

fn read_flags(table: &Table, name: &str) -> anyhow::Result<Option<Vec<bool>>> {
    let Some(column) = table.column(&[name]) else {
        return Ok(None);
    };
    let flags = (0..table.rows.len())
        .map(|index| table.flag(index, column))
        .collect::<anyhow::Result<Vec<bool>>>()?;
    Ok(Some(flags))
}

/// Rule that turns a row of detector output into a detection or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectionRule {
    /// The `is_anomaly` column where the file has one, else `anomaly_score >= threshold`.
    OwnFlag { fallback_threshold: f64 },
    /// `anomaly_score >= threshold` for every file, whatever flag it has.
    Threshold(f64),
}

impl DetectionRule {
    /// Decides the detection of every row of `output`. A score that is not a number never
    /// detects.
    pub fn apply(self, output: &DetectorOutput) -> Vec<bool> {
        match (self, &output.flags) {
            (DetectionRule::OwnFlag { .. }, Some(flags)) => flags.clone(),
            (DetectionRule::OwnFlag { fallback_threshold }, None) => {
                threshold_scores(&output.scores, fallback_threshold)
            }
            (DetectionRule::Threshold(threshold), _) => threshold_scores(&output.scores, threshold),
        }
    }

    pub fn describe(self) -> String {
        match self {
            DetectionRule::OwnFlag { fallback_threshold } => format!(
                "the detector's is_anomaly column (anomaly_score >= {fallback_threshold} in \
                 files without it)"
            ),
            DetectionRule::Threshold(threshold) => format!("anomaly_score >= {threshold}"),
        }
    }
}

fn threshold_scores(scores: &[f64], threshold: f64) -> Vec<bool> {
    scores.iter().map(|&score| score >= threshold).collect()
}

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM:SS[.fff]` in UTC.
pub fn format_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(time) if ms % 1000 == 0 => time.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(text: &str) -> anyhow::Result<DetectorOutput> {
        DetectorOutput::from_table(Table::parse(text.as_bytes(), "out.csv".into())?)
    }

    #[test]
    fn output_reads_flags_and_lines() {
        let out = output(
            "timestamp,anomaly_score,is_anomaly,changepoint\n\
             2020-01-01 00:00:00,0.25,0,1\n\
             2020-01-01 00:00:01,0.75,1,0\n",
        )
        .unwrap();
        assert_eq!(out.lines, [2, 3]);
        assert_eq!(out.scores, [0.25, 0.75]);
        assert_eq!(out.flags.as_deref(), Some(&[false, true][..]));
        assert_eq!(out.changepoints.as_deref(), Some(&[true, false][..]));
        assert_eq!(out.times_ms[1] - out.times_ms[0], 1000);
    }

    #[test]
    fn output_reads_semicolons() {
        let out = output("datetime;anomaly_score\n2020-01-01 00:00:00;1.0\n").unwrap();
        assert_eq!(out.scores, [1.0]);
        assert!(out.flags.is_none());
    }

    #[test]
    fn output_error_names_line() {
        let err = output("timestamp,anomaly_score\n2020-01-01 00:00:00,1\nyesterday,0\n")
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            message.starts_with("out.csv:3: invalid timestamp `yesterday`"),
            "{message}"
        );
    }

    #[test]
    fn output_without_score_column() {
        let err = output("timestamp,value\n2020-01-01 00:00:00,1\n")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("missing column `anomaly_score`"),
            "{err}"
        );
    }

    #[test]
    fn invalid_flag_names_line() {
        let err = output("timestamp,anomaly_score,is_anomaly\n2020-01-01 00:00:00,1,yes\n")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("out.csv:2: invalid value `yes`"),
            "{err}"
        );
    }

    #[test]
    fn rule_prefers_own_flag() {
        let out = output(
            "timestamp,anomaly_score,is_anomaly\n\
             2020-01-01 00:00:00,0.9,0\n\
             2020-01-01 00:00:01,0.1,1\n",
        )
        .unwrap();
        let own = DetectionRule::OwnFlag {
            fallback_threshold: 0.5,
        };
        assert_eq!(own.apply(&out), [false, true]);
        assert_eq!(DetectionRule::Threshold(0.5).apply(&out), [true, false]);
    }

    #[test]
    fn unparsable_score_never_detects() {
        let out = output("timestamp,anomaly_score\n2020-01-01 00:00:00,n/a\n").unwrap();
        assert_eq!(out.invalid_scores(), (1, Some(2)));
        assert_eq!(DetectionRule::Threshold(0.0).apply(&out), [false]);
    }
}
