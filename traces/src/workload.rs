//! Workload files: TOML descriptions of a model (SURGE) or an explicit file
//! list, the paper's built-in workloads, and [`load`], which turns any
//! workload-like file (workload TOML, WebStone file list, dl7 trace file)
//! into a [`Catalog`].
//!
//! This module parses and validates; it must not sample (that is
//! [`crate::surge`]) nor know about access logs (that is [`crate::import`]).
//!
//! A SURGE workload file:
//! ```toml
//! name = "surge100"
//! model = "surge"
//! path_prefix = "/surge100"
//! [surge]
//! files = 100
//! zipf_exponent = 1.0
//! scale = 0.812        # fitted
//! seed = 3             # fitted
//! [content_mix]        # share of requests per type
//! gif = 0.408
//! html = 0.351
//! jpeg = 0.19
//! other = 0.051
//! ```
//! The size shape keys `body_mu`, `body_sigma`, `tail_k`, `tail_alpha` default
//! to SURGE's published values. A list workload has `model = "list"` and one
//! `[[file]]` table per object with `path`, `size`, optional `weight`
//! (default 1) and optional `type` (default: guessed from the path).

use std::path::Path;

use serde::Deserialize;

use crate::catalog::{Catalog, ContentType, Object, ObjectId};
use crate::error::TraceError;
use crate::surge::{ContentMix, HybridSize, SurgeModel};
use crate::trace::Trace;

/// Names accepted by [`builtin`].
pub const BUILTIN: &[&str] = &["surge100", "unc2001", "berkeley1998", "webstone"];

/// Marks an argument as a built-in's name, never a file's: `builtin:surge100`
/// is the built-in even where a file called `surge100` exists. The engines
/// pass built-ins to the services this way.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// The TOML text of a built-in workload, embedded at compile time.
pub fn builtin_source(name: &str) -> Option<&'static str> {
    match name {
        "surge100" => Some(include_str!("../workloads/surge100.toml")),
        "unc2001" => Some(include_str!("../workloads/unc2001.toml")),
        "berkeley1998" => Some(include_str!("../workloads/berkeley1998.toml")),
        "webstone" => Some(include_str!("../workloads/webstone.toml")),
        _ => None,
    }
}

/// The catalog of a built-in workload (see [`BUILTIN`]); works from any directory.
pub fn builtin(name: &str) -> Result<Catalog, TraceError> {
    let text = builtin_source(name).ok_or_else(|| TraceError::UnknownBuiltin { name: name.to_string() })?;
    WorkloadFile::parse(text, &format!("{BUILTIN_PREFIX}{name}"))?.catalog()
}

/// Loads a catalog from a workload TOML (`*.toml`), a dl7 trace file (its
/// catalog; first line `#dl7-trace`), or a WebStone file list (`URL WEIGHT # SIZE`).
pub fn load(path: &Path) -> Result<Catalog, TraceError> {
    let text = std::fs::read(path).map_err(|e| TraceError::io(path, e))?;
    let file = path.display().to_string();
    if text.starts_with(crate::trace::MAGIC.as_bytes()) {
        return Ok(Trace::parse(&text, &file)?.catalog);
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        let text = std::str::from_utf8(&text)
            .map_err(|e| TraceError::Toml { file: file.clone(), message: format!("not UTF-8 text: {e}") })?;
        return WorkloadFile::parse(text, &file)?.catalog();
    }
    parse_file_list(&text, &file)
}

/// Resolves a CLI argument: a built-in name if it is one and no such file
/// exists, otherwise a path for [`load`].
pub fn resolve(name_or_path: &str) -> Result<Catalog, TraceError> {
    Trace::resolve(name_or_path).map(|t| t.catalog)
}

/// The SURGE model of a CLI argument naming a SURGE workload (a built-in
/// name, when no such file exists, or a workload TOML with `model =
/// "surge"`); `None` for anything else (list workloads, trace files, file
/// lists), which must be loaded whole.
pub fn resolve_surge(name_or_path: &str) -> Result<Option<SurgeModel>, TraceError> {
    let path = Path::new(name_or_path);
    let builtin = name_or_path.strip_prefix(BUILTIN_PREFIX);
    let file = if builtin.is_none() && path.exists() {
        if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
        WorkloadFile::parse(&text, &path.display().to_string())?
    } else {
        let name = builtin.unwrap_or(name_or_path);
        match builtin_source(name) {
            Some(text) => WorkloadFile::parse(text, &format!("{BUILTIN_PREFIX}{name}"))?,
            None => return Err(not_found(name)),
        }
    };
    match file.model {
        // A malformed file is loaded whole, which names the error.
        ModelKind::Surge if file.file.is_empty() => file.surge_model().map(Some),
        _ => Ok(None),
    }
}

