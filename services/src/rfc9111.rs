//! The rules of a shared HTTP cache (RFC 9111), as pure functions of a
//! request, a response and the time, in the shape of Pingora's
//! `pingora-cache`: one typed parse of `Cache-Control` ([`CacheControl`]),
//! the fields a cache decides on read once from a head ([`RequestInfo`],
//! [`ResponseInfo`]), then the questions a cache asks:
//!
//! * may this response be stored ([`storable`], section 3), and under which
//!   key (the effective request URI, section 4; [`secondary_key`] for `Vary`, section 4.1);
//! * how long is it fresh and how old is it ([`Freshness`], sections 4.2.1 to 4.2.3);
//! * may it be reused for this request, or must it be validated first
//!   ([`Freshness::reuse`], sections 4, 4.2.4 and 5.2);
//! * does a client's conditional request get `304` from it ([`not_modified`], section 4.3.2);
//! * what are its fields after a `304` ([`merge_not_modified`], section 3.2);
//! * which URIs does an unsafe request invalidate ([`invalidated`], section 4.4).
//!
//! No sockets, no clocks (times are Unix seconds, passed in), no cache: the
//! node holds the entries and asks these functions. Parsing a head never
//! allocates; only what a miss stores does.
//!
//! Why not the `http-cache-semantics` crate: its policy is built from the
//! `http` crate's `Request` and `Response`, so every hit would first copy its
//! head into a `HeaderMap` (the hit path must not allocate), and it rewrites
//! the stored `Date`, which a cache must keep (section 3.2). Dates are
//! parsed by `httpdate`, which refuses the invalid `Expires` forms (time
//! zones other than GMT, two-digit years) that section 4.2.1 says mean "expired".

use std::time::{Duration, UNIX_EPOCH};

use crate::http::{is_name, MAX_HEADERS};

/// The heuristic freshness's share of the time since `Last-Modified`
/// (section 4.2.2's suggestion: 10%), and its bound: a day, as browsers and
/// Squid's default `refresh_pattern` keep a guess from running long.
pub const HEURISTIC_PERCENT: u64 = 10;
/// The longest heuristic freshness lifetime, seconds.
pub const HEURISTIC_MAX_S: u64 = 24 * 3600;
/// Delta-seconds beyond this are this (section 1.2.2: 2^31).
const DELTA_MAX: u64 = 1 << 31;

/// The directives of `Cache-Control` (section 5.2) that a shared cache acts
/// on, request and response alike; unknown ones are ignored (section 5.2.3).
/// Where a directive appears twice the more restrictive value wins (section 4.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`, with or without field names (the qualified form is
    /// taken as unqualified: a revalidation too many, never a field leaked).
    pub no_cache: bool,
    /// `private`, qualified or not (a shared cache then stores nothing).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
    /// `max-age` seconds (an invalid value counts as 0: stale).
    pub max_age: Option<u64>,
    /// `s-maxage` seconds (response).
    pub s_maxage: Option<u64>,
    /// `max-stale` seconds (request); `u64::MAX` without a value (any staleness).
    pub max_stale: Option<u64>,
    /// `min-fresh` seconds (request).
    pub min_fresh: Option<u64>,
    /// `stale-while-revalidate` seconds (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` seconds (RFC 5861).
    pub stale_if_error: Option<u64>,
}

/// The more restrictive (smaller) of two values of one directive.
fn least(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// A delta-seconds value (section 1.2.2): digits only; too large is 2^31.
fn delta_seconds(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .unwrap_or(DELTA_MAX)
            .min(DELTA_MAX),
    )
}

