//! Per-machine shell scripts for real lab PCs, computed purely from a lab
//! file: addresses, IPVS direct routing with round robin on the front end
//! (distributed architecture), the VIP on `lo` and the ARP sysctls on every
//! node, the dl7 service command lines, and a teardown per machine.
//!
//! ## Procedure on lab PCs
//! 1. Write a lab file for the real addresses (`subnet`, `vip`, `port`,
//!    `nodes`, `clients`, `[deploy]`); `[links]` is ignored on real NICs.
//! 2. `dl7 deploy LAB.toml --out lab-pcs/` writes `SHORT.up.sh` and
//!    `SHORT.down.sh` per machine (`fe`, `origin`, `n1`.., `c1`..); copy each
//!    pair to its machine together with the `dl7` binary.
//! 3. As root, start `origin.up.sh` and every `nI.up.sh`, then `fe.up.sh`
//!    (distributed: IPVS round robin with direct routing, `-g`; conventional:
//!    `dl7 front` on the VIP), and last the clients' `cJ.up.sh`.
//!    `DEV=enp3s0 ./n1.up.sh` names the lab NIC when it is not `eth0`.
//! 4. Afterwards stop the services (Ctrl-C) and run every `SHORT.down.sh`:
//!    it removes the IPVS service, the VIP, the ARP sysctls and the address.
//!
//! Text only: this module never runs anything. The dl7 service command lines
//! come from one function, [`service_command`], so that they follow the
//! services' flags in one place.

use std::fmt::Write as _;
use std::path::Path;

use dl7_core::Arch;

use super::config::DeployConfig;
use super::plan::{Host, LabPlan, Role};
use super::LabError;

/// The scripts of one lab PC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineScripts {
    /// Short host name, also the file name stem (`fe`, `origin`, `n1`, `c1`).
    pub short: String,
    /// What the machine is.
    pub title: String,
    /// Setup script, ending with the machine's dl7 service in the foreground (if any).
    pub up: String,
    /// Teardown script: undoes the setup; safe to run twice.
    pub down: String,
}

/// The dl7 command line of a host's service, or `None` when the host runs no
/// dl7 process (the front end under IPVS direct routing: the kernel forwards).
///
/// The flags are those of `dl7 origin|node|front|load --help`; this is the
/// only place that spells them, so a change of flags is a change here and in
/// the golden files.
pub fn service_command(plan: &LabPlan, deploy: &DeployConfig, host: &Host) -> Option<String> {
    let port = plan.port;
    let node_count = plan.hosts_of(Role::Node).count();
    let nodes: Vec<String> = plan.hosts_of(Role::Node).map(|n| format!("{}:{port}", n.addr)).collect();
    let nodes = nodes.join(",");
    let origin = format!("{}:{port}", plan.origin().addr);
    let (policy, workload) = (&deploy.policy, &deploy.workload);
    match (host.role, deploy.architecture) {
        (Role::Origin, _) => Some(format!("dl7 origin --workload {workload} --listen {origin}")),
        (Role::Node, Arch::Distributed) => Some(format!(
            // Every address: clients reach the VIP (direct routing), peers the node's own address.
            "dl7 node --id {} --nodes {nodes} --origin {origin} --policy {policy} --listen 0.0.0.0:{port}",
            host.index - 1
        )),
        (Role::Node, Arch::Conventional) => {
            Some(format!("dl7 node --id {} --nodes {nodes} --origin {origin} --policy {policy}", host.index - 1))
        }
        (Role::Front, Arch::Conventional) => Some(format!(
            "dl7 front --mode conventional --nodes {nodes} --policy {policy} --listen {}:{port}",
            plan.vip
        )),
        (Role::Front, Arch::Distributed) => None,
        (Role::Client, _) => {
            // The paper's 63 connections per server, shared among the client machines.
            let clients = plan.hosts_of(Role::Client).count();
            let connections = (63 * node_count).div_ceil(clients);
            Some(format!(
                "dl7 load --target {}:{port} --workload {workload} --seed {} --connections {connections} --duration-s 60",
                plan.vip, host.index
            ))
        }
    }
}

