//! The node process table of a cell: every node it will ever have, the ones
//! not running included, and what a fault does to each:
//!
//! * `kill`: SIGKILL (on a lab PC, `kill -9` over SSH); the node stays a
//!   member, the dispatchers' health checks (and the lab's director, for a
//!   kernel front end) route around it.
//! * `restart`: the node's process again, empty cache, with the membership
//!   of the moment.
//! * `leave`: the node leaves every dispatcher's and the front end's
//!   membership first (`PUT /_dl7/members` on their admin listeners; each
//!   rebuilds its policy and swaps it in), then gets SIGTERM and drains.
//! * `join`: the new node starts with the new membership, then every other
//!   dispatcher and the front end take it.
//!
//! A node's counters survive its restarts: the last `/stats` of each
//! incarnation (read just before it stops) is added to the next one's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dl7_core::fault::Timeline;
use dl7_core::{Fault, FaultAction};

use dl7_services::admin::{fetch_stats, put_members, AdminToken};
use dl7_services::metrics::{Metrics, Stats};
use dl7_services::spec::{NodeSpec, ServiceSpec};

use crate::process::{start_service, Host, Proc};
use crate::TestbedError;

/// How long a membership change, a stats read or a start may take.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Every node of a cell, the ones not running included.
pub(crate) struct NodeSet {
    pub(crate) procs: Vec<Option<Proc>>,
    specs: Vec<NodeSpec>,
    hosts: Vec<Host>,
    /// Where each node serves (clients, peers, `/stats`).
    pub(crate) addrs: Vec<SocketAddr>,
    /// Each running node's admin listener (membership changes).
    admins: Vec<Option<SocketAddr>>,
    /// The counters of each node's finished incarnations, summed.
    retired: Vec<Option<Stats>>,
    /// Their CPU seconds, summed.
    retired_cpu: Vec<f64>,
    timeline: Timeline,
    /// The members of the moment, for whoever routes without an admin
    /// listener (the lab's director in front of the kernel front end).
    members: tokio::sync::watch::Sender<Vec<usize>>,
    /// The token membership changes carry (the services' `admin_token`).
    admin_token: Option<AdminToken>,
}

impl NodeSet {
    /// Nodes `addrs` (all a schedule will ever have) whose first `servers`
    /// are started, from `specs`, on `hosts`; membership changes carry `admin_token`.
    pub(crate) fn new(
        specs: Vec<NodeSpec>,
        hosts: Vec<Host>,
        addrs: Vec<SocketAddr>,
        servers: u32,
        admin_token: Option<AdminToken>,
    ) -> NodeSet {
        let n = addrs.len();
        NodeSet {
            procs: (0..n).map(|_| None).collect(),
            specs,
            hosts,
            addrs,
            admins: vec![None; n],
            retired: vec![None; n],
            retired_cpu: vec![0.0; n],
            timeline: Timeline::new(servers),
            members: tokio::sync::watch::channel((0..servers as usize).collect()).0,
            admin_token,
        }
    }

    /// The members of the moment, changing as the schedule runs.
    pub(crate) fn members(&self) -> tokio::sync::watch::Receiver<Vec<usize>> {
        self.members.subscribe()
    }

    /// Starts node `i` (its config with the members of the moment) and waits until it is ready.
    pub(crate) async fn start(&mut self, exe: &Path, dir: &Path, i: usize) -> Result<(), TestbedError> {
        let mut spec = self.specs[i].clone();
        spec.members = Some(self.timeline.members.iter().map(|&m| m as usize).collect());
        let name = format!("node{i}");
        let mut p = start_service(exe, &self.hosts[i], &name, &ServiceSpec::Node(spec), dir).await?;
        let ready = p.ready(STEP_TIMEOUT).await?;
        self.admins[i] = ready.admin.map(|a| SocketAddr::new(self.hosts[i].addr, a.port()));
        self.procs[i] = Some(p);
        Ok(())
    }