impl CacheControl {
    /// Parses the values of every `Cache-Control` field line (or of
    /// `CDN-Cache-Control`), in order: a comma-separated list of
    /// `name[=token|quoted-string]`, commas inside quoted strings included.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut cc = CacheControl::default();
        for value in values {
            for (name, arg) in Directives::new(value) {
                cc.apply(name, arg);
            }
        }
        cc
    }

    fn apply(&mut self, name: &[u8], arg: Option<&[u8]>) {
        let is = |d: &str| name.eq_ignore_ascii_case(d.as_bytes());
        // A directive that needs seconds and has none (or bad ones) is as restrictive as it gets.
        let secs = || arg.and_then(delta_seconds).unwrap_or(0);
        if is("no-store") {
            self.no_store = true;
        } else if is("no-cache") {
            self.no_cache = true;
        } else if is("private") {
            self.private = true;
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") {
            self.must_revalidate = true;
        } else if is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if is("only-if-cached") {
            self.only_if_cached = true;
        } else if is("max-age") {
            self.max_age = least(self.max_age, secs());
        } else if is("s-maxage") {
            self.s_maxage = least(self.s_maxage, secs());
        } else if is("max-stale") {
            self.max_stale = least(self.max_stale, arg.map_or(u64::MAX, |a| delta_seconds(a).unwrap_or(0)));
        } else if is("min-fresh") {
            self.min_fresh = Some(self.min_fresh.map_or(secs(), |m| m.max(secs())));
        } else if is("stale-while-revalidate") {
            self.stale_while_revalidate = least(self.stale_while_revalidate, secs());
        } else if is("stale-if-error") {
            self.stale_if_error = least(self.stale_if_error, secs());
        }
    }
}

/// The directives of one field value: `(name, argument)`, the argument
/// unquoted (backslash escapes left in: no directive dl7 reads has one).
struct Directives<'a> {
    rest: &'a [u8],
}

impl<'a> Directives<'a> {
    fn new(value: &'a [u8]) -> Self {
        Directives { rest: value }
    }
}

impl<'a> Iterator for Directives<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest.trim_ascii_start();
            if rest.is_empty() {
                return None;
            }
            if rest[0] == b',' {
                self.rest = &rest[1..];
                continue;
            }
            let name_end = rest.iter().position(|&b| b == b',' || b == b'=').unwrap_or(rest.len());
            let name = rest[..name_end].trim_ascii();
            let after = &rest[name_end..];
            if after.first() != Some(&b'=') {
                self.rest = after;
                return Some((name, None));
            }
            let v = after[1..].trim_ascii_start();
            if v.first() == Some(&b'"') {
                // A quoted string runs to the next unescaped quote, commas and all.
                let mut i = 1;
                while i < v.len() && v[i] != b'"' {
                    i += if v[i] == b'\\' { 2 } else { 1 };
                }
                let arg = &v[1..i.min(v.len())];
                let tail = &v[(i + 1).min(v.len())..];
                self.rest = &tail[tail.iter().position(|&b| b == b',').unwrap_or(tail.len())..];
                return Some((name, Some(arg)));
            }
            let end = v.iter().position(|&b| b == b',').unwrap_or(v.len());
            self.rest = &v[end..];
            return Some((name, Some(v[..end].trim_ascii())));
        }
    }
}

/// An HTTP date as Unix seconds (IMF-fixdate, and the obsolete RFC 850 and
/// asctime forms a recipient must accept); `None` for anything else.
pub fn http_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Writes Unix seconds `t` as an IMF-fixdate.
pub fn fmt_http_date(t: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t))
}

/// What a cache decides on in a request head.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    /// Its `Cache-Control`, with `Pragma: no-cache` as `no-cache` when it
    /// has no `Cache-Control` (section 5.4).
    pub cc: CacheControl,
    /// It carries `Authorization` (section 3.5).
    pub authorization: bool,
    /// `If-None-Match`, as sent.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`, when a valid date.
    pub if_modified_since: Option<u64>,
    /// `Range`: a part of the representation (a cache here answers it whole or passes it).
    pub range: bool,
    /// The target's host: an absolute-form target's authority, else `Host` (empty without either).
    pub host: &'a [u8],
}

