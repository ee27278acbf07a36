//! Active health checks of a service's peers, as operators configure them in
//! HAProxy (`server n1 ADDR check inter 2s rise 2 fall 3`, `option httpchk
//! GET /health`) and as Pingora runs them beside its selector: every
//! `interval` each peer gets a probe on a fresh connection, answered within
//! the interval; a peer that is up goes down after `fall` failed probes in a
//! row, one that is down comes back after `rise` good ones. The probe is one
//! of [`HealthCheck`]: a TCP connect (any backend), `GET path` with an
//! expected status (2xx/3xx by default, as `option httpchk`; dl7's nodes
//! answer [`HEALTH_PATH`], `/_dl7/health`), or none at all.
//!
//! Health stays outside the policy (Pingora's `backends.ready(&b)`): the
//! dispatcher walks the policy's candidates and skips the peers that are down
//! here, so a dead owner costs no connect per request once it is out; the
//! distributed front end hands no connection to it. Every peer starts up, so
//! a cluster serves from its first request. A node answers its probe 503
//! while it drains, so that peers stop sending to it before it is gone.
//! Below the panic threshold ([`Health::panicking`], Envoy's) the checks are
//! ignored: a cluster mostly marked down is more likely failing its checks
//! than its requests, and routing over the few left would overload them.
//!
//! The passive side (HAProxy's `observe layer4`) bridges the time until the
//! probes' verdict: a peer whose request just failed is skipped for
//! [`DOWN_FOR`], so that it costs one failed connect, not one per request.
//! A peer the probes bring back is tried at once, whatever it failed before.
//!
//! This module only probes and keeps the state; it never routes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::spec::{HealthCheck, HealthSpec, ProbePath, StatusSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::http::{wait_true, MAX_HEAD};

/// How long a peer whose request failed is skipped (the passive check).
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// Path of the probe every dl7 service answers, under dl7's reserved prefix
/// so that it never hides an origin's own `/health`: 200 while it serves,
/// 503 while it drains.
pub const HEALTH_PATH: &str = "/_dl7/health";

/// One peer's state as counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerStats {
    /// The peer's index (node id).
    pub peer: u32,
    /// True while the peer is in service.
    pub up: bool,
    /// Times it was taken out (`fall` failures in a row).
    pub downs: u64,
    /// Times it was brought back (`rise` successes in a row).
    pub ups: u64,
    /// Probes sent to it.
    pub probes: u64,
    /// Probes that failed (no answer in time, or not an expected status).
    pub failed_probes: u64,
}

struct Peer {
    /// Probed at all (a node does not probe itself).
    checked: bool,
    up: AtomicBool,
    /// Probe results in a row that disagree with `up`.
    streak: Mutex<u32>,
    downs: AtomicU64,
    ups: AtomicU64,
    probes: AtomicU64,
    failed: AtomicU64,
    /// Skipped until this many milliseconds after `epoch` (the passive check).
    passive_until_ms: AtomicU64,
    /// When the probes last brought it back, milliseconds after `epoch`
    /// (0: never; up since the start), for the dispatchers' ramp-up.
    up_at_ms: AtomicU64,
}

/// The health of every peer of one service, and the probes that keep it.
pub struct Health {
    spec: HealthSpec,
    peers: Vec<Peer>,
    /// Bumped on every transition, for whoever acts on changes (the lab's director).
    changes: watch::Sender<u64>,
    epoch: tokio::time::Instant,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("spec", &self.spec).field("peers", &self.stats()).finish()
    }
}

