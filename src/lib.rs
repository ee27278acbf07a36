//! # dl7: the application layer
//!
//! The one crate that knows every other: it reads an experiment file into a
//! validated plan, turns the plan into cells, hands each cell to an engine
//! (the simulator, or the real cluster locally or in the emulated lab), and
//! writes what came back (`results.csv`, `summary.csv`, `REPORT.md`,
//! figures). The `dl7` binary (`src/main.rs`, `src/cli/`) only parses
//! arguments and calls this library.

pub mod analysis;
pub mod experiment;
pub mod report;
pub mod results;
pub mod shard;
pub mod sweep;

/// An error caused by the user's input (bad name, value, file contents):
/// the binary reports it on one line and exits with code 2, like clap's own
/// usage errors.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Wraps any displayable error as an [`InputError`].
pub fn input_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(InputError(e.to_string()))
}
