//! Recorded series for `caretaker demo --data DIR`: SKAB pump runs (`;` separated, a
//! `datetime` column, eight measurements, `anomaly` and `changepoint` labels) and NAB series
//! (`timestamp,value`). Files are read in place and never copied.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Maximum number of series one demo replays. Each becomes a Modbus device, polled several
/// times a second.
pub const MAX_SERIES: usize = 16;

/// SKAB's measurement columns, in file order, with the point names of the demo's
/// `skab-pump-rig` device map.
pub const SKAB_COLUMNS: [(&str, &str); 8] = [
    ("Accelerometer1RMS", "accelerometer_1_rms"),
    ("Accelerometer2RMS", "accelerometer_2_rms"),
    ("Current", "current"),
    ("Pressure", "pressure"),
    ("Temperature", "temperature"),
    ("Thermocouple", "thermocouple"),
    ("Voltage", "voltage"),
    ("Volume Flow RateRMS", "volume_flow_rate_rms"),
];

/// The layout of a recorded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A SKAB run, replayed by a `skab-pump-rig` device.
    Skab,
    /// A NAB series, replayed by a `recorded-series` device.
    Nab,
}

/// One recorded file, loaded whole.
#[derive(Debug, Clone)]
pub struct Series {
    pub path: PathBuf,
    pub layout: Layout,
    /// A name made of the file's folder and stem, such as `valve1-0`. The demo uses it as the
    /// device name and the asset.
    pub name: String,
    /// Point names of the device map, in the order of each row's values.
    pub points: Vec<&'static str>,
    /// One entry per row, with `None` for an empty or non-numeric cell.
    pub rows: Vec<Vec<Option<f64>>>,
    /// Median spacing of the row timestamps in milliseconds, when they parse.
    pub median_interval_ms: Option<i64>,
}

#[derive(Debug, Error)]
pub enum RecordedError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse {path} as CSV: {source}")]
    Csv { path: String, source: csv::Error },
    #[error(
        "{path}: header {header:?} is neither a SKAB run (datetime;{skab}) nor a NAB series \
         (timestamp,value)"
    )]
    UnknownLayout {
        path: String,
        header: String,
        skab: String,
    },
    #[error("{path}: no data rows")]
    Empty { path: String },
    #[error(
        "no SKAB or NAB CSV files under {dir}; pass a folder such as datasets/anomaly/skab/data \
         or datasets/anomaly/nab/data"
    )]
    NoFiles { dir: String },
}

/// Loads the recorded series under `dir` (a folder, searched recursively in name order, or one
/// CSV file), at most [`MAX_SERIES`] of them. Files of published detector outputs (with an
/// `anomaly_score` column) are skipped. Returns the series and the number of files left out
/// over the limit.
pub fn load_dir(dir: &Path) -> Result<(Vec<Series>, usize), RecordedError> {
    let mut files = Vec::new();
    collect_csv(dir, &mut files)?;
    files.sort();
    let mut series = Vec::new();
    let mut left_out = 0;
    for file in files {
        let Some(loaded) = load_file(&file)? else {
            continue;
        };
        if series.len() == MAX_SERIES {
            left_out += 1;
        } else {
            series.push(loaded);
        }
    }
    if series.is_empty() {
        return Err(RecordedError::NoFiles {
            dir: dir.display().to_string(),
        });
    }
    Ok((series, left_out))
}

fn collect_csv(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), RecordedError> {
    let read_error = |source| RecordedError::Read {
        path: path.display().to_string(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.is_file() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let child = entry.path();
        if child.is_dir() {
            collect_csv(&child, files)?;
        } else if child.extension().is_some_and(|ext| ext == "csv") {
            files.push(child);
        }
    }
    Ok(())
}

/// Loads one file, or returns `None` for a file of detector outputs.
pub fn load_file(path: &Path) -> Result<Option<Series>, RecordedError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RecordedError::Read {
        path: display.clone(),
        source,
    })?;
    let first_line = text.lines().next().unwrap_or_default().trim().to_string();
    let delimiter = if first_line.contains(';') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|source| RecordedError::Csv {
            path: display.clone(),
            source,
        })?
        .iter()
        .map(|name| name.trim().to_string())
        .collect();
    if header.iter().any(|name| name == "anomaly_score") {
        return Ok(None);
    }
    let (layout, columns, points) = layout_of(&header).ok_or_else(|| {
        let skab: Vec<&str> = SKAB_COLUMNS.iter().map(|(column, _)| *column).collect();
        RecordedError::UnknownLayout {
            path: display.clone(),
            header: first_line.clone(),
            skab: skab.join(";"),
        }
    })?;

    let mut rows = Vec::new();
    let mut times = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| RecordedError::Csv {
            path: display.clone(),
            source,
        })?;
        times.push(record.get(0).and_then(parse_time_ms));
        let row = columns
            .iter()
            .map(|&index| record.get(index).and_then(|cell| cell.trim().parse().ok()))
            .map(|value: Option<f64>| value.filter(|v| v.is_finite()))
            .collect();
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(RecordedError::Empty { path: display });
    }
    Ok(Some(Series {
        name: series_name(path),
        path: path.to_path_buf(),
        layout,
        points,
        rows,
        median_interval_ms: median_interval(&times),
    }))
}

