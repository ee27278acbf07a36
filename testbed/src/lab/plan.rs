//! The lab plan: every name, address and command of an emulated lab, computed
//! purely from a [`LabConfig`]. Nothing here runs a command or needs root, so
//! the whole topology is unit-testable; `exec` runs the steps.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::config::{LabConfig, Shaping, Subnet, CLIENT_OFFSET, FRONT_OFFSET, NODE_OFFSET, ORIGIN_OFFSET, ROOT_OFFSET};

/// What a host does in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The front end (L4 direct-routing forwarder or L7 balancer).
    Front,
    /// The origin web server.
    Origin,
    /// A cache node.
    Node,
    /// A load-generating client.
    Client,
}

impl Role {
    /// The role's name in files and output.
    pub fn name(self) -> &'static str {
        match self {
            Role::Front => "front",
            Role::Origin => "origin",
            Role::Node => "node",
            Role::Client => "client",
        }
    }
}

/// One emulated host: a namespace with `eth0`, wired to the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its role.
    pub role: Role,
    /// 1-based index among hosts of the same role (1 for front and origin).
    pub index: u32,
    /// Short name, unique in the lab: `fe`, `origin`, `n1`.., `c1`..
    pub short: String,
    /// Network namespace name: `PREFIX-SHORT`.
    pub netns: String,
    /// The veth end in the root namespace, attached to the bridge: `PREFIX-SHORT`.
    pub port: String,
    /// The host's own address on `eth0`.
    pub addr: Ipv4Addr,
    /// NIC shaping, or `None` for an unshaped link.
    pub shaping: Option<Shaping>,
}

/// A condition checked just before a step runs; the step is skipped when false.
/// It makes `down` idempotent and safe after a half-made `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The named network namespace exists.
    NetnsExists(String),
    /// The named link exists in the root namespace.
    LinkExists(String),
}

/// One step of bringing a lab up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run a command (no shell) with optional standard input.
    Run {
        /// Program and arguments.
        argv: Vec<String>,
        /// Text fed on standard input.
        stdin: Option<String>,
        /// Skip the command unless this holds.
        only_if: Option<Guard>,
    },
    /// End every process inside a namespace (found with `ip netns pids`), so
    /// that deleting the namespace really frees its links.
    KillProcessesIn(String),
}

impl Step {
    fn run(argv: &[&str]) -> Step {
        Step::Run { argv: argv.iter().map(|s| s.to_string()).collect(), stdin: None, only_if: None }
    }

    fn guarded(argv: &[&str], guard: Guard) -> Step {
        Step::Run { argv: argv.iter().map(|s| s.to_string()).collect(), stdin: None, only_if: Some(guard) }
    }
}

impl std::fmt::Display for Step {
    /// Renders the step as a shell line a reader could type.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Run { argv, stdin, only_if } => {
                match only_if {
                    Some(Guard::NetnsExists(ns)) => write!(f, "[ -e /run/netns/{ns} ] && ")?,
                    Some(Guard::LinkExists(link)) => write!(f, "[ -e /sys/class/net/{link} ] && ")?,
                    None => {}
                }
                f.write_str(&shell_words(argv))?;
                if let Some(text) = stdin {
                    write!(f, " <<'EOF'\n{}EOF", text)?;
                }
                Ok(())
            }
            Step::KillProcessesIn(ns) => write!(f, "[ -e /run/netns/{ns} ] && ip netns pids {ns} | xargs -r kill"),
        }
    }
}

/// Quotes arguments for display only (commands are run without a shell).
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything an emulated lab consists of, and the commands that make and unmake it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPlan {
    /// The name prefix: every namespace and root-namespace link starts with `PREFIX-`.
    pub prefix: String,
    /// The bridge acting as the switch, in the root namespace.
    pub bridge: String,
    /// The lab subnet.
    pub subnet: Subnet,
    /// The virtual IP.
    pub vip: Ipv4Addr,
    /// The root namespace's address on the bridge, so that a runner outside
    /// the lab (scraping metrics, checking readiness) reaches the hosts over
    /// the bridge instead of sending lab addresses to its default route.
    pub root_addr: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// Hosts in order: front end, origin, nodes, clients.
    pub hosts: Vec<Host>,
    /// The nftables table on the front end (family netdev).
    pub nft_table: String,
    /// Commands for `up`, in order.
    pub up: Vec<Step>,
    /// Commands for `down`, in order; each guarded so it is idempotent.
    pub down: Vec<Step>,
}

