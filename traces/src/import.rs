//! Access-log importers: Common Log Format, Combined, Squid native
//! `access.log` and webcachesim `time id size`. A log becomes a [`Trace`]: a
//! catalog (objects in order of first request, weight = request count,
//! size = largest logged body size) and the sequence of requests.
//!
//! Which lines become requests: those whose status is in
//! [`ImportOptions::statuses`] (default 200 only: complete successful
//! responses). Other statuses are counted in [`ImportReport::by_status`],
//! never dropped silently. A malformed line stops the import with an error
//! naming file, line, reason and text, unless [`ImportOptions::skip_invalid`],
//! which counts it per reason instead.
//!
//! Lines are streamed through one reused buffer: memory grows with the
//! catalog and the request ids (4 bytes each, 8 more for a time), not with
//! the log's text. Line parsers work on bytes and never panic on any input.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use crate::catalog::{Catalog, ContentType, Object, ObjectId};
use crate::error::TraceError;
use crate::trace::{parse_u64, Trace};

/// A log format [`import`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `host ident authuser [date] "request" status bytes`.
    Clf,
    /// CLF plus `"referer" "user-agent"` (CLF lines are accepted too).
    Combined,
    /// Squid native `time elapsed client code/status bytes method URL ...`.
    Squid,
    /// webcachesim `time id size`.
    Webcachesim,
}

impl std::str::FromStr for LogFormat {
    type Err = crate::error::UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "clf" | "common" => Ok(LogFormat::Clf),
            "combined" => Ok(LogFormat::Combined),
            "squid" => Ok(LogFormat::Squid),
            "webcachesim" => Ok(LogFormat::Webcachesim),
            _ => Err(crate::error::UnknownFormat {
                kind: "log",
                name: s.to_string(),
                expected: "clf, combined, squid or webcachesim",
            }),
        }
    }
}

/// What an import keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The log's format.
    pub format: LogFormat,
    /// HTTP statuses that become requests (default: 200). Ignored for webcachesim.
    pub statuses: Vec<u16>,
    /// Keep `?query` in the object identity (default: dropped).
    pub keep_query: bool,
    /// Count malformed lines per reason and go on, instead of stopping.
    pub skip_invalid: bool,
    /// Record the request sequence (default). Without it the import keeps
    /// only the catalog (weights = request counts), so its memory no longer
    /// grows with the log: enough for statistics.
    pub keep_sequence: bool,
}

impl ImportOptions {
    /// Defaults for `format`: status 200 only, query dropped, stop on the first bad line.
    pub fn new(format: LogFormat) -> Self {
        ImportOptions { format, statuses: vec![200], keep_query: false, skip_invalid: false, keep_sequence: true }
    }
}

/// What an import saw, line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Physical lines read (blank lines included).
    pub lines: u64,
    /// Records parsed (a record split across two lines counts once).
    pub records: u64,
    /// Records that became requests.
    pub requests: u64,
    /// Records left out by status: status -> count.
    pub by_status: BTreeMap<u16, u64>,
    /// Records rebuilt from two physical lines.
    pub joined: u64,
    /// Malformed lines skipped (only with `skip_invalid`): reason -> count.
    pub invalid: BTreeMap<&'static str, u64>,
}

/// A trace and the report of how it was read.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The catalog and requests.
    pub trace: Trace,
    /// Line counts: kept, left out by status, joined, skipped.
    pub report: ImportReport,
}

/// Why a line is malformed. `text` of the error is the line itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line ends inside the quoted request or before status and bytes:
    /// possibly the first half of a record split across two lines.
    Incomplete(&'static str),
    /// Anything else.
    Bad(&'static str),
}

impl LineError {
    /// The human-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            LineError::Incomplete(r) | LineError::Bad(r) => r,
        }
    }
}

/// One parsed log record, borrowing from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The URL as logged (query included).
    pub url: &'a [u8],
    /// HTTP status; `None` for formats without one (webcachesim).
    pub status: Option<u16>,
    /// Body bytes as logged (`-` is 0).
    pub bytes: u64,
    /// Seconds: Unix time, or from the log's start for the date-less variant.
    pub time: Option<u64>,
    /// Content type the log states (Squid), if any.
    pub content_type: Option<ContentType>,
}