/// Reads a [`RequestInfo`] from a complete request head (`None` if it is not one).
pub fn request_info(raw: &[u8]) -> Option<RequestInfo<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = req.parse(raw).ok()? else { return None };
    let mut info = RequestInfo::default();
    if let Some(rest) = req.path.and_then(|t| t.strip_prefix("http://").or_else(|| t.strip_prefix("https://"))) {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        info.host = value_in(raw, &rest.as_bytes()[..end]);
    }
    let mut has_cc = false;
    let mut pragma_no_cache = false;
    for h in req.headers.iter() {
        let value = h.value;
        if is_name(h.name, b"cache-control") {
            has_cc = true;
            for (name, arg) in Directives::new(value) {
                info.cc.apply(name, arg);
            }
        } else if is_name(h.name, b"pragma") {
            pragma_no_cache |= Directives::new(value).any(|(n, _)| n.eq_ignore_ascii_case(b"no-cache"));
        } else if is_name(h.name, b"authorization") {
            info.authorization = true;
        } else if is_name(h.name, b"if-none-match") {
            info.if_none_match = Some(value_in(raw, value));
        } else if is_name(h.name, b"if-modified-since") {
            info.if_modified_since = http_date(value);
        } else if is_name(h.name, b"range") {
            info.range = true;
        } else if is_name(h.name, b"host") && info.host.is_empty() {
            info.host = value_in(raw, value.trim_ascii());
        }
    }
    if !has_cc && pragma_no_cache {
        info.cc.no_cache = true;
    }
    Some(info)
}

/// `value`, a slice of a header parsed out of `raw`, as a slice of `raw`
/// itself (so that it outlives the parse's header array).
fn value_in<'a>(raw: &'a [u8], value: &[u8]) -> &'a [u8] {
    let start = value.as_ptr() as usize - raw.as_ptr() as usize;
    &raw[start..start + value.len()]
}

/// What a cache decides on in a response head.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseInfo<'a> {
    /// The status.
    pub status: u16,
    /// `CDN-Cache-Control` (RFC 9213) when present, which a CDN's cache
    /// follows instead; else `Cache-Control`.
    pub cc: CacheControl,
    /// `Date`, when valid.
    pub date: Option<u64>,
    /// `Expires`: `Some(None)` when present but invalid (already expired, section 5.3).
    pub expires: Option<Option<u64>>,
    /// `Age`, when a non-negative integer (any other is ignored, section 5.1).
    pub age: Option<u64>,
    /// `Last-Modified`, when valid.
    pub last_modified: Option<u64>,
    /// `ETag`, as sent.
    pub etag: Option<&'a [u8]>,
    /// `Vary` lists `*` (section 4.1: never matches).
    pub vary_star: bool,
    /// `Vary` lists any field.
    pub vary: bool,
}

/// Reads a [`ResponseInfo`] from a complete response head (`None` if it is not one).
pub fn response_info(raw: &[u8]) -> Option<ResponseInfo<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(_) = resp.parse(raw).ok()? else { return None };
    let mut info = ResponseInfo { status: resp.code?, ..Default::default() };
    let (mut cc, mut cdn) = (CacheControl::default(), None::<CacheControl>);
    let mut dates = 0;
    for h in resp.headers.iter() {
        let value = h.value;
        if is_name(h.name, b"cache-control") {
            for (name, arg) in Directives::new(value) {
                cc.apply(name, arg);
            }
        } else if is_name(h.name, b"cdn-cache-control") {
            let c = cdn.get_or_insert_with(CacheControl::default);
            for (name, arg) in Directives::new(value) {
                c.apply(name, arg);
            }
        } else if is_name(h.name, b"date") {
            dates += 1;
            info.date = http_date(value);
        } else if is_name(h.name, b"expires") {
            // Two Expires lines: the response is to be taken as stale (section 4.2.1).
            info.expires = Some(if info.expires.is_some() { None } else { http_date(value) });
        } else if is_name(h.name, b"age") {
            info.age = delta_seconds(value.trim_ascii());
        } else if is_name(h.name, b"last-modified") {
            info.last_modified = http_date(value);
        } else if is_name(h.name, b"etag") {
            info.etag = Some(value_in(raw, value.trim_ascii()));
        } else if is_name(h.name, b"vary") {
            for f in value.split(|&b| b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty()) {
                info.vary = true;
                info.vary_star |= f == b"*";
            }
        }
    }
    if dates > 1 {
        info.date = None;
    }
    info.cc = cdn.unwrap_or(cc);
    Some(info)
}

/// Writes the cache key of a request (section 4: the effective request
/// URI, RFC 9110 section 7.1): its host, lowercased, then its origin-form
/// target (path and query), into `out`.
pub fn cache_key(host: &[u8], path: &str, out: &mut String) {
    out.clear();
    for &b in host {
        out.push(b.to_ascii_lowercase() as char);
    }
    out.push_str(path);
}

