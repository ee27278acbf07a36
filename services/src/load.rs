//! `dl7 load`: the load generator.
//!
//! * Closed loop (WebStone-style): `connections` keep-alive connections, each
//!   sending its next request as soon as the previous response is complete
//!   (zero think time). Latency runs from send to last body byte.
//! * Open loop (wrk2 method): a constant total `rate`, spread evenly over the
//!   connections; request k of a connection is *intended* at
//!   `start + phase + k / per_connection_rate` and its latency is measured from
//!   that intended time, so a stalled server is charged for every request it
//!   delayed (no coordinated omission).
//!
//! * Timed replay (`Requests::Timed`): each request of a trace goes out at
//!   its logged time sped up (`dl7_traces::Schedule`, the simulator's
//!   schedule too), on a tokio timer, whatever the responses do: on the
//!   connection free the longest of a pool of `connections` opened in order
//!   at the start, on a new one when none is free, and not at all (counted
//!   as dropped) when `max_outstanding` are out. The report states how late
//!   the timer sent them (`send_lag_*`).
//!
//! Requests come from the workload's seeded stream (connection c draws from
//! `catalog.stream(sub_seed(seed, c))`, the one seed derivation of `dl7_core::seed`) or from a fixed list replayed exactly once
//! in total (connections take the next entry from a shared cursor).
//! Completions and failures are also counted by interval
//! ([`LoadReport::intervals`], `dl7_core::timeseries`), with the owner's
//! `X-Cache` verdict for the hit ratio.
//! Every response is verified: status 200, the object's exact length (after
//! gunzip when the node distilled it) and every byte against
//! [`crate::content::Pattern`] as it arrives (no body is held whole).
//! Failures are counted by kind and the connection is reopened. A request
//! whose kept-alive connection closed before any byte of its response is
//! resent once on a new connection, as RFC 9110 section 9.2.2 lets a client
//! do for idempotent requests; those are counted in `retried` (a response
//! cut short is an error, never resent).
//!
//! This module must not start services; it only drives a target address.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl7_core::timeseries::{Interval, Recorder};
use dl7_traces::{Catalog, ObjectId};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::content::Pattern;
use crate::error::LoadError;
use crate::http::{ClientConn, FetchError};

/// Where requests come from.
#[derive(Debug, Clone)]
pub enum Requests {
    /// Independent draws by weight, per-connection seeds derived from this one.
    Stream {
        /// The run's seed.
        seed: u64,
    },
    /// Exactly these objects, each requested once, in order of the shared cursor.
    List(Arc<Vec<ObjectId>>),
    /// A timed replay: these objects, each requested once at its logged
    /// time sped up ([`dl7_traces::Schedule`]), open loop.
    Timed {
        /// The objects, in trace order.
        list: Arc<Vec<ObjectId>>,
        /// Their logged times, seconds.
        times: Arc<Vec<u64>>,
        /// Logged seconds per replayed second.
        speed: f64,
        /// Most requests out at once (and connections open); later ones are dropped.
        max_outstanding: usize,
    },
}

/// Configuration of one load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where to send requests (front end or a node).
    pub target: SocketAddr,
    /// What may be requested, and what each body must be.
    pub catalog: Arc<Catalog>,
    /// Stream, fixed list or timed replay.
    pub requests: Requests,
    /// Concurrent keep-alive connections (a timed replay: the pool opened
    /// at the start, in order, before the first request is due).
    pub connections: usize,
    /// Requests completing before `warmup` ends are not recorded.
    pub warmup: Duration,
    /// Measurement window after the warm-up (a list run also stops when the
    /// list is done; a timed replay when its schedule is).
    pub duration: Duration,
    /// Open loop at this many requests/s in total; `None` = closed loop.
    pub rate: Option<f64>,
    /// Deadline of one request (connect included).
    pub timeout: Duration,
    /// A list or timed run: the first this many requests of the list (in
    /// the order they are sent) are not recorded.
    pub warmup_requests: u64,
    /// Length of the intervals of [`LoadReport::intervals`].
    pub interval: Duration,
}