/// Parses one CLF or Combined line (without its line end). Handles `-`
/// sizes, requests without method or protocol (`"/x"`, `"GET /x"`), the
/// date-less `[DD:HH:MM:SS]` timestamp and logs without ident/authuser.
pub fn parse_clf(line: &[u8]) -> Result<Record<'_>, LineError> {
    let open = memchr(b'[', line).ok_or(LineError::Bad("no [timestamp]"))?;
    if line[..open].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LineError::Bad("no host before [timestamp]"));
    }
    let close = open + memchr(b']', &line[open..]).ok_or(LineError::Incomplete("timestamp not closed by ]"))?;
    let time = parse_clf_time(&line[open + 1..close]).ok_or(LineError::Bad("bad timestamp"))?;
    let rest = &line[close + 1..];
    let q1 = memchr(b'"', rest).ok_or(LineError::Incomplete("no quoted request after the timestamp"))?;
    let after_q1 = &rest[q1 + 1..];
    // The request ends at the first unescaped quote followed by ` status`:
    // old logs do not always escape quotes inside the request. Without such
    // a quote, the first unescaped one ends it (and the status is then bad).
    let mut from = 0;
    let mut first_unescaped = None;
    let (request, tail) = loop {
        let Some(i) = memchr(b'"', &after_q1[from..]).map(|i| from + i) else {
            match first_unescaped {
                Some(i) => break (&after_q1[..i], &after_q1[i + 1..]),
                None => return Err(LineError::Incomplete("request not closed by a quote")),
            }
        };
        from = i + 1;
        if i > 0 && after_q1[i - 1] == b'\\' {
            continue;
        }
        first_unescaped.get_or_insert(i);
        let tail = &after_q1[i + 1..];
        let next_token = tail.iter().position(|b| !b.is_ascii_whitespace());
        let starts_with_space = tail.first().is_some_and(|b| b.is_ascii_whitespace());
        match next_token {
            None => break (&after_q1[..i], tail),
            Some(t) if starts_with_space && (tail[t].is_ascii_digit() || tail[t] == b'-') => {
                break (&after_q1[..i], tail)
            }
            Some(_) => {}
        }
    };
    let url = request_url(request)?;
    let mut fields = tail.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
    let status = fields.next().ok_or(LineError::Incomplete("no status after the request"))?;
    let status = parse_u64(status).filter(|s| (100..1000).contains(s)).ok_or(LineError::Bad("bad status"))? as u16;
    let bytes = match fields.next() {
        None => return Err(LineError::Incomplete("no byte count after the status")),
        Some(b"-") => 0,
        Some(b) => parse_u64(b).ok_or(LineError::Bad("bad byte count"))?,
    };
    Ok(Record { url, status: Some(status), bytes, time: Some(time), content_type: None })
}

