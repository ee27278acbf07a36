//! Runs a [`LabPlan`] on this machine: `up`, `down`, `status` and the NIC byte
//! counters. Every change goes through the `ip`, `tc`, `nft` and `sysctl`
//! commands (no hand-made netlink); a failing command is reported with its
//! command line and standard error. This module must not decide topology:
//! that is `plan`'s job, so that it stays testable without root.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::lab::plan::{Guard, LabPlan, Role, Step, HOST_DEV};
use crate::lab::{LabError, NicCounters};

pub mod sshd;

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Root-namespace network devices.
const SYS_NET: &str = "/sys/class/net";

/// The tools a lab needs, with the Debian package that provides each.
pub const TOOLS: [(&str, &str); 4] =
    [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables"), ("sysctl", "procps")];

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Fails with a clear message unless running as root.
pub fn require_root(action: &str) -> Result<(), LabError> {
    if is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot { action: action.into() })
    }
}

/// Finds `program` in `PATH`.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// Fails naming the first missing tool and its package.
pub fn require_tools() -> Result<(), LabError> {
    for (program, package) in TOOLS {
        if find_program(program).is_none() {
            return Err(LabError::MissingTool { program: program.into(), package: package.into() });
        }
    }
    Ok(())
}

/// Objects with the lab's prefix that exist right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Named network namespaces `PREFIX-*`.
    pub namespaces: Vec<String>,
    /// Root-namespace links `PREFIX-*` (bridge and bridge ports).
    pub links: Vec<String>,
}

impl Existing {
    /// Whether nothing of the lab exists.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.links.is_empty()
    }
}

impl std::fmt::Display for Existing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "namespaces [{}], links [{}]", self.namespaces.join(" "), self.links.join(" "))
    }
}

fn names_in(dir: &str, plan: &LabPlan) -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LabError::Io { path: dir.into(), source }),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| plan.owns_name(name))
        .collect();
    names.sort();
    Ok(names)
}

/// Lists the namespaces and root links carrying the plan's prefix.
pub fn existing(plan: &LabPlan) -> Result<Existing, LabError> {
    Ok(Existing { namespaces: names_in(NETNS_DIR, plan)?, links: names_in(SYS_NET, plan)? })
}

fn guard_holds(guard: &Guard) -> bool {
    match guard {
        Guard::NetnsExists(ns) => Path::new(NETNS_DIR).join(ns).exists(),
        Guard::LinkExists(link) => Path::new(SYS_NET).join(link).exists(),
    }
}

