//! `caretaker detect`: replays a recorded series through the same detectors as `run`.
//!
//! Input is a CSV file with a header row, separated by `,` or `;`. The time column is the one
//! named `timestamp` or `datetime`, else the first column; its text is echoed unchanged. Columns
//! named `anomaly` and `changepoint` are labels and are ignored. Every other column with at
//! least one number is a feature; an empty or non-numeric cell is a missing value.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::multivariate::{self, AssetModel};
use super::stream::{self, StreamConfig};
use super::RowOutput;

/// Arguments of `caretaker detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Recorded series (CSV with a header row; `-` reads standard input).
    #[arg(long, value_name = "CSV")]
    pub input: PathBuf,
    /// Output CSV, one row per input row: timestamp,anomaly_score,is_anomaly,changepoint
    /// (`-` writes standard output).
    #[arg(long, value_name = "CSV")]
    pub output: PathBuf,
    /// Asset model written by `caretaker train`; its features must be the input's feature
    /// columns.
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Rows at the start that the detectors may learn from; they are never flagged.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup_rows: usize,
    /// Gateway config whose detector settings apply to a single-feature series: the limits of the
    /// Modbus point named like the feature column and the `[detect]` missing-data rule.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// A recorded series, column by column.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The time column's text of each row, as written in the input.
    pub timestamps: Vec<String>,
    /// Each row's time in Unix milliseconds, when its text could be read as a time.
    pub times_ms: Vec<Option<i64>>,
    /// Names of the feature columns, in input order.
    pub features: Vec<String>,
    /// Values of each feature column; `None` where the cell was empty or not a number.
    pub columns: Vec<Vec<Option<f64>>>,
}

impl Series {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Returns the feature values of row `index`, in the order of `features`.
    pub fn row(&self, index: usize) -> Vec<Option<f64>> {
        self.columns.iter().map(|column| column[index]).collect()
    }
}

/// Reads a series from a CSV file; `-` reads standard input.
pub fn read_series(path: &Path) -> anyhow::Result<Series> {
    read_series_with_warnings(path).map(|(series, _)| series)
}

/// Reads a series like [`read_series`] and also returns a warning for each feature column
/// with cells that were not numbers and so count as missing.
pub fn read_series_with_warnings(path: &Path) -> anyhow::Result<(Series, Vec<String>)> {
    let source = path.display().to_string();
    if path == Path::new("-") {
        return parse_series_with_warnings(io::stdin().lock(), "standard input");
    }
    let file = File::open(path).with_context(|| format!("cannot open the input {source}"))?;
    parse_series_with_warnings(file, &source)
}

/// Parses a series from CSV text; `source` names it in errors.
pub fn parse_series(reader: impl Read, source: &str) -> anyhow::Result<Series> {
    parse_series_with_warnings(reader, source).map(|(series, _)| series)
}