/// Seed of the front end's jhash: fixed, because an expression without a seed
/// draws a random one, and the same source must always map to the same node.
pub const JHASH_SEED: &str = "0x5eed";

/// Inside every host namespace the lab's interface has this name.
pub const HOST_DEV: &str = "eth0";

impl LabPlan {
    /// Computes the plan for a lab.
    pub fn new(lab: &LabConfig) -> LabPlan {
        let p = &lab.prefix;
        let host = |role: Role, index: u32, short: String, offset: u32, shaping: Option<Shaping>| Host {
            role,
            index,
            netns: format!("{p}-{short}"),
            port: format!("{p}-{short}"),
            short,
            addr: lab.subnet.host(offset),
            shaping,
        };
        let mut hosts = vec![
            host(Role::Front, 1, "fe".into(), FRONT_OFFSET, lab.front),
            host(Role::Origin, 1, "origin".into(), ORIGIN_OFFSET, lab.origin),
        ];
        hosts.extend((1..=lab.nodes).map(|i| host(Role::Node, i, format!("n{i}"), NODE_OFFSET + i, lab.node)));
        hosts.extend((1..=lab.clients).map(|j| host(Role::Client, j, format!("c{j}"), CLIENT_OFFSET + j, lab.client)));

        let mut plan = LabPlan {
            prefix: p.clone(),
            bridge: format!("{p}-br"),
            subnet: lab.subnet,
            vip: lab.vip,
            root_addr: lab.subnet.host(ROOT_OFFSET),
            port: lab.port,
            hosts,
            nft_table: format!("{p}_dr"),
            up: Vec::new(),
            down: Vec::new(),
        };
        plan.up = plan.up_steps();
        plan.down = down_steps(&plan.namespaces(), &plan.links());
        plan
    }

    /// The hosts of one role, in index order.
    pub fn hosts_of(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    /// The front end host.
    pub fn front(&self) -> &Host {
        self.hosts_of(Role::Front).next().expect("a plan always has a front end")
    }

    /// The origin host.
    pub fn origin(&self) -> &Host {
        self.hosts_of(Role::Origin).next().expect("a plan always has an origin")
    }

    /// The namespaces the lab makes.
    pub fn namespaces(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.netns.clone()).collect()
    }