/// Returns the layout, the indices of the value columns and their point names.
fn layout_of(header: &[String]) -> Option<(Layout, Vec<usize>, Vec<&'static str>)> {
    let time_first = header
        .first()
        .is_some_and(|name| name.eq_ignore_ascii_case("datetime") || name == "timestamp");
    if !time_first {
        return None;
    }
    let skab: Option<Vec<usize>> = SKAB_COLUMNS
        .iter()
        .map(|(column, _)| header.iter().position(|name| name == column))
        .collect();
    if let Some(columns) = skab {
        let points = SKAB_COLUMNS.iter().map(|(_, point)| *point).collect();
        return Some((Layout::Skab, columns, points));
    }
    let value = header.iter().position(|name| name == "value")?;
    Some((Layout::Nab, vec![value], vec!["value"]))
}

/// Parses `2020-03-09 10:14:33` (SKAB and NAB) or RFC 3339 as UTC milliseconds.
fn parse_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|time| time.and_utc().timestamp_millis())
        .or_else(|| crate::time::parse_rfc3339_ms(text))
}

fn median_interval(times: &[Option<i64>]) -> Option<i64> {
    let mut gaps: Vec<i64> = times
        .windows(2)
        .filter_map(|pair| Some(pair[1]? - pair[0]?))
        .filter(|gap| *gap > 0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    Some(gaps[gaps.len() / 2])
}

/// Builds a device name from the file's folder and stem: letters, digits and `-` only.
fn series_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("series");
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("");
    let raw = if folder.is_empty() {
        stem.to_string()
    } else {
        format!("{folder}-{stem}")
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_skab_and_nab_layouts() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "valve1/0.csv",
            "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;\
             Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint\n\
             2020-03-09 10:14:33;0.02;0.04;1.33;0.05;79.3;26.0;233.0;32.0;0.0;0.0\n\
             2020-03-09 10:14:34;0.02;0.04;1.35;;79.5;26.0;236.0;32.0;0.0;0.0\n",
        );
        write(
            dir.path(),
            "nab/art.csv",
            "timestamp,value\n2014-04-01 00:00:00,18.3\n2014-04-01 00:05:00,x\n",
        );
        write(
            dir.path(),
            "outputs/numenta.csv",
            "timestamp,value,anomaly_score\n2014-04-01 00:00:00,1,0.5\n",
        );
        let (series, left_out) = load_dir(dir.path()).unwrap();
        assert_eq!(left_out, 0);
        assert_eq!(series.len(), 2, "detector outputs are skipped");
        let nab = &series[0];
        assert_eq!(nab.layout, Layout::Nab);
        assert_eq!(nab.name, "nab-art");
        assert_eq!(nab.rows, vec![vec![Some(18.3)], vec![None]]);
        assert_eq!(nab.median_interval_ms, Some(300_000));
        let skab = &series[1];
        assert_eq!(skab.layout, Layout::Skab);
        assert_eq!(skab.name, "valve1-0");
        assert_eq!(skab.points.len(), 8);
        assert_eq!(skab.rows[1][3], None);
        assert_eq!(skab.rows[1][2], Some(1.35));
        assert_eq!(skab.median_interval_ms, Some(1_000));
    }

    #[test]
    fn unknown_layout_names_file_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "odd.csv", "when,reading\n1,2\n");
        let err = load_file(&path).unwrap_err().to_string();
        assert!(err.contains("odd.csv"), "{err}");
        assert!(err.contains("when,reading"), "{err}");
    }

    #[test]
    fn empty_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no SKAB or NAB CSV files"), "{err}");
    }
}
