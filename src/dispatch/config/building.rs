//! The building file: its time zone and which units and trades each asset serves.

use std::collections::HashSet;
use std::path::Path;

use chrono_tz::Tz;
use serde::Deserialize;

use super::{check_trades, parse_zone, required};
use crate::config::{Diagnostics, TomlFile};
use crate::dispatch::merge::AssetMap;

/// One asset as written. Every key is optional here, so that each missing or invalid one is
/// reported on its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RawAsset {
    name: Option<String>,
    trades: Vec<String>,
    units: Option<Vec<String>>,
}

/// Loads the building file, reporting every invalid key and asset.
pub(super) fn load(path: &Path, diags: &mut Diagnostics) -> Option<(Tz, AssetMap)> {
    let file = TomlFile::load(path, diags)?;
    let before = diags.len();
    file.reject_unknown_top_level(&["time_zone", "asset"], diags);
    let time_zone = match file.get("time_zone").map(|item| item.as_str()) {
        Some(Some(text)) => parse_zone(&file, diags, &["time_zone"], text),
        Some(None) => {
            file.report_at(
                diags,
                &["time_zone"],
                "invalid time_zone; expected an IANA name in quotes, such as \
                 \"Europe/Copenhagen\"",
            );
            None
        }
        None => {
            file.report(
                diags,
                "time_zone",
                None,
                "missing time_zone; add the building's IANA time zone, such as \
                 time_zone = \"Europe/Copenhagen\"",
            );
            None
        }
    };
    let raw: Vec<(usize, RawAsset)> = file.array_section_indexed(None, "asset", "asset", diags);
    let mut map = AssetMap::default();
    let mut names = HashSet::new();
    for (index, asset) in raw {
        let index_text = index.to_string();
        let at = |key: &'static str| ["asset", index_text.as_str(), key];
        let name = required(
            &file,
            diags,
            &at("name"),
            asset.name,
            "name = \"substation-1\"",
        );
        if let Some(name) = &name {
            if !names.insert(name.clone()) {
                file.report_at(
                    diags,
                    &at("name"),
                    format!("duplicate asset {name:?}; give each asset one [[asset]] table"),
                );
            }
        }
        check_trades(&file, diags, &at("trades"), &asset.trades);
        let units = required(
            &file,
            diags,
            &at("units"),
            asset.units,
            "units = [\"st.tv\", \"1.th\"]",
        );
        if units.as_ref().is_some_and(Vec::is_empty) {
            file.report_at(
                diags,
                &at("units"),
                "no units; list the units the asset serves",
            );
        }
        if let (Some(name), Some(units)) = (name, units) {
            map.units.insert(name.clone(), units);
            map.trades.insert(name, asset.trades);
        }
    }
    if diags.len() != before {
        return None;
    }
    Some((time_zone?, map))
}