impl LoadConfig {
    /// Closed loop, 1 s, 8 connections, stream seed 1, 1 s intervals.
    pub fn new(target: SocketAddr, catalog: Arc<Catalog>) -> Self {
        Self {
            target,
            catalog,
            requests: Requests::Stream { seed: 1 },
            connections: 8,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            rate: None,
            timeout: Duration::from_secs(5),
            warmup_requests: 0,
            interval: Duration::from_secs(1),
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Verified responses in the window.
    pub requests: u64,
    /// Body bytes of verified responses in the window (as delivered on the wire).
    pub payload_bytes: u64,
    /// Decoded body bytes of verified responses (equal to `payload_bytes` without distill).
    pub object_bytes: u64,
    /// Length of the measurement window actually covered, seconds.
    pub window_s: f64,
    /// Verified responses per second.
    pub req_per_s: f64,
    /// Payload megabits (10^6) per second.
    pub mbit_per_s: f64,
    /// Latency percentiles and maximum, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile latency, ms.
    pub p90_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile latency, ms.
    pub p999_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Failed or unverified responses in the window.
    pub errors: u64,
    /// Errors by kind: `connect`, `timeout`, `io`, `closed`, `bad_response`,
    /// `status_<code>`, `length`, `body`, `gzip`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests sent but not finished when the window closed.
    pub unfinished: u64,
    /// Responses per `x-dl7-served-by` node index (verified responses in the window).
    pub served_by: BTreeMap<u32, u64>,
    /// A list or timed replay: the list's measured requests (each sent or dropped, once).
    pub replayed: u64,
    /// A timed replay: measured requests not sent because `max_outstanding` were out.
    pub dropped: u64,
    /// A timed replay: how late its requests (all of them) reached their
    /// connection after their scheduled instant, ms: the timer's accuracy.
    pub send_lag_p50_ms: f64,
    /// 99th percentile of the send lag, ms.
    pub send_lag_p99_ms: f64,
    /// Largest send lag, ms.
    pub send_lag_max_ms: f64,
    /// The run by interval from the window's start (the warm-up's negative):
    /// the completions and failures recorded, by the instant they ended.
    pub intervals: Vec<Interval>,
    /// Requests resent on a new connection because their kept-alive one
    /// closed before any byte of the response (in the window).
    #[serde(default)]
    pub retried: u64,
    /// The load process's peak resident memory (`VmHWM`), bytes; 0 when not measured.
    #[serde(default)]
    pub peak_rss_bytes: u64,
}

impl LoadReport {
    /// One-paragraph human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "requests {}  req/s {:.1}  Mbit/s {:.2}  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  errors {}",
            self.requests, self.req_per_s, self.mbit_per_s, self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.errors
        );
        if !self.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self.errors_by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!(" ({})", kinds.join(", ")));
        }
        if self.replayed > 0 {
            s.push_str(&format!("  replayed {}  dropped {}", self.replayed, self.dropped));
        }
        if self.send_lag_max_ms > 0.0 {
            s.push_str(&format!(
                "  send lag p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
                self.send_lag_p50_ms, self.send_lag_p99_ms, self.send_lag_max_ms
            ));
        }
        if self.retried > 0 {
            s.push_str(&format!("  retried {}", self.retried));
        }
        s
    }
}

struct ConnStats {
    hist: Histogram<u64>,
    requests: u64,
    payload: u64,
    object_bytes: u64,
    errors: BTreeMap<String, u64>,
    served_by: BTreeMap<u32, u64>,
    unfinished: u64,
    replayed: u64,
    retried: u64,
}

impl ConnStats {
    fn new() -> Self {
        ConnStats {
            hist: latency_histogram(),
            requests: 0,
            payload: 0,
            object_bytes: 0,
            errors: BTreeMap::new(),
            served_by: BTreeMap::new(),
            unfinished: 0,
            replayed: 0,
            retried: 0,
        }
    }

