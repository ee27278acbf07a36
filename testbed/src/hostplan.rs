//! The per-host command plan of lab PCs: what each machine's setup and
//! teardown run, as POSIX shell lines. One plan for both ways of driving real
//! machines: [`super::deploy`] renders it into the scripts a user copies to
//! each PC, and the SSH engine ([`crate::ssh`]) runs the same lines on every
//! host, cell by cell. Pure text: nothing here runs anything.
//!
//! * Nodes (distributed cells): the ARP sysctls first, then the VIP on `lo`,
//!   so that a node never answers ARP for the VIP; teardown puts the Linux
//!   defaults back and removes the VIP.
//! * Front end: the VIP on its NIC; distributed cells forward it by kernel
//!   direct routing, IPVS (`ipvsadm ... -s rr`, real servers `-g`) where the
//!   kernel has IPVS, else the nftables netdev `fwd` rule of the emulated lab
//!   (stateless source hash). The choice is per host, by what its kernel
//!   offers ([`IPVS_PROBE`]); conventional cells run dl7's front end on the VIP.
//!
//! The NIC is a parameter: scripts pass `"$DEV"` (set when they run), the
//! engine the host's configured device. Over SSH a host's own address is
//! already there (it is how the engine reaches it); only scripts set it
//! ([`address`]).

use std::fmt::Write as _;

use dl7_core::Arch;

use crate::lab::plan::{Host, LabPlan, Role};

/// How the front end forwards the VIP's connections to the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// IPVS direct routing, round robin (`ipvsadm`).
    Ipvs,
    /// The nftables netdev `fwd` rule: one map, a fixed jhash seed (source hash).
    Nft,
}

impl Forwarding {
    /// For logs and golden files.
    pub fn name(self) -> &'static str {
        match self {
            Forwarding::Ipvs => "ipvs",
            Forwarding::Nft => "nftables fwd",
        }
    }
}

/// A shell test that succeeds when the host can do IPVS direct routing: the
/// kernel has IPVS (or loads it) and `ipvsadm` is installed.
pub const IPVS_PROBE: &str =
    "{ [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; } && [ -e /proc/net/ip_vs ] && command -v ipvsadm >/dev/null";

/// One command of a host's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Why it is there (a script comment), if it needs saying.
    pub why: Option<&'static str>,
    /// The command, POSIX shell.
    pub sh: String,
    /// Text fed on its standard input (a heredoc in scripts).
    pub stdin: Option<String>,
}

impl Line {
    fn new(sh: String) -> Line {
        Line { why: None, sh, stdin: None }
    }

    fn because(why: &'static str, sh: String) -> Line {
        Line { why: Some(why), sh, stdin: None }
    }
}

/// A host's setup and the teardown that undoes it (teardown lines are run
/// each even when one fails: it must get as far as it can).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSetup {
    /// In order.
    pub setup: Vec<Line>,
    /// In order (the reverse of the setup).
    pub teardown: Vec<Line>,
}

impl HostSetup {
    /// Whether the host needs no setup.
    pub fn is_empty(&self) -> bool {
        self.setup.is_empty() && self.teardown.is_empty()
    }
}

/// The host's own lab address on its NIC (scripts only).
pub fn address(plan: &LabPlan, host: &Host, dev: &str) -> HostSetup {
    let addr = format!("{}/{}", host.addr, plan.subnet.len);
    HostSetup {
        setup: vec![Line::new(format!("ip addr replace {addr} dev {dev}")), Line::new(format!("ip link set {dev} up"))],
        teardown: vec![Line::new(format!("ip addr del {addr} dev {dev}"))],
    }
}

/// A node's part in direct routing: accept the VIP's packets, never answer ARP for it.
pub fn node(plan: &LabPlan, dev: &str, arch: Arch) -> HostSetup {
    if arch != Arch::Distributed {
        return HostSetup::default();
    }
    let vip = plan.vip;
    let sysctls = |ignore: u8, announce: u8| {
        let mut sh = String::from("sysctl -q -w");
        for scope in ["all", dev] {
            let _ = write!(
                sh,
                " \"net.ipv4.conf.{scope}.arp_ignore={ignore}\" \"net.ipv4.conf.{scope}.arp_announce={announce}\""
            );
        }
        sh
    };
    HostSetup {
        setup: vec![
            Line::because(
                "Direct routing: accept packets for the VIP, never answer ARP for it (sysctls before the VIP).",
                sysctls(1, 2),
            ),
            Line::new(format!("ip addr replace {vip}/32 dev lo")),
        ],
        teardown: vec![
            Line::new(format!("ip addr del {vip}/32 dev lo")),
            Line::because("Back to the Linux defaults.", sysctls(0, 0)),
        ],
    }
}

