//! Lab hosts over SSH: how the SSH engine runs a command on another machine.
//!
//! The system OpenSSH client, driven through `std::process` / `tokio::process`,
//! so that the user's `~/.ssh/config` (or an explicit `-F` file), agents and
//! keys work as in every other tool. One TCP connection per host for a whole
//! sweep: [`Remote::connect`] starts a `ControlMaster` as a child of this
//! process (it dies with us: `PR_SET_PDEATHSIG`), with its control socket in
//! a private directory; every later command is a multiplexed session over it
//! (`ControlMaster=no`). `BatchMode=yes`: a missing key fails at once instead
//! of prompting; keep-alives notice a host that drops.
//!
//! A service on a host runs under a small `sh` wrapper ([`WRAPPER`]): it
//! prints the service's pid, and stops the service (SIGTERM) when the
//! session's standard input closes: when we stop it, when this process dies
//! and when the connection drops. So nothing keeps running on a host that
//! nobody controls any more.
//!
//! [`lab`] is the engine's side: every host of a lab, the per-cell setup from
//! the same plan `dl7 deploy` prints, counters, teardown.
//!
//! This module must not know what the dl7 services do; [`crate::cell`] does.

pub mod hosts;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lab::plan::shell_words;
use crate::TestbedError;

/// How long a host may take to accept the master connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one short command (setup, a counter read) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Keep-alive interval (seconds) and count: a host that stops answering is
/// noticed within about six seconds.
const ALIVE_INTERVAL_S: u32 = 2;
const ALIVE_COUNT: u32 = 3;

/// Runs a service and stops it when standard input closes (see the module
/// doc). `$@` is the service's command line; its stdin is `/dev/null`. Once
/// the service has its own stderr, the wrapper's goes to `/dev/null`: the
/// shell's job notices ("Killed" after a fault's `kill -9`) are not the
/// service's log.
pub const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null 3<&- & p=$!
echo "dl7-pid $p"
exec 2>/dev/null
( read _ ; kill -TERM "$p" 2>/dev/null ) <&3 3<&- & w=$!
exec 3<&-
wait "$p"; rc=$?
kill "$w" 2>/dev/null
exit "$rc""#;

/// How to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Short host name, for messages (`fe`, `n1`).
    pub short: String,
    /// `[user@]host`.
    pub dest: String,
    /// SSH port, if not the default.
    pub port: Option<u16>,
    /// Identity file, if any.
    pub identity: Option<String>,
    /// An `ssh -F` file; `None`: the user's own configuration.
    pub config: Option<PathBuf>,
    /// The host's lab NIC.
    pub dev: String,
}

/// A session that answers counter reads at once (no new session, no shell
/// start-up per read), so that every host's counters are read at nearly
/// the same instant. A request is a line of pids; the answer: the NIC's
/// four counters, then `/proc/PID/stat` per pid (`-` if gone), then `end`.
const PROBE: &str = r#"getconf CLK_TCK
while read pids; do
  s=/sys/class/net/$0/statistics
  read a < $s/tx_bytes; read b < $s/rx_bytes; read c < $s/tx_packets; read d < $s/rx_packets
  echo "$a $b $c $d"
  for p in $pids; do if read st < /proc/$p/stat; then echo "$st"; else echo -; fi; done 2>/dev/null
  echo end
done"#;

struct Probe {
    child: Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
    ticks: f64,
}

/// One read of a host: its NIC counters and the CPU seconds of some processes.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// tx_bytes, rx_bytes, tx_packets, rx_packets.
    pub nic: [u64; 4],
    /// Per pid asked for, its CPU seconds, if it still runs.
    pub cpu: Vec<Option<f64>>,
}

/// One host reached through its own master connection.
pub struct Remote {
    /// How it is reached.
    pub access: Access,
    /// The dl7 binary on the host.
    pub dl7: String,
    /// Options every `ssh` invocation to it gets.
    options: Vec<String>,
    /// The master connection (our child).
    master: Mutex<Option<Child>>,
    /// The master's log (its stderr).
    log: PathBuf,
    /// A directory on the host for this sweep's config files (`mktemp -d`).
    dir: Mutex<Option<String>>,
    /// Pids of the services started on the host, for the final check that
    /// none is left.
    started: Mutex<Vec<u32>>,
    /// The counter-reading session, started on first use.
    probe: Mutex<Option<Probe>>,
}

/// An error of one step on one host.
pub fn fail(short: &str, step: &str, message: impl std::fmt::Display) -> TestbedError {
    TestbedError::Host { host: short.to_string(), step: step.to_string(), message: message.to_string() }
}