/// Runs a command to completion; failure carries the command line and stderr.
pub fn run_command(argv: &[String], stdin: Option<&str>) -> Result<String, LabError> {
    let shown = crate::lab::plan::shell_words(argv);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Command {
            command: shown.clone(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| LabError::Command {
            command: shown.clone(),
            status: "stdin".into(),
            stderr: e.to_string(),
        })?;
    }
    let out = child.wait_with_output().map_err(|e| LabError::Command {
        command: shown.clone(),
        status: "wait".into(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(LabError::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: stderr.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_args(argv: &[&str]) -> Result<String, LabError> {
    run_command(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None)
}

/// Ends every process inside `netns`: TERM, up to two seconds' grace, then KILL.
/// These are processes started in the lab (services, load), found by id.
fn kill_processes_in(netns: &str) -> Result<(), LabError> {
    if !Path::new(NETNS_DIR).join(netns).exists() {
        return Ok(());
    }
    let pids: Vec<i32> =
        run_args(&["ip", "netns", "pids", netns])?.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    if pids.is_empty() {
        return Ok(());
    }
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
    for &pid in &pids {
        // A pid read from `ip netns pids`; one that has exited since only yields ESRCH.
        let _ = crate::process::send_signal(pid as u32, Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        let _ = crate::process::send_signal(pid as u32, Signal::KILL);
    }
    Ok(())
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

/// Runs steps in order, skipping guarded steps whose guard is false; stops at
/// the first failure. `log` receives each step as it runs (for `--verbose`).
pub fn run_steps(steps: &[Step], log: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    for step in steps {
        match step {
            Step::Run { argv, stdin, only_if } => {
                if only_if.as_ref().is_some_and(|g| !guard_holds(g)) {
                    continue;
                }
                log(&step.to_string());
                run_command(argv, stdin.as_deref())?;
            }
            Step::KillProcessesIn(ns) => {
                if !Path::new(NETNS_DIR).join(ns).exists() {
                    continue;
                }
                log(&step.to_string());
                kill_processes_in(ns)?;
            }
        }
    }
    Ok(())
}

/// Removes the lab: the plan's own objects plus any other namespace or link
/// with the prefix (a leftover of a lab with more hosts). Idempotent.
pub fn down(plan: &LabPlan, log: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    require_root("down")?;
    require_tools()?;
    run_steps(&plan.down, log)?;
    let left = existing(plan)?;
    if !left.is_empty() {
        let links: Vec<String> = left.links.clone();
        run_steps(&crate::lab::plan::down_steps(&left.namespaces, &links), log)?;
    }
    let left = existing(plan)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(LabError::NotRemoved { prefix: plan.prefix.clone(), left: left.to_string() })
    }
}

/// Makes the lab. Over a lab that is already (partly) there it refuses,
/// unless `clean_first`, in which case it says so and removes it first. If a
/// step fails, it removes what it made and returns the step's error.
pub fn up(plan: &LabPlan, clean_first: bool, log: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    require_root("up")?;
    require_tools()?;
    let found = existing(plan)?;
    if !found.is_empty() {
        if !clean_first {
            return Err(LabError::AlreadyThere { prefix: plan.prefix.clone(), found: found.to_string() });
        }
        log(&format!("# lab `{}` is partly there ({found}): removing it first", plan.prefix));
        down(plan, log)?;
    }
    if let Err(err) = run_steps(&plan.up, log) {
        log(&format!("# up failed; removing what was made: {err}"));
        return match down(plan, log) {
            Ok(()) => Err(err),
            Err(cleanup) => Err(LabError::Command {
                command: "dl7 lab up".into(),
                status: "failed, cleanup failed too".into(),
                stderr: format!("{err}; cleanup: {cleanup}"),
            }),
        };
    }
    Ok(())
}

/// Switches a running lab between the architectures: `Distributed` installs
/// the front end's direct-routing rule over the first `active` nodes (all
/// when `None`), `Conventional` removes it (an L7 balancer on the front end
/// then receives the VIP's traffic). Idempotent.
pub fn set_architecture(
    plan: &LabPlan,
    arch: dl7_core::Arch,
    active: Option<usize>,
    log: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    require_root("arch")?;
    require_tools()?;
    let all = plan.hosts_of(Role::Node).count();
    if let Some(n) = active.filter(|&n| n == 0 || n > all) {
        return Err(LabError::BadNodeCount { asked: n, nodes: all });
    }
    let fe = &plan.front().netns;
    if !Path::new(NETNS_DIR).join(fe).exists() {
        return Err(LabError::NotUp { prefix: plan.prefix.clone(), missing: fe.clone() });
    }
    // Off first in both cases, so that `distributed` twice does not add a second rule.
    let mut steps = vec![plan.direct_routing_off()];
    if arch == dl7_core::Arch::Distributed {
        steps.push(plan.direct_routing_on_for(active.unwrap_or(all)));
    }
    run_steps(&steps, log)
}

/// A command that runs `program` inside `host`'s namespace, for starting the
/// dl7 services in the lab: `ip netns exec NS program`. `ip` executes the
/// program in place, so the child's pid is the program's own (stop it by that
/// id). Needs root when spawned.
pub fn command_in(host: &crate::lab::Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.netns]).arg(program);
    cmd
}

fn read_stat(link: &str, name: &str) -> Result<u64, LabError> {
    let path = Path::new(SYS_NET).join(link).join("statistics").join(name);
    let text = std::fs::read_to_string(&path).map_err(|source| LabError::Io { path: path.clone(), source })?;
    text.trim().parse().map_err(|_| LabError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not a counter: {text:?}")),
    })
}

/// Reads the NIC counters of every host, from its bridge port in the root
/// namespace (what the port receives the host transmitted, and vice versa),
/// so no namespace has to be entered. Does not need root.
pub fn read_counters(plan: &LabPlan) -> Result<Vec<(String, NicCounters)>, LabError> {
    plan.hosts.iter().map(|h| Ok((h.short.clone(), read_counters_of(&h.port)?))).collect()
}

/// What `status` found for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    /// Short name.
    pub short: String,
    /// Role name.
    pub role: &'static str,
    /// The namespace exists.
    pub netns: bool,
    /// The bridge port exists.
    pub port: bool,
    /// IPv4 addresses inside the namespace (`dev addr/len`).
    pub addrs: Vec<String>,
    /// The root qdisc on the host's eth0, if it is a tbf.
    pub shaping: Option<String>,
    /// NIC counters, when the port exists.
    pub counters: Option<NicCounters>,
}

/// What `status` found for the whole lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    /// The prefix.
    pub prefix: String,
    /// The bridge exists.
    pub bridge: bool,
    /// Per planned host.
    pub hosts: Vec<HostStatus>,
    /// nftables tables in the front end's namespace (`family name`).
    pub front_tables: Vec<String>,
    /// Prefixed objects that the plan does not know (a leftover of another size).
    pub strangers: Existing,
}

impl LabStatus {
    /// `up` when everything planned exists, `absent` when nothing with the prefix does, else `half-made`.
    pub fn state(&self) -> &'static str {
        let all = self.bridge && self.hosts.iter().all(|h| h.netns && h.port) && self.strangers.is_empty();
        let none = !self.bridge && self.hosts.iter().all(|h| !h.netns && !h.port) && self.strangers.is_empty();
        if all {
            "up"
        } else if none {
            "absent"
        } else {
            "half-made"
        }
    }
}