/// The front end: the VIP on its NIC and, for distributed cells, the kernel
/// forwarding over the first `active` nodes.
pub fn front(plan: &LabPlan, dev: &str, arch: Arch, active: usize, forwarding: Forwarding) -> HostSetup {
    let vip = plan.vip;
    let service = format!("{vip}:{}", plan.port);
    let mut s = HostSetup::default();
    s.setup.push(Line::because(
        "The front end owns the VIP: it alone answers ARP for it.",
        format!("ip addr replace {vip}/32 dev {dev}"),
    ));
    if arch == Arch::Distributed {
        match forwarding {
            Forwarding::Ipvs => {
                s.setup.push(Line::because(
                    "IPVS direct routing, round robin: requests in, responses go from the nodes to the clients.",
                    format!("ipvsadm -A -t {service} -s rr"),
                ));
                let all = plan.hosts_of(Role::Node).count();
                for n in plan.hosts_of(Role::Node).take(active.clamp(1, all)) {
                    s.setup.push(Line::new(format!("ipvsadm -a -t {service} -r {}:{} -g", n.addr, plan.port)));
                }
                s.teardown.push(Line::new(format!("ipvsadm -D -t {service}")));
            }
            Forwarding::Nft => {
                s.setup.push(Line {
                    why: Some("No IPVS: the nftables fwd rule (source hash), rewriting only the Ethernet destination."),
                    sh: "nft -f -".into(),
                    stdin: Some(plan.nft_ruleset_on(active, dev)),
                });
                s.teardown.push(Line::new(format!("nft delete table netdev {}", plan.nft_table)));
            }
        }
    }
    s.teardown.push(Line::new(format!("ip addr del {vip}/32 dev {dev}")));
    s
}

/// The front end's forwarding changed in place to the nodes `routed` (its
/// health checks and the fault schedule's membership, ldirectord's job):
/// under IPVS a node out gets weight 0 (quiescent: no new connections, its
/// own kept) and one in weight 1, added first if it is new; under nftables
/// the map is replaced in one transaction, a node out's slot going to the
/// next node routed.
pub fn front_reroute(plan: &LabPlan, dev: &str, forwarding: Forwarding, routed: &[bool]) -> Vec<Line> {
    match forwarding {
        Forwarding::Ipvs => {
            let service = format!("{}:{}", plan.vip, plan.port);
            let nodes = plan.hosts_of(Role::Node).take(routed.len());
            nodes
                .zip(routed)
                .map(|(n, &on)| {
                    let real = format!("-t {service} -r {}:{} -g -w {}", n.addr, plan.port, u8::from(on));
                    Line::new(format!("ipvsadm -e {real} 2>/dev/null || ipvsadm -a {real}"))
                })
                .collect()
        }
        Forwarding::Nft => vec![Line {
            why: None,
            sh: "nft -f -".into(),
            stdin: Some(plan.reroute_ruleset(routed.len(), routed, dev)),
        }],
    }
}

/// Every host's setup for one cell, in the order to apply it: nodes first
/// (they hold the VIP before anything forwards to them), the front end last;
/// teardown goes in the reverse order. Hosts with nothing to do are left out.
pub fn cell(
    plan: &LabPlan,
    dev: &dyn Fn(&Host) -> String,
    arch: Arch,
    active: usize,
    forwarding: Forwarding,
) -> Vec<(String, HostSetup)> {
    let mut hosts = Vec::new();
    for n in plan.hosts_of(Role::Node).take(active) {
        hosts.push((n.short.clone(), node(plan, &dev(n), arch)));
    }
    let fe = plan.front();
    hosts.push((fe.short.clone(), front(plan, &dev(fe), arch, active, forwarding)));
    hosts.retain(|(_, s)| !s.is_empty());
    hosts
}

