//! What a sweep's rows become for a reader: `summary.csv` (means and 95%
//! confidence intervals over seeds), `REPORT.md` (the paper's tables, the
//! comparison with its Surge-100 numbers, the bottlenecks and its conclusions
//! checked against our data), the figures of results and of `timeseries.csv`.
//!
//! Everything here is a function of the rows: no simulation, no clock, no
//! randomness, so the same rows always give the same files.

pub mod cells;
pub mod conclusions;
pub mod fidelity;
pub mod figures;
pub mod markdown;
pub mod reference;
pub mod summary;
pub mod timeline;

pub use summary::summarize;
