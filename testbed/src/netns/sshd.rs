//! The emulated lab as SSH hosts (`dl7 lab up --sshd`): an OpenSSH server in
//! every host namespace, bound to that host's lab address, so that the SSH
//! engine runs against the namespaces exactly as against lab PCs.
//!
//! Everything lives in the lab's state directory
//! ([`crate::lab::state_dir`], `/run/dl7/PREFIX`, mode 0700): one client
//! key pair, a host key, `sshd_config` and pid file per host, `known_hosts`
//! with those host keys, and an `ssh_config` for the controller (user root,
//! the key, strict host key checking against that `known_hosts`), which the
//! SSH engine picks up when the lab file names no other. Each sshd's
//! sessions get `PATH` with the directory of the `dl7` that brought the lab
//! up, as a lab PC has dl7 on its PATH. [`stop`] ends every sshd by the pid
//! it wrote and removes the directory (keys included).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{find_program, run_command};
use crate::lab::plan::LabPlan;
use crate::lab::state_dir;
use crate::lab::LabError;

/// How long an sshd may take to write its pid file and listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn io(path: &Path) -> impl Fn(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io { path: path.into(), source }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

fn keygen(path: &Path) -> Result<String, LabError> {
    let p = path.display().to_string();
    run_command(&argv(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dl7-lab", "-f", &p]), None)?;
    let public = PathBuf::from(format!("{p}.pub"));
    let text = std::fs::read_to_string(&public).map_err(io(&public))?;
    Ok(text.trim().to_string())
}

/// The sshd configuration of one host.
pub fn sshd_config(state: &Path, short: &str, addr: std::net::Ipv4Addr, path_dirs: &str) -> String {
    let s = state.display();
    format!(
        "# Written by `dl7 lab up --sshd`; removed by `dl7 lab down`.\n\
         Port 22\n\
         ListenAddress {addr}\n\
         HostKey {s}/host-{short}\n\
         AuthorizedKeysFile {s}/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PidFile {s}/sshd-{short}.pid\n\
         UsePAM no\n\
         StrictModes no\n\
         PrintMotd no\n\
         SetEnv PATH={path_dirs}\n\
         MaxSessions 64\n\
         MaxStartups 64\n"
    )
}

/// The controller's `ssh_config` for the lab's hosts.
pub fn ssh_config(state: &Path, plan: &LabPlan) -> String {
    let s = state.display();
    let addrs: Vec<String> = plan.hosts.iter().map(|h| h.addr.to_string()).collect();
    format!(
        "# Written by `dl7 lab up --sshd` for lab `{}`; removed by `dl7 lab down`.\n\
         Host {}\n  User root\n  IdentityFile {s}/id_ed25519\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {s}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
        plan.prefix,
        addrs.join(" ")
    )
}

/// Starts an sshd in every host namespace of a lab that is up. `dl7_dir`
/// goes first on the sessions' PATH. On failure, stops what it started.
pub fn start(plan: &LabPlan, dl7_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf, LabError> {
    for (program, package) in [("ssh-keygen", "openssh-client"), ("ssh", "openssh-client")] {
        if find_program(program).is_none() {
            return Err(LabError::MissingTool { program: program.into(), package: package.into() });
        }
    }
    // sshd must be started by an absolute path (it re-executes itself).
    let sshd = find_program("sshd")
        .or_else(|| Some(PathBuf::from("/usr/sbin/sshd")).filter(|p| p.is_file()))
        .ok_or_else(|| LabError::MissingTool { program: "sshd".into(), package: "openssh-server".into() })?;
    let state = state_dir(&plan.prefix);
    if state.exists() {
        stop(plan, log)?;
    }
    std::fs::create_dir_all(&state).map_err(io(&state))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).map_err(io(&state))?;
    // sshd's privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").map_err(io(Path::new("/run/sshd")))?;
    let result = (|| {
        let user = keygen(&state.join("id_ed25519"))?;
        let keys = state.join("authorized_keys");
        std::fs::write(&keys, format!("{user}\n")).map_err(io(&keys))?;
        let path_dirs = format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", dl7_dir.display());
        let mut known = String::new();
        for h in &plan.hosts {
            let host_key = keygen(&state.join(format!("host-{}", h.short)))?;
            known.push_str(&format!(
                "{} {}\n",
                h.addr,
                host_key.rsplit_once(' ').map_or(host_key.as_str(), |(k, _)| k)
            ));
            let conf = state.join(format!("sshd-{}.conf", h.short));
            std::fs::write(&conf, sshd_config(&state, &h.short, h.addr, &path_dirs)).map_err(io(&conf))?;
            let log_file = state.join(format!("sshd-{}.log", h.short));
            run_command(
                &argv(&[
                    "ip",
                    "netns",
                    "exec",
                    &h.netns,
                    &sshd.display().to_string(),
                    "-f",
                    &conf.display().to_string(),
                    "-E",
                    &log_file.display().to_string(),
                ]),
                None,
            )?;
            let pid_file = state.join(format!("sshd-{}.pid", h.short));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                let listening = std::net::TcpStream::connect_timeout(&(h.addr, 22).into(), Duration::from_millis(200));
                if pid_file.exists() && listening.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    let text = std::fs::read_to_string(&log_file).unwrap_or_default();
                    return Err(LabError::Command {
                        command: format!("sshd in {}", h.netns),
                        status: "not listening".into(),
                        stderr: format!("no sshd on {}:22 within {START_TIMEOUT:?}: {}", h.addr, text.trim()),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            log(&format!("# sshd on {} ({}:22)", h.short, h.addr));
        }
        let known_path = state.join("known_hosts");
        std::fs::write(&known_path, known).map_err(io(&known_path))?;
        let config = state.join("ssh_config");
        std::fs::write(&config, ssh_config(&state, plan)).map_err(io(&config))?;
        Ok(config)
    })();
    if result.is_err() {
        let _ = stop(plan, log);
    }
    result
}

/// Stops every sshd the lab's state directory has a pid file of (by that
/// pid, and only if it is still an sshd), then removes the directory and
/// its keys. Idempotent.
pub fn stop(plan: &LabPlan, log: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let state = state_dir(&plan.prefix);
    if !state.exists() {
        return Ok(());
    }
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(&state).map_err(io(&state))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("sshd-") && name.ends_with(".pid")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let Ok(pid) = text.trim().parse::<i32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        // The pid file may be stale: only an sshd started on this state directory is ours.
        let ours = String::from_utf8_lossy(&cmdline).contains(&state.display().to_string());
        if ours {
            // A pid we checked is our sshd.
            let _ = crate::process::send_signal(pid as u32, Signal::TERM);
            pids.push(pid);
            log(&format!("# stopping sshd {pid} ({name})"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids.iter().filter(|p| Path::new(&format!("/proc/{p}")).exists()) {
        let _ = crate::process::send_signal(*p as u32, Signal::KILL);
    }
    std::fs::remove_dir_all(&state).map_err(io(&state))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::LabConfig;

    #[test]
    fn configs_bind_each_host_and_trust_only_the_labs_keys() {
        let plan = LabPlan::new(&LabConfig::parse("subnet = \"198.18.0.0/24\"\nnodes = 2\n", "l").unwrap());
        let state = Path::new("/run/dl7/dl7");
        let conf = sshd_config(state, "n1", plan.hosts[2].addr, "/opt/dl7:/usr/bin");
        assert!(conf.contains("ListenAddress 198.18.0.11\n"));
        assert!(conf.contains("PidFile /run/dl7/dl7/sshd-n1.pid\n"));
        assert!(conf.contains("SetEnv PATH=/opt/dl7:/usr/bin\n"));
        let client = ssh_config(state, &plan);
        assert!(client.contains("Host 198.18.0.1 198.18.0.2 198.18.0.11 198.18.0.12 198.18.0.101\n"));
        assert!(client.contains("StrictHostKeyChecking yes"));
    }
}
