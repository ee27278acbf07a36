//! Where a cell's processes run: one [`Placement`] each for this machine's
//! loopback ([`Local`], `mode = real`), the emulated lab's namespaces
//! ([`Netns`], `mode = real-lab`) and lab machines over SSH ([`Ssh`],
//! `mode = real-ssh`). The cell runner ([`crate::cell`]) and the sweep call
//! the trait; nothing else matches on the engine.
//!
//! The three differ only in how a command reaches a host
//! ([`crate::process::Runner`]), what a cell needs set up on the hosts first
//! (the lab's front end, a lab PC's addresses and forwarding), whether a
//! kernel front end needs a director, and where the NIC counters are read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use dl7_core::{Arch, ClientMode};

use crate::cell::RealCell;
use crate::director::Reroute;
use crate::lab::{LabConfig, LabError, LabPlan, NicCounters, Role};
use crate::process::{Host, Runner};
use crate::ssh::hosts::{SshHosts, SshLab};
use crate::TestbedError;

/// A cell's front end.
#[derive(Debug, Clone)]
pub enum FrontEnd {
    /// dl7's front end process on this host.
    Dl7(Host),
    /// The lab's kernel direct routing, reached at the VIP.
    Kernel(SocketAddr),
}

/// Where each role of a cell runs and how it is reached.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The origin's host.
    pub origin: Host,
    /// Every node the cell will have (its servers, then those its faults join).
    pub nodes: Vec<Host>,
    /// The clients' entry point.
    pub front: FrontEnd,
    /// One per client host.
    pub loads: Vec<Host>,
}

/// A way of placing a cell's processes on hosts.
pub trait Placement: Send + Sync {
    /// The row's `mode`.
    fn mode(&self) -> &'static str;

    /// Where each role of `cell` runs.
    fn layout(&self, cell: &RealCell) -> Result<Layout, TestbedError>;

    /// Readies the hosts for `cell` before its services start; `nodes` is
    /// every node it will have, the ones its faults join included.
    fn prepare(&self, _cell: &RealCell, _nodes: usize) -> Result<(), TestbedError> {
        Ok(())
    }

    /// Undoes [`Placement::prepare`]; called whatever happened to the cell.
    fn finish(&self) -> Result<(), TestbedError> {
        Ok(())
    }

    /// How a director changes a kernel front end's forwarding (`None`: no
    /// kernel front end here).
    fn director(&self) -> Option<Reroute> {
        None
    }

    /// Every host's NIC counters, now (it may block on commands).
    fn counters(&self) -> Result<Vec<(String, NicCounters)>, TestbedError> {
        Ok(Vec::new())
    }

    /// The lab's hosts, roles and links, for the NIC figures (`None` on loopback).
    fn lab(&self) -> Option<&LabPlan> {
        None
    }

    /// The distributed front end hands client sockets to the nodes over Unix
    /// sockets: every process on one host.
    fn local_handoff(&self) -> bool {
        false
    }

    /// The end of a sweep: connections closed, what the sweep brought up
    /// taken down. Returns what went wrong, one error each.
    fn close(&self) -> Vec<TestbedError> {
        Vec::new()
    }
}

/// Everything on 127.0.0.1, ephemeral ports; the distributed front end
/// hands sockets to the nodes over Unix sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

/// The loopback placement, as the cell runner takes it.
pub fn local() -> Arc<dyn Placement> {
    Arc::new(Local)
}

impl Placement for Local {
    fn mode(&self) -> &'static str {
        "real"
    }

    fn layout(&self, cell: &RealCell) -> Result<Layout, TestbedError> {
        Ok(Layout {
            origin: Host::default(),
            nodes: vec![Host::default(); cell.node_count()],
            front: FrontEnd::Dl7(Host::default()),
            loads: vec![Host::default()],
        })
    }

    fn local_handoff(&self) -> bool {
        true
    }
}

