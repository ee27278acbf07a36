//! The one `results.csv` writer, shared by the simulator sweep and the real
//! cluster runner.

use std::path::Path;

use anyhow::Context;
use dl7_core::ResultRow;

/// Writes `rows` as CSV with the header of [`ResultRow::COLUMNS`].
#[allow(dead_code)]
pub fn write_results(path: &Path, rows: &[ResultRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))?;
    for row in rows {
        w.serialize(row).with_context(|| format!("cannot write {}", path.display()))?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
