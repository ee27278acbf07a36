//! `dl7 lab up|down|status LAB.toml` (an emulated lab in network namespaces,
//! root only) and `dl7 deploy LAB.toml` (per-machine commands for lab PCs).
//! Only argument handling: the work is in `dl7_testbed::netns` and `dl7_testbed::deploy`.

use std::path::{Path, PathBuf};

use dl7_core::Arch;
use dl7_testbed::deploy;
use dl7_testbed::lab::{LabConfig, LabError, LabPlan, Role};
use dl7_testbed::netns;

use super::input_error;

/// The lab and deploy subcommands (flattened into the top level).
#[derive(clap::Subcommand)]
pub enum LabCommand {
    /// Build, remove or inspect an emulated lab: a network namespace per host,
    /// a bridge as the switch, shaped links, kernel direct routing (root only).
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Print per-machine setup and teardown commands for real lab PCs
    /// (IPVS direct routing, VIP and ARP settings, dl7 service command lines).
    Deploy {
        /// The lab description file.
        lab: PathBuf,
        /// Write SHORT.up.sh and SHORT.down.sh per machine into this folder
        /// instead of printing them.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the file's `deploy.architecture`: conventional or distributed.
        #[arg(long)]
        architecture: Option<String>,
    },
}

/// What to do with an emulated lab.
#[derive(clap::Subcommand)]
pub enum LabAction {
    /// Create the lab. Refuses if anything with the lab's prefix exists.
    Up {
        /// The lab description file.
        lab: PathBuf,
        /// Remove a leftover lab with the same prefix first (and say so).
        #[arg(long)]
        clean: bool,
        /// Print the commands instead of running them (needs no root).
        #[arg(long)]
        dry_run: bool,
        /// Print each command as it runs.
        #[arg(short, long)]
        verbose: bool,
        /// Hosts as lab PCs for `engine = "ssh"`: no direct-routing setup (the
        /// SSH engine applies it per cell), and an OpenSSH server in every
        /// host namespace on its lab address, with a key pair, known_hosts and
        /// an ssh_config under /run/dl7/PREFIX/ (removed by `lab down`).
        #[arg(long)]
        sshd: bool,
    },
    /// Remove everything the lab made (processes in its namespaces, namespaces,
    /// links, bridge; nftables go with the front end's namespace). Idempotent.
    Down {
        /// The lab description file.
        lab: PathBuf,
        /// Print the commands instead of running them (needs no root).
        #[arg(long)]
        dry_run: bool,
        /// Print each command as it runs.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Switch a running lab's front end between the architectures:
    /// `distributed` installs the direct-routing rule (nodes answer clients),
    /// `conventional` removes it (an L7 balancer on the front end gets the VIP).
    Arch {
        /// The lab description file.
        lab: PathBuf,
        /// conventional or distributed.
        architecture: String,
        /// Distributed: forward to the first N nodes only (default: all), so
        /// one lab serves every cluster size of a sweep.
        #[arg(long)]
        nodes: Option<usize>,
    },
    /// List what of the lab exists: namespaces, links, addresses, shaping,
    /// nftables tables and each host's NIC byte counters.
    Status {
        /// The lab description file.
        lab: PathBuf,
    },
}

fn load(path: &Path) -> anyhow::Result<LabConfig> {
    LabConfig::load(path).map_err(input_error)
}

fn lab_error(err: LabError) -> anyhow::Error {
    match err {
        LabError::Config { .. } | LabError::Toml { .. } | LabError::BadNodeCount { .. } => input_error(err),
        other => anyhow::Error::new(other),
    }
}

/// Runs a lab or deploy subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Lab { action } => match action {
            LabAction::Up { lab: file, clean, dry_run, verbose, sshd } => {
                let mut plan = LabPlan::new(&load(&file)?);
                if sshd {
                    plan.up = plan.bare_up();
                }
                if dry_run {
                    plan.up.iter().for_each(|s| println!("{s}"));
                    return Ok(());
                }
                let mut log = |line: &str| {
                    if verbose || line.starts_with('#') {
                        eprintln!("{line}");
                    }
                };
                if clean {
                    netns::sshd::stop(&plan, &mut log).map_err(lab_error)?;
                }
                netns::up(&plan, clean, &mut log).map_err(lab_error)?;
                let nodes = plan.hosts_of(Role::Node).count();
                if sshd {
                    let exe = std::env::current_exe()?;
                    let dir = exe.parent().unwrap_or(Path::new("/"));
                    let config = match netns::sshd::start(&plan, dir, &mut log) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = netns::down(&plan, &mut log);
                            return Err(lab_error(e));
                        }
                    };
                    println!(
                        "lab {} up as {} SSH hosts on {} (bridge {}), VIP {}:{}; ssh -F {} root@{} reaches the front end; \
                         `engine = \"ssh\"` applies direct routing per cell",
                        plan.prefix,
                        plan.hosts.len(),
                        plan.subnet,
                        plan.bridge,
                        plan.vip,
                        plan.port,
                        config.display(),
                        plan.front().addr
                    );
                    return Ok(());
                }
                println!(
                    "lab {} up: {} hosts on {} (bridge {}), VIP {}:{} -> {nodes} nodes by direct routing",
                    plan.prefix,
                    plan.hosts.len(),
                    plan.subnet,
                    plan.bridge,
                    plan.vip,
                    plan.port
                );
                Ok(())
            }
            LabAction::Down { lab: file, dry_run, verbose } => {
                let plan = LabPlan::new(&load(&file)?);
                if dry_run {
                    plan.down.iter().for_each(|s| println!("{s}"));
                    return Ok(());
                }
                let mut log = |line: &str| {
                    if verbose || line.starts_with('#') {
                        eprintln!("{line}");
                    }
                };
                // Our sshds by their pids (and their keys) first, then the namespaces.
                netns::sshd::stop(&plan, &mut log).map_err(lab_error)?;
                netns::down(&plan, &mut log).map_err(lab_error)?;
                println!("lab {} down: no namespace or link named {}-* is left", plan.prefix, plan.prefix);
                Ok(())
            }
            LabAction::Arch { lab: file, architecture, nodes } => {
                let plan = LabPlan::new(&load(&file)?);
                let arch = Arch::from_name(&architecture).ok_or_else(|| {
                    input_error(format!("architecture {architecture:?}: expected conventional or distributed"))
                })?;
                netns::set_architecture(&plan, arch, nodes, &mut |_| {}).map_err(lab_error)?;
                match (arch, nodes) {
                    (Arch::Distributed, Some(n)) => println!(
                        "lab {}: front end set for the distributed architecture over the first {n} nodes",
                        plan.prefix
                    ),
                    _ => println!("lab {}: front end set for the {} architecture", plan.prefix, arch.name()),
                }
                Ok(())
            }
            LabAction::Status { lab: file } => {
                let plan = LabPlan::new(&load(&file)?);
                print!("{}", netns::status(&plan).map_err(lab_error)?);
                Ok(())
            }
        },
        LabCommand::Deploy { lab: file, out, architecture } => {
            let config = load(&file)?;
            let mut deploy_config = config.deploy.clone();
            if let Some(name) = architecture {
                deploy_config.architecture = Arch::from_name(&name).ok_or_else(|| {
                    input_error(format!("--architecture {name:?}: expected conventional or distributed"))
                })?;
            }
            let plan = LabPlan::new(&config);
            match out {
                None => print!("{}", deploy::render_all(&plan, &deploy_config)),
                Some(dir) => {
                    let written = deploy::write_dir(&plan, &deploy_config, &dir).map_err(lab_error)?;
                    println!("wrote {} scripts to {}", written.len(), dir.display());
                }
            }
            Ok(())
        }
    }
}