fn title(plan: &LabPlan, host: &Host) -> String {
    match host.role {
        Role::Front => "front end".into(),
        Role::Origin => "origin web server".into(),
        Role::Node => format!("cache node {} of {}", host.index, plan.hosts_of(Role::Node).count()),
        Role::Client => format!("client {} of {}", host.index, plan.hosts_of(Role::Client).count()),
    }
}

const ARP_SYSCTLS: [&str; 2] = ["arp_ignore", "arp_announce"];

/// The scripts of every machine of the lab, in plan order.
pub fn machine_scripts(plan: &LabPlan, deploy: &DeployConfig) -> Vec<MachineScripts> {
    plan.hosts.iter().map(|h| scripts_for(plan, deploy, h)).collect()
}

fn scripts_for(plan: &LabPlan, deploy: &DeployConfig, host: &Host) -> MachineScripts {
    let arch = deploy.architecture;
    let vip = plan.vip;
    let service = format!("{vip}:{}", plan.port);
    let addr = format!("{}/{}", host.addr, plan.subnet.len);
    let title = title(plan, host);
    let header = |what: &str| {
        format!(
            "#!/bin/sh\n# dl7 lab PC `{}` ({title}), {}: {what}.\n# Lab `{}`: subnet {}, VIP {service}, {} architecture.\n# Run as root on that machine; DEV names its lab NIC (default eth0).\n",
            host.short,
            host.addr,
            plan.prefix,
            plan.subnet,
            arch.name()
        )
    };
    let direct_routing_node = host.role == Role::Node && arch == Arch::Distributed;

    let mut up = header("setup");
    up.push_str("set -eu\nDEV=\"${DEV:-eth0}\"\n");
    let _ = writeln!(up, "ip addr replace {addr} dev \"$DEV\"");
    up.push_str("ip link set \"$DEV\" up\n");
    if host.role == Role::Front {
        up.push_str("# The front end owns the VIP: it alone answers ARP for it.\n");
        let _ = writeln!(up, "ip addr replace {vip}/32 dev \"$DEV\"");
        if arch == Arch::Distributed {
            up.push_str(
                "# IPVS direct routing, round robin: requests in, responses go from the nodes to the clients.\n",
            );
            let _ = writeln!(up, "ipvsadm -A -t {service} -s rr");
            for n in plan.hosts_of(Role::Node) {
                let _ = writeln!(up, "ipvsadm -a -t {service} -r {}:{} -g", n.addr, plan.port);
            }
            up.push_str("ipvsadm -L -n\n");
        }
    }
    if direct_routing_node {
        up.push_str(
            "# Direct routing: accept packets for the VIP, never answer ARP for it (sysctls before the VIP).\n",
        );
        for scope in ["all", "$DEV"] {
            let _ = writeln!(
                up,
                "sysctl -q -w \"net.ipv4.conf.{scope}.{}=1\" \"net.ipv4.conf.{scope}.{}=2\"",
                ARP_SYSCTLS[0], ARP_SYSCTLS[1]
            );
        }
        let _ = writeln!(up, "ip addr replace {vip}/32 dev lo");
    }
    match service_command(plan, deploy, host) {
        Some(cmd) => {
            let _ =
                writeln!(up, "# The service, in the foreground: stop it with Ctrl-C, then run {}.down.sh.", host.short);
            let _ = writeln!(up, "exec {cmd}");
        }
        None => up.push_str("# No dl7 process here: the kernel forwards.\n"),
    }

    let mut down = header("teardown");
    down.push_str("set -u\nDEV=\"${DEV:-eth0}\"\n");
    if host.role == Role::Front {
        if arch == Arch::Distributed {
            let _ = writeln!(down, "ipvsadm -D -t {service} || true");
        }
        let _ = writeln!(down, "ip addr del {vip}/32 dev \"$DEV\" || true");
    }
    if direct_routing_node {
        let _ = writeln!(down, "ip addr del {vip}/32 dev lo || true");
        down.push_str("# Back to the Linux defaults.\n");
        for scope in ["all", "$DEV"] {
            let _ = writeln!(
                down,
                "sysctl -q -w \"net.ipv4.conf.{scope}.{}=0\" \"net.ipv4.conf.{scope}.{}=0\"",
                ARP_SYSCTLS[0], ARP_SYSCTLS[1]
            );
        }
    }
    let _ = writeln!(down, "ip addr del {addr} dev \"$DEV\" || true");

    MachineScripts { short: host.short.clone(), title, up, down }
}