/// The URL of a request string: `METHOD URL PROTO`, `METHOD URL`, `URL PROTO` or `URL`.
fn request_url(request: &[u8]) -> Result<&[u8], LineError> {
    let mut tokens = request.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty());
    let first = tokens.next().ok_or(LineError::Bad("empty request"))?;
    if first == b"-" {
        return Err(LineError::Bad("no request (\"-\")"));
    }
    let is_url = |t: &[u8]| t.starts_with(b"/") || t.starts_with(b"http://") || t.starts_with(b"https://");
    if is_url(first) {
        return Ok(first);
    }
    match tokens.next() {
        Some(second) if !second.starts_with(b"HTTP/") => Ok(second),
        _ => Err(LineError::Bad("request has no URL")),
    }
}

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// `dd/Mon/yyyy:HH:MM:SS +zzzz` to Unix seconds (UTC), or `DD:HH:MM:SS` to
/// seconds from day 0 of the log.
fn parse_clf_time(t: &[u8]) -> Option<u64> {
    let num = |s: &[u8]| parse_u64(s);
    if t.len() == 11 && t[2] == b':' && t[5] == b':' && t[8] == b':' {
        let (d, h, m, s) = (num(&t[0..2])?, num(&t[3..5])?, num(&t[6..8])?, num(&t[9..11])?);
        return (h < 24 && m < 60 && s < 61).then_some(d * 86_400 + h * 3600 + m * 60 + s);
    }
    if t.len() < 20 || t[2] != b'/' || t[6] != b'/' || t[11] != b':' || t[14] != b':' || t[17] != b':' {
        return None;
    }
    let day = num(&t[0..2])?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(&t[3..6]))? as u64 + 1;
    let year = num(&t[7..11])?;
    let (h, m, s) = (num(&t[12..14])?, num(&t[15..17])?, num(&t[18..20])?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let zone = &t[20..];
    let offset: i64 = match zone {
        [] => 0,
        [b' ', sign @ (b'+' | b'-'), hh @ ..] if hh.len() == 4 => {
            let mins = (num(&hh[0..2])? * 60 + num(&hh[2..4])?) as i64;
            if *sign == b'+' {
                mins * 60
            } else {
                -mins * 60
            }
        }
        _ => return None,
    };
    let local = days_from_civil(year as i64, month as i64, day as i64) * 86_400 + (h * 3600 + m * 60 + s) as i64;
    u64::try_from(local - offset).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses one Squid native access.log line.
pub fn parse_squid(line: &[u8]) -> Result<Record<'_>, LineError> {
    let mut f = line.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty());
    let time = f.next().ok_or(LineError::Bad("empty line"))?;
    let secs = match memchr(b'.', time) {
        Some(dot) if time[dot + 1..].iter().all(u8::is_ascii_digit) => &time[..dot],
        Some(_) => return Err(LineError::Bad("bad time")),
        None => time,
    };
    let time = parse_u64(secs).ok_or(LineError::Bad("bad time"))?;
    let _elapsed =
        f.next().ok_or(LineError::Bad("missing fields: expected time elapsed client code/status bytes method URL"))?;
    let _client =
        f.next().ok_or(LineError::Bad("missing fields: expected time elapsed client code/status bytes method URL"))?;
    let code =
        f.next().ok_or(LineError::Bad("missing fields: expected time elapsed client code/status bytes method URL"))?;
    let slash = memchr(b'/', code).ok_or(LineError::Bad("bad code/status"))?;
    let status = parse_u64(&code[slash + 1..]).filter(|s| *s < 1000).ok_or(LineError::Bad("bad code/status"))? as u16;
    let bytes =
        f.next().ok_or(LineError::Bad("missing fields: expected time elapsed client code/status bytes method URL"))?;
    let bytes = parse_u64(bytes).ok_or(LineError::Bad("bad byte count"))?;
    let _method =
        f.next().ok_or(LineError::Bad("missing fields: expected time elapsed client code/status bytes method URL"))?;
    let url =
        f.next().ok_or(LineError::Bad("missing fields: expected time elapsed client code/status bytes method URL"))?;
    let content_type = f.nth(2).and_then(content_type_from_mime);
    Ok(Record { url, status: Some(status), bytes, time: Some(time), content_type })
}

fn content_type_from_mime(mime: &[u8]) -> Option<ContentType> {
    let mime = mime.split(|b| *b == b';').next().unwrap_or(mime);
    let eq = |s: &str| mime.eq_ignore_ascii_case(s.as_bytes());
    Some(if eq("text/html") {
        ContentType::Html
    } else if eq("image/gif") {
        ContentType::Gif
    } else if eq("image/jpeg") || eq("image/jpg") {
        ContentType::Jpeg
    } else if eq("image/png") {
        ContentType::Png
    } else if eq("text/css") {
        ContentType::Css
    } else if eq("application/javascript") || eq("text/javascript") || eq("application/x-javascript") {
        ContentType::Js
    } else if mime == b"-" {
        return None;
    } else {
        ContentType::Other
    })
}

/// Parses one webcachesim `time id size` line (integers, any whitespace).
pub fn parse_webcachesim(line: &[u8]) -> Result<Record<'_>, LineError> {
    let mut f = line.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty());
    let (Some(time), Some(id), Some(size)) = (f.next(), f.next(), f.next()) else {
        return Err(LineError::Bad("expected `time id size`"));
    };
    if f.next().is_some() {
        return Err(LineError::Bad("expected `time id size`: extra fields"));
    }
    let time = parse_u64(time).ok_or(LineError::Bad("bad time"))?;
    parse_u64(id).ok_or(LineError::Bad("bad id"))?;
    let bytes = parse_u64(size).ok_or(LineError::Bad("bad size"))?;
    Ok(Record { url: id, status: None, bytes, time: Some(time), content_type: None })
}

#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Accumulates records into a catalog and request list.
struct Builder {
    index: HashMap<Box<[u8]>, u32>,
    objects: Vec<Object>,
    counts: Vec<u64>,
    requests: Vec<ObjectId>,
    times: Vec<u64>,
    all_timed: bool,
    keep_query: bool,
    keep_sequence: bool,
    webcachesim: bool,
}

