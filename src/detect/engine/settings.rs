//! The `[detect]` section of the gateway config and its loader.
//!
//! ```toml
//! [detect]
//! poll_interval_ms = 1000
//! min_duration_secs = 30
//!
//! [[detect.model]]
//! asset = "heating-pump-1"
//! path = "../models/circulation-pump.json"
//! ```
//!
//! Each model is loaded while the config is checked, and its features must be points of the
//! device maps of the Modbus devices that carry its asset.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Diagnostics, TomlFile};
use crate::detect::alarm::AlarmPolicy;
use crate::detect::forecast::TrendConfig;
use crate::detect::multivariate::AssetModel;
use crate::modbus::ModbusSetup;

/// `[detect]` as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DetectSection {
    /// Run detection and health checks (default true).
    pub enabled: bool,
    /// Milliseconds between reads of new readings from the store (default 1000).
    pub poll_interval_ms: u64,
    /// Seconds a score must stay above its threshold before an alarm is raised (default 30).
    pub min_duration_secs: u64,
    /// Seconds a score must stay below the clear level before an alarm clears (default 60).
    pub clear_hold_secs: u64,
    /// Seconds after a clear during which the same alarm is not raised again (default 600).
    pub cooldown_secs: u64,
    /// Clear level as a share of the threshold, between 0 and 1 (default 0.8).
    pub clear_ratio: f64,
    /// Seconds without a good reading after which a sensor counts as stale at the latest
    /// (default 900). It counts as stale earlier when it misses `missing_intervals` of its
    /// usual reporting interval.
    pub stale_after_secs: u64,
    /// Reporting intervals, as the streaming detector learns them, without a reading before
    /// a sensor counts as stale (default 3).
    pub missing_intervals: u32,
    /// Seconds between health checks: devices, stale sensors, store size, clock (default 10).
    pub health_interval_secs: u64,
    /// Share of `store.max_size_mb` above which the store counts as nearly full (default 0.9).
    pub store_full_ratio: f64,
    /// Span of readings a trend is fitted to, in seconds (default 86400).
    pub forecast_window_secs: u64,
    /// How far ahead a predicted limit crossing raises a request, in seconds (default
    /// 1209600, 14 days).
    pub forecast_horizon_secs: u64,
    /// Readings in the window before a trend is forecast (default 30).
    pub forecast_min_points: usize,
    /// Readings the window keeps at most, evenly spaced (default 240).
    pub forecast_max_points: usize,
    /// Asset models, one `[[detect.model]]` per asset.
    pub model: Vec<ModelEntry>,
}

impl Default for DetectSection {
    fn default() -> Self {
        DetectSection {
            enabled: true,
            poll_interval_ms: 1_000,
            min_duration_secs: 30,
            clear_hold_secs: 60,
            cooldown_secs: 600,
            clear_ratio: 0.8,
            stale_after_secs: 900,
            missing_intervals: 3,
            health_interval_secs: 10,
            store_full_ratio: 0.9,
            forecast_window_secs: 86_400,
            forecast_horizon_secs: 14 * 86_400,
            forecast_min_points: 30,
            forecast_max_points: 240,
            model: Vec::new(),
        }
    }
}

/// One `[[detect.model]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    /// The asset the model scores, as in `modbus.device.asset`.
    pub asset: String,
    /// Model file written by `caretaker train`, relative to the config file's folder.
    pub path: String,
}

/// A loaded asset model and the asset it scores.
#[derive(Debug, Clone)]
pub struct AssetModelSetup {
    pub asset: String,
    pub path: PathBuf,
    pub model: Arc<AssetModel>,
}

/// Validated detection settings.
#[derive(Debug, Clone)]
pub struct DetectSettings {
    pub enabled: bool,
    pub poll_interval: Duration,
    pub alarm: AlarmPolicy,
    pub stale_after_ms: i64,
    pub missing_intervals: u32,
    pub health_interval: Duration,
    pub store_full_ratio: f64,
    pub trend: TrendConfig,
    pub models: Vec<AssetModelSetup>,
}