fn parse_series_with_warnings(
    mut reader: impl Read,
    source: &str,
) -> anyhow::Result<(Series, Vec<String>)> {
    let mut text = Vec::new();
    reader
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read {source}"))?;
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let semicolons = first_line.iter().filter(|&&b| b == b';').count();
    let commas = first_line.iter().filter(|&&b| b == b',').count();
    let delimiter = if semicolons > commas { b';' } else { b',' };

    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_slice());
    let header: Vec<String> = csv
        .headers()
        .with_context(|| format!("{source}: cannot read the header row"))?
        .iter()
        .map(|name| name.trim().to_string())
        .collect();
    if header.iter().all(String::is_empty) {
        bail!("{source}: the file is empty; expected a header row such as `timestamp,value`");
    }
    let time_column = header
        .iter()
        .position(|name| {
            name.eq_ignore_ascii_case("timestamp") || name.eq_ignore_ascii_case("datetime")
        })
        .unwrap_or(0);
    let candidates: Vec<usize> = (0..header.len())
        .filter(|&index| index != time_column)
        .filter(|&index| {
            let name = header[index].to_ascii_lowercase();
            name != "anomaly" && name != "changepoint"
        })
        .collect();

    let mut timestamps = Vec::new();
    let mut cells: Vec<Vec<Option<f64>>> = vec![Vec::new(); candidates.len()];
    // Per column: cells that held text other than a finite number, and the first of them.
    let mut rejected: Vec<(usize, String)> = vec![(0, String::new()); candidates.len()];
    for (index, record) in csv.records().enumerate() {
        let line = index + 2;
        let record = record.with_context(|| format!("{source}: line {line}: malformed CSV"))?;
        if record.len() > header.len() {
            bail!(
                "{source}: line {line}: {} cells but the header names {} columns",
                record.len(),
                header.len()
            );
        }
        timestamps.push(record.get(time_column).unwrap_or_default().to_string());
        for (column, &field) in candidates.iter().enumerate() {
            let cell = record.get(field).unwrap_or_default().trim();
            let value = cell.parse::<f64>().ok().filter(|value| value.is_finite());
            if value.is_none() && !cell.is_empty() {
                let (count, first) = &mut rejected[column];
                if *count == 0 {
                    *first = format!("`{cell}` on line {line}");
                }
                *count += 1;
            }
            cells[column].push(value);
        }
    }

    let mut features = Vec::new();
    let mut columns = Vec::new();
    let mut warnings = Vec::new();
    for (column, &field) in candidates.iter().enumerate() {
        if cells[column].iter().any(Option::is_some) || timestamps.is_empty() {
            features.push(header[field].clone());
            columns.push(std::mem::take(&mut cells[column]));
            let (count, first) = &rejected[column];
            if *count > 0 {
                warnings.push(format!(
                    "{source}: column `{}`: {count} cell(s) are not finite numbers (first: \
                     {first}) and count as missing",
                    header[field]
                ));
            }
        } else if rejected[column].0 > 0 {
            warnings.push(format!(
                "{source}: column `{}` holds no number (first cell: {}) and is not a feature",
                header[field], rejected[column].1
            ));
        }
    }
    let decimal_comma = rejected
        .iter()
        .any(|(_, first)| first.starts_with('`') && first.contains(',') && delimiter == b';');
    if features.is_empty() {
        let hint = if decimal_comma {
            "; the cells look like decimal commas, which this reader does not take: write \
             decimals with a point"
        } else {
            ""
        };
        bail!(
            "{source}: no numeric column besides the time column `{}`; expected at least one \
             feature such as `value`{hint}",
            header[time_column]
        );
    }
    let times_ms: Vec<Option<i64>> = timestamps.iter().map(|text| parse_time_ms(text)).collect();
    let unreadable = times_ms.iter().filter(|time| time.is_none()).count();
    if unreadable > 0 {
        warnings.push(format!(
            "{source}: {unreadable} timestamp(s) in column `{}` are not times (expected \
             `YYYY-MM-DD HH:MM:SS`, RFC 3339 or a Unix epoch number); those rows take the \
             previous row's time",
            header[time_column]
        ));
    }
    let series = Series {
        timestamps,
        times_ms,
        features,
        columns,
    };
    Ok((series, warnings))
}

/// Reads a time cell: `YYYY-MM-DD HH:MM:SS[.fff]` (taken as UTC), RFC 3339, or a Unix epoch
/// number in seconds, milliseconds or microseconds.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(number) = text.parse::<f64>() {
        return crate::time::epoch_number_to_ms(number).ok();
    }
    if let Some(ms) = crate::time::parse_rfc3339_ms(text) {
        return Some(ms);
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .map(|time| time.and_utc().timestamp_millis())
}

/// Runs the detectors over `series`: one feature goes to the streaming detectors, several
/// features (or a given asset model) to the multivariate path.
pub fn detect_series(
    series: &Series,
    warmup_rows: usize,
    model: Option<&AssetModel>,
) -> anyhow::Result<Vec<RowOutput>> {
    if series.features.len() == 1 && model.is_none() {
        Ok(stream::score_series(series, warmup_rows))
    } else {
        multivariate::score_series(series, warmup_rows, model)
    }
}

/// Writes the output rows: `timestamp,anomaly_score,is_anomaly,changepoint`.
pub fn write_outputs(
    writer: impl Write,
    series: &Series,
    outputs: &[RowOutput],
) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record(["timestamp", "anomaly_score", "is_anomaly", "changepoint"])?;
    for (timestamp, output) in series.timestamps.iter().zip(outputs) {
        let score = format!("{:.6}", output.score.clamp(0.0, 1.0));
        csv.write_record([
            timestamp.as_str(),
            score.as_str(),
            if output.is_anomaly { "1" } else { "0" },
            if output.changepoint { "1" } else { "0" },
        ])?;
    }
    csv.flush()?;
    Ok(())
}

pub fn main(args: DetectArgs) -> ExitCode {
    match detect(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => match crate::config::load(path) {
            Ok(config) => Some(config),
            Err(diags) => {
                eprintln!("{diags}");
                bail!("{} problem(s) in {}", diags.len(), path.display());
            }
        },
        None => None,
    };
    let (series, warnings) = read_series_with_warnings(&args.input)?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let model = args.model.as_deref().map(AssetModel::load).transpose()?;
    let outputs = match (&config, &model) {
        (Some(config), None) if series.features.len() == 1 => {
            let stream_config = stream_config_for(config, &series.features[0]);
            stream::score_series_with(&series, args.warmup_rows, stream_config)
        }
        _ => detect_series(&series, args.warmup_rows, model.as_ref())?,
    };
    let output_name = args.output.display().to_string();
    if args.output == Path::new("-") {
        write_outputs(io::stdout().lock(), &series, &outputs)
    } else {
        let file = File::create(&args.output)
            .with_context(|| format!("cannot create the output {output_name}"))?;
        write_outputs(BufWriter::new(file), &series, &outputs)
            .with_context(|| format!("cannot write the output {output_name}"))
    }
}