    /// Counts one request's outcome: in the row when `in_window`, in the
    /// intervals when `charted` (at `at_ns` from the window's start).
    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        result: Result<(crate::http::ResponseHead, u64), Failure>,
        body_len: u64,
        latency: Duration,
        in_window: bool,
        charted: bool,
        at_ns: i64,
        series: &Mutex<Recorder>,
    ) {
        match result {
            Ok((head, decoded_len)) => {
                let us = latency.as_micros().max(1) as u64;
                if in_window {
                    self.requests += 1;
                    self.payload += body_len;
                    self.object_bytes += decoded_len;
                    let _ = self.hist.record(us);
                    if let Some(by) = head.served_by {
                        *self.served_by.entry(by).or_default() += 1;
                    }
                }
                if charted {
                    let hit = head.cache_hit == Some(true);
                    series.lock().expect("series lock").completed(at_ns, body_len, us, hit);
                }
            }
            Err(failure) => {
                if in_window {
                    *self.errors.entry(failure.key()).or_default() += 1;
                }
                if charted {
                    series.lock().expect("series lock").failed(at_ns);
                }
            }
        }
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// `t` in nanoseconds from `origin`, negative before it.
fn since(origin: Instant, t: Instant) -> i64 {
    if t >= origin {
        t.duration_since(origin).as_nanos() as i64
    } else {
        -(origin.duration_since(t).as_nanos() as i64)
    }
}

/// Runs the load and returns what it measured. Errors only for a config that
/// cannot run (empty catalog, zero connections, bad rate or speed).
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    if config.connections == 0 {
        return Err(LoadError::NoConnections);
    }
    if config.catalog.is_empty() {
        return Err(LoadError::EmptyCatalog);
    }
    if let Some(r) = config.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(LoadError::Rate { rate: r });
        }
    }
    let listed = match &config.requests {
        Requests::List(list) | Requests::Timed { list, .. } => Some(list),
        Requests::Stream { .. } => None,
    };
    if let Some(list) = listed {
        if let Some(bad) = list.iter().find(|id| id.index() >= config.catalog.len()) {
            return Err(LoadError::UnknownObject { object: bad.0, count: config.catalog.len() });
        }
    }
    // One alias table for every connection's stream (checks the weights, too).
    let draws = match config.requests {
        Requests::Stream { seed } => Some(config.catalog.stream(seed).map_err(LoadError::Stream)?.draws()),
        _ => None,
    };
    if let Requests::Timed { list, times, speed, max_outstanding } = &config.requests {
        if times.len() != list.len() {
            return Err(LoadError::Times { times: times.len(), requests: list.len() });
        }
        if *max_outstanding == 0 {
            return Err(LoadError::MaxOutstanding);
        }
        dl7_traces::Schedule::new(times, *speed).map_err(LoadError::Schedule)?;
    }
    if let Requests::Timed { .. } = config.requests {
        return Ok(timed(config).await);
    }
    let start = Instant::now();
    let window_start = start + config.warmup;
    let window_end = window_start + config.duration;
    let series = Arc::new(Mutex::new(Recorder::new(config.interval.as_nanos() as u64, since(window_start, start))));
    let cursor = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(config.connections);
    for c in 0..config.connections {
        let cfg = config.clone();
        let (cursor, series, draws) = (cursor.clone(), series.clone(), draws.clone());
        tasks.push(tokio::spawn(async move {
            connection(c, cfg, draws, cursor, series, start, window_start, window_end).await
        }));
    }
    let mut stats = Vec::with_capacity(tasks.len());
    for t in tasks {
        stats.push(t.await.map_err(LoadError::Task)?);
    }
    let end = Instant::now().min(window_end);
    let series = Arc::into_inner(series).expect("the connections are done").into_inner().expect("series lock");
    let mut report = report(stats, end.saturating_duration_since(window_start));
    report.intervals = series.finish(since(window_start, end));
    Ok(report)
}