impl Default for DetectSettings {
    fn default() -> Self {
        settings_from(&DetectSection::default(), Vec::new())
    }
}

/// Maximum duration of a `[detect]` key: 10 years.
const MAX_DURATION_SECS: u64 = 10 * 366 * 86_400;

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn settings_from(section: &DetectSection, models: Vec<AssetModelSetup>) -> DetectSettings {
    DetectSettings {
        enabled: section.enabled,
        poll_interval: Duration::from_millis(section.poll_interval_ms.max(1)),
        alarm: AlarmPolicy {
            clear_ratio: section.clear_ratio,
            min_duration_ms: secs_ms(section.min_duration_secs),
            clear_hold_ms: secs_ms(section.clear_hold_secs),
            cooldown_ms: secs_ms(section.cooldown_secs),
        },
        stale_after_ms: secs_ms(section.stale_after_secs),
        missing_intervals: section.missing_intervals,
        health_interval: Duration::from_secs(section.health_interval_secs.max(1)),
        store_full_ratio: section.store_full_ratio,
        trend: TrendConfig {
            window_ms: secs_ms(section.forecast_window_secs),
            max_points: section.forecast_max_points,
            min_points: section.forecast_min_points,
            horizon_ms: secs_ms(section.forecast_horizon_secs),
        },
        models,
    }
}

/// Loads `[detect]`, reporting every problem. A missing section gives the defaults.
pub fn load(
    file: &TomlFile,
    base_dir: &Path,
    modbus: Option<&ModbusSetup>,
    diags: &mut Diagnostics,
) -> DetectSettings {
    let Some(section) = file.section::<DetectSection>("detect", diags) else {
        return DetectSettings::default();
    };
    let positive = [
        ("poll_interval_ms", section.poll_interval_ms),
        ("health_interval_secs", section.health_interval_secs),
        ("stale_after_secs", section.stale_after_secs),
        ("missing_intervals", u64::from(section.missing_intervals)),
        ("forecast_window_secs", section.forecast_window_secs),
        ("forecast_horizon_secs", section.forecast_horizon_secs),
    ];
    for (key, value) in positive {
        if value == 0 {
            file.report_at(diags, &["detect", key], "must be greater than 0");
        }
    }
    // Durations are added to clock readings, so an absurd one would overflow a timer.
    let durations = [
        ("poll_interval_ms", section.poll_interval_ms / 1000),
        ("min_duration_secs", section.min_duration_secs),
        ("clear_hold_secs", section.clear_hold_secs),
        ("cooldown_secs", section.cooldown_secs),
        ("stale_after_secs", section.stale_after_secs),
        ("health_interval_secs", section.health_interval_secs),
        ("forecast_window_secs", section.forecast_window_secs),
        ("forecast_horizon_secs", section.forecast_horizon_secs),
    ];
    for (key, secs) in durations {
        if secs > MAX_DURATION_SECS {
            file.report_at(
                diags,
                &["detect", key],
                format!("too long; give at most {MAX_DURATION_SECS} seconds (10 years)"),
            );
        }
    }
    for (key, value) in [
        ("clear_ratio", section.clear_ratio),
        ("store_full_ratio", section.store_full_ratio),
    ] {
        if !(value > 0.0 && value <= 1.0) {
            file.report_at(
                diags,
                &["detect", key],
                format!("invalid ratio {value}; expected a number above 0 and at most 1"),
            );
        }
    }
    if section.forecast_min_points < 3 {
        file.report_at(
            diags,
            &["detect", "forecast_min_points"],
            format!(
                "{} is too few; a trend needs at least 3 readings",
                section.forecast_min_points
            ),
        );
    }
    if section.forecast_max_points < section.forecast_min_points.max(3)
        || section.forecast_max_points > 2_000
    {
        file.report_at(
            diags,
            &["detect", "forecast_max_points"],
            format!(
                "{} is outside {} to 2000; it must hold forecast_min_points and bounds the \
                 O(n^2) trend fit",
                section.forecast_max_points,
                section.forecast_min_points.max(3)
            ),
        );
    }
    let models = load_models(file, base_dir, modbus, &section.model, diags);
    settings_from(&section, models)
}

