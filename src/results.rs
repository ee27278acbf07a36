//! The one `results.csv` writer, shared by the simulator sweep and the real
//! cluster runner.

use std::path::Path;

use anyhow::Context;
use dl7_core::ResultRow;

/// Writes `rows` as CSV with the header of [`ResultRow::COLUMNS`].
pub fn write_results(path: &Path, rows: &[ResultRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot create {}", path.display()))?;
    for row in rows {
        w.serialize(row).with_context(|| format!("cannot write {}", path.display()))?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Reads a `results.csv` (any mode); errors name the file and the line.
pub fn read_results(path: &Path) -> anyhow::Result<Vec<ResultRow>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| crate::input_error(format!("{}: cannot read results: {e}", path.display())))?;
    let header = r
        .headers()
        .map_err(|e| crate::input_error(format!("{}: cannot read the header: {e}", path.display())))?
        .clone();
    if header.iter().ne(ResultRow::COLUMNS.iter().copied()) {
        return Err(crate::input_error(format!(
            "{}:1: expected the results.csv header {}, found {}",
            path.display(),
            ResultRow::COLUMNS.join(","),
            header.iter().collect::<Vec<_>>().join(",")
        )));
    }
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<ResultRow>().enumerate() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(i as u64 + 2, |p| p.line());
            crate::input_error(format!("{}:{line}: {e}", path.display()))
        })?;
        rows.push(row);
    }
    Ok(rows)
}
