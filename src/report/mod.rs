//! What a sweep's rows become for a reader: `summary.csv` (means and 95%
//! confidence intervals over seeds), `REPORT.md` (the paper's tables, the
//! comparison with its Surge-100 numbers, the bottlenecks and its conclusions
//! checked against our data), the figures of results and of `timeseries.csv`.
//!
//! Everything here is a function of the rows: no simulation, no clock, no
//! randomness, so the same rows always give the same files; [`write_all`]
//! writes them into a sweep's folder (the sweep's and `dl7 merge`'s one writer).

pub mod cells;
pub mod conclusions;
pub mod fidelity;
pub mod figures;
pub mod markdown;
pub mod reference;
pub mod summary;
pub mod timeline;

pub use summary::summarize;

use std::path::{Path, PathBuf};

use dl7_core::timeseries::IntervalRow;
use dl7_core::ResultRow;

/// Writes `summary.csv`, `REPORT.md` and the figures of a whole run's rows
/// and intervals; returns the fidelity line (the paper's Surge-100 tables
/// against the rows). The paper's values are drawn and compared only for
/// runs of its testbed (`paper_testbed`: the simulator on the `kwon2008` profile).
#[allow(clippy::too_many_arguments)]
pub fn write_all(
    name: &str,
    command: &str,
    rows: &[ResultRow],
    series: &[IntervalRow],
    faults: &[crate::results::FaultRow],
    paper_testbed: bool,
    out: &Path,
    files: &mut Vec<PathBuf>,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let summary_rows = summarize(rows);
    let summary_path = out.join("summary.csv");
    summary::write_summary(&summary_path, &summary_rows)?;
    files.push(summary_path);
    let reference = if paper_testbed { reference::kwon2008_surge100() } else { Vec::new() };
    let text = markdown::render(name, command, &summary_rows, paper_testbed.then_some(&reference[..]));
    let report_path = out.join("REPORT.md");
    std::fs::write(&report_path, &text).with_context(|| format!("cannot write {}", report_path.display()))?;
    files.push(report_path);
    files.extend(figures::draw_all(&summary_rows, &reference, out)?);
    let marks: Vec<timeline::Mark> = faults.iter().map(|f| timeline::Mark { t_s: f.at_s, label: f.label() }).collect();
    files.extend(timeline::draw_all(series, &marks, out)?);
    Ok(markdown::fidelity_summary(&summary_rows, &reference))
}
