//! Multivariate models per asset.

use std::path::Path;

use super::replay::Series;
use super::RowOutput;

/// A trained asset model.
#[derive(Debug, Clone)]
pub struct AssetModel {
    pub features: Vec<String>,
}

impl AssetModel {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        anyhow::bail!("{}: asset models are not supported yet", path.display())
    }
}

/// Scores a series with several features; the first `warmup_rows` rows may be learned from
/// and are never flagged.
pub fn score_series(
    series: &Series,
    warmup_rows: usize,
    model: Option<&AssetModel>,
) -> anyhow::Result<Vec<RowOutput>> {
    let _ = (warmup_rows, model);
    Ok(vec![RowOutput::default(); series.len()])
}
