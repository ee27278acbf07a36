//! Both ends of the distributed front end's socket handoff (SCM_RIGHTS over
//! a Unix socket, the paper's direct return on one host): the front end's
//! [`Handoff`] sends each accepted client socket to a node and keeps its copy
//! until the node acknowledges it (one byte, in order), so that a node that
//! dies with sockets in its queue loses no client; the node's
//! [`receive_socket`] and [`acknowledge`] take them.
//!
//! This module must not parse HTTP: what is served on a socket is the node's.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, Mutex as AsyncMutex};
use tokio::time::Instant;

use crate::health::Health;

/// How long a node may leave a handed-over socket unacknowledged before the
/// front end stops giving it new clients (default of [`FrontConfig::handoff_stall`]).
pub const DEFAULT_HANDOFF_STALL: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) struct Handoff {
    paths: Vec<PathBuf>,
    links: Vec<AsyncMutex<Option<Link>>>,
    timeout: std::time::Duration,
    stall: std::time::Duration,
    health: Arc<Health>,
    /// Client sockets a node took but never acknowledged before its link
    /// died: nothing has read them, so they go to another node.
    orphans: mpsc::UnboundedSender<std::net::TcpStream>,
}

impl Handoff {
    /// The front end's side: one link per node's socket path in `paths`; a
    /// send that takes longer than `timeout` fails, a node that leaves a
    /// socket unacknowledged longer than `stall` gets no new ones; `orphans`
    /// receives the sockets a dead node never acknowledged.
    pub(crate) fn new(
        paths: Vec<PathBuf>,
        timeout: std::time::Duration,
        stall: std::time::Duration,
        health: Arc<Health>,
        orphans: mpsc::UnboundedSender<std::net::TcpStream>,
    ) -> Self {
        Handoff { links: paths.iter().map(|_| AsyncMutex::new(None)).collect(), paths, timeout, stall, health, orphans }
    }
}

/// Handed-over client sockets a node has not acknowledged yet, with their
/// send times. The front end keeps its copy of each until the node's
/// acknowledgement (one byte, in order), so that a node that dies with
/// sockets in its queue loses no client.
type Unacked = Arc<std::sync::Mutex<std::collections::VecDeque<(Instant, std::net::TcpStream)>>>;

/// The unix connection to one node and its unacknowledged handoffs.
struct Link {
    unix: Arc<UnixStream>,
    unacked: Unacked,
}

impl Link {
    async fn connect(path: &std::path::Path, orphans: mpsc::UnboundedSender<std::net::TcpStream>) -> Option<Link> {
        let unix = Arc::new(UnixStream::connect(path).await.ok()?);
        let unacked: Unacked = Default::default();
        let (u, a) = (unix.clone(), unacked.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            loop {
                let n = match u.readable().await {
                    Err(_) => 0,
                    Ok(()) => match u.try_read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        r => r.unwrap_or(0),
                    },
                };
                let mut q = a.lock().expect("ack lock");
                if n == 0 {
                    // The node is gone: whatever it did not acknowledge, it never served.
                    for (_, client) in q.drain(..) {
                        let _ = orphans.send(client);
                    }
                    return;
                }
                let acked = n.min(q.len());
                q.drain(..acked);
            }
        });
        Some(Link { unix, unacked })
    }

    /// True when the oldest unacknowledged handoff is older than `stall`.
    fn stalled(&self, stall: std::time::Duration) -> bool {
        self.unacked.lock().expect("ack lock").front().is_some_and(|(t, _)| t.elapsed() > stall)
    }
}

/// Sends the client socket to node `first`, or the next reachable one that
/// is up and not stalled; if every node is out or stalled, to the first
/// reachable one anyway. Gives the socket back if no node took it.
pub(crate) async fn hand_over(
    h: &Handoff,
    members: &[usize],
    first: usize,
    mut client: std::net::TcpStream,
) -> Result<(), std::net::TcpStream> {
    let n = members.len();
    for choosy in [true, false] {
        for k in 0..n {
            let i = members[(first + k) % n];
            if choosy && !h.health.is_up(i) {
                continue;
            }
            client = match try_node(h, i, client, choosy).await {
                Ok(()) => return Ok(()),
                Err(c) => c,
            };
        }
    }
    Err(client)
}

async fn try_node(
    h: &Handoff,
    i: usize,
    mut client: std::net::TcpStream,
    respect_stall: bool,
) -> Result<(), std::net::TcpStream> {
    use sendfd::SendWithFd;
    let mut link = h.links[i].lock().await;
    for _attempt in 0..2 {
        if link.is_none() {
            *link = Link::connect(&h.paths[i], h.orphans.clone()).await;
        }
        let Some(l) = link.as_ref() else { return Err(client) };
        if respect_stall && l.stalled(h.stall) {
            return Err(client); // not reading its handoffs (hung, stopped): skip it for now
        }
        let fd = client.as_raw_fd();
        // Queued first: the acknowledgement may come back before the send returns.
        l.unacked.lock().expect("ack lock").push_back((Instant::now(), client));
        let send = async {
            loop {
                l.unix.writable().await?;
                match l.unix.send_with_fd(&[0u8], &[fd]) {
                    Ok(1) => return Ok(()),
                    Ok(_) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        let sent = tokio::time::timeout(h.timeout, send).await;
        if let Ok(Ok(())) = sent {
            return Ok(());
        }
        // Not sent: take it back (the last entry: this link is ours while locked),
        // unless the link died meanwhile and its reader passed it on as an orphan.
        match l.unacked.lock().expect("ack lock").pop_back() {
            Some((_, c)) => client = c,
            None => return Ok(()),
        }
        match sent {
            Ok(Err(_)) => *link = None, // broken link: reconnect once
            _ => return Err(client),    // full socket buffer: the node is stuck
        }
    }
    Err(client)
}

/// Writes one acknowledgement byte; false when the front end is gone.
pub(crate) async fn acknowledge(unix: &UnixStream) -> bool {
    loop {
        if unix.writable().await.is_err() {
            return false;
        }
        match unix.try_write(&[1u8]) {
            Ok(1) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => return false,
        }
    }
}

/// Receives one TCP socket sent with SCM_RIGHTS; `None` when the sender is gone.
pub async fn receive_socket(unix: &UnixStream) -> Option<TcpStream> {
    use sendfd::RecvWithFd;
    loop {
        if unix.readable().await.is_err() {
            return None;
        }
        let mut byte = [0u8; 1];
        let mut fds: [RawFd; 1] = [-1];
        match unix.recv_with_fd(&mut byte, &mut fds) {
            Ok((0, _)) => return None,
            Ok((_, 1)) => {
                // SAFETY: the kernel just installed this descriptor for us and nothing else owns it.
                let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fds[0]) };
                if std_stream.set_nonblocking(true).is_err() {
                    continue;
                }
                match TcpStream::from_std(std_stream) {
                    Ok(s) => return Some(s),
                    Err(e) => tracing::warn!("handed-over socket unusable: {e}"),
                }
            }
            Ok(_) => tracing::warn!("handoff message without a descriptor"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!("handoff receive: {e}");
                return None;
            }
        }
    }
}
