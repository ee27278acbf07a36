//! Typed, versioned service configurations: what `dl7 origin|node|front|load
//! --config FILE` reads (JSON) and what the engine writes for every process it
//! starts. The runner never assembles argv; a human's flags are turned into
//! the same structs by the CLI. [`crate::serve`] turns one into a running service.
//!
//! This module is a leaf: plain data and its checks, no sockets, no files but
//! the config file itself.
//!
//! A config names its [`VERSION`]; a file of another version, a missing or an
//! unknown field is an error naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dl7_core::eviction::Eviction;
pub use dl7_core::HashKey;
use dl7_core::{Hardware, Membership, PolicySpec};
use serde::{Deserialize, Serialize};

pub use crate::error::{AdminTokenError, HealthError};
use crate::error::{SpecError, SpecFileError, UnknownFrontMode};

use crate::defaults::{DEFAULT_HEAD_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, DEFAULT_UPSTREAM_TIMEOUT_MS};

/// The config format's version; bump it on any incompatible change.
pub const VERSION: u32 = 2;

/// Limits every service shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Milliseconds allowed for a complete request head (408 after).
    pub head_timeout_ms: u64,
    /// Most client connections at once (more get 503).
    pub max_connections: usize,
    /// Deadline of one upstream fetch (origin, owner, node), milliseconds.
    pub upstream_timeout_ms: u64,
    /// Threads serving the service (see [`runtime`]); absent: one per core.
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            head_timeout_ms: DEFAULT_HEAD_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            upstream_timeout_ms: DEFAULT_UPSTREAM_TIMEOUT_MS,
            worker_threads: None,
        }
    }
}

/// The front end's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontMode {
    /// Parse, pick the owner, proxy and stream the response back (KTCPVS).
    Conventional,
    /// Hand each connection to a node over SCM_RIGHTS: direct return (IPVS-DR).
    Distributed,
    /// Splice bytes to a round-robin node through the front end (IPVS-NAT-like).
    Relay,
}

impl FrontMode {
    /// Every mode.
    pub const ALL: [FrontMode; 3] = [FrontMode::Conventional, FrontMode::Distributed, FrontMode::Relay];

    /// The CLI and TOML name.
    pub fn name(self) -> &'static str {
        match self {
            FrontMode::Conventional => "conventional",
            FrontMode::Distributed => "distributed",
            FrontMode::Relay => "relay",
        }
    }
}

impl std::str::FromStr for FrontMode {
    type Err = UnknownFrontMode;
    fn from_str(s: &str) -> Result<Self, UnknownFrontMode> {
        FrontMode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownFrontMode { name: s.to_string() })
    }
}

/// How a peer is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// A TCP connect (HAProxy's plain `check`): works with any backend.
    Tcp,
    /// `GET path`, healthy on an expected status (HAProxy's `option httpchk`).
    /// The default of a config that names no check: dl7's own nodes answer
    /// `/_dl7/health` (503 while they drain), which a connect cannot see.
    #[default]
    Http,
    /// No probes (HAProxy without `check`): a peer is skipped only for a
    /// while after a request to it failed (the passive check).
    None,
}

impl HealthCheck {
    /// Every check.
    pub const ALL: [HealthCheck; 3] = [HealthCheck::Tcp, HealthCheck::Http, HealthCheck::None];

    /// The CLI, TOML and JSON name.
    pub fn name(self) -> &'static str {
        match self {
            HealthCheck::Tcp => "tcp",
            HealthCheck::Http => "http",
            HealthCheck::None => "none",
        }
    }
}

impl std::str::FromStr for HealthCheck {
    type Err = HealthError;
    fn from_str(s: &str) -> Result<Self, HealthError> {
        HealthCheck::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| HealthError::Check { found: s.into() })
    }
}

/// Longest probe path: the path lives inline so that [`HealthSpec`] stays
/// `Copy` (every dispatcher, front end and director takes it by value).
pub const MAX_PROBE_PATH: usize = 126;

/// The path an HTTP probe asks for: origin-form (`/...`), visible ASCII,
/// at most [`MAX_PROBE_PATH`] bytes, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ProbePath {
    bytes: [u8; MAX_PROBE_PATH],
    len: u8,
}