impl std::fmt::Display for LabStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "lab {}: {}", self.prefix, self.state())?;
        writeln!(f, "bridge {}-br: {}", self.prefix, if self.bridge { "present" } else { "absent" })?;
        writeln!(
            f,
            "{:<8} {:<7} {:<6} {:<5} {:<44} {:<38} {:>12} {:>12}",
            "host", "role", "netns", "port", "addresses", "shaping (eth0 tx)", "tx_bytes", "rx_bytes"
        )?;
        for h in &self.hosts {
            let yes = |b: bool| if b { "yes" } else { "no" };
            let (tx, rx) = match h.counters {
                Some(c) => (c.tx_bytes.to_string(), c.rx_bytes.to_string()),
                None => ("-".into(), "-".into()),
            };
            writeln!(
                f,
                "{:<8} {:<7} {:<6} {:<5} {:<44} {:<38} {:>12} {:>12}",
                h.short,
                h.role,
                yes(h.netns),
                yes(h.port),
                if h.addrs.is_empty() { "-".into() } else { h.addrs.join(" ") },
                h.shaping.as_deref().unwrap_or("unshaped"),
                tx,
                rx
            )?;
        }
        writeln!(
            f,
            "front end nftables: {}",
            if self.front_tables.is_empty() { "none".into() } else { self.front_tables.join(", ") }
        )?;
        if !self.strangers.is_empty() {
            writeln!(f, "not in this plan but carrying the prefix: {}", self.strangers)?;
        }
        Ok(())
    }
}

/// Inspects what of the lab exists. Needs root to look inside namespaces.
pub fn status(plan: &LabPlan) -> Result<LabStatus, LabError> {
    require_root("status")?;
    require_tools()?;
    let found = existing(plan)?;
    let mut hosts = Vec::new();
    for h in &plan.hosts {
        let netns = found.namespaces.contains(&h.netns);
        let port = found.links.contains(&h.port);
        let mut addrs = Vec::new();
        let mut shaping = None;
        if netns {
            for line in run_args(&["ip", "-n", &h.netns, "-4", "-o", "addr", "show"])?.lines() {
                // "2: eth0    inet 198.18.0.1/24 brd ... scope global eth0"
                let words: Vec<&str> = line.split_whitespace().collect();
                if let (Some(dev), Some(pos)) = (words.get(1), words.iter().position(|w| *w == "inet")) {
                    if let Some(addr) = words.get(pos + 1) {
                        if *dev != "lo" || !addr.starts_with("127.") {
                            addrs.push(format!("{dev}:{addr}"));
                        }
                    }
                }
            }
            if Path::new(NETNS_DIR).join(&h.netns).exists() {
                let qdisc = run_args(&["tc", "-n", &h.netns, "qdisc", "show", "dev", HOST_DEV]).unwrap_or_default();
                shaping = qdisc.lines().find(|l| l.contains("tbf")).map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    let at =
                        |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)).copied().unwrap_or("?");
                    format!("tbf rate {} burst {} lat {}", at("rate"), at("burst"), at("lat"))
                });
            }
        }
        let counters = if port { read_counters_of(&h.port).ok() } else { None };
        hosts.push(HostStatus { short: h.short.clone(), role: h.role.name(), netns, port, addrs, shaping, counters });
    }
    let mut front_tables = Vec::new();
    let fe = plan.hosts_of(Role::Front).next().map(|h| h.netns.clone()).unwrap_or_default();
    if found.namespaces.contains(&fe) {
        for line in run_args(&["ip", "netns", "exec", &fe, "nft", "list", "tables"])?.lines() {
            if let Some(rest) = line.strip_prefix("table ") {
                front_tables.push(rest.trim().to_string());
            }
        }
    }
    let planned_ns = plan.namespaces();
    let planned_links = plan.links();
    let strangers = Existing {
        namespaces: found.namespaces.iter().filter(|n| !planned_ns.contains(n)).cloned().collect(),
        links: found.links.iter().filter(|l| !planned_links.contains(l)).cloned().collect(),
    };
    Ok(LabStatus {
        prefix: plan.prefix.clone(),
        bridge: found.links.contains(&plan.bridge),
        hosts,
        front_tables,
        strangers,
    })
}

fn read_counters_of(port: &str) -> Result<NicCounters, LabError> {
    Ok(NicCounters {
        tx_bytes: read_stat(port, "rx_bytes")?,
        rx_bytes: read_stat(port, "tx_bytes")?,
        tx_packets: read_stat(port, "rx_packets")?,
        rx_packets: read_stat(port, "tx_packets")?,
    })
}
