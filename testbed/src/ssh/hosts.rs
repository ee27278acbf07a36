//! A lab of real machines for the SSH engine: every host of a lab file
//! reached over its own master connection ([`SshLab::open`]: connect, check
//! the dl7 version, choose the front end's forwarding), the per-cell setup
//! and its teardown from the plan `dl7 deploy` prints
//! ([`crate::hostplan`]), the hosts' NIC counters, and the end of the
//! sweep ([`SshLab::close`]). Hosts are emulated-lab namespaces or lab PCs:
//! nothing here can tell them apart.

use std::path::PathBuf;
use std::sync::Arc;

use dl7_core::Arch;

use super::{fail, Access, Remote};
use crate::hostplan::{self, Forwarding, HostSetup, IPVS_PROBE};
use crate::lab::{LabConfig, LabPlan, NicCounters, Role};
use crate::TestbedError;

/// Every host of a lab, connected.
pub struct SshHosts {
    /// The lab's plan (addresses, roles, shaping).
    pub plan: LabPlan,
    /// Per host, in plan order: its connection and its lab NIC.
    pub hosts: Vec<(String, Arc<Remote>, String)>,
    /// The dl7 binary on every host.
    pub dl7: String,
    /// The front end's forwarding (what its kernel offers).
    pub forwarding: Forwarding,
}

impl std::fmt::Debug for SshHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dests: Vec<String> = self.hosts.iter().map(|(s, r, _)| format!("{s}={}", r.access.dest)).collect();
        write!(f, "SshHosts({})", dests.join(" "))
    }
}

impl SshHosts {
    /// The connection to host `short`.
    pub fn remote(&self, short: &str) -> Option<&Arc<Remote>> {
        self.hosts.iter().find(|(s, _, _)| s == short).map(|(_, r, _)| r)
    }

    /// The front end's forwarding changed in place over SSH (the director's
    /// [`Reroute`](crate::director::Reroute)): IPVS weights or the nftables map.
    pub fn front_reroute(self: &Arc<Self>) -> crate::director::Reroute {
        let hosts = Arc::clone(self);
        Arc::new(move |routed: Vec<bool>| {
            let fe = hosts.plan.front();
            let (remote, dev) = hosts
                .hosts
                .iter()
                .find(|(s, _, _)| *s == fe.short)
                .map(|(_, r, d)| (r, d))
                .ok_or_else(|| TestbedError::NotConnected { host: fe.short.clone() })?;
            for line in hostplan::front_reroute(&hosts.plan, dev, hosts.forwarding, &routed) {
                remote.run("reroute the front end", &line.sh, line.stdin.as_deref())?;
            }
            Ok(())
        })
    }

    /// Every host's NIC counters, read at (nearly) one instant: all hosts
    /// at once, each over its open counter session.
    pub fn read_counters(&self) -> Result<Vec<(String, NicCounters)>, TestbedError> {
        std::thread::scope(|scope| {
            let reads: Vec<_> =
                self.hosts.iter().map(|(short, remote, _)| (short, scope.spawn(move || remote.sample(&[])))).collect();
            reads
                .into_iter()
                .map(|(short, r)| {
                    let [tx_bytes, rx_bytes, tx_packets, rx_packets] =
                        r.join().unwrap_or(Err(TestbedError::Panicked { what: "a counter read" }))?.nic;
                    Ok((short.clone(), NicCounters { tx_bytes, rx_bytes, tx_packets, rx_packets }))
                })
                .collect()
        })
    }
}

/// The lab for a sweep: connections, forwarding choice and the current cell's setup.
pub struct SshLab {
    /// The connected hosts (shared with the cell runner).
    pub hosts: Arc<SshHosts>,
    /// The setup applied for the current cell, to undo.
    applied: Vec<(String, HostSetup)>,
    control_dir: PathBuf,
}

pub use crate::lab::state_dir;

/// How host `short` is reached: `[hosts.SHORT]`, else `root@` its lab address.
fn access(lab: &LabConfig, plan: &LabPlan, config: &Option<PathBuf>, short: &str) -> Access {
    let h = lab.ssh.hosts.get(short).cloned().unwrap_or_default();
    let addr = plan.hosts.iter().find(|x| x.short == short).map(|x| x.addr.to_string()).unwrap_or_default();
    Access {
        short: short.to_string(),
        dest: h.ssh.unwrap_or_else(|| format!("root@{addr}")),
        port: h.port,
        identity: h.identity,
        config: config.clone(),
        dev: h.dev.unwrap_or_else(|| "eth0".into()),
    }
}