/// All scripts as one text for standard output, machine by machine.
pub fn render_all(plan: &LabPlan, deploy: &DeployConfig) -> String {
    let mut text = String::new();
    for m in machine_scripts(plan, deploy) {
        let _ = writeln!(text, "##### {}.up.sh ({})", m.short, m.title);
        text.push_str(&m.up);
        let _ = writeln!(text, "##### {}.down.sh ({})", m.short, m.title);
        text.push_str(&m.down);
    }
    text
}

/// Writes `SHORT.up.sh` and `SHORT.down.sh` per machine into `dir` (created
/// if missing, files executable); returns the paths written.
pub fn write_dir(plan: &LabPlan, deploy: &DeployConfig, dir: &Path) -> Result<Vec<std::path::PathBuf>, LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|source| LabError::Io { path: dir.into(), source })?;
    let mut written = Vec::new();
    for m in machine_scripts(plan, deploy) {
        for (suffix, text) in [("up", &m.up), ("down", &m.down)] {
            let path = dir.join(format!("{}.{suffix}.sh", m.short));
            std::fs::write(&path, text).map_err(|source| LabError::Io { path: path.clone(), source })?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|source| LabError::Io { path: path.clone(), source })?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::LabConfig;

    fn lab(arch: &str) -> (LabPlan, DeployConfig) {
        let text = format!("subnet = \"198.18.0.0/24\"\nnodes = 3\n[deploy]\narchitecture = \"{arch}\"\n");
        let config = LabConfig::parse(&text, "lab.toml").unwrap();
        (LabPlan::new(&config), config.deploy)
    }

    #[test]
    fn distributed_front_has_one_real_server_per_node_and_no_service() {
        let (plan, deploy) = lab("distributed");
        let fe = &machine_scripts(&plan, &deploy)[0];
        assert_eq!(fe.up.matches("ipvsadm -a -t 198.18.0.250:8080 -r ").count(), 3);
        assert!(fe.up.contains("ipvsadm -A -t 198.18.0.250:8080 -s rr\n"));
        assert!(fe.up.lines().filter(|l| l.starts_with("ipvsadm -a")).all(|l| l.ends_with(" -g")));
        assert!(!fe.up.contains("exec dl7"));
        assert!(fe.down.contains("ipvsadm -D -t 198.18.0.250:8080"));
    }

    #[test]
    fn conventional_has_no_ipvs_and_no_vip_on_nodes() {
        let (plan, deploy) = lab("conventional");
        let all = render_all(&plan, &deploy);
        assert!(!all.contains("ipvsadm"));
        assert!(!all.contains("dev lo"));
        assert!(all.contains(
            "exec dl7 front --mode conventional --nodes 198.18.0.11:8080,198.18.0.12:8080,198.18.0.13:8080 "
        ));
    }

    #[test]
    fn nodes_hide_the_vip_and_teardown_undoes_it() {
        let (plan, deploy) = lab("distributed");
        let n2 = machine_scripts(&plan, &deploy).into_iter().find(|m| m.short == "n2").unwrap();
        let arp = n2.up.find("arp_ignore=1").unwrap();
        let vip = n2.up.find("ip addr replace 198.18.0.250/32 dev lo").unwrap();
        assert!(arp < vip);
        assert!(n2.up.contains("exec dl7 node --id 1 "), "ids are 0-based");
        assert!(n2.down.contains("ip addr del 198.18.0.250/32 dev lo"));
        assert!(n2.down.contains("arp_ignore=0"));
    }
}