/// The layout on a lab's hosts, each reached through `runner`: the origin,
/// nodes and loads in their hosts; a conventional cell runs dl7's front end
/// on the VIP, a distributed one uses the lab's kernel direct routing.
fn lab_layout(
    plan: &LabPlan,
    cell: &RealCell,
    runner: &dyn Fn(&crate::lab::Host) -> Runner,
) -> Result<Layout, TestbedError> {
    let n = cell.node_count();
    let at = |h: &crate::lab::Host, bind: Option<IpAddr>| Host {
        run: runner(h),
        addr: IpAddr::V4(h.addr),
        bind,
        port: Some(plan.port),
    };
    let nodes: Vec<Host> =
        plan.hosts_of(Role::Node).take(n).map(|h| at(h, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))).collect();
    if nodes.len() < n {
        return Err(TestbedError::LabTooSmall { nodes: nodes.len(), needed: n, joins: n > cell.servers as usize });
    }
    let mut loads: Vec<Host> =
        plan.hosts_of(Role::Client).map(|h| Host { run: runner(h), ..Host::default() }).collect();
    if loads.is_empty() {
        return Err(TestbedError::NoClientHost);
    }
    if matches!(cell.clients, ClientMode::Replay { .. }) {
        // A replay keeps the trace's order: one client.
        loads.truncate(1);
    }
    let front = match cell.arch {
        // dl7's L7 box on the VIP in the front end's namespace.
        Arch::Conventional => FrontEnd::Dl7(Host {
            run: runner(plan.front()),
            addr: IpAddr::V4(plan.vip),
            bind: None,
            port: Some(plan.port),
        }),
        Arch::Distributed => FrontEnd::Kernel(SocketAddr::new(IpAddr::V4(plan.vip), plan.port)),
    };
    Ok(Layout { origin: at(plan.origin(), None), nodes, front, loads })
}

/// The emulated lab: the roles in their namespaces (`ip netns exec`); the
/// lab's front end is switched per cell. A lab that is not there is brought
/// up when the placement opens, and taken down again when it closes.
pub struct Netns {
    plan: LabPlan,
    brought_up: bool,
}

impl Netns {
    /// The lab of `lab`, up (brought up when nothing of it exists, saying so
    /// through `log`). A half-made lab, or one brought up with `--sshd`, is refused.
    pub fn open(lab: &LabConfig, log: &mut dyn FnMut(&str)) -> Result<Netns, TestbedError> {
        let plan = LabPlan::new(lab);
        crate::netns::require_root("sweep --engine lab")?;
        let status =
            crate::netns::status(&plan).map_err(|source| TestbedError::LabAction { action: "lab status", source })?;
        if crate::lab::state_dir(&plan.prefix).join("ssh_config").exists() {
            return Err(TestbedError::LabHasSshd { prefix: plan.prefix });
        }
        let brought_up = match status.state() {
            "up" => false,
            "absent" => {
                log(&format!("lab {} is not up: bringing it up", plan.prefix));
                crate::netns::up(&plan, false, &mut |l| {
                    if l.starts_with('#') {
                        log(l)
                    }
                })
                .map_err(|source| TestbedError::LabAction { action: "lab up", source })?;
                true
            }
            other => return Err(TestbedError::LabState { prefix: plan.prefix, state: other.to_string() }),
        };
        Ok(Netns { plan, brought_up })
    }

    /// A placement on a lab that is up, left up at the end.
    pub fn on(plan: LabPlan) -> Netns {
        Netns { plan, brought_up: false }
    }
}

impl Placement for Netns {
    fn mode(&self) -> &'static str {
        "real-lab"
    }

    fn layout(&self, cell: &RealCell) -> Result<Layout, TestbedError> {
        lab_layout(&self.plan, cell, &|h| Runner::Netns(h.netns.clone()))
    }

    /// Points the lab's front end at the cell's architecture: kernel direct
    /// routing over the first `nodes`, or nothing (dl7's L7 front end then
    /// takes the VIP's traffic).
    fn prepare(&self, cell: &RealCell, nodes: usize) -> Result<(), TestbedError> {
        let active = (cell.arch == Arch::Distributed).then_some(nodes);
        crate::netns::set_architecture(&self.plan, cell.arch, active, &mut |_| {})
            .map_err(|source| TestbedError::LabAction { action: "lab front end", source })
    }

    fn director(&self) -> Option<Reroute> {
        Some(crate::director::lab_map(self.plan.clone()))
    }

    fn counters(&self) -> Result<Vec<(String, NicCounters)>, TestbedError> {
        crate::netns::read_counters(&self.plan)
            .map_err(|source| TestbedError::LabAction { action: "lab counters", source })
    }

    fn lab(&self) -> Option<&LabPlan> {
        Some(&self.plan)
    }

    fn close(&self) -> Vec<TestbedError> {
        if !self.brought_up {
            return Vec::new();
        }
        eprintln!("taking down the lab {} this sweep brought up", self.plan.prefix);
        match crate::netns::down(&self.plan, &mut |_| {}) {
            Ok(()) => Vec::new(),
            Err(source) => vec![TestbedError::LabAction { action: "lab down", source }],
        }
    }
}