impl Builder {
    fn add(&mut self, rec: &Record<'_>) -> Result<(), &'static str> {
        let key = if self.keep_query { rec.url } else { rec.url.split(|b| *b == b'?').next().unwrap_or(rec.url) };
        if key.is_empty() {
            return Err("empty URL");
        }
        let id = match self.index.get(key) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.objects.len()).map_err(|_| "more than 2^32 objects")?;
                let path = if self.webcachesim { format!("/{}", String::from_utf8_lossy(key)) } else { path_text(key) };
                let content_type = rec.content_type.unwrap_or_else(|| ContentType::from_path(&path));
                self.objects.push(Object { id: ObjectId(id), path, size: 0, content_type, weight: 0.0 });
                self.counts.push(0);
                self.index.insert(key.into(), id);
                id
            }
        };
        let object = &mut self.objects[id as usize];
        object.size = object.size.max(rec.bytes);
        self.counts[id as usize] += 1;
        if !self.keep_sequence {
            return Ok(());
        }
        self.requests.push(ObjectId(id));
        match rec.time {
            Some(t) if self.all_timed => self.times.push(t),
            _ => {
                self.all_timed = false;
                self.times = Vec::new();
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Trace {
        if !self.keep_sequence {
            self.times.clear();
        }
        for (o, &c) in self.objects.iter_mut().zip(&self.counts) {
            o.weight = c as f64;
        }
        Trace { catalog: Catalog { objects: self.objects }, requests: self.requests, times: self.times }
    }
}

/// A URL as a path string: kept as is when it is printable UTF-8, otherwise
/// control, space and non-UTF-8 bytes are percent-encoded so the path stays
/// one token on one line.
fn path_text(url: &[u8]) -> String {
    match std::str::from_utf8(url) {
        Ok(s) if !s.chars().any(|c| c.is_control() || c.is_whitespace()) => s.to_string(),
        _ => {
            let mut out = String::with_capacity(url.len() + 8);
            for chunk in url.utf8_chunks() {
                for c in chunk.valid().chars() {
                    if c.is_control() || c.is_whitespace() {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            out.push_str(&format!("%{b:02X}"));
                        }
                    } else {
                        out.push(c);
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        }
    }
}

/// Imports a log from `reader`; `file` names it in errors.
pub fn import(mut reader: impl BufRead, file: &str, opts: &ImportOptions) -> Result<Imported, TraceError> {
    let parse: fn(&[u8]) -> Result<Record<'_>, LineError> = match opts.format {
        LogFormat::Clf | LogFormat::Combined => parse_clf,
        LogFormat::Squid => parse_squid,
        LogFormat::Webcachesim => parse_webcachesim,
    };
    let can_split = matches!(opts.format, LogFormat::Clf | LogFormat::Combined);
    let mut wanted = [false; 1000];
    for &s in &opts.statuses {
        if let Some(w) = wanted.get_mut(s as usize) {
            *w = true;
        }
    }
    let mut builder = Builder {
        index: HashMap::new(),
        objects: Vec::new(),
        counts: Vec::new(),
        requests: Vec::new(),
        times: Vec::new(),
        all_timed: true,
        keep_query: opts.keep_query,
        keep_sequence: opts.keep_sequence,
        webcachesim: opts.format == LogFormat::Webcachesim,
    };
    let mut report = ImportReport::default();
    let mut line = Vec::with_capacity(512);
    // The first half of a possibly split record: its line number, reason and text.
    let mut held: Option<(u64, &'static str)> = None;
    let mut held_text: Vec<u8> = Vec::new();
    let mut joined: Vec<u8> = Vec::new();

    let invalid = |report: &mut ImportReport, n: u64, reason: &'static str, text: &[u8]| {
        if opts.skip_invalid {
            *report.invalid.entry(reason).or_insert(0) += 1;
            Ok(())
        } else {
            Err(TraceError::line(file, n, reason, text))
        }
    };
    let accept = |report: &mut ImportReport, builder: &mut Builder, rec: &Record<'_>| -> Result<(), &'static str> {
        report.records += 1;
        match rec.status {
            Some(s) if !wanted.get(s as usize).copied().unwrap_or(false) => {
                *report.by_status.entry(s).or_insert(0) += 1;
                Ok(())
            }
            _ => {
                builder.add(rec)?;
                report.requests += 1;
                Ok(())
            }
        }
    };

    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|e| TraceError::io(file, e))?;
        if read == 0 {
            break;
        }
        report.lines += 1;
        let n = report.lines;
        let text = trim_line_end(&line);
        if let Some((held_n, reason)) = held.take() {
            // Join only when this line is no record by itself: a complete
            // record must never be swallowed by a broken line before it.
            let alone_ok = parse(text).is_ok();
            joined.clear();
            joined.extend_from_slice(&held_text);
            joined.push(b'\n');
            joined.extend_from_slice(text);
            if let (false, Ok(rec)) = (alone_ok, parse(&joined)) {
                report.joined += 1;
                if let Err(why) = accept(&mut report, &mut builder, &rec) {
                    invalid(&mut report, held_n, why, &joined)?;
                }
                continue;
            }
            invalid(&mut report, held_n, reason, &held_text)?;
        }
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match parse(text) {
            Ok(rec) => {
                if let Err(why) = accept(&mut report, &mut builder, &rec) {
                    invalid(&mut report, n, why, text)?;
                }
            }
            Err(LineError::Incomplete(reason)) if can_split => {
                held = Some((n, reason));
                held_text.clear();
                held_text.extend_from_slice(text);
            }
            Err(e) => invalid(&mut report, n, e.reason(), text)?,
        }
    }
    if let Some((held_n, reason)) = held {
        invalid(&mut report, held_n, reason, &held_text)?;
    }
    Ok(Imported { trace: builder.finish(), report })
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Imports the log at `path` (streamed through a buffered reader); a gzip
/// file (archive logs usually are) is decompressed on the fly.
pub fn import_path(path: &Path, opts: &ImportOptions) -> Result<Imported, TraceError> {
    let mut file =
        std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path).map_err(|e| TraceError::io(path, e))?);
    let gzip = file.fill_buf().map_err(|e| TraceError::io(path, e))?.starts_with(&[0x1f, 0x8b]);
    let name = path.display().to_string();
    if gzip {
        let decoder = flate2::bufread::MultiGzDecoder::new(file);
        import(std::io::BufReader::with_capacity(1 << 16, decoder), &name, opts)
    } else {
        import(file, &name, opts)
    }
}

