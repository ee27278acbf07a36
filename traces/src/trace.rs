//! A request sequence over a catalog ([`Trace`]) and its text file format,
//! which `dl7 trace gen` and `dl7 trace import` write and [`Trace::load`] and
//! [`crate::workload::load`] read back.
//!
//! Format (UTF-8 text, `\n` line ends, deterministic for a given trace):
//! ```text
//! #dl7-trace v1
//! objects 2
//! 5125 html 350 /file5k.html
//! 500 gif 1 /a b.gif
//! requests 3 timed
//! 1431000000 0
//! 1431000000 1
//! 1431000007 0
//! ```
//! Object lines are `SIZE TYPE WEIGHT PATH` (the path is the rest of the line,
//! so it may hold spaces; object ids are line order from 0). Request lines are
//! `ID`, or `TIME ID` when the header says `timed` (TIME in whole seconds:
//! Unix time, or seconds from the start of the log for date-less logs). A
//! generated catalog has `requests 0`.
//!
//! This module does no importing; it only stores what importers produce.

use std::io::Write;
use std::path::Path;

use crate::catalog::{Catalog, Object, ObjectId};
use crate::error::TraceError;
use crate::workload::{parse_type, type_name};

/// First line of a trace file.
pub const MAGIC: &str = "#dl7-trace v1";

/// A catalog and the sequence of requests made to it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// The objects; weights are request counts for imported logs.
    pub catalog: Catalog,
    /// Requested objects, in order.
    pub requests: Vec<ObjectId>,
    /// Request times in seconds, one per request, or empty when unknown.
    pub times: Vec<u64>,
}

impl Trace {
    /// A trace with no requests: a model catalog.
    pub fn from_catalog(catalog: Catalog) -> Self {
        Trace { catalog, requests: Vec::new(), times: Vec::new() }
    }

    /// Reads a trace file; any other workload-like file ([`crate::workload::load`])
    /// gives its catalog and no requests.
    pub fn load(path: &Path) -> Result<Trace, TraceError> {
        let mut head = [0u8; MAGIC.len()];
        let is_trace = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .map(|()| head == *MAGIC.as_bytes())
            .unwrap_or(false);
        if is_trace {
            let text = std::fs::read(path).map_err(|e| TraceError::io(path, e))?;
            Trace::parse(&text, &path.display().to_string())
        } else {
            crate::workload::load(path).map(Trace::from_catalog)
        }
    }

    /// A trace from a CLI argument: a built-in workload name (when no file
    /// of that name exists) or a path for [`Trace::load`].
    pub fn resolve(name_or_path: &str) -> Result<Trace, TraceError> {
        let path = Path::new(name_or_path);
        if let Some(name) = name_or_path.strip_prefix(crate::workload::BUILTIN_PREFIX) {
            // Typed as a built-in by whoever wrote it: no file may stand in for it.
            crate::workload::builtin(name).map(Trace::from_catalog)
        } else if path.exists() {
            Trace::load(path)
        } else if crate::workload::BUILTIN.contains(&name_or_path) {
            crate::workload::builtin(name_or_path).map(Trace::from_catalog)
        } else {
            Err(crate::workload::not_found(name_or_path))
        }
    }

    /// Writes the trace file to `path`.
    pub fn save(&self, path: &Path) -> Result<(), TraceError> {
        let file = std::fs::File::create(path).map_err(|e| TraceError::io(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        self.write(&mut out).and_then(|()| out.flush()).map_err(|e| TraceError::io(path, e))
    }

    /// Writes the trace file format to `out`.
    pub fn write(&self, out: &mut (impl Write + ?Sized)) -> std::io::Result<()> {
        writeln!(out, "{MAGIC}")?;
        writeln!(out, "objects {}", self.catalog.len())?;
        for o in &self.catalog.objects {
            write_object(out, o)?;
        }
        let timed = !self.times.is_empty();
        writeln!(out, "requests {}{}", self.requests.len(), if timed { " timed" } else { "" })?;
        for (i, id) in self.requests.iter().enumerate() {
            if timed {
                writeln!(out, "{} {}", self.times[i], id.0)?;
            } else {
                writeln!(out, "{}", id.0)?;
            }
        }
        Ok(())
    }

    /// Parses the trace file format; `file` names the source in errors.
    pub fn parse(text: &[u8], file: &str) -> Result<Trace, TraceError> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let mut lines = text.split(|&b| b == b'\n').enumerate().map(|(i, l)| (i as u64 + 1, l));
        let mut next = |what: &str| {
            lines.next().ok_or_else(|| TraceError::Invalid(format!("{file}: ended early; expected {what}")))
        };
        let (n, magic) = next("the first line")?;
        if magic != MAGIC.as_bytes() {
            return Err(TraceError::line(file, n, format!("expected `{MAGIC}`"), magic));
        }
        let (n, header) = next("`objects N`")?;
        let count = header
            .strip_prefix(b"objects ")
            .and_then(parse_u64)
            .filter(|&c| c <= u32::MAX as u64)
            .ok_or_else(|| TraceError::line(file, n, "expected `objects N`", header))?;
        let mut catalog = Catalog { objects: Vec::with_capacity(count.min(1 << 20) as usize) };
        for i in 0..count {
            let (n, line) = next("an object line `SIZE TYPE WEIGHT PATH`")?;
            let err = |reason: &str| TraceError::line(file, n, reason, line);
            let text = std::str::from_utf8(line).map_err(|_| err("not UTF-8 text"))?;
            let mut parts = text.splitn(4, ' ');
            let mut field = || parts.next().unwrap_or_default();
            let size = field().parse::<u64>().map_err(|_| err("expected `SIZE TYPE WEIGHT PATH`: bad SIZE"))?;
            let content_type = parse_type(field()).ok_or_else(|| err("expected `SIZE TYPE WEIGHT PATH`: bad TYPE"))?;
            let weight = field()
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| err("expected `SIZE TYPE WEIGHT PATH`: WEIGHT must be a number >= 0"))?;
            let path = field();
            if path.is_empty() {
                return Err(err("expected `SIZE TYPE WEIGHT PATH`: missing PATH"));
            }
            catalog.objects.push(crate::catalog::Object {
                id: ObjectId(i as u32),
                path: path.to_string(),
                size,
                content_type,
                weight,
            });
        }
        let (n, header) = next("`requests M`")?;
        let bad_header = || TraceError::line(file, n, "expected `requests M` or `requests M timed`", header);
        let rest = header.strip_prefix(b"requests ").ok_or_else(bad_header)?;
        let (m, timed) = match rest.strip_suffix(b" timed") {
            Some(m) => (m, true),
            None => (rest, false),
        };
        let m = parse_u64(m).ok_or_else(bad_header)?;
        let capacity = m.min(text.len() as u64 / 2) as usize;
        let mut trace = Trace {
            catalog,
            requests: Vec::with_capacity(capacity),
            times: if timed { Vec::with_capacity(capacity) } else { Vec::new() },
        };
        for _ in 0..m {
            let (n, line) = next("a request line")?;
            let err = |reason: &str| TraceError::line(file, n, reason, line);
            let id_text = if timed {
                let (t, id) = split_once_byte(line, b' ').ok_or_else(|| err("expected `TIME ID`"))?;
                trace.times.push(parse_u64(t).ok_or_else(|| err("expected `TIME ID`: bad TIME"))?);
                id
            } else {
                line
            };
            let id = parse_u64(id_text).ok_or_else(|| err("expected an object id"))?;
            if id >= count {
                return Err(err(&format!("object id out of range (the catalog has {count} objects)")));
            }
            trace.requests.push(ObjectId(id as u32));
        }
        if let Some((n, l)) = lines.find(|(_, l)| !l.is_empty()) {
            return Err(TraceError::line(file, n, "unexpected text after the last request", l));
        }
        Ok(trace)
    }
}