/// A cell's plan as text, one `host: command` line each (golden files, `--dry-run`).
pub fn render_cell(hosts: &[(String, HostSetup)]) -> String {
    let mut text = String::new();
    for (phase, order) in [("setup", false), ("teardown", true)] {
        let _ = writeln!(text, "# {phase}");
        let list: Box<dyn Iterator<Item = &(String, HostSetup)>> =
            if order { Box::new(hosts.iter().rev()) } else { Box::new(hosts.iter()) };
        for (short, s) in list {
            for line in if order { &s.teardown } else { &s.setup } {
                let _ = writeln!(text, "{short}: {}", script_line(line));
            }
        }
    }
    text
}

/// A line as a script writes it: the command, with its stdin as a heredoc.
pub fn script_line(line: &Line) -> String {
    match &line.stdin {
        // Unquoted delimiter: `$DEV` in the text expands like everywhere else in the script.
        Some(text) => format!("{} <<EOF\n{text}EOF", line.sh),
        None => line.sh.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::LabConfig;

    fn plan(nodes: u32) -> LabPlan {
        let text = format!("subnet = \"198.18.0.0/24\"\nnodes = {nodes}\nclients = 2\n");
        LabPlan::new(&LabConfig::parse(&text, "lab.toml").unwrap())
    }

    fn eth0(_: &Host) -> String {
        "eth0".into()
    }

    #[test]
    fn a_smaller_cell_sets_up_and_forwards_to_its_nodes_only() {
        let p = plan(4);
        let hosts = cell(&p, &eth0, Arch::Distributed, 2, Forwarding::Ipvs);
        let names: Vec<&str> = hosts.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "fe"]);
        let fe = &hosts[2].1;
        assert_eq!(fe.setup.iter().filter(|l| l.sh.starts_with("ipvsadm -a")).count(), 2);
        let nft = cell(&p, &eth0, Arch::Distributed, 2, Forwarding::Nft);
        assert!(nft[2].1.setup[1].stdin.as_ref().unwrap().contains("mod 2 seed 0x5eed"));
    }

    #[test]
    fn a_reroute_quiesces_a_node_out_and_adds_a_joined_one() {
        let p = plan(3);
        let ipvs = front_reroute(&p, "eth0", Forwarding::Ipvs, &[true, false, true]);
        let lines: Vec<&str> = ipvs.iter().map(|l| l.sh.as_str()).collect();
        assert_eq!(
            lines,
            [
                "ipvsadm -e -t 198.18.0.250:8080 -r 198.18.0.11:8080 -g -w 1 2>/dev/null || ipvsadm -a -t 198.18.0.250:8080 -r 198.18.0.11:8080 -g -w 1",
                "ipvsadm -e -t 198.18.0.250:8080 -r 198.18.0.12:8080 -g -w 0 2>/dev/null || ipvsadm -a -t 198.18.0.250:8080 -r 198.18.0.12:8080 -g -w 0",
                "ipvsadm -e -t 198.18.0.250:8080 -r 198.18.0.13:8080 -g -w 1 2>/dev/null || ipvsadm -a -t 198.18.0.250:8080 -r 198.18.0.13:8080 -g -w 1",
            ]
        );
        let nft = front_reroute(&p, "eth1", Forwarding::Nft, &[true, false, true]);
        let text = nft[0].stdin.as_deref().unwrap();
        assert!(text.starts_with("flush chain netdev"), "{text}");
        // Node 2's slot goes to the next node routed, node 3; the NIC is the host's.
        assert!(
            text.contains("mod 3 seed 0x5eed map { 0 : 198.18.0.11, 1 : 198.18.0.13, 2 : 198.18.0.13 } device eth1"),
            "{text}"
        );
    }

    #[test]
    fn conventional_cells_touch_only_the_front_end() {
        let hosts = cell(&plan(2), &eth0, Arch::Conventional, 2, Forwarding::Ipvs);
        assert_eq!(hosts.len(), 1);
        assert!(!render_cell(&hosts).contains("ipvsadm"));
    }

    #[test]
    fn every_setup_is_undone() {
        let p = plan(2);
        for fwd in [Forwarding::Ipvs, Forwarding::Nft] {
            for (_, s) in cell(&p, &eth0, Arch::Distributed, 2, fwd) {
                let added = s.setup.iter().filter(|l| l.sh.starts_with("ip addr replace")).count();
                let removed = s.teardown.iter().filter(|l| l.sh.starts_with("ip addr del")).count();
                assert_eq!(added, removed);
            }
        }
    }
}