impl Remote {
    /// Starts the master connection to a host; [`Remote::wait_connected`]
    /// waits until it accepts sessions. `control_dir` holds the control
    /// socket and the master's log. Call it from a thread that lives as long
    /// as the connection should: the master gets SIGTERM when the thread
    /// that started it ends (`PR_SET_PDEATHSIG` follows the thread).
    pub fn connect(access: Access, dl7: &str, control_dir: &Path) -> Result<Remote, TestbedError> {
        let mut options = Vec::new();
        if let Some(f) = &access.config {
            options.extend(["-F".to_string(), f.display().to_string()]);
        }
        for o in [
            "BatchMode=yes".to_string(),
            format!("ControlPath={}/%C", control_dir.display()),
            "ConnectTimeout=10".to_string(),
            format!("ServerAliveInterval={ALIVE_INTERVAL_S}"),
            format!("ServerAliveCountMax={ALIVE_COUNT}"),
            "LogLevel=ERROR".to_string(),
        ] {
            options.extend(["-o".to_string(), o]);
        }
        if let Some(p) = access.port {
            options.extend(["-p".to_string(), p.to_string()]);
        }
        if let Some(i) = &access.identity {
            options.extend(["-i".to_string(), i.clone()]);
        }
        let log = control_dir.join(format!("{}.log", access.short));
        let remote = Remote {
            access,
            dl7: dl7.to_string(),
            options,
            master: Mutex::new(None),
            log,
            dir: Mutex::new(None),
            started: Mutex::new(Vec::new()),
            probe: Mutex::new(None),
        };
        remote.spawn_master()?;
        Ok(remote)
    }

    fn spawn_master(&self) -> Result<(), TestbedError> {
        let short = &self.access.short;
        let log = std::fs::File::create(&self.log)
            .map_err(|e| fail(short, "connect", format!("{}: {e}", self.log.display())))?;
        let mut cmd = Command::new("ssh");
        use std::os::unix::process::CommandExt as _;
        // Its own process group: a Ctrl-C at the terminal is the sweep's to
        // handle, and the teardown after it still needs the connection.
        cmd.process_group(0);
        cmd.args(&self.options)
            .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-N", "--", &self.access.dest])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        crate::process::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| fail(short, "connect", format!("cannot run ssh: {e} (apt-get install openssh-client)")))?;
        *self.master.lock().expect("not poisoned") = Some(child);
        Ok(())
    }

    /// Waits until the master accepts sessions (or fails, with its message).
    pub fn wait_connected(&self) -> Result<(), TestbedError> {
        let short = &self.access.short;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if let Some(status) = self.master_exited() {
                return Err(fail(
                    short,
                    "connect",
                    format!("ssh {} exited ({status}): {}", self.access.dest, self.master_log()),
                ));
            }
            let check = Command::new("ssh")
                .args(&self.options)
                .args(["-O", "check", "--", &self.access.dest])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if check.is_ok_and(|s| s.success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.close_master();
                return Err(fail(
                    short,
                    "connect",
                    format!("ssh {} did not connect within {CONNECT_TIMEOUT:?}", self.access.dest),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status of the master, if it has ended.
    fn master_exited(&self) -> Option<String> {
        let mut master = self.master.lock().expect("not poisoned");
        match master.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(e.to_string()),
            None => Some("closed".into()),
        }
    }

    fn master_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            "no message".into()
        } else {
            text
        }
    }

    /// Whether the master connection is still up; if not, why.
    pub fn alive(&self) -> Result<(), TestbedError> {
        match self.master_exited() {
            None => Ok(()),
            Some(status) => Err(TestbedError::Disconnected {
                host: self.access.short.clone(),
                dest: self.access.dest.clone(),
                status,
                log: self.master_log(),
            }),
        }
    }

    /// `ssh ... -- dest COMMAND` over the master (a std command, for short steps).
    pub fn std_command(&self, command: &str) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new("ssh");
        cmd.process_group(0);
        cmd.args(&self.options).args(["-o", "ControlMaster=no", "--", &self.access.dest, command]);
        cmd
    }

    /// As [`Remote::std_command`], for tokio.
    pub fn command(&self, command: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.process_group(0);
        cmd.args(&self.options).args(["-o", "ControlMaster=no", "--", &self.access.dest, command]);
        cmd
    }