/// The value of the field `name` in stored header lines (the first one).
pub fn stored_field<'a>(stored: &'a [u8], name: &str) -> Option<&'a [u8]> {
    stored.split(|&b| b == b'\n').find_map(|line| {
        let (n, v) = line.split_once_byte(b':')?;
        n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()).then(|| v.trim_ascii())
    })
}

/// Why a response is not stored (section 3), for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStorable {
    /// Only GET responses are stored here.
    #[error("not a GET")]
    Method,
    /// An interim, partial or otherwise unstorable status.
    #[error("status {0} is not stored")]
    Status(u16),
    /// `no-store` in the response.
    #[error("no-store")]
    NoStore,
    /// `no-store` in the request (section 5.2.1.5).
    #[error("no-store in the request")]
    RequestNoStore,
    /// `private`: a shared cache must not store it.
    #[error("private")]
    Private,
    /// A response to a request with `Authorization`, without `public`, `s-maxage` or `must-revalidate`.
    #[error("a response to a request with Authorization")]
    Authorization,
    /// No explicit freshness, not `public`, and not a heuristically cacheable status.
    #[error("no explicit freshness and status {0} is not heuristically cacheable")]
    NoFreshness(u16),
    /// `Vary: *` can never be matched.
    #[error("Vary: *")]
    VaryStar,
    /// The request asked for a part (`Range`).
    #[error("a range request")]
    Range,
}

impl NotStorable {
    /// True when the reason lies in this request alone (its `Authorization`,
    /// `no-store` or `Range`): the next request for the URI may well be
    /// storable, so it is no reason to pass them all (hit-for-pass).
    pub fn is_the_requests(&self) -> bool {
        matches!(self, NotStorable::Authorization | NotStorable::Range | NotStorable::RequestNoStore)
    }
}

/// Statuses cacheable by default (RFC 9110 section 15.1), 206 left out:
/// this cache stores whole representations only.
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501)
}

/// Section 3: may a shared cache store `resp`, the answer to the GET (when
/// `get`) `req`?
pub fn storable(get: bool, req: &RequestInfo, resp: &ResponseInfo) -> Result<(), NotStorable> {
    if !get {
        return Err(NotStorable::Method);
    }
    if req.range {
        return Err(NotStorable::Range);
    }
    if !(200..600).contains(&resp.status) || resp.status == 206 || resp.status == 304 {
        return Err(NotStorable::Status(resp.status));
    }
    if req.cc.no_store {
        return Err(NotStorable::RequestNoStore);
    }
    if resp.cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if resp.cc.private {
        return Err(NotStorable::Private);
    }
    if req.authorization && !(resp.cc.public || resp.cc.s_maxage.is_some() || resp.cc.must_revalidate) {
        return Err(NotStorable::Authorization);
    }
    if resp.vary_star {
        return Err(NotStorable::VaryStar);
    }
    let explicit = resp.cc.s_maxage.is_some() || resp.cc.max_age.is_some() || resp.expires.is_some();
    if !(explicit || resp.cc.public || heuristically_cacheable(resp.status)) {
        return Err(NotStorable::NoFreshness(resp.status));
    }
    Ok(())
}

/// A stored response's freshness: everything [`Freshness::reuse`] needs,
/// computed once when it is stored (or updated by a 304), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    /// Freshness lifetime (section 4.2.1).
    pub lifetime: u64,
    /// `corrected_initial_age` (section 4.2.3).
    pub initial_age: u64,
    /// When the response was received (`response_time`).
    pub response_time: u64,
    /// `no-cache`: validate before every reuse.
    pub no_cache: bool,
    /// Never served stale: `must-revalidate`, `proxy-revalidate` or `s-maxage` (section 5.2.2.10).
    pub must_revalidate: bool,
    /// `stale-while-revalidate` seconds.
    pub stale_while_revalidate: u64,
    /// `stale-if-error` seconds.
    pub stale_if_error: u64,
}

