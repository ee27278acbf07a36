//! Starting the roles as OS processes (`dl7 origin|node|front|load ...`) and
//! stopping them again, with no orphans.
//!
//! * Every child gets `PR_SET_PDEATHSIG = SIGTERM`, so it drains and exits even
//!   if the launcher is killed outright; dropping a [`Proc`] sends SIGTERM,
//!   waits up to [`STOP_GRACE`], then SIGKILLs and reaps.
//! * A service child prints one line `dl7-ready listen=ADDR admin=ADDR|-`
//!   on stdout once bound ([`ready_line`]); the launcher waits for it instead
//!   of sleeping. `dl7 load` prints `dl7-result {json}` when done.
//! * Where a role runs is a [`Host`]: how a command reaches it (its
//!   [`Runner`]) and a bind address (default 127.0.0.1). This is the one seam
//!   between the engines: loopback runs `dl7 ...` here; the lab engine
//!   `ip netns exec NS dl7 ...` (root; `ip` execs, so the pid, the death
//!   signal and the /proc CPU figures stay those of the dl7 process); the SSH
//!   engine runs it on another machine over that host's master connection,
//!   under [`crate::ssh::WRAPPER`], which stops the service when the
//!   session's stdin closes. A service's config file goes where the service
//!   reads it ([`Host::put_config`]), its CPU time is read where it runs
//!   ([`Proc::cpu_seconds`]).
//!
//! This module must not know what the roles do; [`crate::cell`] does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use rustix::process::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use dl7_services::spec::ServiceSpec;

use crate::TestbedError;

/// Time a stopped child gets to drain before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a command reaches the host a role runs on.
#[derive(Clone, Default)]
pub enum Runner {
    /// This machine, the launcher's own namespace.
    #[default]
    Here,
    /// A network namespace on this machine (`ip netns exec NS`).
    Netns(String),
    /// Another machine, over its SSH master connection.
    Ssh(Arc<crate::ssh::Remote>),
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Runner::Here => f.write_str("Here"),
            Runner::Netns(ns) => write!(f, "Netns({ns})"),
            Runner::Ssh(r) => write!(f, "Ssh({})", r.access.dest),
        }
    }
}

/// Where one role runs.
#[derive(Debug, Clone)]
pub struct Host {
    /// How commands reach it.
    pub run: Runner,
    /// Address the role binds and is reached at.
    pub addr: IpAddr,
    /// Address to listen on when it differs from `addr` (e.g. `0.0.0.0` for a
    /// node that also accepts direct-routed connections to a virtual IP).
    pub bind: Option<IpAddr>,
    /// Port to bind; default: an ephemeral port (0); lab hosts use the lab's port.
    pub port: Option<u16>,
}

impl Host {
    /// Puts a service's config file where the service on this host reads it
    /// (`dir` here, this sweep's directory on a remote host); returns its path there.
    pub async fn put_config(&self, dir: &Path, name: &str, spec: &ServiceSpec) -> Result<String, TestbedError> {
        match &self.run {
            Runner::Here | Runner::Netns(_) => {
                let path = dir.join(format!("{name}.json"));
                // Owner-only: a config may hold the admin token.
                let write = || {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f =
                        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                    f.write_all(spec.to_json().as_bytes())
                };
                write().map_err(|source| TestbedError::Io { path: path.clone(), source })?;
                Ok(path.display().to_string())
            }
            Runner::Ssh(remote) => {
                // One directory per sweep on the host: the local dir's name keeps cells apart.
                let cell = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                remote.put(&format!("{cell}-{name}.json"), &spec.to_json()).await
            }
        }
    }
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

impl Default for Host {
    fn default() -> Self {
        Self { run: Runner::Here, addr: loopback(), bind: None, port: None }
    }
}

/// Addresses a child reported in its ready line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The service's main address.
    pub listen: SocketAddr,
    /// Its admin (`/metrics`) address, if it has one.
    pub admin: Option<SocketAddr>,
}