/// The error for an argument that is neither a file nor a built-in name.
pub(crate) fn not_found(name_or_path: &str) -> TraceError {
    TraceError::Invalid(format!(
        "{name_or_path}: no such file, and not a built-in workload (expected a file or one of: {})",
        BUILTIN.join(", ")
    ))
}

/// Which generator a workload file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// SURGE hybrid sizes, Zipf popularity (`[surge]` table).
    Surge,
    /// An explicit list of files (`[[file]]` tables).
    List,
}

/// A workload file as written (raw stage; [`WorkloadFile::catalog`] validates).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// Short name, used in reports.
    pub name: String,
    /// Free text: where the workload comes from.
    #[serde(default)]
    pub description: Option<String>,
    /// The generator.
    pub model: ModelKind,
    /// URL prefix of generated objects (default `/NAME`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Parameters of `model = "surge"`.
    #[serde(default)]
    pub surge: Option<SurgeSection>,
    /// Share of requests per content type (`model = "surge"`).
    #[serde(default)]
    pub content_mix: Option<MixSection>,
    /// Files of `model = "list"`.
    #[serde(default)]
    pub file: Vec<FileEntry>,
    /// Where this was read from, for error messages.
    #[serde(skip)]
    pub origin: String,
}

/// `[surge]`: SURGE model parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurgeSection {
    /// Number of objects.
    pub files: u32,
    /// Zipf exponent of popularity by rank.
    pub zipf_exponent: f64,
    /// Lognormal body mu (default SURGE's 9.357).
    #[serde(default = "default_mu")]
    pub body_mu: f64,
    /// Lognormal body sigma (default 1.318).
    #[serde(default = "default_sigma")]
    pub body_sigma: f64,
    /// Pareto tail k in bytes (default 133,000).
    #[serde(default = "default_k")]
    pub tail_k: f64,
    /// Pareto tail alpha (default 1.1).
    #[serde(default = "default_alpha")]
    pub tail_alpha: f64,
    /// Multiplies every size (fitted).
    pub scale: f64,
    /// Seed of the size draws (fitted).
    pub seed: u64,
    /// What `scale` and `seed` were fitted to (bytes per request); informative,
    /// and what `dl7 trace calibrate` aims at.
    #[serde(default)]
    pub target_mean_bytes: Option<f64>,
}

fn default_mu() -> f64 {
    HybridSize::SURGE_MU
}
fn default_sigma() -> f64 {
    HybridSize::SURGE_SIGMA
}
fn default_k() -> f64 {
    HybridSize::SURGE_K
}
fn default_alpha() -> f64 {
    HybridSize::SURGE_ALPHA
}

/// `[content_mix]`: share of requests per content type; missing types are 0.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSection {
    /// Share of requests to html objects.
    #[serde(default)]
    pub html: f64,
    /// Share of requests to gif objects.
    #[serde(default)]
    pub gif: f64,
    /// Share of requests to jpeg objects.
    #[serde(default)]
    pub jpeg: f64,
    /// Share of requests to png objects.
    #[serde(default)]
    pub png: f64,
    /// Share of requests to css objects.
    #[serde(default)]
    pub css: f64,
    /// Share of requests to js objects.
    #[serde(default)]
    pub js: f64,
    /// Share of requests to other objects.
    #[serde(default)]
    pub other: f64,
}

/// `[[file]]`: one object of a list workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// URL path, starting with `/`.
    pub path: String,
    /// Body size in bytes.
    pub size: u64,
    /// Relative popularity (default 1).
    #[serde(default)]
    pub weight: Option<f64>,
    /// Content type (default: from the path's extension).
    #[serde(default, rename = "type")]
    pub content_type: Option<ContentType>,
}