/// The hosts of a lab file over SSH: placed as in the lab, each cell's
/// per-host setup applied before it and undone after it.
pub struct Ssh {
    hosts: Arc<SshHosts>,
    lab: Mutex<SshLab>,
    log: fn(&str),
}

impl Ssh {
    /// Connects to every host of `lab` (each must run `version`), logging through `log`.
    pub fn open(lab: &LabConfig, version: &str, log: fn(&str)) -> Result<Ssh, TestbedError> {
        if crate::netns::find_program("ssh").is_none() {
            return Err(LabError::MissingTool { program: "ssh".into(), package: "openssh-client".into() }.into());
        }
        let lab = SshLab::open(lab, version, &mut |l| log(l))?;
        Ok(Ssh { hosts: Arc::clone(&lab.hosts), lab: Mutex::new(lab), log })
    }

    fn lab(&self) -> std::sync::MutexGuard<'_, SshLab> {
        // A panic while holding it ends the sweep anyway: the state is still the hosts'.
        self.lab.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Placement for Ssh {
    fn mode(&self) -> &'static str {
        "real-ssh"
    }

    fn layout(&self, cell: &RealCell) -> Result<Layout, TestbedError> {
        let hosts = &self.hosts;
        let runner = |h: &crate::lab::Host| match hosts.remote(&h.short) {
            Some(r) => Runner::Ssh(Arc::clone(r)),
            None => Runner::Here,
        };
        if let Some(h) = hosts.plan.hosts.iter().find(|h| hosts.remote(&h.short).is_none()) {
            return Err(TestbedError::NotConnected { host: h.short.clone() });
        }
        lab_layout(&hosts.plan, cell, &runner)
    }

    fn prepare(&self, cell: &RealCell, nodes: usize) -> Result<(), TestbedError> {
        let log = self.log;
        self.lab().setup_cell(cell.arch, nodes, &mut |l| log(l))
    }

    fn finish(&self) -> Result<(), TestbedError> {
        let log = self.log;
        self.lab().teardown_cell(&mut |l| log(l))
    }

    fn director(&self) -> Option<Reroute> {
        Some(self.hosts.front_reroute())
    }

    fn counters(&self) -> Result<Vec<(String, NicCounters)>, TestbedError> {
        self.hosts.read_counters()
    }

    fn lab(&self) -> Option<&LabPlan> {
        Some(&self.hosts.plan)
    }

    fn close(&self) -> Vec<TestbedError> {
        let log = self.log;
        self.lab().close(&mut |l| log(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl7_core::{Fault, FaultAction, PolicyKind, PolicySpec};

    fn cell(servers: u32, faults: Vec<Fault>) -> RealCell {
        RealCell {
            workload: "surge100".into(),
            workload_source: "surge100".into(),
            arch: Arch::Distributed,
            policy: PolicySpec::new(PolicyKind::Md5),
            hash_key: dl7_core::HashKey::Url,
            servers,
            seed: 1,
            clients: ClientMode::Closed { per_server: 1 },
            warmup_s: 0.0,
            measure_s: 1.0,
            interval_s: 1.0,
            cache_bytes: 1 << 20,
            eviction: dl7_core::eviction::Eviction::Lru,
            max_object_bytes: 1 << 20,
            settings: crate::cell::RealSettings::default(),
            emulate_cpu: None,
            faults,
        }
    }

    #[test]
    fn a_lab_too_small_for_the_cell_says_by_how_much() {
        let lab = LabConfig::parse("subnet = \"198.18.0.0/24\"\nnodes = 2\n", "lab.toml").unwrap();
        let lab = Netns::on(LabPlan::new(&lab));
        assert!(lab.layout(&cell(2, Vec::new())).is_ok());
        let err = lab.layout(&cell(3, Vec::new())).unwrap_err();
        assert!(matches!(err, TestbedError::LabTooSmall { nodes: 2, needed: 3, joins: false }), "{err:?}");
        assert_eq!(err.to_string(), "the lab has 2 nodes, the cell needs 3");
        let join = Fault { at_s: 1.0, action: FaultAction::Join, node: 2 };
        let err = lab.layout(&cell(2, vec![join])).unwrap_err();
        assert!(matches!(err, TestbedError::LabTooSmall { nodes: 2, needed: 3, joins: true }), "{err:?}");
    }
}