impl ProbePath {
    /// `/_dl7/health`, what every dl7 node answers (`crate::health::HEALTH_PATH`).
    pub const HEALTH: ProbePath = ProbePath::from_static("/_dl7/health");

    const fn from_static(s: &str) -> ProbePath {
        let mut bytes = [0u8; MAX_PROBE_PATH];
        let mut i = 0;
        while i < s.len() {
            bytes[i] = s.as_bytes()[i];
            i += 1;
        }
        ProbePath { bytes, len: s.len() as u8 }
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored (see `FromStr`).
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("ASCII")
    }
}

impl Default for ProbePath {
    fn default() -> Self {
        ProbePath::HEALTH
    }
}

impl std::fmt::Debug for ProbePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for ProbePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProbePath {
    type Err = HealthError;
    /// A path that would not make a valid request line is refused here,
    /// not sent: it starts with `/` and holds only visible ASCII.
    fn from_str(s: &str) -> Result<Self, HealthError> {
        let bad = |reason: &'static str| HealthError::Path { path: s.into(), reason };
        if !s.starts_with('/') {
            return Err(bad("expected an origin-form path starting with /"));
        }
        if s.len() > MAX_PROBE_PATH {
            return Err(bad("longer than 126 bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("expected visible ASCII only (no spaces, no control bytes)"));
        }
        let mut bytes = [0u8; MAX_PROBE_PATH];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(ProbePath { bytes, len: s.len() as u8 })
    }
}

impl TryFrom<String> for ProbePath {
    type Error = HealthError;
    fn try_from(s: String) -> Result<Self, HealthError> {
        s.parse()
    }
}

impl From<ProbePath> for String {
    fn from(p: ProbePath) -> String {
        p.as_str().to_string()
    }
}

impl Serialize for ProbePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProbePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of HTTP status codes (100 to 599), written as a comma-separated
/// list of codes and ranges: `200-399` (HAProxy's `option httpchk`
/// default: any 2xx or 3xx), `200,204`, `2xx` for a whole class. A bit per
/// code, so that it is `Copy` and a lookup is one shift.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet {
    bits: [u64; 8],
}

impl StatusSet {
    /// Any 2xx or 3xx.
    pub const SUCCESS: StatusSet = StatusSet::range(200, 399);

    const fn range(lo: u16, hi: u16) -> StatusSet {
        let mut bits = [0u64; 8];
        let mut s = lo;
        while s <= hi {
            let i = (s - 100) as usize;
            bits[i / 64] |= 1 << (i % 64);
            s += 1;
        }
        StatusSet { bits }
    }

    /// True when `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        (100..600).contains(&status) && {
            let i = (status - 100) as usize;
            self.bits[i / 64] & (1 << (i % 64)) != 0
        }
    }

    fn insert(&mut self, s: u16) {
        let i = (s - 100) as usize;
        self.bits[i / 64] |= 1 << (i % 64);
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet::SUCCESS
    }
}

impl std::fmt::Display for StatusSet {
    /// The shortest list of codes and ranges: `200-399`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut s = 100u16;
        while s < 600 {
            if !self.contains(s) {
                s += 1;
                continue;
            }
            let lo = s;
            while s + 1 < 600 && self.contains(s + 1) {
                s += 1;
            }
            f.write_str(if first { "" } else { "," })?;
            first = false;
            if lo == s {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{s}")?;
            }
            s += 1;
        }
        Ok(())
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatusSet({self})")
    }
}

impl std::str::FromStr for StatusSet {
    type Err = HealthError;
    fn from_str(text: &str) -> Result<Self, HealthError> {
        let bad = |reason: &'static str| HealthError::Expect { found: text.into(), reason };
        let code = |t: &str| match t.trim().parse::<u16>() {
            Ok(c) if (100..600).contains(&c) => Ok(c),
            _ => Err(bad("expected status codes from 100 to 599")),
        };
        let mut set = StatusSet { bits: [0; 8] };
        for part in text.split(',') {
            let part = part.trim();
            let (lo, hi) = if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
                let c = code(&format!("{class}00"))?;
                (c, c + 99)
            } else if let Some((lo, hi)) = part.split_once('-') {
                (code(lo)?, code(hi)?)
            } else {
                let c = code(part)?;
                (c, c)
            };
            if lo > hi {
                return Err(bad("a range's first code is above its last"));
            }
            (lo..=hi).for_each(|s| set.insert(s));
        }
        Ok(set)
    }
}