/// Adds up the connections' figures over a window of `window`.
fn report(stats: Vec<ConnStats>, window: Duration) -> LoadReport {
    let mut hist = latency_histogram();
    let mut report = LoadReport::default();
    for s in stats {
        let _ = hist.add(&s.hist);
        report.requests += s.requests;
        report.payload_bytes += s.payload;
        report.object_bytes += s.object_bytes;
        report.unfinished += s.unfinished;
        report.replayed += s.replayed;
        report.retried += s.retried;
        for (k, v) in s.errors {
            *report.errors_by_kind.entry(k).or_default() += v;
        }
        for (k, v) in s.served_by {
            *report.served_by.entry(k).or_default() += v;
        }
    }
    let window = window.as_secs_f64().max(1e-9);
    report.errors = report.errors_by_kind.values().sum();
    report.window_s = window;
    report.req_per_s = report.requests as f64 / window;
    report.mbit_per_s = report.payload_bytes as f64 * 8.0 / 1e6 / window;
    let ms = |q: f64| if hist.is_empty() { 0.0 } else { hist.value_at_quantile(q) as f64 / 1000.0 };
    report.p50_ms = ms(0.5);
    report.p90_ms = ms(0.9);
    report.p99_ms = ms(0.99);
    report.p999_ms = ms(0.999);
    report.max_ms = if hist.is_empty() { 0.0 } else { hist.max() as f64 / 1000.0 };
    report
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    c: usize,
    cfg: LoadConfig,
    draws: Option<dl7_traces::Draws>,
    cursor: Arc<AtomicU64>,
    series: Arc<Mutex<Recorder>>,
    start: Instant,
    window_start: Instant,
    window_end: Instant,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let mut stream = match (&cfg.requests, &draws) {
        (Requests::Stream { seed }, Some(d)) => {
            Some(dl7_traces::RequestStream::with_draws(&cfg.catalog, d, dl7_core::seed::sub_seed(*seed, c as u64)))
        }
        _ => None,
    };
    let interval = cfg.rate.map(|r| Duration::from_secs_f64(cfg.connections as f64 / r));
    let phase = cfg.rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(c as f64 / r));
    let mut conn: Option<ClientConn> = None;
    let mut k: u32 = 0;
    loop {
        // A listed request is measured by its place in the list, a drawn one by the clock.
        let (id, listed_measured) = match (&mut stream, &cfg.requests) {
            (Some(s), _) => (s.next_id(), None),
            (None, Requests::List(list)) => {
                let i = cursor.fetch_add(1, Relaxed) as usize;
                match list.get(i) {
                    Some(&id) => {
                        let measured = i as u64 >= cfg.warmup_requests;
                        stats.replayed += u64::from(measured);
                        (id, Some(measured))
                    }
                    None => break,
                }
            }
            (None, _) => unreachable!("stream mode always has a stream; timed runs go through `timed`"),
        };
        let intended = match interval {
            Some(iv) => {
                let t = start + phase + iv * k;
                k += 1;
                if t >= window_end {
                    break;
                }
                tokio::time::sleep_until(t).await;
                t
            }
            None => {
                if Instant::now() >= window_end {
                    break;
                }
                Instant::now()
            }
        };
        let object = cfg.catalog.get(id);
        // Made per request (a few hundred bytes): a table for a million objects would not be.
        let pattern = Pattern::of(object);
        let mut resent = false;
        let outcome = tokio::time::timeout_at(
            Instant::now() + cfg.timeout,
            one_request(&mut conn, &cfg, &object.path, &pattern, &mut resent),
        )
        .await;
        let done = Instant::now();
        let in_window = listed_measured.unwrap_or(done >= window_start && done <= window_end);
        if resent && in_window {
            stats.retried += 1;
        }
        // A listed request is charted when measured; a drawn one from the warm-up to the window's end.
        let charted = listed_measured.unwrap_or(done <= window_end);
        let result = match outcome {
            Err(_) => {
                if done > window_end {
                    // Still waiting when the window closed: not an error, not a response.
                    stats.unfinished += 1;
                    break;
                }
                Err(Failure::Timeout)
            }
            Ok(Err(e)) => Err(e),
            Ok(Ok((head, check))) => check.verdict(&head, object.size).map(|decoded_len| (head, decoded_len)),
        };
        if !matches!(&result, Ok((head, _)) if head.keep_alive) {
            conn = None;
        }
        let body_len = result.as_ref().map_or(0, |(head, _)| head.content_length);
        let latency = done.saturating_duration_since(intended);
        let at = since(window_start, done);
        stats.count(result, body_len, latency, in_window, charted, at, &series);
    }
    stats
}

/// One request of a timed replay, handed to a free connection.
struct Job {
    /// Its position in the list.
    position: usize,
    /// When the schedule sends it.
    intended: Instant,
    /// Past the warm-up requests.
    measured: bool,
}