impl ImportReport {
    /// One line: `N lines, N records, N requests; left out by status: 304 x12, ...; joined N split records; skipped invalid: reason xN, ...`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} lines, {} records, {} requests", self.lines, self.records, self.requests);
        if !self.by_status.is_empty() {
            let list: Vec<String> = self.by_status.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            s.push_str(&format!("; left out by status: {}", list.join(", ")));
        }
        if self.joined > 0 {
            s.push_str(&format!("; joined {} records split across two lines", self.joined));
        }
        if !self.invalid.is_empty() {
            let list: Vec<String> = self.invalid.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            s.push_str(&format!("; skipped invalid lines: {}", list.join(", ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time_variants() {
        assert_eq!(parse_clf_time(b"01/Jan/1970:00:00:10 +0000"), Some(10));
        assert_eq!(parse_clf_time(b"17/May/2015:10:05:03 +0000"), Some(1_431_857_103));
        assert_eq!(parse_clf_time(b"17/May/2015:12:05:03 +0200"), Some(1_431_857_103));
        assert_eq!(parse_clf_time(b"01:00:00:05"), Some(86_405));
        assert_eq!(parse_clf_time(b"32/Jan/2015:00:00:00 +0000"), None);
        assert_eq!(parse_clf_time(b"01/Foo/2015:00:00:00 +0000"), None);
    }

    #[test]
    fn request_forms() {
        assert_eq!(request_url(b"GET /a HTTP/1.0"), Ok(&b"/a"[..]));
        assert_eq!(request_url(b"GET /a"), Ok(&b"/a"[..]));
        assert_eq!(request_url(b"/a HTTP/1.0"), Ok(&b"/a"[..]));
        assert_eq!(request_url(b"/a"), Ok(&b"/a"[..]));
        assert!(request_url(b"-").is_err());
        assert!(request_url(b"GET HTTP/1.0").is_err());
    }

    #[test]
    fn path_text_escapes_only_what_it_must() {
        assert_eq!(path_text(b"/a/b.html"), "/a/b.html");
        assert_eq!(path_text(b"/a b\n\xff"), "/a%20b%0A%FF");
    }
}