impl Serialize for StatusSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Envoy's default panic threshold, percent: below this share of members in
/// service, health is ignored and requests spread over every member.
pub const DEFAULT_PANIC_PERCENT: u8 = 50;

/// Active health checks: `inter`, `rise` and `fall` of HAProxy's `check`
/// (its defaults), the kind of probe, and Envoy's panic threshold.
///
/// Every field after `fall` may be left out: a config written before them
/// reads as the HTTP check of `/_dl7/health` that dl7's nodes answer, with
/// 2xx/3xx expected (a node answers 200, or 503 while draining: the same
/// verdicts as the 200-only check of those configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// Milliseconds between the starts of two probes of one peer; also each probe's deadline.
    pub interval_ms: u64,
    /// Good probes in a row that bring a down peer back.
    pub rise: u32,
    /// Failed probes in a row that take an up peer out.
    pub fall: u32,
    /// The probe: `tcp`, `http` or `none`.
    #[serde(default)]
    pub check: HealthCheck,
    /// The path an `http` probe asks for.
    #[serde(default)]
    pub path: ProbePath,
    /// The statuses an `http` probe counts as healthy.
    #[serde(default)]
    pub expect: StatusSet,
    /// Below this percentage of members in service, route as if all were
    /// (Envoy's panic threshold; 0: never). Whatever it is, a request whose
    /// candidates are all out goes to its owner anyway.
    #[serde(default = "default_panic_percent")]
    pub panic_percent: u8,
}

fn default_panic_percent() -> u8 {
    DEFAULT_PANIC_PERCENT
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            interval_ms: 2000,
            rise: 2,
            fall: 3,
            check: HealthCheck::Http,
            path: ProbePath::HEALTH,
            expect: StatusSet::SUCCESS,
            panic_percent: DEFAULT_PANIC_PERCENT,
        }
    }
}

impl HealthSpec {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), HealthError> {
        if self.interval_ms == 0 {
            return Err(HealthError::Interval);
        }
        if self.rise == 0 {
            return Err(HealthError::Probes { field: "rise" });
        }
        if self.fall == 0 {
            return Err(HealthError::Probes { field: "fall" });
        }
        if self.panic_percent > 100 {
            return Err(HealthError::Panic { found: self.panic_percent });
        }
        Ok(())
    }

    /// The probe period.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1))
    }
}

/// The shared secret a change on a service's admin listener must carry
/// (`PUT /_dl7/members`, as `Authorization: Bearer TOKEN`), as RFC 6750
/// writes it: letters, digits and `-._~+/`, then any `=`. Its `Debug` hides
/// it, so that no log line carries it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdminToken(String);