impl SshLab {
    /// Connects to every host (all at once), checks each runs `version`
    /// (`dl7 --version` output), makes a work directory on each and
    /// chooses the front end's forwarding. On any failure, what was opened is
    /// closed again and the error names the host and the step.
    pub fn open(lab: &LabConfig, version: &str, log: &mut dyn FnMut(&str)) -> Result<SshLab, TestbedError> {
        let plan = LabPlan::new(lab);
        let config = match &lab.ssh.config {
            Some(c) => Some(c.clone()),
            None => {
                let emulated = state_dir(&plan.prefix).join("ssh_config");
                emulated.exists().then(|| {
                    log(&format!("ssh: using {} (written by `dl7 lab up --sshd`)", emulated.display()));
                    emulated
                })
            }
        };
        let control_dir = std::env::temp_dir().join(format!("dl7-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&control_dir)
            .map_err(|source| TestbedError::Io { path: control_dir.clone(), source })?;
        let mut threads = Vec::new();
        let mut errors = Vec::new();
        for h in &plan.hosts {
            let a = access(lab, &plan, &config, &h.short);
            let dev = lab.ssh.hosts.get(&h.short).and_then(|x| x.dev.clone()).unwrap_or_else(|| "eth0".into());
            let version = version.to_string();
            let dl7 = lab.ssh.dl7.clone();
            // Masters started from this thread (it outlives the sweep), then awaited in parallel.
            let remote = match Remote::connect(a, &dl7, &control_dir) {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            threads.push(std::thread::spawn(move || -> Result<(String, Arc<Remote>, String), TestbedError> {
                let short = remote.access.short.clone();
                remote.wait_connected()?;
                let got = remote.run("check the dl7 version", &format!("{dl7} --version"), None)?;
                let got = got.trim();
                if got != version {
                    return Err(fail(
                        &short,
                        "check the dl7 version",
                        format!("runs `{got}`, this controller `{version}`: install the same dl7 on every host"),
                    ));
                }
                remote.make_dir()?;
                Ok((short, remote, dev))
            }));
        }
        let mut hosts = Vec::new();
        for t in threads {
            match t.join() {
                Ok(Ok(h)) => hosts.push(h),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(TestbedError::Panicked { what: "a connection thread" }),
            }
        }
        let hosts = Arc::new(SshHosts { plan, hosts, dl7: lab.ssh.dl7.clone(), forwarding: Forwarding::Nft });
        let mut me = SshLab { hosts, applied: Vec::new(), control_dir };
        if let Err(e) = TestbedError::all(errors) {
            me.close(&mut |_| {});
            return Err(e);
        }
        log(&format!("ssh: {} hosts connected, each runs {version}", me.hosts.hosts.len()));
        let fe = me.hosts.plan.front().short.clone();
        let remote = Arc::clone(me.hosts.remote(&fe).expect("every host is connected"));
        let probe = format!(
            "if {IPVS_PROBE}; then echo ipvs; elif command -v nft >/dev/null; then echo nft; else echo none; fi"
        );
        let chosen = match remote.run("probe the kernel's forwarding", &probe, None) {
            Ok(text) => text,
            Err(e) => {
                me.close(&mut |_| {});
                return Err(e);
            }
        };
        let forwarding = match chosen.trim() {
            "ipvs" => Forwarding::Ipvs,
            "nft" => Forwarding::Nft,
            other => {
                me.close(&mut |_| {});
                return Err(fail(
                    &fe,
                    "probe the kernel's forwarding",
                    format!("neither IPVS with ipvsadm nor nft ({other:?}): install ipvsadm or nftables"),
                ));
            }
        };
        Arc::get_mut(&mut me.hosts).expect("not shared before open returns").forwarding = forwarding;
        log(&format!(
            "ssh: front end {fe}: direct routing by {} ({})",
            forwarding.name(),
            match forwarding {
                Forwarding::Ipvs => "the kernel has IPVS",
                Forwarding::Nft => "no IPVS in its kernel",
            }
        ));
        Ok(me)
    }

    /// Checks every host still answers, then applies one cell's setup (nodes
    /// first, the front end last). If a step fails, what was applied is undone.
    pub fn setup_cell(&mut self, arch: Arch, servers: usize, log: &mut dyn FnMut(&str)) -> Result<(), TestbedError> {
        self.teardown_cell(log)?;
        let hosts = Arc::clone(&self.hosts);
        // Every host at once: a round trip each.
        let answers: Vec<Result<String, TestbedError>> = std::thread::scope(|scope| {
            let checks: Vec<_> = hosts
                .hosts
                .iter()
                .map(|(_, r, _)| scope.spawn(move || r.run("check it answers", "true", None)))
                .collect();
            checks.into_iter().map(|c| c.join().unwrap_or(Err(TestbedError::Panicked { what: "a check" }))).collect()
        });
        TestbedError::all(answers.into_iter().filter_map(Result::err).collect())?;
        let dev = |h: &crate::lab::Host| {
            hosts
                .hosts
                .iter()
                .find(|(s, _, _)| *s == h.short)
                .map(|(_, _, d)| d.clone())
                .unwrap_or_else(|| "eth0".into())
        };
        let plan = hostplan::cell(&hosts.plan, &dev, arch, servers, hosts.forwarding);
        for (short, _) in &plan {
            log(&format!("{short}: setup for a {} cell of {servers} nodes", arch.name()));
        }
        // Recorded before it runs: a half-applied host is undone too.
        self.applied = plan.clone();
        // The nodes at once, then the front end (it forwards to them).
        let fe = hosts.plan.front().short.clone();
        let (front, nodes): (Vec<_>, Vec<_>) = plan.iter().partition(|(s, _)| *s == fe);
        let apply = |(short, setup): &(String, HostSetup)| -> Result<(), TestbedError> {
            let remote = hosts.remote(short).expect("planned hosts are connected");
            for line in &setup.setup {
                remote.run("setup", &line.sh, line.stdin.as_deref())?;
            }
            Ok(())
        };
        let mut errors: Vec<TestbedError> = std::thread::scope(|scope| {
            let jobs: Vec<_> = nodes.iter().map(|h| scope.spawn(move || apply(h))).collect();
            jobs.into_iter()
                .filter_map(|j| j.join().unwrap_or(Err(TestbedError::Panicked { what: "a setup" })).err())
                .collect()
        });
        if errors.is_empty() {
            errors.extend(front.iter().filter_map(|h| apply(h).err()));
        }
        let Err(e) = TestbedError::all(errors) else { return Ok(()) };
        let undo = self.teardown_cell(log).err().map(Box::new);
        Err(TestbedError::SetupUndone { error: Box::new(e), undo })
    }

    /// Undoes the current cell's setup in reverse order and ends any service
    /// left on a host. Runs every step it can; the error lists what failed.
    pub fn teardown_cell(&mut self, log: &mut dyn FnMut(&str)) -> Result<(), TestbedError> {
        let hosts = Arc::clone(&self.hosts);
        let applied = std::mem::take(&mut self.applied);
        for (short, _) in applied.iter().rev() {
            log(&format!("{short}: teardown"));
        }
        let undo = |(short, setup): &(String, HostSetup)| -> Vec<TestbedError> {
            let remote = hosts.remote(short).expect("planned hosts are connected");
            let mut errors = Vec::new();
            for line in &setup.teardown {
                if let Err(e) = remote.run("teardown", &line.sh, line.stdin.as_deref()) {
                    errors.push(e);
                    if remote.alive().is_err() {
                        break;
                    }
                }
            }
            errors
        };
        let fe = hosts.plan.front().short.clone();
        let (front, nodes): (Vec<_>, Vec<_>) = applied.iter().partition(|(s, _)| *s == fe);
        // Services first (normally already gone), then the front end stops
        // forwarding, then the nodes give the VIP back: each group at once.
        let mut errors: Vec<TestbedError> = std::thread::scope(|scope| {
            let jobs: Vec<_> = hosts.hosts.iter().map(|(_, r, _)| scope.spawn(move || r.reap_started())).collect();
            jobs.into_iter()
                .filter_map(|j| j.join().unwrap_or(Err(TestbedError::Panicked { what: "a stop" })).err())
                .collect()
        });
        errors.extend(front.iter().flat_map(|h| undo(h)));
        errors.extend(std::thread::scope(|scope| {
            let jobs: Vec<_> = nodes.iter().map(|h| scope.spawn(move || undo(h))).collect();
            jobs.into_iter()
                .flat_map(|j| j.join().unwrap_or_else(|_| vec![TestbedError::Panicked { what: "a teardown" }]))
                .collect::<Vec<_>>()
        }));
        TestbedError::all(errors)
    }

    /// Ends the sweep: undoes any setup, removes the work directories and
    /// closes every connection. Returns what could not be done.
    pub fn close(&mut self, log: &mut dyn FnMut(&str)) -> Vec<TestbedError> {
        let mut errors = Vec::new();
        if let Err(e) = self.teardown_cell(log) {
            errors.push(e);
        }
        for (_, remote, _) in &self.hosts.hosts {
            if remote.alive().is_ok() {
                if let Err(e) = remote.remove_dir() {
                    errors.push(e);
                }
            } else if let Some(dir) = remote.work_dir() {
                errors.push(fail(
                    &remote.access.short,
                    "clean up",
                    format!("unreachable: its work directory {dir} is left"),
                ));
            }
            remote.close_master();
        }
        let _ = std::fs::remove_dir_all(&self.control_dir);
        errors
    }

    /// The short names of the client hosts, in order.
    pub fn clients(&self) -> Vec<String> {
        self.hosts.plan.hosts_of(Role::Client).map(|h| h.short.clone()).collect()
    }
}

impl Drop for SshLab {
    fn drop(&mut self) {
        if !self.applied.is_empty() || self.control_dir.exists() {
            for e in self.close(&mut |_| {}) {
                eprintln!("warning: {e}");
            }
        }
    }
}