    /// Runs a short shell command, with `stdin` fed to it; returns its stdout.
    /// Errors name the host, the step and the command.
    pub fn run(&self, step: &str, command: &str, stdin: Option<&str>) -> Result<String, TestbedError> {
        let short = &self.access.short;
        self.alive().map_err(|e| fail(short, step, e))?;
        let mut child = self
            .std_command(command)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(short, step, format!("cannot run ssh: {e}")))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(|e| fail(short, step, format!("`{command}`: stdin: {e}")))?;
        }
        // Read both pipes on threads, so a long output cannot block the wait.
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(short, step, format!("`{command}` did not finish within {COMMAND_TIMEOUT:?}")));
                }
                Err(e) => return Err(fail(short, step, format!("`{command}`: {e}"))),
            }
        };
        let stdout = reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if status.success() {
            return Ok(stdout);
        }
        let stderr = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        if status.code() == Some(255) {
            // ssh's own failure: the connection, not the command.
            let why = self.alive().err().map(|e| e.to_string()).unwrap_or(stderr);
            return Err(fail(short, step, format!("lost the SSH connection: {why}")));
        }
        Err(fail(short, step, format!("`{command}` failed ({status}): {stderr}")))
    }

    /// Makes this sweep's directory on the host.
    pub fn make_dir(&self) -> Result<String, TestbedError> {
        let dir = self.run("make a work directory", "mktemp -d /tmp/dl7-ssh.XXXXXX", None)?.trim().to_string();
        if !dir.starts_with("/tmp/dl7-ssh.") || dir.contains(char::is_whitespace) {
            return Err(fail(&self.access.short, "make a work directory", format!("unexpected mktemp output {dir:?}")));
        }
        *self.dir.lock().expect("not poisoned") = Some(dir.clone());
        Ok(dir)
    }

    /// Writes a file into this sweep's directory on the host; returns its path there.
    pub async fn put(&self, name: &str, text: &str) -> Result<String, TestbedError> {
        let short = &self.access.short;
        let step = format!("upload {name}");
        let dir =
            self.dir.lock().expect("not poisoned").clone().ok_or_else(|| fail(short, &step, "no work directory"))?;
        let path = format!("{dir}/{name}");
        let command = format!("cat > {}", shell_words(std::slice::from_ref(&path)));
        let mut child = self
            .command(&command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(short, &step, format!("cannot run ssh: {e}")))?;
        let mut pipe = child.stdin.take().expect("piped");
        use tokio::io::AsyncWriteExt as _;
        pipe.write_all(text.as_bytes()).await.map_err(|e| fail(short, &step, e))?;
        drop(pipe);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| fail(short, &step, "timed out"))?
            .map_err(|e| fail(short, &step, e))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).split_whitespace().collect::<Vec<_>>().join(" ");
            return Err(fail(short, &step, format!("`{command}` failed ({}): {stderr}", out.status)));
        }
        Ok(path)
    }

    /// The command line that runs `program args` on the host under [`WRAPPER`].
    pub fn service_command(program: &str, args: &[String]) -> String {
        let mut argv =
            vec!["exec".to_string(), "sh".into(), "-c".into(), WRAPPER.into(), "dl7-run".into(), program.into()];
        argv.extend(args.iter().cloned());
        shell_words(&argv)
    }

    /// Reads the host's NIC counters and the CPU time of `pids`, over a
    /// session kept open for it (blocking: a round trip).
    pub fn sample(&self, pids: &[u32]) -> Result<Sample, TestbedError> {
        use std::io::BufRead as _;
        let short = &self.access.short;
        let step = "read counters";
        self.alive().map_err(|e| fail(short, step, e))?;
        let mut slot = self.probe.lock().expect("not poisoned");
        if slot.is_none() {
            let command =
                shell_words(&["exec".into(), "sh".into(), "-c".into(), PROBE.into(), self.access.dev.clone()]);
            let mut child = self
                .std_command(&command)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| fail(short, step, format!("cannot run ssh: {e}")))?;
            let stdin = child.stdin.take().expect("piped");
            let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
            let mut first = String::new();
            out.read_line(&mut first).map_err(|e| fail(short, step, e))?;
            let ticks: f64 =
                first.trim().parse().map_err(|_| fail(short, step, format!("getconf CLK_TCK said {first:?}")))?;
            *slot = Some(Probe { child, stdin, out, ticks });
        }
        let probe = slot.as_mut().expect("just set");
        let ask = pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ");
        let mut lines = Vec::new();
        let answer = (|| -> std::io::Result<()> {
            writeln!(probe.stdin, "{ask}")?;
            probe.stdin.flush()?;
            loop {
                let mut line = String::new();
                if probe.out.read_line(&mut line)? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the session ended"));
                }
                if line.trim_end() == "end" {
                    return Ok(());
                }
                lines.push(line.trim_end().to_string());
            }
        })();
        if let Err(e) = answer {
            let _ = probe.child.kill();
            let _ = probe.child.wait();
            *slot = None;
            let why = self.alive().err().map_or_else(|| e.to_string(), |gone| gone.to_string());
            return Err(fail(short, step, why));
        }
        let nic: Vec<u64> =
            lines.first().map(|l| l.split_whitespace().filter_map(|w| w.parse().ok()).collect()).unwrap_or_default();
        let nic: [u64; 4] = nic
            .try_into()
            .map_err(|_| fail(short, step, format!("no counters of {} in {lines:?}", self.access.dev)))?;
        let ticks = probe.ticks;
        let cpu = lines.iter().skip(1).map(|l| dl7_services::procfs::parse_cpu_stat(l, ticks)).collect();
        Ok(Sample { nic, cpu })
    }

    /// Notes a service's pid on the host (from the wrapper's `dl7-pid` line).
    pub fn note_started(&self, pid: u32) {
        self.started.lock().expect("not poisoned").push(pid);
    }

    /// Ends any service this sweep started on the host that is still there
    /// (normally none: the wrapper stops each with its session): SIGKILL, and
    /// only a pid whose command line is still dl7's.
    pub fn reap_started(&self) -> Result<(), TestbedError> {
        let pids: Vec<u32> = std::mem::take(&mut *self.started.lock().expect("not poisoned"));
        if pids.is_empty() {
            return Ok(());
        }
        let list = pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ");
        let script = format!(
            "for p in {list}; do if grep -q dl7 /proc/$p/cmdline 2>/dev/null; then kill -KILL $p && echo $p; fi; done; true"
        );
        let killed = self.run("stop leftover services", &script, None)?;
        let killed: Vec<&str> = killed.split_whitespace().collect();
        if killed.is_empty() {
            Ok(())
        } else {
            Err(fail(&self.access.short, "stop services", format!("had to SIGKILL pid {}", killed.join(", "))))
        }
    }

    /// This sweep's directory on the host, if made and not removed.
    pub fn work_dir(&self) -> Option<String> {
        self.dir.lock().expect("not poisoned").clone()
    }

    /// Removes this sweep's directory on the host (if the host still answers).
    pub fn remove_dir(&self) -> Result<(), TestbedError> {
        let dir = self.dir.lock().expect("not poisoned").take();
        match dir {
            Some(d) => {
                self.run("remove the work directory", &format!("rm -rf {}", shell_words(&[d])), None).map(|_| ())
            }
            None => Ok(()),
        }
    }

    /// Ends the master connection: `ssh -O exit`, then our child by its pid.
    pub fn close_master(&self) {
        if let Some(mut probe) = self.probe.lock().expect("not poisoned").take() {
            drop(probe.stdin);
            let _ = probe.child.kill();
            let _ = probe.child.wait();
        }
        let mut master = self.master.lock().expect("not poisoned");
        if let Some(mut child) = master.take() {
            let _ = Command::new("ssh")
                .args(&self.options)
                .args(["-O", "exit", "--", &self.access.dest])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.close_master();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_stops_the_service_when_stdin_closes() {
        // Locally, without ssh: the same shell text, its stdin a pipe we close.
        let mut child = Command::new("sh")
            .args(["-c", WRAPPER, "dl7-run", "sleep", "30"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        let n = out.read(&mut first).unwrap();
        let line = String::from_utf8_lossy(&first[..n]).to_string();
        let pid: i32 = line.trim().strip_prefix("dl7-pid ").unwrap().parse().unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let started = Instant::now();
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "stopped at once, not after the sleep");
        assert!(!status.success(), "the service was terminated: {status}");
        assert!(
            !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap().is_empty()
        );
    }

    #[test]
    fn the_wrapper_reports_a_service_that_exits_by_itself() {
        let mut child = Command::new("sh")
            .args(["-c", WRAPPER, "dl7-run", "sh", "-c", "echo up; exit 3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Stdin stays open: the service ends by itself, and its status comes back.
        let stdin = child.stdin.take();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stdout).contains("up"));
    }

    #[test]
    fn service_commands_quote_every_argument() {
        let line =
            Remote::service_command("/opt/dl7 bin/dl7", &["node".into(), "--config".into(), "/tmp/a b.json".into()]);
        assert!(line.starts_with("exec sh -c '"), "{line}");
        assert!(line.ends_with(" dl7-run '/opt/dl7 bin/dl7' node --config '/tmp/a b.json'"), "{line}");
    }
}
