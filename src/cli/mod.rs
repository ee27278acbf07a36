//! Subcommand families. Each module owns its clap types and a `run` function.

pub mod lab;
pub mod policy;
pub mod real;
pub mod sim;
pub mod sweep;
pub mod trace;

/// An error caused by the user's input (bad name, value, file contents):
/// reported on one line and exits with code 2, like clap's own usage errors.
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
