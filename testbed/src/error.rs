//! The one error type of dl7-testbed: what went wrong running a cell, with
//! the host, the service, the address, the file or the fault it is about,
//! so that a caller can match on it and the sweep can print it on one line.
//!
//! Lab files, plans and the emulated lab's commands keep their own
//! [`LabError`]; it is wrapped here when a cell or a placement meets it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use dl7_core::fault::FaultError;
use dl7_core::Fault;
use dl7_traces::TraceError;

use crate::lab::LabError;

/// Everything that can go wrong placing, starting, running and stopping a cell.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The external origin (`[real] origin`) cannot be reached.
    #[error("origin {origin}: {why} (is the web server running?)")]
    ExternalOrigin {
        /// Its URL.
        origin: String,
        /// What failed: the name, or the connection.
        why: String,
    },
    /// Reading, planning or running the emulated lab.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A lab action of a placement or of the director failed.
    #[error("{action}: {source}")]
    LabAction {
        /// What was being done: `lab up`, `lab status`, `lab front end`, ...
        action: &'static str,
        /// Why it failed.
        #[source]
        source: LabError,
    },
    /// The emulated lab is partly there, or in a state the lab engine cannot use.
    #[error("lab {prefix} is {state}: run `dl7 lab down` on its file, then sweep again")]
    LabState {
        /// The lab's prefix.
        prefix: String,
        /// What `lab status` says it is.
        state: String,
    },
    /// The emulated lab was brought up for the SSH engine (`lab up --sshd`).
    #[error(
        "lab {prefix} was brought up with --sshd: bare hosts for `engine = \"ssh\"`; run `dl7 lab down` on its file to use the lab engine"
    )]
    LabHasSshd {
        /// The lab's prefix.
        prefix: String,
    },
    /// The lab has fewer nodes than the cell needs.
    #[error(
        "the lab has {nodes} nodes, the cell needs {needed}{}",
        if *.joins { " (its servers and the nodes its faults join)" } else { "" }
    )]
    LabTooSmall {
        /// The lab's nodes.
        nodes: usize,
        /// The cell's nodes.
        needed: usize,
        /// Whether the cell's faults join nodes beyond its servers.
        joins: bool,
    },
    /// The lab has no client host to run the load on.
    #[error("the lab has no client host")]
    NoClientHost,
    /// One step on one SSH host failed.
    #[error("host {host}: {step}: {message}")]
    Host {
        /// Short host name (`fe`, `n1`).
        host: String,
        /// The step (`connect`, `setup`, `read counters`, ...).
        step: String,
        /// What went wrong.
        message: String,
    },
    /// The master connection to an SSH host has ended.
    #[error("the SSH connection to {dest} is gone ({status}): {log}")]
    Disconnected {
        /// Short host name.
        host: String,
        /// `[user@]host`.
        dest: String,
        /// The master's exit status.
        status: String,
        /// The master's log, on one line.
        log: String,
    },
    /// A host of the lab has no connection.
    #[error("{host}: not connected")]
    NotConnected {
        /// Short host name.
        host: String,
    },
    /// A service process could not be started.
    #[error("{service}: cannot start: {source}")]
    Start {
        /// The service (`origin`, `node1`, `load-c2`).
        service: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A service process exited, did not say it was ready, or printed
    /// something unreadable.
    #[error("{service}: {message}")]
    Service {
        /// The service, with its host when that is another machine (`node1 on host n2`).
        service: String,
        /// What went wrong.
        message: String,
    },
    /// An HTTP exchange with a running service (`/stats`, owner lookups,
    /// `PUT` of the members, a page). The message is the whole line, and
    /// starts with what was asked and the address (as dl7-services' admin
    /// client writes it: `stats 127.0.0.1:4000: timed out after 10s`).
    #[error("{message}")]
    Exchange {
        /// The service's address.
        addr: SocketAddr,
        /// What was asked: `stats`, `members`, `owners`, a page's path.
        what: String,
        /// The whole message.
        message: String,
    },
    /// A file or directory could not be read, written or made.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No port could be reserved for a node.
    #[error("cannot reserve a port on {addr}: {source}")]
    Port {
        /// The node's address.
        addr: IpAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A workload or trace could not be read.
    #[error(transparent)]
    Workload(#[from] TraceError),
    /// A trace's request times cannot be replayed at the asked speed.
    #[error("{trace}: {source}")]
    Schedule {
        /// The trace (a built-in name or a path).
        trace: String,
        /// Why.
        #[source]
        source: dl7_traces::ScheduleError,
    },
    /// A fault of the schedule cannot happen when it says.
    #[error("fault {} node {}: {source}", .fault.action.name(), .fault.node)]
    Fault {
        /// The fault.
        fault: Fault,
        /// Why it cannot happen.
        #[source]
        source: FaultError,
    },
    /// A thread of the testbed panicked.
    #[error("{what} panicked")]
    Panicked {
        /// What it was doing (`a counter read`, `a setup`).
        what: &'static str,
    },
    /// A blocking task (a command, a counter read) panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// Several things failed at once (one per host, say).
    #[error("{}", join(.0))]
    Several(Vec<TestbedError>),
    /// A cell's setup failed; what was applied was undone, or undoing it failed too.
    #[error("{error}{}", undone(.undo))]
    SetupUndone {
        /// Why the setup failed.
        error: Box<TestbedError>,
        /// Why undoing it failed, if it did.
        undo: Option<Box<TestbedError>>,
    },
}

impl TestbedError {
    /// `Ok` when `errors` is empty, else the one error or all of them ([`TestbedError::Several`]).
    pub fn all(mut errors: Vec<TestbedError>) -> Result<(), TestbedError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.pop().expect("one error")),
            _ => Err(TestbedError::Several(errors)),
        }
    }

    /// An exchange of the testbed's own with the service at `addr`:
    /// `WHAT ADDR: DETAIL`.
    pub fn exchange(addr: SocketAddr, what: &str, detail: impl std::fmt::Display) -> TestbedError {
        TestbedError::Exchange { addr, what: what.into(), message: format!("{what} {addr}: {detail}") }
    }

    /// An error of dl7-services' admin client (its message already names
    /// what was asked and `addr`).
    pub fn admin(e: dl7_services::error::ExchangeError) -> TestbedError {
        TestbedError::Exchange { addr: e.addr, what: e.what.into(), message: e.to_string() }
    }
}