impl AdminToken {
    /// `text` as a token, refused when it could not be sent as a bearer token.
    pub fn new(text: &str) -> Result<AdminToken, AdminTokenError> {
        let body = text.trim_end_matches('=');
        if body.is_empty() {
            return Err(AdminTokenError::Empty);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        if !body.bytes().all(allowed) {
            return Err(AdminTokenError::Character);
        }
        Ok(AdminToken(text.to_string()))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl TryFrom<String> for AdminToken {
    type Error = AdminTokenError;
    fn try_from(s: String) -> Result<Self, AdminTokenError> {
        AdminToken::new(&s)
    }
}

impl From<AdminToken> for String {
    fn from(t: AdminToken) -> String {
        t.0
    }
}

/// The origin web server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSpec {
    /// Built-in workload name, workload file or trace file.
    pub workload: String,
    /// Address to bind (port 0: any free port, printed in the ready line).
    pub listen: SocketAddr,
    /// Delay added to every response, milliseconds.
    pub delay_ms: u64,
    /// Separate listener for the admin pages.
    pub admin: Option<SocketAddr>,
    /// Limits and timeouts.
    pub limits: LimitsSpec,
}

/// One cache node (cache + L7 dispatcher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// This node's 0-based index in `nodes`.
    pub id: u32,
    /// Every node's address, in membership order (this one's included).
    pub nodes: Vec<SocketAddr>,
    /// Address to bind; default: this node's entry in `nodes`.
    pub listen: Option<SocketAddr>,
    /// The origin's address.
    pub origin: SocketAddr,
    /// The policy (built over logical names, as in the simulator).
    pub policy: PolicySpec,
    /// Cache budget, body bytes.
    pub cache_bytes: u64,
    /// Which entry a full cache drops; a config written before there was a
    /// choice reads as `lru`.
    #[serde(default)]
    pub eviction: Eviction,
    /// Largest object cached, bytes; larger ones stream through uncached.
    pub max_object_bytes: u64,
    /// Candidates tried after a failed owner (0: only the owner; 503 when it fails).
    pub fallbacks: usize,
    /// What the policy hashes: `url` (path and query) or `path` (the query
    /// left out). This and `rampup_s` may be left out: `url` and 0.
    #[serde(default)]
    pub hash_key: HashKey,
    /// Seconds over which a peer that has just come up (health or
    /// membership) takes a growing share of the keys it owns (0: off).
    #[serde(default)]
    pub rampup_s: f64,
    /// Unix socket on which the distributed front end hands over client sockets.
    pub handoff: Option<PathBuf>,
    /// Ask this node (the directory) for every owner (`ht_rr_shared`).
    pub directory: Option<SocketAddr>,
    /// Emulate the CPU of this hardware profile's cache server.
    pub emulate_cpu: Option<Hardware>,
    /// Separate listener for the admin pages.
    pub admin: Option<SocketAddr>,
    /// The token a change on the admin listener must carry (none: no check).
    #[serde(default)]
    pub admin_token: Option<AdminToken>,
    /// Limits and timeouts.
    pub limits: LimitsSpec,
    /// Active health checks of the other nodes.
    pub health: HealthSpec,
    /// The nodes routed over at start (indices into `nodes`; `None`: all);
    /// `PUT /_dl7/members?nodes=..` on the admin listener changes them.
    pub members: Option<Vec<usize>>,
}

/// The front-end balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontSpec {
    /// `conventional`, `distributed` or `relay`.
    pub mode: FrontMode,
    /// Node addresses, in membership order.
    pub nodes: Vec<SocketAddr>,
    /// Node handoff Unix sockets (distributed mode).
    pub handoff: Vec<PathBuf>,
    /// The policy (conventional mode).
    pub policy: PolicySpec,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Candidates tried after a failed owner (conventional).
    pub fallbacks: usize,
    /// What the policy hashes (conventional), as [`NodeSpec::hash_key`].
    #[serde(default)]
    pub hash_key: HashKey,
    /// Ramp-up of a node that has just come up (conventional), as [`NodeSpec::rampup_s`].
    #[serde(default)]
    pub rampup_s: f64,
    /// Separate listener for the admin pages.
    pub admin: Option<SocketAddr>,
    /// The token a change on the admin listener must carry (none: no check).
    #[serde(default)]
    pub admin_token: Option<AdminToken>,
    /// Limits and timeouts.
    pub limits: LimitsSpec,
    /// Active health checks of the nodes.
    pub health: HealthSpec,
    /// The nodes sent to at start (indices into `nodes`; `None`: all);
    /// `PUT /_dl7/members?nodes=..` on the admin listener changes them.
    pub members: Option<Vec<usize>>,
}