/// What the connections of a timed replay share: one set of figures (the
/// pool may grow to `max_outstanding` connections).
struct TimedShared {
    stats: ConnStats,
    /// Send lag, us.
    lag: Histogram<u64>,
}

/// A timed replay: a dispatcher thread hands each request, at its instant
/// of the schedule, to the connection free the longest (the pool of `connections`
/// opened first, in order, so that the front end pins them to receivers in
/// order), on a new connection when none is free, and drops it when
/// `max_outstanding` connections are busy. Latency runs from the scheduled
/// instant. The window opens with the first measured request's instant and
/// closes with the last response.
async fn timed(config: LoadConfig) -> LoadReport {
    let Requests::Timed { list, times, speed, max_outstanding } = config.requests.clone() else {
        unreachable!("a timed run")
    };
    let warmup = config.warmup_requests;
    let series = Arc::new(Mutex::new(Recorder::new(config.interval.as_nanos() as u64, 0)));
    let shared = Arc::new(Mutex::new(TimedShared { stats: ConnStats::new(), lag: latency_histogram() }));
    let idle = Arc::new(Mutex::new(VecDeque::new()));
    // The pool, opened in order before the clock starts; a failed connect is retried by its first request.
    let mut pool = Vec::with_capacity(config.connections);
    for _ in 0..config.connections.min(max_outstanding) {
        pool.push(ClientConn::connect(config.target, config.timeout).await.ok());
    }
    let runtime = tokio::runtime::Handle::current();
    let (series_d, shared_d, idle_d) = (series.clone(), shared.clone(), idle.clone());
    // The dispatcher runs on a thread of its own and sleeps with the OS's
    // timer: the connections' work (verifying every byte, gunzip) must not
    // make the schedule late, and tokio's timer ticks only every millisecond.
    let dispatcher = tokio::task::spawn_blocking(move || {
        let schedule = dl7_traces::Schedule::new(&times, speed).expect("checked in run");
        let origin_offset = schedule.iter().nth(warmup as usize).map_or(0, |(_, at)| at);
        let mut senders: Vec<mpsc::Sender<Job>> = Vec::new();
        let mut tasks = Vec::new();
        let start = Instant::now();
        let origin = start + Duration::from_nanos(origin_offset);
        let mut open = |conn: Option<ClientConn>, senders: &mut Vec<mpsc::Sender<Job>>| {
            let c = senders.len();
            let (tx, rx) = mpsc::channel(1);
            senders.push(tx);
            let (cfg, list) = (config.clone(), list.clone());
            let (series, shared, idle) = (series_d.clone(), shared_d.clone(), idle_d.clone());
            tasks
                .push(runtime.spawn(async move {
                    timed_connection(c, conn, rx, cfg, list, series, shared, idle, origin).await
                }));
            c
        };
        for conn in pool {
            let c = open(conn, &mut senders);
            idle_d.lock().expect("idle lock").push_back(c);
        }
        let (mut replayed, mut dropped) = (0, 0);
        for (taken, (position, at)) in schedule.iter().enumerate() {
            let intended = start + Duration::from_nanos(at);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            let measured = taken as u64 >= warmup;
            replayed += u64::from(measured);
            let free = idle_d.lock().expect("idle lock").pop_front();
            let c = match free {
                Some(c) => c,
                None if senders.len() < max_outstanding => open(None, &mut senders),
                None => {
                    dropped += u64::from(measured);
                    continue;
                }
            };
            // A free connection waits on its channel of one: there is room.
            if senders[c].try_send(Job { position, intended, measured }).is_err() {
                unreachable!("a free connection's channel is empty and open");
            }
        }
        (senders, tasks, replayed, dropped, origin)
    });
    let (senders, tasks, replayed, dropped, origin) = dispatcher.await.expect("the dispatcher does not panic");
    drop(senders);
    for t in tasks {
        // A panicked connection task is a bug; its figures are lost with it, so say so.
        if let Err(e) = t.await {
            eprintln!("load: a connection task failed: {e}");
        }
    }
    let end = Instant::now();
    let TimedShared { stats, lag } =
        Arc::into_inner(shared).expect("the connections are done").into_inner().expect("shared lock");
    let mut report = report(vec![stats], end.saturating_duration_since(origin));
    report.replayed = replayed;
    report.dropped = dropped;
    let ms = |v: u64| v as f64 / 1000.0;
    report.send_lag_p50_ms = ms(lag.value_at_quantile(0.5));
    report.send_lag_p99_ms = ms(lag.value_at_quantile(0.99));
    report.send_lag_max_ms = ms(lag.max());
    let series = Arc::into_inner(series).expect("the connections are done").into_inner().expect("series lock");
    report.intervals = series.finish(since(origin, end));
    report
}