/// Returns the streaming settings that `run` uses for a sensor named `feature`: the physical
/// limits of the Modbus point of that name (the first device map that has one) and the
/// `[detect]` missing-data rule.
pub fn stream_config_for(config: &crate::config::GatewayConfig, feature: &str) -> StreamConfig {
    let point = config
        .modbus
        .iter()
        .flat_map(|setup| &setup.devices)
        .find_map(|device| {
            device
                .map
                .points
                .iter()
                .find(|point| point.name == feature || point.metric == feature)
        });
    StreamConfig {
        min: point.and_then(|point| point.min),
        max: point.and_then(|point| point.max),
        missing_intervals: config.detect.missing_intervals,
        ..StreamConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nab_layout() {
        let text = "timestamp,value\n2014-04-01 00:00:00,10.5\n2014-04-01 00:05:00,\n";
        let series = parse_series(text.as_bytes(), "nab.csv").unwrap();
        assert_eq!(series.features, ["value"]);
        assert_eq!(series.columns[0], [Some(10.5), None]);
        assert_eq!(series.times_ms[1], Some(1_396_310_700_000));
        assert_eq!(series.timestamps[0], "2014-04-01 00:00:00");
    }

    #[test]
    fn reads_skab_layout_and_skips_labels() {
        let text = "datetime;Current;Pressure;anomaly;changepoint\n\
                    2020-03-09 10:14:33;0.27;0.05;0.0;0.0\n\
                    2020-03-09 10:14:34;x;0.06;1.0;1.0\n";
        let series = parse_series(text.as_bytes(), "skab.csv").unwrap();
        assert_eq!(series.features, ["Current", "Pressure"]);
        assert_eq!(series.row(1), [None, Some(0.06)]);
    }

    #[test]
    fn drops_text_columns_and_rejects_series_without_numbers() {
        let text = "time,label,value\n1,a,1.0\n2,b,2.0\n";
        let series = parse_series(text.as_bytes(), "mixed.csv").unwrap();
        assert_eq!(series.features, ["value"]);
        let err = parse_series("time,label\n1,a\n".as_bytes(), "text.csv").unwrap_err();
        assert!(err.to_string().contains("no numeric column"), "{err}");
    }

    #[test]
    fn output_echoes_timestamps() {
        let series = parse_series("t,v\n\"a,b\",1\n".as_bytes(), "x").unwrap();
        let outputs = [RowOutput {
            score: 0.25,
            is_anomaly: false,
            changepoint: true,
        }];
        let mut out = Vec::new();
        write_outputs(&mut out, &series, &outputs).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "timestamp,anomaly_score,is_anomaly,changepoint\n\"a,b\",0.250000,0,1\n"
        );
    }

    #[test]
    fn config_limits_from_named_point() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/gateway.toml");
        let config = crate::config::load(&path).unwrap();
        let known = stream_config_for(&config, "bearing_temperature_drive_end");
        assert_eq!((known.min, known.max), (Some(-20.0), Some(120.0)));
        assert_eq!(known.missing_intervals, config.detect.missing_intervals);
        let unknown = stream_config_for(&config, "value");
        assert_eq!((unknown.min, unknown.max), (None, None));
    }

    #[test]
    fn warns_about_cells_that_are_not_numbers() {
        let text = "datetime;a;b\nnot-a-time;0,5;1.0\n2020-03-09 10:14:34;1e999;2.0\n";
        let (series, warnings) = parse_series_with_warnings(text.as_bytes(), "x.csv").unwrap();
        assert_eq!(series.features, ["b"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("column `a` holds no number"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("1 timestamp(s)"), "{warnings:?}");

        let text = "datetime;a\n2020-03-09 10:14:33;0,5\n2020-03-09 10:14:34;0,7\n";
        let err = parse_series(text.as_bytes(), "y.csv").unwrap_err();
        assert!(err.to_string().contains("decimal commas"), "{err}");

        let text = "t,v\n1,1.0\n2,oops\n3,\n";
        let (_, warnings) = parse_series_with_warnings(text.as_bytes(), "z.csv").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("column `v`: 1 cell(s)"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("`oops` on line 3"), "{warnings:?}");
    }
}