/// Parses a [`ready_line`].
pub fn parse_ready(line: &str) -> Option<Ready> {
    let rest = line.strip_prefix("dl7-ready ")?;
    let mut listen = None;
    let mut admin = None;
    for part in rest.split_whitespace() {
        if let Some(v) = part.strip_prefix("listen=") {
            listen = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("admin=") {
            admin = v.parse().ok();
        }
    }
    Some(Ready { listen: listen?, admin })
}

/// A TCP port on `addr` that is free now and that no other socket of this
/// machine takes by itself before a node binds it. Used for nodes, whose
/// addresses every other node must know before any starts; a node that
/// joins later, or restarts after a kill, binds its port seconds after the
/// reservation. A port of the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`) could meanwhile become the source port
/// of any outgoing connection (the load generator opens thousands) or
/// another listener's port 0, and the node would fail to bind it; so the
/// port is drawn below that range, where only an explicit bind lands, and
/// never handed out twice by this process. Where the range leaves no room
/// below it, port 0's answer, as before.
pub fn reserve_port(addr: IpAddr) -> std::io::Result<u16> {
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    const LOWEST: u16 = 16384;
    let below = ephemeral_low().unwrap_or(32768);
    if below > LOWEST + 1024 {
        let span = u32::from(below - LOWEST);
        // Where to start looking: differs between processes (parallel test
        // binaries, sweeps), so that they seldom try the same ports.
        let start = (std::process::id().wrapping_mul(2_654_435_761) >> 8) % span;
        let mut handed = HANDED_OUT.lock().expect("not poisoned");
        for k in 0..span {
            let port = LOWEST + ((start + k * 7919) % span) as u16;
            if handed.contains(&port) {
                continue;
            }
            if std::net::TcpListener::bind((addr, port)).is_ok() {
                handed.push(port);
                return Ok(port);
            }
        }
    }
    let l = std::net::TcpListener::bind((addr, 0))?;
    Ok(l.local_addr()?.port())
}

/// The lowest port of the kernel's ephemeral range, if it can be read.
fn ephemeral_low() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A running child process; stopped (SIGTERM, then SIGKILL) when dropped.
/// On a remote host the child is the `ssh` session: stopping closes its
/// stdin first, so that the host stops the service and it drains.
pub struct Proc {
    name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    run: Runner,
    /// The session's stdin (remote hosts): closing it stops the service.
    stdin: Option<tokio::process::ChildStdin>,
    /// The service's pid on its host (remote: from the wrapper's `dl7-pid` line; 0 until known).
    remote_pid: Arc<AtomicU32>,
}

impl Proc {
    /// Starts `exe args...` on `host`. Stdout is captured (protocol lines),
    /// stderr is inherited (logs).
    pub fn spawn(exe: &Path, host: &Host, name: &str, args: &[String]) -> std::io::Result<Proc> {
        let mut cmd = match &host.run {
            Runner::Netns(ns) => {
                let mut c = Command::new("ip");
                c.arg("netns").arg("exec").arg(ns).arg(exe);
                c.args(args);
                c
            }
            Runner::Here => {
                let mut c = Command::new(exe);
                c.args(args);
                c
            }
            Runner::Ssh(remote) => remote.command(&crate::ssh::Remote::service_command(&remote.dl7, args)),
        };
        let remote = matches!(host.run, Runner::Ssh(_));
        cmd.stdin(if remote { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::inherit());
        die_with_parent(cmd.as_std_mut());
        let mut child = cmd
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {name} ({}): {e}", exe.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        let remote_pid = Arc::new(AtomicU32::new(0));
        let (pid_slot, run) = (Arc::clone(&remote_pid), host.run.clone());
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if let (Some(pid), Runner::Ssh(remote)) =
                    (line.strip_prefix("dl7-pid ").and_then(|p| p.trim().parse().ok()), &run)
                {
                    pid_slot.store(pid, Ordering::Relaxed);
                    remote.note_started(pid);
                    continue;
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Messages name the machine when it is another one.
        let name = match &host.run {
            Runner::Ssh(remote) => format!("{name} on host {}", remote.access.short),
            _ => name.to_string(),
        };
        Ok(Proc { name, child, lines, run: host.run.clone(), stdin, remote_pid })
    }

    /// CPU seconds the service has used so far, read where it runs.
    pub async fn cpu_seconds(&self) -> Option<f64> {
        match &self.run {
            Runner::Here | Runner::Netns(_) => self.pid().and_then(dl7_services::procfs::cpu_seconds),
            Runner::Ssh(remote) => {
                let pid = self.remote_pid.load(Ordering::Relaxed);
                if pid == 0 {
                    return None;
                }
                // A round trip over the host's open counter session.
                let remote = Arc::clone(remote);
                tokio::task::spawn_blocking(move || remote.sample(&[pid])).await.ok()?.ok()?.cpu.first().copied()?
            }
        }
    }

    /// The name given at spawn (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the first stdout line starting with `prefix` (other lines are
    /// echoed to stderr). Fails if the child exits or `timeout` passes first.
    pub async fn line(&mut self, prefix: &str, timeout: Duration) -> Result<String, TestbedError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => return Err(self.failed(format!("no `{prefix}` line within {timeout:?}"))),
                Ok(None) => {
                    let status = self.child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    return Err(self.failed(format!("exited ({status}) before printing `{prefix}`")));
                }
                Ok(Some(l)) if l.starts_with(prefix) => return Ok(l),
                Ok(Some(l)) => eprintln!("[{}] {l}", self.name),
            }
        }
    }

    /// Waits for the ready line.
    pub async fn ready(&mut self, timeout: Duration) -> Result<Ready, TestbedError> {
        let l = self.line("dl7-ready", timeout).await?;
        parse_ready(&l).ok_or_else(|| self.failed(format!("malformed ready line {l:?}")))
    }

    /// An error of this service: it exited, said nothing in time or something unreadable.
    pub fn failed(&self, message: impl Into<String>) -> TestbedError {
        TestbedError::Service { service: self.name.clone(), message: message.into() }
    }

    /// Sends `signal` (e.g. `Signal::STOP` or `Signal::KILL` for faults) to the
    /// service. On a remote host that is `kill` over SSH (one round trip, so
    /// call it off the async threads), and its session then ends by itself;
    /// if the host cannot be reached, the local SSH client gets it instead.
    pub fn signal(&self, signal: Signal) {
        if let Runner::Ssh(remote) = &self.run {
            let pid = self.remote_pid.load(Ordering::Relaxed);
            let line = format!("kill -{} {pid}", signal.as_raw());
            if pid != 0 && remote.run("signal a service", &line, None).is_ok() {
                return;
            }
        }
        if let Some(pid) = self.child.id() {
            // A child that has just exited yields ESRCH: nothing left to signal.
            let _ = send_signal(pid, signal);
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps. Returns the exit status if known.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let deadline = std::time::Instant::now() + grace;
        if let Some(stdin) = self.stdin.take() {
            // A remote service: the wrapper stops it when its stdin closes, and the
            // session ends once it has drained and exited.
            drop(stdin);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.signal(Signal::TERM);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            // Reaping a child from a synchronous drop: poll waitpid briefly.
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.start_kill();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// Sends `signal` to process `pid` (for tools and tests that did not start it
/// through a [`Proc`]). Errors if the process does not exist.
pub fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not a process id: {pid}")))?;
    rustix::process::kill_process(pid, signal).map_err(std::io::Error::from)
}

/// Makes the child `cmd` starts get SIGTERM when this process dies, so that
/// no service or SSH master outlives the testbed, even killed outright.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: prctl(PR_SET_PDEATHSIG) is one, and
    // it touches only the child's own state. This is the testbed's one `unsafe`.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::TERM)).map_err(std::io::Error::from)
        });
    }
}