impl Health {
    /// `n` peers, all up; `checked[i]` false for a peer never probed (this
    /// service itself), which then stays up.
    pub fn new(spec: HealthSpec, checked: impl IntoIterator<Item = bool>) -> Arc<Self> {
        let peers = checked
            .into_iter()
            .map(|checked| Peer {
                checked,
                up: AtomicBool::new(true),
                streak: Mutex::new(0),
                downs: AtomicU64::new(0),
                ups: AtomicU64::new(0),
                probes: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                passive_until_ms: AtomicU64::new(0),
                up_at_ms: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Health { spec, peers, changes: watch::channel(0).0, epoch: tokio::time::Instant::now() })
    }

    /// Passive checks only: `n` peers never probed.
    pub fn passive(n: usize) -> Arc<Self> {
        Self::new(HealthSpec::default(), (0..n).map(|_| false))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A request to peer `i` failed: skip it for [`DOWN_FOR`] (or until the probes bring it back).
    pub fn mark_failed(&self, i: usize) {
        if let Some(p) = self.peers.get(i) {
            p.passive_until_ms.store(self.now_ms() + DOWN_FOR.as_millis() as u64, Relaxed);
        }
    }

    /// How long ago the probes brought peer `i` back, while it is up;
    /// `None` for a peer up since the start (or out now).
    pub fn up_for(&self, i: usize) -> Option<Duration> {
        let p = self.peers.get(i)?;
        let at = p.up_at_ms.load(Relaxed);
        (at != 0 && p.up.load(Relaxed)).then(|| Duration::from_millis(self.now_ms().saturating_sub(at)))
    }

    /// The settings.
    pub fn spec(&self) -> HealthSpec {
        self.spec
    }

    /// True unless peer `i` has been taken out by the probes or has just
    /// failed a request (an index beyond the peers is up: not this checker's to judge).
    pub fn is_up(&self, i: usize) -> bool {
        self.peers.get(i).is_none_or(|p| p.up.load(Relaxed) && p.passive_until_ms.load(Relaxed) <= self.now_ms())
    }

    /// True when fewer than the spec's `panic_percent` of `members` are up
    /// (Envoy's panic threshold): the dispatcher then routes as if every
    /// member were. Only asked on the failure path (the owner is out).
    pub fn panicking(&self, members: &[usize]) -> bool {
        let now = self.now_ms();
        let up = members
            .iter()
            .filter(|&&i| {
                self.peers.get(i).is_none_or(|p| p.up.load(Relaxed) && p.passive_until_ms.load(Relaxed) <= now)
            })
            .count();
        up * 100 < usize::from(self.spec.panic_percent) * members.len()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Counts one probe result of peer `i` and applies the hysteresis:
    /// returns the new state when it changed.
    pub fn record(&self, i: usize, ok: bool) -> Option<bool> {
        let p = &self.peers[i];
        p.probes.fetch_add(1, Relaxed);
        if !ok {
            p.failed.fetch_add(1, Relaxed);
        }
        let mut streak = p.streak.lock().expect("health lock");
        let up = p.up.load(Relaxed);
        if ok == up {
            *streak = 0;
            return None;
        }
        *streak += 1;
        if *streak < if up { self.spec.fall } else { self.spec.rise } {
            return None;
        }
        *streak = 0;
        p.up.store(!up, Relaxed);
        if up {
            p.downs.fetch_add(1, Relaxed);
        } else {
            p.ups.fetch_add(1, Relaxed);
            p.passive_until_ms.store(0, Relaxed);
            p.up_at_ms.store(self.now_ms(), Relaxed);
        }
        self.changes.send_modify(|g| *g += 1);
        Some(!up)
    }

    /// A receiver that changes on every transition of any peer.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every checked peer's state and counters.
    pub fn stats(&self) -> Vec<PeerStats> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.checked)
            .map(|(i, p)| PeerStats {
                peer: i as u32,
                up: p.up.load(Relaxed),
                downs: p.downs.load(Relaxed),
                ups: p.ups.load(Relaxed),
                probes: p.probes.load(Relaxed),
                failed_probes: p.failed.load(Relaxed),
            })
            .collect()
    }

    /// Probes every checked peer at `addrs[i]` each interval until `stop`
    /// turns true: one task per peer, so a slow peer delays no other. With
    /// [`HealthCheck::None`] nothing is sent.
    pub fn spawn_probes(self: &Arc<Self>, addrs: &[SocketAddr], stop: watch::Receiver<bool>) {
        if self.spec.check == HealthCheck::None {
            return;
        }
        for (i, &addr) in addrs.iter().enumerate().filter(|(i, _)| self.peers.get(*i).is_some_and(|p| p.checked)) {
            let (h, mut stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(h.spec.interval());
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = wait_true(&mut stop) => return,
                    }
                    let ok = probe(addr, &h.spec).await;
                    if let Some(up) = h.record(i, ok) {
                        tracing::warn!("peer {i} ({addr}) is {}", if up { "up" } else { "down" });
                    }
                }
            });
        }
    }
}

