//! The one error type of dl7-traces. Every variant names the input it came
//! from (file, line, key) and what was expected, so the CLI can print it on
//! one line. Nothing in this crate panics on input; it returns one of these.

use std::path::PathBuf;

/// Errors from loading workloads, reading traces and importing logs.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A workload TOML file does not parse or names an unknown key.
    #[error("{file}: {message}")]
    Toml { file: String, message: String },
    /// A workload parses but a value is out of range or inconsistent.
    #[error("{file}: {key}: {message}")]
    Workload { file: String, key: String, message: String },
    /// One line of a text input (log, trace file, file list) is malformed.
    #[error("{file}:{line}: {reason}: {text:?}")]
    Line { file: String, line: u64, reason: String, text: String },
    /// A binary input is malformed at a byte offset.
    #[error("{file}: byte {offset}: {reason}")]
    Binary { file: String, offset: u64, reason: String },
    /// `builtin(name)` with a name that is not one of [`crate::workload::BUILTIN`].
    #[error("unknown built-in workload {name:?}; expected one of: {}", crate::workload::BUILTIN.join(", "))]
    UnknownBuiltin { name: String },
    /// A catalog that cannot be used (empty, zero total weight, too many objects).
    #[error("{0}")]
    Invalid(String),
}

impl TraceError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TraceError::Io { path: path.into(), source }
    }

    /// A malformed line; `text` is truncated to keep the message on one screen line.
    pub fn line(file: &str, line: u64, reason: impl Into<String>, text: &[u8]) -> Self {
        TraceError::Line { file: file.to_string(), line, reason: reason.into(), text: excerpt(text) }
    }
}

/// At most 80 characters of `text`, lossily decoded, with `...` when cut.
pub(crate) fn excerpt(text: &[u8]) -> String {
    const MAX: usize = 80;
    let s = String::from_utf8_lossy(text);
    let s = s.trim_end_matches(['\r', '\n']);
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push_str("...");
        cut
    }
}

/// A format name no reader or writer has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} format {name:?}; expected {expected}")]
pub struct UnknownFormat {
    /// `log` or `export`.
    pub kind: &'static str,
    /// The name given.
    pub name: String,
    /// The names accepted.
    pub expected: &'static str,
}
