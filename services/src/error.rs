//! The typed errors of dl7-services' library code: each variant carries the
//! field, address or file it is about, and its message is the one line a
//! user reads (the CLI prints it as is).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dl7_core::{ClientError, PolicyError};
use dl7_traces::TraceError;

use crate::http::FetchError;

/// A spec value that is wrong ([`crate::spec::validate`]): each names its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// `worker_threads = 0`.
    #[error("worker_threads 0: expected at least 1 thread")]
    WorkerThreads,
    /// A node's `id` is not an index into `nodes`.
    #[error("id {id}: expected an index below the {count} addresses of nodes")]
    NodeId { id: u32, count: usize },
    /// `nodes` cannot make a membership.
    #[error("nodes: {0}")]
    Nodes(#[source] PolicyError),
    /// `policy` cannot be built over `nodes`.
    #[error("policy: {0}")]
    Policy(#[source] PolicyError),
    /// `members` is empty.
    #[error("members: expected at least one node index")]
    MembersEmpty,
    /// `members` names a node that is not among `count`.
    #[error("members: {index} is not a node index (expected below {count})")]
    MemberOutOfRange { index: usize, count: usize },
    /// `members` names a node twice.
    #[error("members: {index} is listed twice")]
    MemberTwice { index: usize },
    /// A health-check field.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// `handoff`: distributed mode needs a socket per node.
    #[error("handoff: distributed mode needs one unix socket per node ({nodes} nodes, {sockets} sockets)")]
    Handoff { nodes: usize, sockets: usize },
    /// `warmup_s` or `duration_s` is negative or not a number.
    #[error("{field} {value}: expected a non-negative number of seconds")]
    Seconds { field: &'static str, value: f64 },
    /// `interval_s` is below 1 ms.
    #[error("interval_s {value}: expected seconds >= 0.001")]
    Interval { value: f64 },
    /// `speed` without `replay`.
    #[error("speed: a timed replay needs a trace (replay)")]
    SpeedWithoutReplay,
    /// `speed` or `max_outstanding` out of the core's range.
    #[error("{field}: {0}", field = .0.field())]
    Pace(#[source] ClientError),
}

impl SpecError {
    /// The spec field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            SpecError::WorkerThreads => "worker_threads",
            SpecError::NodeId { .. } => "id",
            SpecError::Nodes(_) => "nodes",
            SpecError::Policy(_) => "policy",
            SpecError::MembersEmpty | SpecError::MemberOutOfRange { .. } | SpecError::MemberTwice { .. } => "members",
            SpecError::Health(_) => "health",
            SpecError::Handoff { .. } => "handoff",
            SpecError::Seconds { field, .. } => field,
            SpecError::Interval { .. } => "interval_s",
            SpecError::SpeedWithoutReplay => "speed",
            SpecError::Pace(e) => e.field(),
        }
    }
}

/// A config file that cannot be written or read ([`crate::spec::ServiceSpec::read`]).
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    /// The file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not a config's JSON (at `line`:`column`).
    #[error("{}:{line}:{column}: {source}", path.display())]
    Json { path: PathBuf, line: usize, column: usize, source: serde_json::Error },
    /// The file is another version's config.
    #[error("{}: config version {found}, this dl7 reads version {expected}", path.display())]
    Version { path: PathBuf, found: u32, expected: u32 },
    /// The file is another role's config.
    #[error("{}: a {found} config, not a {expected} one (run `dl7 {found} --config {}`)", path.display(), path.display())]
    Role { path: PathBuf, found: &'static str, expected: String },
}

/// An admin token that cannot be sent as `Authorization: Bearer TOKEN`
/// ([`crate::spec::AdminToken`]); whoever read it adds where from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// Nothing (or only `=`).
    #[error("an admin token is empty")]
    Empty,
    /// A byte RFC 6750's `b64token` does not allow.
    #[error("an admin token holds letters, digits and -._~+/ only, then any = (RFC 6750's b64token)")]
    Character,
}

/// A name that is not a front-end mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown front mode {name:?}; expected conventional, distributed or relay")]
pub struct UnknownFrontMode {
    /// The name given.
    pub name: String,
}

