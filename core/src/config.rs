//! The one TOML error helper: every file dl7 reads (experiments, hardware
//! profiles, labs) reports a bad value as one line naming the file, the
//! line and column, the dotted key and what was expected. Pure text work:
//! the caller reads the file; this module only turns byte spans into
//! positions and formats the message.

use std::fmt;
use std::ops::Range;

/// A bad configuration file: one line with file, position, key and expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A file's text and its name, to turn byte spans into `file:line:col`.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The whole text that was parsed.
    pub text: &'a str,
    /// How the file is named in messages (its path as given).
    pub origin: &'a str,
}

impl<'a> Source<'a> {
    /// The text `text` read from `origin`.
    pub fn new(text: &'a str, origin: &'a str) -> Self {
        Source { text, origin }
    }

    /// An error at `span` about `key`.
    pub fn at(&self, span: Range<usize>, key: &str, what: impl fmt::Display) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError(format!("{}:{line}:{col}: `{key}`: {what}", self.origin))
    }

    /// An error about the whole file (no position).
    pub fn whole(&self, what: impl fmt::Display) -> ConfigError {
        ConfigError(format!("{}: {what}", self.origin))
    }

    /// Parses the text as `T`, turning a syntax, type or unknown-key error
    /// into the one-line form; the key is recovered from the text around the
    /// error's position.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| self.serde_error(&e))
    }

    /// A syntax or type error from the TOML reader, in the one-line form.
    pub fn serde_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let (line, col) = line_col(self.text, span.start);
                match key_at(self.text, span.start) {
                    Some(key) => ConfigError(format!("{}:{line}:{col}: `{key}`: {message}", self.origin)),
                    None => ConfigError(format!("{}:{line}:{col}: {message}", self.origin)),
                }
            }
            None => ConfigError(format!("{}: {message}", self.origin)),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = floor_char_boundary(text, at.min(text.len()));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..at].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The dotted key whose assignment contains byte offset `at`: the nearest
/// `key = ...` line at or above it, prefixed by the table header above that.
/// Best effort; a header line itself yields the table name.
pub fn key_at(text: &str, at: usize) -> Option<String> {
    let at = floor_char_boundary(text, at.min(text.len()));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let mut key: Option<String> = None;
    let mut table: Option<String> = None;
    let mut lines: Vec<&str> = text[..line_start].lines().collect();
    let current_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    lines.push(&text[line_start..current_end]);
    for line in lines.iter().rev() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_string();
            table = Some(name);
            break;
        }
        if key.is_none() {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim();
                let is_key = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\''));
                if is_key {
                    key = Some(k.trim_matches(['"', '\'']).to_string());
                }
            }
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
        inner: Inner,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        b: f64,
    }

    #[test]
    fn a_wrong_type_names_file_line_column_and_dotted_key() {
        let text = "a = 1\n[inner]\nb = \"x\"\n";
        let e = Source::new(text, "f.toml").parse::<T>().unwrap_err().0;
        assert!(e.starts_with("f.toml:3:5: `inner.b`:"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let text = "a = 1\nz = 2\n[inner]\nb = 1.0\n";
        let e = Source::new(text, "f.toml").parse::<T>().unwrap_err().0;
        assert!(e.starts_with("f.toml:2:") && e.contains('z'), "{e}");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(line_col("é = 1\nab", 8), (2, 2));
    }
}