/// One load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Address of the front end (or any node).
    pub target: SocketAddr,
    /// Built-in workload name, workload file or trace file: the catalog to request and verify.
    pub workload: String,
    /// Replay the trace file's requests once, in order, instead of a seeded stream.
    pub replay: bool,
    /// Replay: requests not measured.
    pub warmup_requests: u64,
    /// Seed of the request streams.
    pub seed: u64,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Seconds of warm-up not recorded.
    pub warmup_s: f64,
    /// Seconds of measurement (a replay also ends when the trace is done).
    pub duration_s: f64,
    /// Open loop at this total rate (requests/s); `None`: closed loop.
    pub rate: Option<f64>,
    /// Per-request deadline, milliseconds.
    pub timeout_ms: u64,
    /// A replay at the trace's logged times, this many times faster; `None`: closed loop.
    /// (This and the next two fields may be left out: version 1 files before them still read.)
    #[serde(default)]
    pub speed: Option<f64>,
    /// A timed replay: most requests out at once; later ones are dropped.
    #[serde(default = "default_max_outstanding")]
    pub max_outstanding: usize,
    /// Length of the report's intervals, seconds.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// Threads driving the load (see [`runtime`]); absent: one per core.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// What this run is, in its summary line on stderr (`warmup`, `load-c2`);
    /// absent: `load`.
    #[serde(default)]
    pub label: Option<String>,
}

fn default_max_outstanding() -> usize {
    dl7_core::Pace::DEFAULT_MAX_OUTSTANDING as usize
}

fn default_interval_s() -> f64 {
    1.0
}

/// Any service's config, tagged by role, with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Must be [`VERSION`].
    pub version: u32,
    /// The service.
    pub service: ServiceSpec,
}

/// One service to run. Read once per process, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceSpec {
    /// `dl7 origin`.
    Origin(OriginSpec),
    /// `dl7 node`.
    Node(NodeSpec),
    /// `dl7 front`.
    Front(FrontSpec),
    /// `dl7 load`.
    Load(LoadSpec),
}

impl ServiceSpec {
    /// The role's name (the subcommand).
    pub fn role(&self) -> &'static str {
        match self {
            ServiceSpec::Origin(_) => "origin",
            ServiceSpec::Node(_) => "node",
            ServiceSpec::Front(_) => "front",
            ServiceSpec::Load(_) => "load",
        }
    }

    /// The versioned JSON text of its config file.
    pub fn to_json(&self) -> String {
        let file = ServiceFile { version: VERSION, service: self.clone() };
        serde_json::to_string_pretty(&file).expect("a spec is plain data")
    }

    /// Writes it as a versioned JSON file.
    pub fn write(&self, path: &Path) -> Result<(), SpecFileError> {
        std::fs::write(path, self.to_json()).map_err(|source| SpecFileError::Write { path: path.into(), source })
    }

    /// Reads a versioned JSON file; `role` is the subcommand that reads it.
    pub fn read(path: &Path, role: &str) -> Result<ServiceSpec, SpecFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecFileError::Read { path: path.into(), source })?;
        let file: ServiceFile = serde_json::from_str(&text).map_err(|source| SpecFileError::Json {
            path: path.into(),
            line: source.line(),
            column: source.column(),
            source,
        })?;
        if file.version != VERSION {
            return Err(SpecFileError::Version { path: path.into(), found: file.version, expected: VERSION });
        }
        if file.service.role() != role {
            return Err(SpecFileError::Role { path: path.into(), found: file.service.role(), expected: role.into() });
        }
        Ok(file.service)
    }
}