impl WorkloadFile {
    /// Parses TOML text; `file` names the source in errors (`file:line: message`).
    pub fn parse(text: &str, file: &str) -> Result<Self, TraceError> {
        let mut workload: WorkloadFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1);
            TraceError::Toml {
                file: match line {
                    Some(l) => format!("{file}:{l}"),
                    None => file.to_string(),
                },
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        workload.origin = file.to_string();
        Ok(workload)
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> TraceError {
        TraceError::Workload { file: self.origin.clone(), key: key.to_string(), message: message.into() }
    }

    /// The SURGE model of a `model = "surge"` file, validated.
    pub fn surge_model(&self) -> Result<SurgeModel, TraceError> {
        let s = self.surge.as_ref().ok_or_else(|| self.invalid("surge", "model = \"surge\" needs a [surge] table"))?;
        if !(1..=crate::surge::MAX_FILES).contains(&s.files) {
            return Err(
                self.invalid("surge.files", format!("expected 1 to {}, got {}", crate::surge::MAX_FILES, s.files))
            );
        }
        let positive = [
            ("surge.body_sigma", s.body_sigma),
            ("surge.tail_k", s.tail_k),
            ("surge.tail_alpha", s.tail_alpha),
            ("surge.scale", s.scale),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(self.invalid(key, format!("expected a number > 0, got {v}")));
            }
        }
        if !s.body_mu.is_finite() {
            return Err(self.invalid("surge.body_mu", "expected a finite number"));
        }
        if !(s.zipf_exponent.is_finite() && s.zipf_exponent >= 0.0) {
            return Err(self.invalid("surge.zipf_exponent", format!("expected a number >= 0, got {}", s.zipf_exponent)));
        }
        let mix = match &self.content_mix {
            None => ContentMix::wessels(),
            Some(m) => {
                let shares = vec![
                    (ContentType::Gif, m.gif),
                    (ContentType::Html, m.html),
                    (ContentType::Jpeg, m.jpeg),
                    (ContentType::Png, m.png),
                    (ContentType::Css, m.css),
                    (ContentType::Js, m.js),
                    (ContentType::Other, m.other),
                ];
                if let Some((t, v)) = shares.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
                    return Err(self.invalid(
                        &format!("content_mix.{}", crate::surge::extension(*t)),
                        format!("expected a share >= 0, got {v}"),
                    ));
                }
                if shares.iter().map(|(_, v)| v).sum::<f64>() <= 0.0 {
                    return Err(self.invalid("content_mix", "expected at least one share > 0"));
                }
                ContentMix { shares }
            }
        };
        Ok(SurgeModel {
            path_prefix: self.path_prefix.clone().unwrap_or_else(|| format!("/{}", self.name)),
            files: s.files,
            zipf_exponent: s.zipf_exponent,
            body_mu: s.body_mu,
            body_sigma: s.body_sigma,
            tail_k: s.tail_k,
            tail_alpha: s.tail_alpha,
            scale: s.scale,
            seed: s.seed,
            mix,
        })
    }

    /// Generates (SURGE) or lists (list) the workload's catalog.
    pub fn catalog(&self) -> Result<Catalog, TraceError> {
        match self.model {
            ModelKind::Surge => {
                if !self.file.is_empty() {
                    return Err(self.invalid("file", "[[file]] tables belong to model = \"list\""));
                }
                self.surge_model()?.generate()
            }
            ModelKind::List => {
                if self.surge.is_some() || self.content_mix.is_some() {
                    return Err(self.invalid("surge", "[surge] and [content_mix] belong to model = \"surge\""));
                }
                if self.file.is_empty() {
                    return Err(self.invalid("file", "model = \"list\" needs at least one [[file]] table"));
                }
                let mut objects = Vec::with_capacity(self.file.len());
                for (i, f) in self.file.iter().enumerate() {
                    let key = format!("file[{i}]");
                    if !f.path.starts_with('/') || f.path.contains(char::is_whitespace) {
                        return Err(self.invalid(
                            &format!("{key}.path"),
                            format!("expected a URL path starting with / and without spaces, got {:?}", f.path),
                        ));
                    }
                    let weight = f.weight.unwrap_or(1.0);
                    if !(weight.is_finite() && weight >= 0.0) {
                        return Err(
                            self.invalid(&format!("{key}.weight"), format!("expected a number >= 0, got {weight}"))
                        );
                    }
                    if objects.iter().any(|o: &Object| o.path == f.path) {
                        return Err(self.invalid(&format!("{key}.path"), format!("{} listed twice", f.path)));
                    }
                    objects.push(Object {
                        id: ObjectId(i as u32),
                        path: f.path.clone(),
                        size: f.size,
                        content_type: f.content_type.unwrap_or_else(|| ContentType::from_path(&f.path)),
                        weight,
                    });
                }
                if objects.iter().all(|o| o.weight == 0.0) {
                    return Err(self.invalid("file", "every weight is 0; expected at least one > 0"));
                }
                Ok(Catalog { objects })
            }
        }
    }
}