/// Section 4.2.1: `s-maxage`, else `max-age`, else `Expires - Date` (an
/// invalid `Expires`: 0); only without any of them, a heuristic
/// (section 4.2.2): [`HEURISTIC_PERCENT`] of the time since
/// `Last-Modified`, at most [`HEURISTIC_MAX_S`], for a heuristically
/// cacheable status or a `public` response; else 0. `now` stands in for a
/// missing `Date`.
pub fn freshness_lifetime(resp: &ResponseInfo, now: u64) -> u64 {
    if let Some(s) = resp.cc.s_maxage {
        return s;
    }
    if let Some(m) = resp.cc.max_age {
        return m;
    }
    let date = resp.date.unwrap_or(now);
    if let Some(expires) = resp.expires {
        return expires.map_or(0, |e| e.saturating_sub(date));
    }
    match resp.last_modified {
        Some(lm) if heuristically_cacheable(resp.status) || resp.cc.public => {
            (date.saturating_sub(lm) * HEURISTIC_PERCENT / 100).min(HEURISTIC_MAX_S)
        }
        _ => 0,
    }
}

impl Freshness {
    /// The freshness of `resp`, requested at `request_time` and received at
    /// `response_time` (section 4.2.3's `corrected_initial_age`).
    pub fn of(resp: &ResponseInfo, request_time: u64, response_time: u64) -> Freshness {
        let apparent_age = resp.date.map_or(0, |d| response_time.saturating_sub(d));
        let response_delay = response_time.saturating_sub(request_time);
        let corrected_age_value = resp.age.unwrap_or(0) + response_delay;
        Freshness {
            lifetime: freshness_lifetime(resp, response_time),
            initial_age: apparent_age.max(corrected_age_value),
            response_time,
            no_cache: resp.cc.no_cache,
            must_revalidate: resp.cc.must_revalidate || resp.cc.proxy_revalidate || resp.cc.s_maxage.is_some(),
            stale_while_revalidate: resp.cc.stale_while_revalidate.unwrap_or(0),
            stale_if_error: resp.cc.stale_if_error.unwrap_or(0),
        }
    }

    /// `current_age` at `now` (section 4.2.3), sent as `Age`.
    pub fn age(&self, now: u64) -> u64 {
        self.initial_age + now.saturating_sub(self.response_time)
    }

    /// Fresh at `now` (section 4.2).
    pub fn is_fresh(&self, now: u64) -> bool {
        self.lifetime > self.age(now)
    }

    /// Sections 4, 4.2.4 and 5.2: may the stored response answer a request
    /// with directives `req` at `now`, or must it be validated first?
    pub fn reuse(&self, req: &CacheControl, now: u64) -> Reuse {
        let age = self.age(now);
        if self.no_cache || req.no_cache {
            return Reuse::Revalidate;
        }
        if req.max_age.is_some_and(|m| age > m) {
            return Reuse::Revalidate;
        }
        let fresh_left = self.lifetime.saturating_sub(age);
        if self.lifetime > age {
            if req.min_fresh.is_some_and(|m| fresh_left < m) {
                return Reuse::Revalidate;
            }
            return Reuse::Fresh;
        }
        let staleness = age - self.lifetime;
        if self.must_revalidate {
            return Reuse::Revalidate;
        }
        if req.max_stale.is_some_and(|m| staleness <= m) {
            return Reuse::Stale;
        }
        // RFC 5861 section 3; a client asking for freshness left gets none from a stale one.
        if self.stale_while_revalidate > 0 && staleness <= self.stale_while_revalidate && req.min_fresh.is_none() {
            return Reuse::StaleWhileRevalidate;
        }
        Reuse::Revalidate
    }

    /// A stale response may answer when validating it failed: it said
    /// `stale-if-error` (RFC 5861), that long has not passed since it went
    /// stale, and it need not be revalidated.
    pub fn stale_if_error(&self, now: u64) -> bool {
        self.stale_if_error > 0
            && !self.must_revalidate
            && self.age(now).saturating_sub(self.lifetime) <= self.stale_if_error
    }
}

/// What [`Freshness::reuse`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh enough for this request: serve it.
    Fresh,
    /// Stale, and the request accepts that (`max-stale`): serve it.
    Stale,
    /// Stale within its `stale-while-revalidate` (RFC 5861): serve it, and
    /// validate it in the background for the requests after this one.
    StaleWhileRevalidate,
    /// Validate with the origin first (or, `only-if-cached`, answer 504).
    Revalidate,
}