/// Checks a spec's values that need no file; the error names the field.
pub fn validate(spec: &ServiceSpec) -> Result<(), SpecError> {
    let threads = match spec {
        ServiceSpec::Origin(o) => o.limits.worker_threads,
        ServiceSpec::Node(n) => n.limits.worker_threads,
        ServiceSpec::Front(f) => f.limits.worker_threads,
        ServiceSpec::Load(l) => l.worker_threads,
    };
    if threads == Some(0) {
        return Err(SpecError::WorkerThreads);
    }
    match spec {
        ServiceSpec::Origin(_) => Ok(()),
        ServiceSpec::Node(n) => {
            let count = n.nodes.len();
            if n.id as usize >= count {
                return Err(SpecError::NodeId { id: n.id, count });
            }
            let members = Membership::numbered(count).map_err(SpecError::Nodes)?;
            n.policy.build(&members).map_err(SpecError::Policy)?;
            check_rampup(n.rampup_s)?;
            check_members(&n.members, count)?;
            n.health.validate().map_err(SpecError::Health)
        }
        ServiceSpec::Front(f) => {
            let mode = f.mode;
            let members = Membership::numbered(f.nodes.len()).map_err(SpecError::Nodes)?;
            f.policy.build(&members).map_err(SpecError::Policy)?;
            if mode == FrontMode::Distributed && f.handoff.len() != f.nodes.len() {
                return Err(SpecError::Handoff { nodes: f.nodes.len(), sockets: f.handoff.len() });
            }
            check_rampup(f.rampup_s)?;
            check_members(&f.members, f.nodes.len().max(f.handoff.len()))?;
            f.health.validate().map_err(SpecError::Health)
        }
        ServiceSpec::Load(l) => {
            for (name, v) in [("warmup_s", l.warmup_s), ("duration_s", l.duration_s)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(SpecError::Seconds { field: name, value: v });
                }
            }
            if !(l.interval_s.is_finite() && l.interval_s >= 0.001) {
                return Err(SpecError::Interval { value: l.interval_s });
            }
            if let Some(speed) = l.speed {
                if !l.replay {
                    return Err(SpecError::SpeedWithoutReplay);
                }
                // The ranges are the core's, as for every engine's clients.
                let max_outstanding = u32::try_from(l.max_outstanding).unwrap_or(u32::MAX);
                dl7_core::Pace { speed, max_outstanding }.validate().map_err(SpecError::Pace)?;
            }
            Ok(())
        }
    }
}

/// `rampup_s` must be a non-negative number of seconds that a `Duration` holds.
fn check_rampup(rampup_s: f64) -> Result<(), SpecError> {
    if Duration::try_from_secs_f64(rampup_s).is_err() {
        return Err(SpecError::Seconds { field: "rampup_s", value: rampup_s });
    }
    Ok(())
}