/// Parses a WebStone file list: one `URL WEIGHT # SIZE [TYPE]` per line,
/// `#` starts a comment, a missing or non-positive weight means 1 (WebStone's
/// rule). The size after `#` is required: a list without sizes cannot be served.
pub fn parse_file_list(text: &[u8], file: &str) -> Result<Catalog, TraceError> {
    let mut objects: Vec<Object> = Vec::new();
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let err = |reason: &str| TraceError::line(file, line_no, reason, raw);
        let line = std::str::from_utf8(raw).map_err(|_| err("not UTF-8 text"))?.trim();
        let (body, comment) = match line.split_once('#') {
            Some((b, c)) => (b.trim(), c.trim()),
            None => (line, ""),
        };
        if body.is_empty() {
            continue;
        }
        let mut fields = body.split_whitespace();
        let path = fields.next().unwrap_or_default();
        let weight = match fields.next() {
            None => 1.0,
            Some(w) => match w.parse::<f64>() {
                Ok(w) if w.is_finite() && w > 0.0 => w,
                Ok(_) => 1.0,
                Err(_) => return Err(err("expected `URL WEIGHT # SIZE`: weight is not a number")),
            },
        };
        if fields.next().is_some() {
            return Err(err("expected `URL WEIGHT # SIZE`: extra text before `#`"));
        }
        let mut tail = comment.split_whitespace();
        let size = tail
            .next()
            .and_then(|s| s.replace(['_', ','], "").parse::<u64>().ok())
            .ok_or_else(|| err("expected the size in bytes after `#` (`URL WEIGHT # SIZE`)"))?;
        let content_type = match tail.next() {
            Some(t) => parse_type(t).ok_or_else(|| err("unknown content type after the size"))?,
            None => ContentType::from_path(path),
        };
        objects.push(Object { id: ObjectId(objects.len() as u32), path: path.to_string(), size, content_type, weight });
    }
    if objects.is_empty() {
        return Err(TraceError::Invalid(format!("{file}: no files listed; expected lines `URL WEIGHT # SIZE`")));
    }
    Ok(Catalog { objects })
}

/// Writes a catalog as a WebStone file list (`URL WEIGHT # SIZE TYPE`).
pub fn write_file_list(catalog: &Catalog, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
    write_file_list_of(catalog.objects.iter().cloned(), out)
}

/// [`write_file_list`] of objects produced one at a time (see
/// [`crate::trace::write_catalog`]).
pub fn write_file_list_of(
    objects: impl IntoIterator<Item = Object>,
    out: &mut (impl std::io::Write + ?Sized),
) -> std::io::Result<()> {
    writeln!(out, "# WebStone file list: URL WEIGHT # SIZE TYPE")?;
    for o in objects {
        writeln!(out, "{} {} # {} {}", o.path, o.weight, o.size, type_name(o.content_type))?;
    }
    Ok(())
}

/// The lowercase name used in files (`html`, `gif`, ...).
pub fn type_name(t: ContentType) -> &'static str {
    match t {
        ContentType::Html => "html",
        ContentType::Gif => "gif",
        ContentType::Jpeg => "jpeg",
        ContentType::Png => "png",
        ContentType::Css => "css",
        ContentType::Js => "js",
        ContentType::Other => "other",
    }
}

/// Inverse of [`type_name`].
pub fn parse_type(name: &str) -> Option<ContentType> {
    Some(match name {
        "html" => ContentType::Html,
        "gif" => ContentType::Gif,
        "jpeg" => ContentType::Jpeg,
        "png" => ContentType::Png,
        "css" => ContentType::Css,
        "js" => ContentType::Js,
        "other" => ContentType::Other,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "name = \"x\"\nmodel = \"surge\"\n[surge]\nfiles = 10\nzipf = 1.0\n";
        let e = WorkloadFile::parse(text, "w.toml").unwrap_err().to_string();
        assert!(e.starts_with("w.toml:5:"), "{e}");
        assert!(e.contains("zipf"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn out_of_range_value_names_key() {
        let text =
            "name = \"x\"\nmodel = \"surge\"\n[surge]\nfiles = 10\nzipf_exponent = 1.0\nscale = -1.0\nseed = 1\n";
        let e = WorkloadFile::parse(text, "w.toml").unwrap().catalog().unwrap_err().to_string();
        assert!(e.contains("w.toml: surge.scale: expected a number > 0"), "{e}");
    }

    #[test]
    fn file_list_rules() {
        let c = parse_file_list(b"# comment\n/a.html 350 # 500\n/b.gif # 5125\n/c.bin -3 # 10 other\n", "l").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!((c.objects[1].weight, c.objects[1].size), (1.0, 5125));
        assert_eq!(c.objects[1].content_type, ContentType::Gif);
        assert_eq!(c.objects[2].weight, 1.0);
        let e = parse_file_list(b"/a.html 3\n", "l").unwrap_err().to_string();
        assert!(e.starts_with("l:1: expected the size"), "{e}");
        let mut out = Vec::new();
        write_file_list(&c, &mut out).unwrap();
        assert_eq!(parse_file_list(&out, "again").unwrap(), c);
    }

    #[test]
    fn builtins_load_and_unknown_is_an_error() {
        for name in BUILTIN {
            let c = builtin(name).unwrap();
            assert!(!c.is_empty(), "{name}");
        }
        assert!(builtin("nope").unwrap_err().to_string().contains("surge100"));
    }
}