/// One probe of `addr` as `spec` says, on a fresh connection: true when it
/// passes within the spec's interval.
pub async fn probe(addr: SocketAddr, spec: &HealthSpec) -> bool {
    let timeout = spec.interval();
    match spec.check {
        HealthCheck::None => true,
        HealthCheck::Tcp => matches!(tokio::time::timeout(timeout, TcpStream::connect(addr)).await, Ok(Ok(_))),
        HealthCheck::Http => {
            let status = tokio::time::timeout(timeout, http_status(addr, spec.path.as_str())).await;
            matches!(status, Ok(Some(s)) if spec.expect.contains(s))
        }
    }
}

/// The status `GET path` gets from `addr`, or `None` when no complete,
/// parsable head comes back. Only the head is read (with `httparse`): the
/// body, whatever its framing or size (an index page, a chunked 404), is
/// the backend's business, and `Connection: close` lets the backend end it.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    let mut req = Vec::with_capacity(96 + path.len());
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(addr.to_string().as_bytes());
    req.extend_from_slice(b"\r\nUser-Agent: dl7-health\r\nConnection: close\r\n\r\n");
    s.write_all(&req).await.ok()?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if s.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            // An interim 1xx is no verdict: the final status follows it.
            Ok(httparse::Status::Complete(n)) if resp.code.is_some_and(|c| (100..200).contains(&c)) => {
                buf.drain(..n);
            }
            Ok(httparse::Status::Complete(_)) => return resp.code,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_falls_after_fall_failures_and_rises_after_rise_successes() {
        let h = Health::new(HealthSpec { interval_ms: 10, rise: 2, fall: 3, ..Default::default() }, [true, true]);
        assert!(h.is_up(0) && h.is_up(1));
        // A failure streak broken by a success does not count.
        assert_eq!((h.record(0, false), h.record(0, false), h.record(0, true)), (None, None, None));
        assert!(h.is_up(0));
        assert_eq!((h.record(0, false), h.record(0, false)), (None, None));
        assert_eq!(h.record(0, false), Some(false));
        assert!(!h.is_up(0) && h.is_up(1));
        assert_eq!((h.record(0, true), h.record(0, false), h.record(0, true)), (None, None, None));
        assert_eq!(h.record(0, true), Some(true));
        assert!(h.is_up(0));
        let s = h.stats()[0];
        assert_eq!((s.downs, s.ups, s.probes, s.failed_probes), (1, 1, 10, 6));
    }

    #[test]
    fn a_failed_request_skips_the_peer_until_the_probes_bring_it_back() {
        let h = Health::new(HealthSpec { interval_ms: 10, rise: 1, fall: 1, ..Default::default() }, [true, false]);
        h.mark_failed(1);
        assert!(!h.is_up(1), "passive: skipped after a failure");
        h.mark_failed(0);
        assert_eq!(h.record(0, false), Some(false));
        assert_eq!(h.record(0, true), Some(true));
        assert!(h.is_up(0), "back from the probes: the earlier failure no longer counts");
    }

    #[test]
    fn unchecked_and_unknown_peers_count_as_up_and_are_not_listed() {
        let h = Health::new(HealthSpec::default(), [false, true]);
        assert!(h.is_up(0) && h.is_up(7));
        assert_eq!(h.stats().iter().map(|s| s.peer).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(HealthSpec::default().validate().is_ok());
        assert!(HealthSpec { rise: 0, ..Default::default() }.validate().unwrap_err().to_string().contains("rise"));
        assert!(HealthSpec { fall: 0, ..Default::default() }.validate().unwrap_err().to_string().contains("fall"));
        assert!(HealthSpec { interval_ms: 0, ..Default::default() }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("interval_ms"));
    }

    #[tokio::test]
    async fn probes_take_a_dead_peer_out_and_bring_it_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener); // nothing listens: every probe is refused
        let h = Health::new(HealthSpec { interval_ms: 20, rise: 2, fall: 2, ..Default::default() }, [true]);
        let (stop_tx, stop) = watch::channel(false);
        let mut changes = h.subscribe();
        h.spawn_probes(&[addr], stop);
        changes.changed().await.unwrap();
        assert!(!h.is_up(0));
        // A node on that address answers 200: the peer comes back.
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let node = crate::node::NodeConfig::new(
            dl7_core::ServerId(0),
            dl7_core::Membership::numbered(1).unwrap(),
            vec![addr],
            addr,
            dl7_core::PolicySpec::parse("md5").unwrap(),
        );
        tokio::spawn(crate::node::run(listener, node, std::future::pending()));
        changes.changed().await.unwrap();
        assert!(h.is_up(0));
        let _ = stop_tx.send(true);
    }

    /// A plain web server that is no dl7 node: `/` is 200, every other
    /// path (`/health` included) 404, each with a body and `Connection: close`.
    async fn plain_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = [httparse::EMPTY_HEADER; 32];
                        let mut req = httparse::Request::new(&mut headers);
                        if let Ok(httparse::Status::Complete(_)) = req.parse(&buf) {
                            let answer: &[u8] = if req.path == Some("/") {
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                            } else {
                                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
                            };
                            let _ = s.write_all(answer).await;
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn each_check_judges_a_plain_web_server_as_its_operators_expect() {
        let web = plain_server().await;
        // Bound but not listening: connects are refused, and the port stays ours.
        let refusing = tokio::net::TcpSocket::new_v4().unwrap();
        refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dead = refusing.local_addr().unwrap();
        let spec = |check, path: &str, expect: &str| HealthSpec {
            interval_ms: 2000,
            check,
            path: path.parse().unwrap(),
            expect: expect.parse().unwrap(),
            ..HealthSpec::default()
        };
        // A connect is all a TCP check asks: a server without /health passes it.
        assert!(probe(web, &spec(HealthCheck::Tcp, "/health", "200-399")).await);
        assert!(!probe(dead, &spec(HealthCheck::Tcp, "/health", "200-399")).await);
        // dl7's own check of /_dl7/health fails there (404), as it should: that path is not this server's.
        assert!(!probe(web, &HealthSpec { check: HealthCheck::Http, ..HealthSpec::default() }).await);
        assert!(!probe(web, &spec(HealthCheck::Http, "/health", "200-399")).await);
        // Its index page passes, whatever its framing (chunked here).
        assert!(probe(web, &spec(HealthCheck::Http, "/", "200-399")).await);
        // Expected statuses are the operator's: a 404 may be fine.
        assert!(probe(web, &spec(HealthCheck::Http, "/health", "200-399,404")).await);
        assert!(!probe(dead, &spec(HealthCheck::Http, "/", "200-399")).await);
        assert!(probe(dead, &spec(HealthCheck::None, "/", "200-399")).await, "no check: never a failed probe");
    }

    #[tokio::test]
    async fn no_check_sends_no_probe_and_keeps_peers_up() {
        let h = Health::new(HealthSpec { check: HealthCheck::None, interval_ms: 1, ..Default::default() }, [true]);
        let refusing = tokio::net::TcpSocket::new_v4().unwrap();
        refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dead = refusing.local_addr().unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        h.spawn_probes(&[dead], stop);
        // Bounded: a few scheduler turns in which a probe task, had one been spawned, would run.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!((h.stats()[0].probes, h.is_up(0)), (0, true));
    }

    #[test]
    fn below_the_panic_threshold_health_is_ignored() {
        let spec = HealthSpec { rise: 1, fall: 1, ..Default::default() };
        let h = Health::new(spec, [true, true, true, true]);
        assert!(!h.panicking(&[0, 1, 2, 3]));
        h.record(0, false);
        h.record(1, false);
        assert!(!h.panicking(&[0, 1, 2, 3]), "half up is not below 50%");
        h.record(2, false);
        assert!(h.panicking(&[0, 1, 2, 3]), "one in four up");
        assert!(!h.panicking(&[3]), "the threshold is over the members, not every peer");
        let never = Health::new(HealthSpec { panic_percent: 0, ..spec }, [true]);
        never.record(0, false);
        assert!(!never.panicking(&[0]));
    }
}