/// Puts `spec` where `host` reads it (`dir` here) and starts it on `host`.
pub async fn start_service(
    exe: &Path,
    host: &Host,
    name: &str,
    spec: &ServiceSpec,
    dir: &Path,
) -> Result<Proc, TestbedError> {
    let path = host.put_config(dir, name, spec).await?;
    let args = vec![spec.role().to_string(), "--config".to_string(), path];
    Proc::spawn(exe, host, name, &args).map_err(|source| TestbedError::Start { service: name.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl7_services::serve::ready_line;

    #[test]
    fn ready_lines_round_trip() {
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        assert_eq!(parse_ready(&ready_line(a, Some(b))), Some(Ready { listen: a, admin: Some(b) }));
        assert_eq!(parse_ready(&ready_line(a, None)), Some(Ready { listen: a, admin: None }));
        assert_eq!(parse_ready("dl7-ready admin=-"), None);
    }

    #[test]
    fn reserved_ports_are_distinct_and_below_the_ephemeral_range() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports: Vec<u16> = (0..50).map(|_| reserve_port(ip).unwrap()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "never handed out twice: {ports:?}");
        if let Some(low) = ephemeral_low().filter(|&l| l > 16384 + 1024) {
            assert!(ports.iter().all(|&p| (16384..low).contains(&p)), "outside {low}..: {ports:?}");
        }
        // (Not bound again here: a test of this binary that forks a child at
        // that moment holds the probe's socket until the child's exec, which
        // a bind microseconds later can see. A node binds its port later.)
    }
}