#[allow(clippy::too_many_arguments)]
async fn timed_connection(
    c: usize,
    mut conn: Option<ClientConn>,
    mut jobs: mpsc::Receiver<Job>,
    cfg: LoadConfig,
    list: Arc<Vec<ObjectId>>,
    series: Arc<Mutex<Recorder>>,
    shared: Arc<Mutex<TimedShared>>,
    idle: Arc<Mutex<VecDeque<usize>>>,
    origin: Instant,
) {
    while let Some(job) = jobs.recv().await {
        let lag = Instant::now().saturating_duration_since(job.intended);
        let id = list[job.position];
        let object = cfg.catalog.get(id);
        let pattern = Pattern::of(object);
        let mut resent = false;
        let outcome =
            tokio::time::timeout(cfg.timeout, one_request(&mut conn, &cfg, &object.path, &pattern, &mut resent)).await;
        let done = Instant::now();
        // Bodies are checked as they arrive, a chunk at a time: no long check holds a worker.
        let result = match outcome {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok((head, check))) => check.verdict(&head, object.size).map(|decoded_len| (head, decoded_len)),
        };
        let body_len = result.as_ref().map_or(0, |(head, _)| head.content_length);
        if !matches!(&result, Ok((head, _)) if head.keep_alive) {
            conn = None;
        }
        {
            let mut s = shared.lock().expect("shared lock");
            s.lag.saturating_record(lag.as_micros() as u64);
            let latency = done.saturating_duration_since(job.intended);
            let at = since(origin, done);
            s.stats.retried += u64::from(resent && job.measured);
            s.stats.count(result, body_len, latency, job.measured, job.measured, at, &series);
        }
        idle.lock().expect("idle lock").push_back(c);
    }
}

async fn one_request<'p>(
    conn: &mut Option<ClientConn>,
    cfg: &LoadConfig,
    path: &str,
    pattern: &'p Pattern,
    resent: &mut bool,
) -> Result<(crate::http::ResponseHead, Check<'p>), Failure> {
    let fresh = conn.is_none();
    if fresh {
        *conn = Some(ClientConn::connect(cfg.target, cfg.timeout).await.map_err(kind)?);
    }
    let c = conn.as_mut().expect("connected above");
    let read_before = c.bytes_in;
    let mut check = Check::new(pattern);
    match c.get_with(path, false, |h, chunk| check.take(h, chunk)).await {
        Ok(h) => Ok((h, check)),
        // A kept-alive connection the server closed before answering: resend once on a new one.
        Err(FetchError::Closed | FetchError::Io(_)) if !fresh && c.bytes_in == read_before => {
            *resent = true;
            *conn = Some(ClientConn::connect(cfg.target, cfg.timeout).await.map_err(kind)?);
            let mut check = Check::new(pattern);
            let c = conn.as_mut().expect("connected above");
            let h = c.get_with(path, false, |h, chunk| check.take(h, chunk)).await.map_err(kind)?;
            Ok((h, check))
        }
        Err(e) => Err(kind(e)),
    }
}

/// Why one request counted as an error; [`Failure::key`] is its key in the
/// report's `errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The connection could not be opened.
    Connect,
    /// No whole response within the timeout.
    Timeout,
    /// The connection failed mid-exchange.
    Io,
    /// The server closed the connection before answering.
    Closed,
    /// The response is not HTTP.
    BadResponse,
    /// A status other than 200.
    Status(u16),
    /// A gzip body that does not decode.
    Gzip,
    /// A body of another length than the object's.
    Length,
    /// A body whose bytes are not the object's.
    Body,
}