/// A membership change refused (`PUT /_dl7/members`): answered 400 with this text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MembersError {
    /// The query has no `nodes=`.
    #[error("{}: expected ?nodes=I,J,.. (node indices), got {query:?}", crate::admin::MEMBERS_PATH)]
    NoNodes { query: String },
    /// A part of `nodes=` is not a number.
    #[error("nodes: {part:?} is not a node index")]
    NotAnIndex { part: String },
    /// A node listed twice.
    #[error("nodes: {index} is listed twice")]
    Twice { index: usize },
    /// No node at all.
    #[error("nodes: expected at least one node")]
    Empty,
    /// A node the front end does not know.
    #[error("nodes: {index} is not a node index (the front end knows {count})")]
    OutOfRange { index: usize, count: usize },
    /// The policy cannot be rebuilt over the new members.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// What went wrong in an [`ExchangeError`].
#[derive(Debug, thiserror::Error)]
pub enum ExchangeFailure {
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection or the response failed.
    #[error("{0}")]
    Fetch(#[source] FetchError),
    /// A status other than 200.
    #[error("status {0}")]
    Status(u16),
    /// A status other than 200, with the body the service answered.
    #[error("status {status}: {body}")]
    Refused { status: u16, body: String },
    /// The body is not the expected JSON.
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    /// The body is another version's.
    #[error("version {found}, expected {expected}")]
    Version { found: u32, expected: u32 },
}

/// An exchange of the admin client ([`crate::admin::fetch_stats`],
/// [`crate::admin::put_members`]) with the service at `addr`: its message
/// is `WHAT ADDR: DETAIL` (`stats 127.0.0.1:4000: timed out after 10s`).
#[derive(Debug, thiserror::Error)]
#[error("{what} {addr}: {failure}")]
pub struct ExchangeError {
    /// The service's address.
    pub addr: SocketAddr,
    /// What was asked: `stats` or `members`.
    pub what: &'static str,
    /// What went wrong.
    pub failure: ExchangeFailure,
}

/// A load run that cannot run ([`crate::load::run`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `connections = 0`.
    #[error("load: connections must be at least 1")]
    NoConnections,
    /// The catalog is empty.
    #[error("load: the catalog has no objects")]
    EmptyCatalog,
    /// `rate` is not a positive number.
    #[error("load: rate must be a positive number of requests/s, got {rate}")]
    Rate { rate: f64 },
    /// The request list names an object outside the catalog.
    #[error("load: request list names object {object} but the catalog has {count}")]
    UnknownObject { object: u32, count: usize },
    /// The catalog cannot make a request stream.
    #[error("load: {0}")]
    Stream(#[source] TraceError),
    /// A timed replay with as many times as requests.
    #[error("load: {times} request times for {requests} requests")]
    Times { times: usize, requests: usize },
    /// `max_outstanding = 0`.
    #[error("load: max_outstanding must be at least 1")]
    MaxOutstanding,
    /// The request times cannot be scheduled.
    #[error("load: timed replay: {0}")]
    Schedule(dl7_traces::ScheduleError),
    /// A connection task panicked or was cancelled.
    #[error("load: connection task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// A health setting that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// `interval_ms` is 0.
    #[error("health interval_ms: expected at least 1 millisecond, found 0")]
    Interval,
    /// `rise` or `fall` is 0.
    #[error("health {field}: expected at least 1 probe, found 0")]
    Probes {
        /// `rise` or `fall`.
        field: &'static str,
    },
    /// An unknown check name.
    #[error("health check {found:?}: expected tcp, http or none")]
    Check {
        /// What was given.
        found: String,
    },
    /// A probe path that cannot be sent.
    #[error("health path {path:?}: {reason}")]
    Path {
        /// What was given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An expected-status list that cannot be read.
    #[error("health expect {found:?}: {reason}")]
    Expect {
        /// What was given.
        found: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A panic threshold above 100 percent.
    #[error("health panic_percent {found}: expected a percentage from 0 to 100")]
    Panic {
        /// What was given.
        found: u8,
    },
}