fn load_models(
    file: &TomlFile,
    base_dir: &Path,
    modbus: Option<&ModbusSetup>,
    entries: &[ModelEntry],
    diags: &mut Diagnostics,
) -> Vec<AssetModelSetup> {
    let mut models = Vec::new();
    let mut assets = BTreeSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let index_text = index.to_string();
        let at = |key: &'static str| ["detect", "model", index_text.as_str(), key];
        if !assets.insert(entry.asset.clone()) {
            file.report_at(
                diags,
                &at("asset"),
                format!(
                    "asset `{}` has a model already; give each asset one [[detect.model]]",
                    entry.asset
                ),
            );
            continue;
        }
        let points = asset_points(modbus, &entry.asset);
        if points.is_empty() {
            file.report_at(
                diags,
                &at("asset"),
                format!(
                    "no [[modbus.device]] has asset `{}`; a model scores the points of a device \
                     with that asset",
                    entry.asset
                ),
            );
            continue;
        }
        let path = base_dir.join(&entry.path);
        let model = match AssetModel::load(&path) {
            Ok(model) => model,
            Err(err) => {
                file.report_at(
                    diags,
                    &at("path"),
                    format!("cannot load the model {}: {err:#}", path.display()),
                );
                continue;
            }
        };
        let available: Vec<String> = points.into_iter().collect();
        if let Err(message) = check_model_features(&model, &available) {
            file.report_at(
                diags,
                &at("path"),
                format!("model {}: {message}", path.display()),
            );
            continue;
        }
        models.push(AssetModelSetup {
            asset: entry.asset.clone(),
            path,
            model: Arc::new(model),
        });
    }
    models
}