    /// The root-namespace links the lab makes: the bridge ports, then the bridge.
    pub fn links(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.port.clone()).chain([self.bridge.clone()]).collect()
    }

    /// Whether a namespace or root-namespace link name belongs to this lab's prefix.
    pub fn owns_name(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix).is_some_and(|rest| rest.starts_with('-'))
    }

    /// The front end's nftables ruleset: one rule, one map, a fixed jhash seed
    /// (stateless source hashing onto the nodes, rewriting only the MAC).
    pub fn nft_ruleset(&self) -> String {
        self.nft_ruleset_for(self.hosts_of(Role::Node).count())
    }

    /// The ruleset forwarding to the first `active` nodes only (clamped to
    /// 1..=nodes): one lab serves every cluster size of a sweep.
    pub fn nft_ruleset_for(&self, active: usize) -> String {
        self.nft_ruleset_on(active, HOST_DEV)
    }

    /// The ruleset on the front end's NIC `dev` (a name, or `$DEV` in a script).
    pub fn nft_ruleset_on(&self, active: usize, dev: &str) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "table netdev {} {{", self.nft_table);
        let _ = writeln!(text, "  chain in {{");
        let _ = writeln!(text, "    type filter hook ingress device {dev} priority 0;");
        let _ = writeln!(text, "    {}", self.fwd_rule(active, &[], dev));
        let _ = writeln!(text, "  }}");
        let _ = writeln!(text, "}}");
        text
    }

    /// The forwarding rule over the first `active` nodes: hash slot `i` goes to
    /// node `i` while `up[i]` (missing entries are up), else to the next node
    /// that is up, cyclically (to node `i` itself if none is). The hash and
    /// the map's size stay the same, so only a node that is out loses its
    /// connections: every other one keeps its node, as ldirectord removing
    /// one real server from IPVS leaves the others' connections alone.
    fn fwd_rule(&self, active: usize, up: &[bool], dev: &str) -> String {
        let all = self.hosts_of(Role::Node).count();
        let nodes: Vec<&Host> = self.hosts_of(Role::Node).take(active.clamp(1, all)).collect();
        let n = nodes.len();
        let is_up = |i: usize| up.get(i).copied().unwrap_or(true);
        let target = |i: usize| (0..n).map(|k| (i + k) % n).find(|&j| is_up(j)).unwrap_or(i);
        let map = (0..n).map(|i| format!("{i} : {}", nodes[target(i)].addr)).collect::<Vec<_>>().join(", ");
        format!(
            "ip daddr {} tcp dport {} fwd ip to jhash ip saddr . tcp sport mod {n} seed {JHASH_SEED} map {{ {map} }} device {dev}",
            self.vip, self.port
        )
    }

    /// The step that replaces the forwarding rule in place, in one nftables
    /// transaction (no instant without a rule), with the nodes that are out
    /// (`up[i]` false) mapped to the next one up (see [`LabPlan::fwd_rule`]).
    /// The lab's director runs it when a node's health changes.
    pub fn direct_routing_reroute(&self, active: usize, up: &[bool]) -> Step {
        Step::Run {
            argv: ["ip", "netns", "exec", &self.front().netns, "nft", "-f", "/dev/stdin"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            stdin: Some(self.reroute_ruleset(active, up, HOST_DEV)),
            only_if: None,
        }
    }

    /// The `nft -f` text of [`LabPlan::direct_routing_reroute`] for a front
    /// end whose lab NIC is `dev` (a lab PC's, over SSH).
    pub fn reroute_ruleset(&self, active: usize, up: &[bool], dev: &str) -> String {
        let t = &self.nft_table;
        format!("flush chain netdev {t} in\nadd rule netdev {t} in {}\n", self.fwd_rule(active, up, dev))
    }

    /// The step that installs the front end's direct-routing rule over every
    /// node (part of `up`): the lab then runs the distributed architecture.
    pub fn direct_routing_on(&self) -> Step {
        self.direct_routing_on_for(self.hosts_of(Role::Node).count())
    }

    /// As [`LabPlan::direct_routing_on`], forwarding to the first `active` nodes only.
    pub fn direct_routing_on_for(&self, active: usize) -> Step {
        Step::Run {
            argv: ["ip", "netns", "exec", &self.front().netns, "nft", "-f", "/dev/stdin"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            stdin: Some(self.nft_ruleset_for(active)),
            only_if: None,
        }
    }

    /// The step that removes the front end's direct-routing rule, so that the
    /// VIP's packets reach the front end's own stack: the conventional
    /// architecture, where an L7 balancer listens on the VIP. Idempotent: the
    /// empty table declaration creates it if missing, so the delete always succeeds.
    pub fn direct_routing_off(&self) -> Step {
        Step::Run {
            argv: ["ip", "netns", "exec", &self.front().netns, "nft", "-f", "/dev/stdin"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            stdin: Some(format!("table netdev {0} {{ }}\ndelete table netdev {0}\n", self.nft_table)),
            only_if: Some(Guard::NetnsExists(self.front().netns.clone())),
        }
    }

    fn up_steps(&self) -> Vec<Step> {
        let br = self.bridge.as_str();
        let mut steps =
            vec![Step::run(&["ip", "link", "add", br, "type", "bridge"]), Step::run(&["ip", "link", "set", br, "up"])];
        let root = format!("{}/{}", self.root_addr, self.subnet.len);
        steps.push(Step::run(&["ip", "addr", "add", &root, "dev", br]));
        for h in &self.hosts {
            let (ns, port) = (h.netns.as_str(), h.port.as_str());
            let addr = format!("{}/{}", h.addr, self.subnet.len);
            steps.push(Step::run(&["ip", "netns", "add", ns]));
            // Before eth0 exists, so it never gets IPv6 (keeps the byte counters to the lab's own traffic).
            steps.push(Step::run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-e",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]));
            steps.push(Step::run(&["ip", "link", "add", port, "type", "veth", "peer", "name", HOST_DEV, "netns", ns]));
            steps.push(Step::run(&["ip", "link", "set", port, "master", br]));
            steps.push(Step::run(&["ip", "link", "set", port, "up"]));
            steps.push(Step::run(&["ip", "-n", ns, "link", "set", "lo", "up"]));
            steps.push(Step::run(&["ip", "-n", ns, "addr", "add", &addr, "dev", HOST_DEV]));
            steps.push(Step::run(&["ip", "-n", ns, "link", "set", HOST_DEV, "up"]));
            if let Some(s) = h.shaping {
                let (rate, burst, latency) = (s.rate.to_string(), s.burst.to_string(), s.latency.to_string());
                let tbf = ["root", "tbf", "rate", &rate, "burst", &burst, "latency", &latency];
                // Transmit side inside the host, receive side on its bridge port: a full-duplex NIC.
                let mut tx = vec!["tc", "-n", ns, "qdisc", "add", "dev", HOST_DEV];
                tx.extend(tbf);
                steps.push(Step::run(&tx));
                let mut rx = vec!["tc", "qdisc", "add", "dev", port];
                rx.extend(tbf);
                steps.push(Step::run(&rx));
            }
        }
        steps.extend(self.direct_routing_steps());
        steps
    }

    /// The `up` steps without direct routing: bare hosts, as lab PCs are
    /// before the SSH engine sets them up (`dl7 lab up --sshd`).
    pub fn bare_up(&self) -> Vec<Step> {
        let dr = self.direct_routing_steps();
        self.up.iter().filter(|s| !dr.contains(s)).cloned().collect()
    }

    /// Direct routing: the VIP on the front end with its forwarding rule, and
    /// on every node's `lo` behind the ARP sysctls.
    fn direct_routing_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let vip32 = format!("{}/32", self.vip);
        let fe = self.front();
        steps.push(Step::run(&["ip", "-n", &fe.netns, "addr", "add", &vip32, "dev", HOST_DEV]));
        steps.push(self.direct_routing_on());
        for n in self.hosts_of(Role::Node) {
            // ARP settings first: a node must never answer ARP for the VIP, not even for a moment.
            steps.push(Step::run(&[
                "ip",
                "netns",
                "exec",
                &n.netns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0.arp_ignore=1",
                "net.ipv4.conf.eth0.arp_announce=2",
            ]));
            steps.push(Step::run(&["ip", "-n", &n.netns, "addr", "add", &vip32, "dev", "lo"]));
        }
        steps
    }
}

/// The guarded steps that remove the given namespaces and root-namespace links:
/// per namespace, end its processes, delete its bridge port (which takes the
/// veth peer with it at once) and the namespace; the bridge goes last.
/// Every step is skipped when its object is already gone.
pub fn down_steps(namespaces: &[String], links: &[String]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut links_left: Vec<&String> = links.iter().collect();
    for ns in namespaces.iter().rev() {
        steps.push(Step::KillProcessesIn(ns.clone()));
        // A host's bridge port has the same name as its namespace.
        if let Some(pos) = links_left.iter().position(|l| *l == ns) {
            let link = links_left.remove(pos);
            steps.push(Step::guarded(&["ip", "link", "del", link], Guard::LinkExists(link.clone())));
        }
        steps.push(Step::guarded(&["ip", "netns", "del", ns], Guard::NetnsExists(ns.clone())));
    }
    for link in links_left {
        steps.push(Step::guarded(&["ip", "link", "del", link], Guard::LinkExists(link.clone())));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(extra: &str) -> LabPlan {
        let text = format!("subnet = \"198.18.0.0/24\"\nnodes = 2\nport = 3128\n{extra}");
        LabPlan::new(&LabConfig::parse(&text, "lab.toml").unwrap())
    }

    #[test]
    fn names_carry_the_prefix_and_fit_ifnamsiz() {
        let text = "prefix = \"abcdefgh\"\nsubnet = \"198.18.0.0/16\"\nnodes = 64\nclients = 64\n";
        let p = LabPlan::new(&LabConfig::parse(text, "lab.toml").unwrap());
        for name in p.namespaces().iter().chain(p.links().iter()) {
            assert!(p.owns_name(name), "{name}");
            assert!(name.len() <= 15, "{name} is longer than an interface name may be");
        }
        assert_eq!(p.hosts.len(), 2 + 64 + 64);
    }

    #[test]
    fn addresses_follow_the_fixed_offsets() {
        let p = plan("clients = 2\n");
        let addrs: Vec<(String, String)> = p.hosts.iter().map(|h| (h.short.clone(), h.addr.to_string())).collect();
        let want = [("fe", "198.18.0.1"), ("origin", "198.18.0.2"), ("n1", "198.18.0.11"), ("n2", "198.18.0.12")];
        for (i, (s, a)) in want.iter().enumerate() {
            assert_eq!(addrs[i], (s.to_string(), a.to_string()));
        }
        assert_eq!(addrs[4], ("c1".into(), "198.18.0.101".into()));
        assert_eq!(addrs[5], ("c2".into(), "198.18.0.102".into()));
    }

    #[test]
    fn root_namespace_reaches_the_lab_over_the_bridge() {
        let p = plan("");
        let lines: Vec<String> = p.up.iter().map(|s| s.to_string()).collect();
        let addr = lines.iter().position(|l| l == "ip addr add 198.18.0.254/24 dev dl7-br").unwrap();
        let first_host = lines.iter().position(|l| l.starts_with("ip netns add")).unwrap();
        assert!(addr < first_host, "the lab subnet is local before any host exists");
    }

    #[test]
    fn nft_rule_is_one_map_with_a_fixed_seed() {
        let p = plan("");
        let rules = p.nft_ruleset();
        assert_eq!(rules.matches("fwd").count(), 1);
        assert!(rules.contains(
            "ip daddr 198.18.0.250 tcp dport 3128 fwd ip to jhash ip saddr . tcp sport mod 2 seed 0x5eed \
             map { 0 : 198.18.0.11, 1 : 198.18.0.12 } device eth0"
        ));
        assert!(rules.starts_with("table netdev dl7_dr {\n"));
    }

    #[test]
    fn rule_for_fewer_nodes_maps_the_first_ones() {
        let text = "subnet = \"198.18.0.0/24\"\nnodes = 8\n";
        let p = LabPlan::new(&LabConfig::parse(text, "lab.toml").unwrap());
        let rules = p.nft_ruleset_for(2);
        assert!(rules.contains("mod 2 seed 0x5eed map { 0 : 198.18.0.11, 1 : 198.18.0.12 } device eth0"), "{rules}");
        assert_eq!(p.nft_ruleset_for(8), p.nft_ruleset());
        assert_eq!(p.nft_ruleset_for(99), p.nft_ruleset());
        assert!(p.nft_ruleset_for(0).contains("mod 1 "));
        // A node out: its slot goes to the next one up; the others keep theirs.
        let Step::Run { stdin: Some(text), .. } = p.direct_routing_reroute(2, &[false, true]) else { panic!() };
        assert!(text.starts_with(&format!("flush chain netdev {0} in\nadd rule netdev {0} in ip daddr ", p.nft_table)));
        assert!(text.contains("mod 2 seed 0x5eed map { 0 : 198.18.0.12, 1 : 198.18.0.12 }"), "{text}");
        let Step::Run { stdin: Some(text), .. } = p.direct_routing_reroute(2, &[false, false]) else { panic!() };
        assert!(text.contains("map { 0 : 198.18.0.11, 1 : 198.18.0.12 }"), "none up: as if all were: {text}");
    }

    #[test]
    fn shaping_adds_tbf_on_both_ends_of_shaped_roles_only() {
        let p = plan("[links]\nnode = \"10mbit\"\n");
        let lines: Vec<String> = p.up.iter().map(|s| s.to_string()).collect();
        let tbf: Vec<&String> = lines.iter().filter(|l| l.contains(" tbf ")).collect();
        assert_eq!(tbf.len(), 4, "two nodes, two directions each: {tbf:?}");
        assert!(lines.contains(&"tc -n dl7-n1 qdisc add dev eth0 root tbf rate 10mbit burst 32kb latency 100ms".into()));
        assert!(lines.contains(&"tc qdisc add dev dl7-n2 root tbf rate 10mbit burst 32kb latency 100ms".into()));
        assert!(!lines.iter().any(|l| l.contains("dl7-fe") && l.contains("tbf")));
    }

    #[test]
    fn nodes_hide_the_vip_before_holding_it() {
        let p = plan("");
        let lines: Vec<String> = p.up.iter().map(|s| s.to_string()).collect();
        for n in ["dl7-n1", "dl7-n2"] {
            let arp = lines.iter().position(|l| l.contains(n) && l.contains("arp_ignore=1")).unwrap();
            let vip = lines.iter().position(|l| l == &format!("ip -n {n} addr add 198.18.0.250/32 dev lo")).unwrap();
            assert!(arp < vip);
        }
        assert!(lines.contains(&"ip -n dl7-fe addr add 198.18.0.250/32 dev eth0".to_string()));
        // Nothing but the VIP lands on a node's lo, and the VIP is never on a node's eth0.
        assert!(!lines.iter().any(|l| l.starts_with("ip -n dl7-n") && l.contains("250") && l.contains("eth0")));
    }

    #[test]
    fn every_object_made_by_up_is_removed_by_down() {
        let p = plan("clients = 3\n");
        let lines: Vec<String> = p.up.iter().map(|s| s.to_string()).collect();
        let down: Vec<String> = p.down.iter().map(|s| s.to_string()).collect();
        for ns in p.namespaces() {
            assert!(lines.contains(&format!("ip netns add {ns}")));
            assert!(down.contains(&format!("[ -e /run/netns/{ns} ] && ip netns del {ns}")), "{ns}");
            let kill = down.iter().position(|l| l.contains(&format!("pids {ns} "))).unwrap();
            let del = down.iter().position(|l| l.ends_with(&format!("netns del {ns}"))).unwrap();
            assert!(kill < del, "processes end before their namespace goes");
        }
        for link in p.links() {
            assert!(down.contains(&format!("[ -e /sys/class/net/{link} ] && ip link del {link}")), "{link}");
        }
        assert_eq!(down.last().unwrap(), "[ -e /sys/class/net/dl7-br ] && ip link del dl7-br");
        assert!(p.down.iter().all(|s| matches!(s, Step::KillProcessesIn(_) | Step::Run { only_if: Some(_), .. })));
    }

    #[test]
    fn prefix_ownership_is_exact() {
        let p = plan("");
        assert!(p.owns_name("dl7-n1"));
        assert!(!p.owns_name("dl7x-n1"));
        assert!(!p.owns_name("dl7"));
        assert!(!p.owns_name("eth0"));
    }

    #[test]
    fn plan_is_a_pure_function_of_the_file() {
        assert_eq!(plan("clients = 2\n"), plan("clients = 2\n"));
        assert_ne!(plan("clients = 2\n").up, plan("clients = 3\n").up);
    }

    #[test]
    fn display_quotes_only_when_needed() {
        let argv: Vec<String> = ["echo", "a b", "it's", "x=1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(shell_words(&argv), "echo 'a b' 'it'\\''s' x=1");
    }
}