/// Section 4.3.2 (RFC 9110 section 13.1): does a client's conditional GET
/// or HEAD get `304` from a stored response with `etag` and
/// `last_modified` (its `Date` standing in when it has none)?
/// `If-None-Match` decides when present (a weak comparison; `*` matches
/// any), else `If-Modified-Since`.
pub fn not_modified(req: &RequestInfo, etag: Option<&[u8]>, last_modified: Option<u64>) -> bool {
    if let Some(list) = req.if_none_match {
        let list = list.trim_ascii();
        if list == b"*" {
            return true;
        }
        let Some(etag) = etag else { return false };
        return list.split(|&b| b == b',').any(|t| weak_eq(t.trim_ascii(), etag));
    }
    match (req.if_modified_since, last_modified) {
        (Some(ims), Some(lm)) => lm <= ims,
        _ => false,
    }
}

/// The weak comparison of two entity tags (RFC 9110 section 8.8.3.2): equal opaque tags, `W/` ignored.
fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (a.strip_prefix(b"W/").unwrap_or(a), b.strip_prefix(b"W/").unwrap_or(b));
    a.len() >= 2 && a[0] == b'"' && a == b
}

/// The fields a `304` from a cache carries (RFC 9110 section 15.4.5):
/// those that would have been sent in a 200, less the representation's
/// own metadata.
pub fn kept_in_304(name: &str) -> bool {
    ["cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified"]
        .iter()
        .any(|f| is_name(name, f.as_bytes()))
}

/// Section 3.2 (via section 4.3.4): the stored header lines after a `304`
/// (its head `raw_304`): each field the 304 carries replaces the stored
/// field of that name; every other stored field stays. `Content-Length`
/// and the framing are never taken from it (the stored body is unchanged).
pub fn merge_not_modified(stored: &[u8], raw_304: &[u8]) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    if !matches!(resp.parse(raw_304), Ok(httparse::Status::Complete(_))) {
        return stored.to_vec();
    }
    let fresh = crate::http::proxy::stored_header_lines(raw_304);
    let mut out = Vec::with_capacity(stored.len() + fresh.len());
    let replaced = |name: &str| {
        resp.headers.iter().any(|h| h.name.eq_ignore_ascii_case(name) && !h.name.eq_ignore_ascii_case("content-length"))
    };
    for line in stored.split_inclusive(|&b| b == b'\n') {
        let name = line.split(|&b| b == b':').next().and_then(|n| std::str::from_utf8(n).ok()).unwrap_or("");
        if !replaced(name.trim()) {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&fresh);
    out
}

/// Section 4.1: the secondary key of a response that varies on the
/// fields `vary` (its `Vary` values, comma-separated, as stored), for the
/// request head `req_raw`: each nominated field's values, in `Vary`'s
/// order, joined. `None` when `vary` names `*`.
pub fn secondary_key(vary: &[u8], req_raw: &[u8], out: &mut Vec<u8>) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(req_raw), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    for field in vary.split(|&b| b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty()) {
        if field == b"*" {
            return false;
        }
        out.push(0);
        out.extend(field.iter().map(u8::to_ascii_lowercase));
        out.push(b'=');
        let mut first = true;
        for h in req.headers.iter().filter(|h| h.name.as_bytes().eq_ignore_ascii_case(field)) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(h.value.trim_ascii());
        }
    }
    true
}

/// The `Vary` values of a stored response's header lines, comma-joined
/// (empty when it does not vary).
pub fn vary_of(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in stored.split(|&b| b == b'\n') {
        if let Some((name, value)) = line.split_once_byte(b':') {
            if name.trim_ascii().eq_ignore_ascii_case(b"vary") {
                if !out.is_empty() {
                    out.push(b',');
                }
                out.extend_from_slice(value.trim_ascii());
            }
        }
    }
    out
}

trait SplitOnce {
    fn split_once_byte(&self, b: u8) -> Option<(&[u8], &[u8])>;
}

impl SplitOnce for [u8] {
    fn split_once_byte(&self, b: u8) -> Option<(&[u8], &[u8])> {
        let i = self.iter().position(|&c| c == b)?;
        Some((&self[..i], &self[i + 1..]))
    }
}