impl Failure {
    /// The report's key: `connect`, `timeout`, `status_404`, `body`, ...
    fn key(self) -> String {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Io => "io",
            Failure::Closed => "closed",
            Failure::BadResponse => "bad_response",
            Failure::Status(s) => return format!("status_{s}"),
            Failure::Gzip => "gzip",
            Failure::Length => "length",
            Failure::Body => "body",
        }
        .to_string()
    }
}

fn kind(e: FetchError) -> Failure {
    match e {
        FetchError::Connect { .. } => Failure::Connect,
        FetchError::Timeout => Failure::Timeout,
        FetchError::Io(_) => Failure::Io,
        FetchError::Closed => Failure::Closed,
        FetchError::BadResponse(_) => Failure::BadResponse,
    }
}

/// Checks a 200 body against its object's pattern as it arrives (through a
/// streaming gunzip when the node distilled it), holding no body.
struct Check<'p> {
    plain: Matcher<'p>,
    gzip: Option<flate2::write::GzDecoder<Matcher<'p>>>,
    started: bool,
    gzip_failed: bool,
}

/// The decoded body's bytes compared with the pattern, offset by offset.
struct Matcher<'p> {
    pattern: &'p Pattern,
    offset: u64,
    equal: bool,
}

impl std::io::Write for Matcher<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.equal &= self.pattern.matches(self.offset, b);
        self.offset += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'p> Check<'p> {
    fn new(pattern: &'p Pattern) -> Self {
        Check { plain: Matcher { pattern, offset: 0, equal: true }, gzip: None, started: false, gzip_failed: false }
    }

    fn take(&mut self, head: &crate::http::ResponseHead, chunk: &[u8]) {
        use std::io::Write;
        if head.status != 200 {
            return;
        }
        if !self.started {
            self.started = true;
            if head.gzip {
                let m = Matcher { pattern: self.plain.pattern, offset: 0, equal: true };
                self.gzip = Some(flate2::write::GzDecoder::new(m));
            }
        }
        match &mut self.gzip {
            Some(d) => self.gzip_failed |= d.write_all(chunk).is_err(),
            None => {
                let _ = self.plain.write(chunk);
            }
        }
    }

    /// The response's verdict: the decoded body's length, or the error kind.
    fn verdict(self, head: &crate::http::ResponseHead, size: u64) -> Result<u64, Failure> {
        if head.status != 200 {
            return Err(Failure::Status(head.status));
        }
        let m = match self.gzip {
            Some(d) if !self.gzip_failed => d.finish().map_err(|_| Failure::Gzip)?,
            Some(_) => return Err(Failure::Gzip),
            None => self.plain,
        };
        if m.offset != size {
            return Err(Failure::Length);
        }
        if !m.equal {
            return Err(Failure::Body);
        }
        Ok(m.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ResponseHead;

    fn head(gzip: bool, len: u64) -> ResponseHead {
        ResponseHead {
            status: 200,
            content_length: len,
            body: crate::http::BodyKind::Length,
            keep_alive: true,
            content_type: dl7_traces::ContentType::Html,
            object_id: Some(5),
            served_by: None,
            cache_hit: None,
            gzip,
        }
    }

    #[test]
    fn bodies_are_checked_as_they_arrive_plain_or_gzipped() {
        use std::io::Write;
        let pattern = Pattern::new(5, dl7_traces::ContentType::Html);
        let body = pattern.body(100_000);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&body).unwrap();
        let zipped = enc.finish().unwrap();
        for (gzip, wire) in [(false, &body), (true, &zipped)] {
            let h = head(gzip, wire.len() as u64);
            let mut check = Check::new(&pattern);
            for chunk in wire.chunks(777) {
                check.take(&h, chunk);
            }
            assert_eq!(check.verdict(&h, 100_000), Ok(100_000), "gzip {gzip}");
            let mut bad = wire.clone();
            let last = bad.len() - if gzip { 12 } else { 1 };
            bad[last] ^= 1;
            let mut check = Check::new(&pattern);
            check.take(&h, &bad);
            assert!(check.verdict(&h, 100_000).is_err(), "gzip {gzip}: a flipped byte passed");
            let mut short = Check::new(&pattern);
            short.take(&h, &wire[..wire.len() / 2]);
            assert!(short.verdict(&h, 100_000).is_err(), "gzip {gzip}: half a body passed");
        }
    }
}
