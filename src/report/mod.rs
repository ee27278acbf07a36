//! What a sweep's rows become for a reader: `summary.csv` (means and 95%
//! confidence intervals over seeds), `REPORT.md` (the paper's tables, the
//! comparison with its Surge-100 numbers, the bottlenecks and its conclusions
//! checked against our data) and the figures.
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

pub use summary::summarize;