fn join(errors: &[TestbedError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn undone(undo: &Option<Box<TestbedError>>) -> String {
    match undo {
        None => " (setup undone)".into(),
        Some(u) => format!("; undoing it: {u}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_they_are_about() {
        let host = |h: &str| TestbedError::Host { host: h.into(), step: "setup".into(), message: "failed".into() };
        assert_eq!(host("n1").to_string(), "host n1: setup: failed");
        assert!(TestbedError::all(Vec::new()).is_ok());
        let one = TestbedError::all(vec![host("n1")]).unwrap_err();
        assert!(matches!(one, TestbedError::Host { ref host, .. } if host == "n1"), "{one:?}");
        let two = TestbedError::all(vec![host("n1"), host("n2")]).unwrap_err();
        assert_eq!(two.to_string(), "host n1: setup: failed; host n2: setup: failed");
        let undone = TestbedError::SetupUndone { error: Box::new(host("n1")), undo: None };
        assert_eq!(undone.to_string(), "host n1: setup: failed (setup undone)");
        let not = TestbedError::SetupUndone { error: Box::new(host("n1")), undo: Some(Box::new(host("fe"))) };
        assert_eq!(not.to_string(), "host n1: setup: failed; undoing it: host fe: setup: failed");
        let small = TestbedError::LabTooSmall { nodes: 2, needed: 3, joins: true };
        assert_eq!(
            small.to_string(),
            "the lab has 2 nodes, the cell needs 3 (its servers and the nodes its faults join)"
        );
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(TestbedError::exchange(addr, "owners", "closed").to_string(), "owners 127.0.0.1:4000: closed");
        let fault = Fault { at_s: 1.0, action: dl7_core::FaultAction::Kill, node: 3 };
        let e = TestbedError::Fault { fault, source: FaultError::NotRunning { node: 3 } };
        assert_eq!(e.to_string(), "fault kill node 3: node 3 is not running");
    }
}