/// Section 4.4: the targets a successful unsafe request for `host` +
/// `path` invalidates beside itself: its response's `Location` and
/// `Content-Location`, when they are on the same host (another origin's
/// URIs are not this request's to invalidate). Each as `(host, path)`.
pub fn invalidated<'a>(host: &'a str, resp_raw: &'a [u8]) -> Vec<(String, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let mut out = Vec::new();
    if !matches!(resp.parse(resp_raw), Ok(httparse::Status::Complete(_))) {
        return out;
    }
    for h in resp.headers.iter() {
        if !(is_name(h.name, b"location") || is_name(h.name, b"content-location")) {
            continue;
        }
        let Ok(v) = std::str::from_utf8(h.value.trim_ascii()) else { continue };
        let (h2, path) = match v.strip_prefix("http://").or_else(|| v.strip_prefix("https://")) {
            Some(rest) => {
                let end = rest.find('/').unwrap_or(rest.len());
                (&rest[..end], if end == rest.len() { "/" } else { &rest[end..] })
            }
            None if v.starts_with('/') => (host, v),
            None => continue,
        };
        if h2.eq_ignore_ascii_case(host) {
            out.push((host.to_ascii_lowercase(), path.to_string()));
        }
    }
    out
}

/// True for a status after which an unsafe request invalidates (section 4.4: a non-error one).
pub fn invalidates(status: u16) -> bool {
    (200..400).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(v: &str) -> CacheControl {
        CacheControl::parse([v.as_bytes()])
    }

    #[test]
    fn cache_control_parses_once_into_its_directives() {
        let c = cc(r#"public, max-age=60, s-maxage="30", no-cache="Set-Cookie, X-A", x-unknown=1, MUST-REVALIDATE"#);
        assert!(c.public && c.no_cache && c.must_revalidate && !c.private && !c.no_store);
        assert_eq!((c.max_age, c.s_maxage), (Some(60), Some(30)));
        assert_eq!(cc("max-age=10, max-age=5").max_age, Some(5), "the more restrictive of two");
        assert_eq!(cc("max-age=ten").max_age, Some(0), "invalid: stale");
        assert_eq!(cc("max-age=99999999999999999999").max_age, Some(1 << 31));
        assert_eq!(cc("max-stale").max_stale, Some(u64::MAX));
        assert_eq!(cc("max-stale=7, min-fresh=3, only-if-cached").max_stale, Some(7));
        assert!(cc(r#"private="X-Secret""#).private);
        assert!(cc(",, ,no-store,").no_store);
        assert_eq!(cc("stale-while-revalidate=5, stale-if-error=9").stale_if_error, Some(9));
    }

    const D: u64 = 1_700_000_000; // a Date

    #[test]
    fn stale_while_revalidate_serves_within_its_window_only() {
        let f = Freshness {
            lifetime: 10,
            initial_age: 0,
            response_time: D,
            no_cache: false,
            must_revalidate: false,
            stale_while_revalidate: 30,
            stale_if_error: 0,
        };
        let none = CacheControl::default();
        assert_eq!(f.reuse(&none, D + 5), Reuse::Fresh);
        assert_eq!(f.reuse(&none, D + 40), Reuse::StaleWhileRevalidate, "30 s stale");
        assert_eq!(f.reuse(&none, D + 41), Reuse::Revalidate, "past the window");
        assert_eq!(f.reuse(&cc("min-fresh=1"), D + 20), Reuse::Revalidate, "the client wants freshness");
        assert_eq!(f.reuse(&cc("no-cache"), D + 20), Reuse::Revalidate);
        assert_eq!(Freshness { must_revalidate: true, ..f }.reuse(&none, D + 20), Reuse::Revalidate);
        assert_eq!(
            Freshness { stale_while_revalidate: 0, ..f }.reuse(&none, D + 10),
            Reuse::Revalidate,
            "stale at once"
        );
    }

    fn resp(extra: &str) -> Vec<u8> {
        format!("HTTP/1.1 200 OK\r\nDate: {}\r\n{extra}\r\n", fmt_http_date(D)).into_bytes()
    }

    #[test]
    fn expires_forms_that_are_invalid_mean_already_expired() {
        for bad in ["0", "-1", "Thu, 01 Dec 1994 16:00:00 PST", "Thursday, 01-Dec-94 16:00:00 XYZ", "soon"] {
            let raw = resp(&format!("Expires: {bad}\r\n"));
            let r = response_info(&raw).unwrap();
            assert_eq!(r.expires, Some(None), "{bad}");
            assert_eq!(freshness_lifetime(&r, D), 0, "{bad}");
        }
        let raw = resp(&format!("Expires: {}\r\n", fmt_http_date(D + 100)));
        assert_eq!(freshness_lifetime(&response_info(&raw).unwrap(), D), 100);
    }

    #[test]
    fn age_that_is_not_a_non_negative_integer_is_ignored() {
        for (age, want) in [("10", Some(10)), ("1.5", None), ("-3", None), ("x", None), ("", None)] {
            let raw = resp(&format!("Age: {age}\r\n"));
            assert_eq!(response_info(&raw).unwrap().age, want, "{age:?}");
        }
    }

    #[test]
    fn weak_comparison_of_entity_tags() {
        let req = |inm: &'static str| RequestInfo { if_none_match: Some(inm.as_bytes()), ..Default::default() };
        assert!(not_modified(&req(r#""a", W/"b""#), Some(br#""b""#), None));
        assert!(not_modified(&req(r#"W/"a""#), Some(br#""a""#), None));
        assert!(!not_modified(&req(r#""a""#), Some(br#""b""#), None));
        assert!(not_modified(&req("*"), None, None));
        let ims = RequestInfo { if_modified_since: Some(D), ..Default::default() };
        assert!(not_modified(&ims, None, Some(D - 1)) && !not_modified(&ims, None, Some(D + 1)));
    }

    #[test]
    fn a_304_replaces_the_fields_it_carries_and_keeps_the_others() {
        let stored = b"Content-Type: text/html\r\nETag: \"v1\"\r\nDate: old\r\nX-Keep: 1\r\n";
        let raw = b"HTTP/1.1 304 Not Modified\r\nDate: new\r\nETag: \"v1\"\r\nCache-Control: max-age=5\r\nContent-Length: 0\r\n\r\n";
        let merged = String::from_utf8(merge_not_modified(stored, raw)).unwrap();
        assert_eq!(
            merged,
            "Content-Type: text/html\r\nX-Keep: 1\r\nDate: new\r\nETag: \"v1\"\r\nCache-Control: max-age=5\r\n"
        );
    }

    #[test]
    fn secondary_keys_follow_the_nominated_fields() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert!(secondary_key(b"Accept-Encoding", b"GET / HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n", &mut a));
        assert!(secondary_key(b"accept-encoding", b"GET / HTTP/1.1\r\naccept-encoding:  gzip \r\n\r\n", &mut b));
        assert_eq!(a, b);
        b.clear();
        assert!(secondary_key(b"Accept-Encoding", b"GET / HTTP/1.1\r\n\r\n", &mut b));
        assert_ne!(a, b);
        assert!(!secondary_key(b"*", b"GET / HTTP/1.1\r\n\r\n", &mut b));
        assert_eq!(vary_of(b"Vary: Accept-Encoding\r\nX: 1\r\nvary: Cookie\r\n"), b"Accept-Encoding,Cookie");
    }

    #[test]
    fn only_same_host_locations_are_invalidated() {
        let raw = b"HTTP/1.1 201 Created\r\nLocation: /new\r\nContent-Location: http://other.test/x\r\n\r\n";
        assert_eq!(invalidated("a.test", raw), vec![("a.test".to_string(), "/new".to_string())]);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Location: http://A.test/y\r\n\r\n";
        assert_eq!(invalidated("a.test", raw), vec![("a.test".to_string(), "/y".to_string())]);
    }

    #[test]
    fn the_key_is_the_host_and_the_target() {
        let raw = b"GET http://B.Test/p?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n";
        let info = request_info(raw).unwrap();
        let mut key = String::new();
        cache_key(info.host, "/p?q=1", &mut key);
        assert_eq!(key, "b.test/p?q=1", "an absolute-form target's authority wins over Host");
        let raw = b"GET /p HTTP/1.1\r\nHost: A.test:8080\r\n\r\n";
        cache_key(request_info(raw).unwrap().host, "/p", &mut key);
        assert_eq!(key, "a.test:8080/p");
        assert_eq!(stored_field(b"ETag: \"x\"\r\nDate: d\r\n", "date"), Some(&b"d"[..]));
    }
}
