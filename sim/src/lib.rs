//! # dl7-sim: discrete-event model of a web-cache cluster
//!
//! (Module docs to be written by the simulator work: what is and is not modelled.)
//!
//! The application calls [`simulate`] once per run (one cell, one seed).

pub mod cell;

pub use cell::{Arch, CellSpec, ClientMode, Hardware, SimError};

use dl7_core::ResultRow;

/// Simulates one run and returns its row (`mode = "sim"`). Deterministic: the
/// same spec and hardware give the same row, bit for bit.
pub fn simulate(cell: &CellSpec, hw: &Hardware) -> Result<ResultRow, SimError> {
    let _ = (cell, hw);
    Err(SimError::Invalid("the simulator is not built yet".into()))
}