/// Point names of every Modbus device that carries `asset`.
pub fn asset_points(modbus: Option<&ModbusSetup>, asset: &str) -> BTreeSet<String> {
    modbus
        .map(|setup| {
            setup
                .devices
                .iter()
                .filter(|device| device.asset == asset)
                .flat_map(|device| device.map.points.iter().map(|point| point.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that every feature of `model` is a point of the asset. The asset may have more
/// points than the model uses, so only the points that are features are compared.
fn check_model_features(model: &AssetModel, points: &[String]) -> Result<(), String> {
    let used: Vec<String> = points
        .iter()
        .filter(|point| model.features().contains(point))
        .cloned()
        .collect();
    model.check_features(&used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> (DetectSettings, Vec<String>) {
        let mut diags = Diagnostics::default();
        let file = TomlFile::parse(Path::new("gw.toml"), text.to_string(), &mut diags).unwrap();
        let settings = load(&file, Path::new("."), None, &mut diags);
        (settings, diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn defaults_without_section() {
        let (settings, problems) = load_text("[gateway]\nid = \"a\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(settings.enabled);
        assert_eq!(settings.alarm.min_duration_ms, 30_000);
        assert_eq!(settings.trend.horizon_ms, 14 * 86_400_000);
    }

    #[test]
    fn reads_values() {
        let (settings, problems) = load_text(
            "[detect]\nmin_duration_secs = 2\nforecast_horizon_secs = 3600\nclear_ratio = 0.5\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.alarm.min_duration_ms, 2_000);
        assert_eq!(settings.trend.horizon_ms, 3_600_000);
        assert_eq!(settings.alarm.clear_ratio, 0.5);
    }

    #[test]
    fn reports_bad_values_with_place() {
        let (_, problems) = load_text(
            "[detect]\nclear_ratio = 1.5\nforecast_min_points = 1\npoll_interval_ms = 0\n\
             health_interval_secs = 9223372036854775807\n",
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("gw.toml:2:15: detect.clear_ratio:")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("detect.forecast_min_points")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("detect.poll_interval_ms")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("detect.health_interval_secs") && p.contains("too long")),
            "{problems:?}"
        );
    }

    #[test]
    fn reports_unknown_key() {
        let (_, problems) = load_text("[detect]\nthreshold = 3\n");
        assert!(
            problems.iter().any(|p| p.contains("detect.threshold")),
            "{problems:?}"
        );
    }

    /// Trains a small PCA model on `features` with correlated synthetic rows.
    fn write_model(path: &Path, features: &[&str]) {
        use crate::detect::multivariate::{fit_model, FitOptions, TrainingData};
        let mut rng = fastrand::Rng::with_seed(1);
        let rows: Vec<Vec<Option<f64>>> = (0..200)
            .map(|_| {
                let base = rng.f64();
                features
                    .iter()
                    .enumerate()
                    .map(|(i, _)| Some(base * (i + 1) as f64 + rng.f64() * 0.1))
                    .collect()
            })
            .collect();
        let data = TrainingData {
            source: "synthetic".to_string(),
            features: features.iter().map(|f| f.to_string()).collect(),
            timestamps: (0..rows.len()).map(|i| i.to_string()).collect(),
            rows,
        };
        let model = fit_model("heating-pump-1", &data, &FitOptions::default()).unwrap();
        std::fs::write(path, model.to_json()).unwrap();
    }

    /// Loads a whole gateway config with the shipped pump map and `[detect]` text.
    fn load_gateway(dir: &Path, detect: &str) -> Result<crate::config::GatewayConfig, Vec<String>> {
        let map = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("firmware-config/devices/circulation-pump.toml");
        std::fs::copy(map, dir.join("pump.toml")).unwrap();
        let text = format!(
            "[gateway]\nid = \"t\"\n\n[modbus]\n\n[[modbus.device]]\nname = \"pump-1\"\n\
             map = \"pump.toml\"\nasset = \"heating-pump-1\"\ntransport = \"tcp\"\n\
             address = \"127.0.0.1:1502\"\n\n{detect}"
        );
        let path = dir.join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load(&path).map_err(|diags| diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn model_with_asset_points_loads() {
        let dir = tempfile::tempdir().unwrap();
        write_model(
            &dir.path().join("pump.json"),
            &["flow", "motor_current", "speed"],
        );
        let config = load_gateway(
            dir.path(),
            "[[detect.model]]\nasset = \"heating-pump-1\"\npath = \"pump.json\"\n",
        )
        .unwrap_or_else(|problems| panic!("{problems:#?}"));
        assert_eq!(config.detect.models.len(), 1);
        assert_eq!(config.detect.models[0].asset, "heating-pump-1");
    }

    #[test]
    fn model_with_foreign_feature_is_rejected_with_place() {
        let dir = tempfile::tempdir().unwrap();
        write_model(&dir.path().join("pump.json"), &["flow", "humidity"]);
        let problems = load_gateway(
            dir.path(),
            "[[detect.model]]\nasset = \"heating-pump-1\"\npath = \"pump.json\"\n",
        )
        .err()
        .expect("a feature that is not a point must be rejected");
        let place = format!(
            "{}:15:8: detect.model[0].path:",
            dir.path().join("gateway.toml").display()
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&place) && p.contains("humidity")),
            "{problems:#?}"
        );
    }

    #[test]
    fn model_for_unknown_asset_is_rejected() {
        let (settings, problems) =
            load_text("[[detect.model]]\nasset = \"pump-9\"\npath = \"m.json\"\n");
        assert!(settings.models.is_empty());
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("gw.toml:2:9: detect.model[0].asset:")),
            "{problems:?}"
        );
    }
}
