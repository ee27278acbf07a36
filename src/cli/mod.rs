//! Subcommand families. Each module owns its clap types and a `run` function.

pub mod lab;
pub mod policy;
pub mod real;
pub mod sim;
pub mod sweep;
pub mod trace;

pub use dl7::{input_error, InputError};
