//! # Emulated lab on one Linux machine, and lab-PC deployment
//!
//! Gives dl7 a lab with real NICs' limits: a bridge in the root namespace is
//! the switch, every host (front end, origin, nodes, clients) is a network
//! namespace with a shaped full-duplex veth link (`eth0` inside), and the front
//! end forwards the virtual IP's traffic to the nodes by kernel direct routing
//! (an nftables netdev `fwd` rule: one map, a fixed jhash seed), so the nodes
//! answer clients directly. For real lab PCs, [`deploy`] writes the per-machine
//! commands (IPVS direct routing with round robin, VIP and ARP sysctls).
//!
//! Split so that everything but running commands is pure and testable:
//! * [`config`]: the strict `LAB.toml` reader;
//! * [`plan`]: names, addresses, the ordered `up`/`down` commands;
//! * [`exec`]: runs a plan (root), lists what exists, reads NIC counters;
//! * [`hostplan`]: the per-host setup and teardown of lab PCs, one plan for
//!   `dl7 deploy` and the SSH engine;
//! * [`deploy`]: per-machine shell text for lab PCs;
//! * [`sshd`]: an OpenSSH server per host namespace (`lab up --sshd`), so
//!   the SSH engine can run against the emulated lab;
//! * [`director`]: health-checks the nodes behind the emulated lab's kernel
//!   front end and takes a dead one out of its map while a cell runs.
//!
//! ## Running the dl7 services in the lab
//! Start each role inside its host's namespace with [`exec::command_in`]
//! (`ip netns exec NS dl7 ...`), bound as follows (addresses from the
//! [`LabPlan`]; `PORT` is the lab's port):
//!
//! | role | namespace | listens on | talks to |
//! |---|---|---|---|
//! | origin | `PREFIX-origin` | `ORIGIN:PORT` | - |
//! | node i | `PREFIX-ni` | `0.0.0.0:PORT` (the VIP for direct-routed clients, its own address for peers) | peers `NODE:PORT`, origin |
//! | front end, conventional | `PREFIX-fe` | `VIP:PORT` | nodes `NODE:PORT` |
//! | front end, distributed | `PREFIX-fe` | nothing: the nftables rule forwards | - |
//! | load, client j | `PREFIX-cj` | - | `VIP:PORT` |
//!
//! Switch the architecture with [`exec::set_architecture`] (conventional
//! removes the direct-routing rule so the VIP reaches the front end's
//! balancer); read per-host NIC bytes with [`read_counters`] before and after a
//! run. On 10 Mbit/s links a response can take seconds: upstream timeouts
//! must allow for it.
//!
//! This module must not start dl7 services or know their protocols (the
//! director only probes them, through [`dl7_services::health`]); it builds the
//! network they run in and says where each host is. Names of every
//! object carry the lab's prefix so that two labs or a leftover never collide
//! with anything else on the machine.

pub mod config;
pub mod plan;

use std::path::PathBuf;

pub use config::LabConfig;
pub use plan::{Host, LabPlan, Role, Step};

/// Kernel byte and packet counters of one host's NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NicCounters {
    /// Bytes the host transmitted.
    pub tx_bytes: u64,
    /// Bytes the host received.
    pub rx_bytes: u64,
    /// Packets the host transmitted.
    pub tx_packets: u64,
    /// Packets the host received.
    pub rx_packets: u64,
}

/// The state directory of an emulated lab (`dl7 lab up --sshd`): keys, configs, pid files.
pub fn state_dir(prefix: &str) -> PathBuf {
    PathBuf::from("/run/dl7").join(prefix)
}

/// Everything that can go wrong reading, planning or running a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lab file is not valid TOML or has an unknown key.
    #[error("{file}: {message}")]
    Toml {
        /// The lab file.
        file: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value in the lab file is out of range or inconsistent.
    #[error("{file}: {key}: {message}")]
    Config {
        /// The lab file.
        file: String,
        /// The offending key.
        key: String,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The action needs root.
    #[error(
        "`dl7 lab {action}` must run as root: it creates and inspects network namespaces, links and nftables rules"
    )]
    NotRoot {
        /// up, down or status.
        action: String,
    },
    /// A needed command is not installed.
    #[error("`{program}` not found in PATH: install the Debian package `{package}`")]
    MissingTool {
        /// The program.
        program: String,
        /// The package that provides it.
        package: String,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status or what went wrong starting it.
        status: String,
        /// Its standard error, on one line.
        stderr: String,
    },
    /// `up` found objects of the lab already there.
    #[error("lab `{prefix}` is already (partly) there: {found}; run `dl7 lab down LAB.toml` first, or `dl7 lab up --clean LAB.toml`")]
    AlreadyThere {
        /// The prefix.
        prefix: String,
        /// What was found.
        found: String,
    },
    /// `--nodes` asks for more nodes than the lab has (or none).
    #[error("--nodes {asked}: expected 1 to {nodes}, the lab's node count")]
    BadNodeCount {
        /// What was asked.
        asked: usize,
        /// The lab's nodes.
        nodes: usize,
    },
    /// The lab is not up.
    #[error("lab `{prefix}` is not up ({missing} is missing): run `dl7 lab up LAB.toml` first")]
    NotUp {
        /// The prefix.
        prefix: String,
        /// The first missing object.
        missing: String,
    },
    /// `down` ran but something with the prefix is still there.
    #[error("lab `{prefix}`: still there after down: {left}")]
    NotRemoved {
        /// The prefix.
        prefix: String,
        /// What is left.
        left: String,
    },
}
