//! Per-machine shell scripts for real lab PCs, computed purely from a lab
//! file: addresses, direct routing on the front end (distributed
//! architecture: IPVS round robin where the kernel has it, else the nftables
//! `fwd` rule, chosen when the script runs), the VIP on `lo` and the ARP
//! sysctls on every node, the dl7 service command lines, and a teardown per
//! machine. The setup and teardown lines are the per-host plan of
//! [`crate::hostplan`], the same the SSH engine runs.
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

use crate::hostplan::{self, script_line, Forwarding, HostSetup, Line, IPVS_PROBE};
use crate::lab::config::DeployConfig;
use crate::lab::plan::{Host, LabPlan, Role};
use crate::lab::LabError;

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

/// The scripts of every machine of the lab, in plan order.
pub fn machine_scripts(plan: &LabPlan, deploy: &DeployConfig) -> Vec<MachineScripts> {
    plan.hosts.iter().map(|h| scripts_for(plan, deploy, h)).collect()
}

/// Appends the lines of a plan, each with its comment; teardown lines never stop the script.
fn push_lines(text: &mut String, lines: &[Line], indent: &str, tolerant: bool) {
    for line in lines {
        if let Some(why) = line.why {
            let _ = writeln!(text, "{indent}# {why}");
        }
        let sh = script_line(line);
        if tolerant {
            let _ = writeln!(text, "{indent}{sh} 2>/dev/null || true");
        } else {
            let _ = writeln!(text, "{indent}{sh}");
        }
    }
}

fn scripts_for(plan: &LabPlan, deploy: &DeployConfig, host: &Host) -> MachineScripts {
    let arch = deploy.architecture;
    let service = format!("{}:{}", plan.vip, plan.port);
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
    const DEV: &str = "$DEV";
    let nodes = plan.hosts_of(Role::Node).count();
    let address = hostplan::address(plan, host, DEV);
    // The same per-host plan the SSH engine runs; the front end's forwarding
    // is chosen when the script runs, by what the kernel offers.
    let (first, second) = match host.role {
        Role::Front => (
            hostplan::front(plan, DEV, arch, nodes, Forwarding::Ipvs),
            Some(hostplan::front(plan, DEV, arch, nodes, Forwarding::Nft)),
        ),
        Role::Node => (hostplan::node(plan, DEV, arch), None),
        Role::Origin | Role::Client => (HostSetup::default(), None),
    };

    let mut up = header("setup");
    up.push_str("set -eu\nDEV=\"${DEV:-eth0}\"\n");
    push_lines(&mut up, &address.setup, "", false);
    match &second {
        Some(nft) if arch == Arch::Distributed => {
            // Lines shared by both ways (the VIP) come first, then the choice.
            let shared = first.setup.iter().take_while(|l| nft.setup.contains(l)).count();
            push_lines(&mut up, &first.setup[..shared], "", false);
            let _ = writeln!(up, "if {IPVS_PROBE}; then");
            let _ = writeln!(up, "  echo \"{}: IPVS direct routing\"", host.short);
            push_lines(&mut up, &first.setup[shared..], "  ", false);
            up.push_str("  ipvsadm -L -n\nelse\n");
            let _ = writeln!(up, "  echo \"{}: no IPVS here: nftables fwd direct routing\"", host.short);
            push_lines(&mut up, &nft.setup[shared..], "  ", false);
            up.push_str("fi\n");
        }
        _ => push_lines(&mut up, &first.setup, "", false),
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
    let mut teardown = first.teardown.clone();
    if let Some(nft) = &second {
        // Undo whichever forwarding the setup chose (the other one fails quietly).
        for line in &nft.teardown {
            if !teardown.contains(line) {
                teardown.insert(teardown.len().saturating_sub(1), line.clone());
            }
        }
    }
    push_lines(&mut down, &teardown, "", true);
    push_lines(&mut down, &address.teardown, "", true);

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
        assert!(fe.down.contains("nft delete table netdev dl7_dr"));
        assert!(fe.up.contains("if { [ -e /proc/net/ip_vs ]"));
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