fn write_object(out: &mut (impl Write + ?Sized), o: &Object) -> std::io::Result<()> {
    writeln!(out, "{} {} {} {}", o.size, type_name(o.content_type), o.weight, o.path)
}

/// What [`write_catalog`] wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Written {
    pub objects: u64,
    /// Popularity-weighted mean body size ([`Catalog::mean_request_bytes`]).
    pub mean_request_bytes: f64,
}

/// Writes the trace file of a catalog with no requests from `count` objects
/// produced one at a time, byte for byte what [`Trace::write`] writes for
/// that catalog, without holding it: memory stays whatever the producer
/// keeps (a SURGE model's sizes, [`crate::SurgeModel::objects`]). An
/// iterator that yields other than `count` objects is an error.
pub fn write_catalog(
    out: &mut (impl Write + ?Sized),
    count: u64,
    objects: impl IntoIterator<Item = Object>,
) -> std::io::Result<Written> {
    writeln!(out, "{MAGIC}")?;
    writeln!(out, "objects {count}")?;
    let (mut n, mut weight, mut weighted_bytes) = (0u64, 0.0, 0.0);
    for o in objects {
        write_object(out, &o)?;
        n += 1;
        weight += o.weight;
        weighted_bytes += o.weight * o.size as f64;
    }
    if n != count {
        return Err(std::io::Error::other(format!("catalog writer: {n} objects for a header of {count}")));
    }
    writeln!(out, "requests 0")?;
    Ok(Written { objects: n, mean_request_bytes: weighted_bytes / weight })
}

/// A decimal u64 with no sign, spaces or overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn split_once_byte(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ContentType, Object};

    fn sample() -> Trace {
        let objects = vec![
            Object {
                id: ObjectId(0),
                path: "/a b.html".into(),
                size: 10,
                content_type: ContentType::Html,
                weight: 0.5,
            },
            Object { id: ObjectId(1), path: "/x.gif".into(), size: 0, content_type: ContentType::Gif, weight: 2.0 },
        ];
        Trace {
            catalog: Catalog { objects },
            requests: vec![ObjectId(1), ObjectId(0), ObjectId(1)],
            times: vec![5, 6, 6],
        }
    }

    #[test]
    fn round_trip_with_and_without_times() {
        let mut t = sample();
        for _ in 0..2 {
            let mut buf = Vec::new();
            t.write(&mut buf).unwrap();
            assert_eq!(Trace::parse(&buf, "f").unwrap(), t);
            t.times.clear();
        }
    }

    #[test]
    fn errors_name_the_line() {
        let mut buf = Vec::new();
        sample().write(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap().replace("6 0\n", "6 7\n");
        let e = Trace::parse(text.as_bytes(), "t.trace").unwrap_err().to_string();
        assert!(e.starts_with("t.trace:7: object id out of range"), "{e}");
        let e = Trace::parse(b"#dl7-trace v1\nobjects 1\n", "t").unwrap_err().to_string();
        assert!(e.contains("ended early"), "{e}");
    }

    #[test]
    fn a_name_marked_builtin_is_read_as_the_builtin_never_as_a_path() {
        let marked = format!("{}surge100", crate::workload::BUILTIN_PREFIX);
        let t = Trace::resolve(&marked).unwrap();
        assert_eq!(t.catalog, crate::workload::builtin("surge100").unwrap());
        assert!(Trace::resolve("builtin:nope").is_err());
        assert!(crate::workload::resolve_surge(&marked).unwrap().is_some());
    }
}