/// `members`, if given, must name distinct nodes among `count`, at least one.
fn check_members(members: &Option<Vec<usize>>, count: usize) -> Result<(), SpecError> {
    let Some(m) = members else { return Ok(()) };
    if m.is_empty() {
        return Err(SpecError::MembersEmpty);
    }
    for (k, &i) in m.iter().enumerate() {
        if i >= count {
            return Err(SpecError::MemberOutOfRange { index: i, count });
        }
        if m[..k].contains(&i) {
            return Err(SpecError::MemberTwice { index: i });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> ServiceSpec {
        ServiceSpec::Node(NodeSpec {
            id: 0,
            nodes: vec!["127.0.0.1:1".parse().unwrap()],
            listen: None,
            origin: "127.0.0.1:2".parse().unwrap(),
            policy: PolicySpec::parse("md5").unwrap(),
            cache_bytes: 1 << 20,
            eviction: Eviction::Sieve,
            max_object_bytes: 1 << 17,
            fallbacks: 2,
            hash_key: HashKey::Path,
            rampup_s: 1.5,
            handoff: None,
            directory: None,
            emulate_cpu: Some(Hardware::kwon2008()),
            admin: None,
            admin_token: Some(AdminToken::new("s3cret-token").unwrap()),
            limits: LimitsSpec::default(),
            health: HealthSpec::default(),
            members: None,
        })
    }

    #[test]
    fn a_config_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("dl7-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.json");
        node().write(&path).unwrap();
        assert_eq!(ServiceSpec::read(&path, "node").unwrap(), node());
        let e = ServiceSpec::read(&path, "front").unwrap_err().to_string();
        assert!(e.contains("a node config, not a front one"), "{e}");
        let text = std::fs::read_to_string(&path).unwrap().replace("\"fallbacks\"", "\"fallback\"");
        std::fs::write(&path, text).unwrap();
        let e = ServiceSpec::read(&path, "node").unwrap_err();
        assert!(matches!(e, SpecFileError::Json { line: 1.., .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("fallback"), "{e}");
        node().write(&path).unwrap();
        let text =
            std::fs::read_to_string(&path).unwrap().replace(&format!("\"version\": {VERSION}"), "\"version\": 9");
        std::fs::write(&path, text).unwrap();
        assert!(ServiceSpec::read(&path, "node").unwrap_err().to_string().contains("version 9"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_node_config_without_an_eviction_reads_as_lru() {
        let ServiceSpec::Node(n) = node() else { unreachable!("a node") };
        let mut v = serde_json::to_value(ServiceFile { version: VERSION, service: node() }).unwrap();
        assert_eq!(v["service"]["node"]["eviction"], "sieve");
        v["service"]["node"].as_object_mut().unwrap().remove("eviction");
        let ServiceSpec::Node(old) = serde_json::from_value::<ServiceFile>(v).unwrap().service else {
            panic!("a node config")
        };
        assert_eq!(old, NodeSpec { eviction: Eviction::Lru, ..n });
    }

    #[test]
    fn a_load_config_reads_without_the_timed_replay_fields_and_checks_them() {
        let text = r#"{"version": 1, "service": {"load": {"target": "127.0.0.1:1", "workload": "surge100",
            "replay": false, "warmup_requests": 0, "seed": 1, "connections": 2, "warmup_s": 0.0,
            "duration_s": 1.0, "rate": null, "timeout_ms": 100}}}"#;
        let file: ServiceFile = serde_json::from_str(text).unwrap();
        let ServiceSpec::Load(l) = file.service else { panic!("a load config") };
        assert_eq!((l.speed, l.max_outstanding, l.interval_s), (None, 4096, 1.0));
        let check = |l: &LoadSpec| validate(&ServiceSpec::Load(l.clone()));
        assert!(check(&LoadSpec { speed: Some(2.0), ..l.clone() }).unwrap_err().to_string().contains("needs a trace"));
        let replay = LoadSpec { replay: true, ..l.clone() };
        assert!(check(&LoadSpec { speed: Some(0.0), ..replay.clone() })
            .unwrap_err()
            .to_string()
            .starts_with("speed: "));
        assert!(check(&LoadSpec { speed: Some(1.0), max_outstanding: 0, ..replay.clone() }).is_err());
        assert!(check(&LoadSpec { interval_s: 0.0, ..l.clone() }).unwrap_err().to_string().starts_with("interval_s"));
        assert!(check(&LoadSpec { speed: Some(1.0), ..replay }).is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let ServiceSpec::Node(mut n) = node() else { unreachable!() };
        n.id = 3;
        assert!(validate(&ServiceSpec::Node(n.clone())).unwrap_err().to_string().starts_with("id 3"));
        assert_eq!(validate(&ServiceSpec::Node(n.clone())), Err(SpecError::NodeId { id: 3, count: 1 }));
        n.id = 0;
        n.members = Some(vec![0, 1]);
        assert!(validate(&ServiceSpec::Node(n.clone()))
            .unwrap_err()
            .to_string()
            .contains("members: 1 is not a node index"));
        n.members = Some(vec![]);
        assert!(validate(&ServiceSpec::Node(n)).unwrap_err().to_string().contains("at least one"));
        let ServiceSpec::Node(mut n) = node() else { unreachable!() };
        n.limits.worker_threads = Some(0);
        assert!(validate(&ServiceSpec::Node(n)).unwrap_err().to_string().starts_with("worker_threads 0"));
    }

    #[test]
    fn a_config_written_before_the_check_fields_reads_as_dl7s_http_check() {
        let old = r#"{"interval_ms": 500, "rise": 1, "fall": 4}"#;
        let h: HealthSpec = serde_json::from_str(old).unwrap();
        let want = HealthSpec { interval_ms: 500, rise: 1, fall: 4, ..HealthSpec::default() };
        assert_eq!(h, want);
        assert_eq!(
            (h.check, h.path.as_str(), h.expect.to_string(), h.panic_percent),
            (HealthCheck::Http, "/_dl7/health", "200-399".into(), 50)
        );
        let text = serde_json::to_string(&HealthSpec { check: HealthCheck::Tcp, ..want }).unwrap();
        assert!(text.contains(r#""check":"tcp""#) && text.contains(r#""expect":"200-399""#), "{text}");
        assert_eq!(serde_json::from_str::<HealthSpec>(&text).unwrap().check, HealthCheck::Tcp);
        let e = serde_json::from_str::<HealthSpec>(r#"{"interval_ms": 1, "rise": 1, "fall": 1, "check": "icmp"}"#);
        assert!(e.unwrap_err().to_string().contains("icmp"));
    }

    #[test]
    fn a_node_config_written_before_hash_key_rampup_and_token_reads_with_their_defaults() {
        let ServiceSpec::Node(n) = node() else { unreachable!() };
        let mut v = serde_json::to_value(&n).unwrap();
        for field in ["hash_key", "rampup_s", "admin_token"] {
            v.as_object_mut().unwrap().remove(field).unwrap();
        }
        let old: NodeSpec = serde_json::from_value(v).unwrap();
        assert_eq!((old.hash_key, old.rampup_s, old.admin_token), (HashKey::Url, 0.0, None));
        let text = serde_json::to_string(&n).unwrap();
        assert!(text.contains(r#""hash_key":"path""#) && text.contains(r#""rampup_s":1.5"#), "{text}");
        assert!(!format!("{n:?}").contains("s3cret"), "Debug never shows the token");
        let bad = text.replace(r#""hash_key":"path""#, r#""hash_key":"query""#);
        assert!(serde_json::from_str::<NodeSpec>(&bad).unwrap_err().to_string().contains("query"));
        let check = |n: NodeSpec| validate(&ServiceSpec::Node(n));
        assert_eq!(
            check(NodeSpec { rampup_s: -1.0, ..n.clone() }),
            Err(SpecError::Seconds { field: "rampup_s", value: -1.0 })
        );
        for bad in [f64::NAN, f64::INFINITY, 1e300] {
            assert!(check(NodeSpec { rampup_s: bad, ..n.clone() }).unwrap_err().to_string().starts_with("rampup_s"));
        }
    }

    #[test]
    fn admin_tokens_are_what_a_bearer_header_can_carry() {
        for good in ["abc", "A-b.c_d~e+f/g==", "0123456789"] {
            assert_eq!(AdminToken::new(good).unwrap().as_str(), good);
        }
        assert_eq!(AdminToken::new(""), Err(AdminTokenError::Empty));
        assert_eq!(AdminToken::new("=="), Err(AdminTokenError::Empty));
        for bad in ["a b", "a\r\nX: 1", "tök", "a=b", "a,b"] {
            assert_eq!(AdminToken::new(bad), Err(AdminTokenError::Character), "{bad:?}");
        }
        let e = serde_json::from_str::<AdminToken>(r#""a b""#).unwrap_err().to_string();
        assert!(e.contains("letters, digits"), "{e}");
    }

    #[test]
    fn status_sets_read_and_write_codes_ranges_and_classes() {
        let set: StatusSet = "200-299, 304,4xx".parse().unwrap();
        assert!(set.contains(200) && set.contains(299) && set.contains(304) && set.contains(404));
        assert!(!set.contains(300) && !set.contains(500) && !set.contains(99) && !set.contains(600));
        assert_eq!(set.to_string(), "200-299,304,400-499");
        assert_eq!(StatusSet::default().to_string(), "200-399");
        for bad in ["", "99", "600", "300-200", "abc", "2-3"] {
            let e = bad.parse::<StatusSet>().unwrap_err();
            assert!(matches!(&e, HealthError::Expect { found, .. } if found == bad), "{bad}: {e}");
        }
    }

    #[test]
    fn probe_paths_must_make_a_request_line() {
        assert_eq!("/status?full=1".parse::<ProbePath>().unwrap().as_str(), "/status?full=1");
        for bad in ["health", "/a b", "/\r\nX: 1", &format!("/{}", "a".repeat(MAX_PROBE_PATH))] {
            assert!(matches!(bad.parse::<ProbePath>(), Err(HealthError::Path { .. })), "{bad:?}");
        }
        assert_eq!(
            HealthSpec { panic_percent: 101, ..Default::default() }.validate(),
            Err(HealthError::Panic { found: 101 })
        );
    }
}