    /// Every node's counters, restarts summed; a node never started reads as zeros.
    pub(crate) async fn stats(&self) -> Result<Vec<Stats>, TestbedError> {
        let mut out = Vec::new();
        for (i, &addr) in self.addrs.iter().enumerate() {
            let now = match &self.procs[i] {
                Some(_) => Some(fetch_stats(addr, STEP_TIMEOUT).await.map_err(TestbedError::admin)?),
                None => None,
            };
            let mut total = self.retired[i].clone().unwrap_or_else(|| Metrics::new().stats());
            if let Some(now) = now {
                total.accumulate(&now);
            }
            out.push(total);
        }
        Ok(out)
    }

    /// CPU seconds of every node, restarts summed.
    pub(crate) async fn cpu_seconds(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for (p, retired) in self.procs.iter().zip(&self.retired_cpu) {
            out.push(
                retired
                    + match p {
                        Some(p) => p.cpu_seconds().await.unwrap_or(0.0),
                        None => 0.0,
                    },
            );
        }
        out
    }

    /// Keeps node `i`'s counters (its last `/stats`) and takes its process.
    async fn retire(&mut self, i: usize) -> Option<Proc> {
        let p = self.procs[i].take()?;
        self.retired_cpu[i] += p.cpu_seconds().await.unwrap_or(0.0);
        if let Ok(last) = fetch_stats(self.addrs[i], STEP_TIMEOUT).await {
            match &mut self.retired[i] {
                Some(sum) => sum.accumulate(&last),
                slot => *slot = Some(last),
            }
        }
        self.admins[i] = None;
        Some(p)
    }

    /// Tells every running node, the front end (`front`, its admin listener)
    /// and the watchers of [`NodeSet::members`] the members of the moment.
    async fn announce(&self, front: Option<SocketAddr>) -> Result<(), TestbedError> {
        let members: Vec<usize> = self.timeline.members.iter().map(|&m| m as usize).collect();
        self.members.send_replace(members.clone());
        for a in self.admins.iter().flatten().copied().chain(front) {
            put_members(a, &members, self.admin_token.as_ref(), STEP_TIMEOUT).await.map_err(TestbedError::admin)?;
        }
        Ok(())
    }

    /// Carries out one fault.
    pub(crate) async fn apply(
        &mut self,
        f: &Fault,
        exe: &Path,
        dir: &Path,
        front: Option<SocketAddr>,
    ) -> Result<(), TestbedError> {
        let i = f.node as usize;
        self.timeline.apply(f).map_err(|source| TestbedError::Fault { fault: *f, source })?;
        match f.action {
            FaultAction::Kill => {
                if let Some(p) = self.retire(i).await {
                    // Off the async threads: on a remote host the signal is an SSH round trip.
                    let _ = tokio::task::spawn_blocking(move || {
                        p.signal(rustix::process::Signal::KILL);
                        drop(p)
                    })
                    .await;
                }
            }
            FaultAction::Restart => self.start(exe, dir, i).await?,
            FaultAction::Leave => {
                // Out of every membership first, so nothing new is sent to it; then it drains.
                self.announce(front).await?;
                if let Some(p) = self.retire(i).await {
                    reap(p).await;
                }
            }
            FaultAction::Join => {
                self.start(exe, dir, i).await?;
                self.announce(front).await?;
            }
        }
        Ok(())
    }
}

/// Stops a process (SIGTERM, its drain, then SIGKILL) off the async threads.
async fn reap(p: Proc) {
    let _ = tokio::task::spawn_blocking(move || drop(p)).await;
}

/// The scratch paths of a cell's handoff sockets, one per node ever.
pub(crate) fn handoff_paths(dir: &Path, nodes: usize) -> Vec<PathBuf> {
    (0..nodes).map(|i| dir.join(format!("node{i}.sock"))).collect()
}
