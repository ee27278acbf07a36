//! The cluster model: hosts (front end, cache servers, origin), their
//! resources (a FIFO CPU and a full-duplex NIC each), the per-server caches,
//! and the path each request takes in each architecture. It sees time only
//! through the engine's [`Context`]; it must not keep its own clock.
//!
//! A request is a small record in a slot table and a [`Phase`]: each event
//! is the completion of one resource visit, and handling it reserves the
//! next resource on the request's path (see `crate` docs for the paths).

pub mod cache;
mod faults;
pub(crate) use faults::Rebuild;
pub mod host;

use std::collections::VecDeque;
use std::sync::Arc;

use dl7_core::policy::State;
use dl7_core::timeseries::Recorder;
use dl7_core::{LoadView, Membership, Policy, PolicyError, PolicySpec, RequestKey, ServerId};
use dl7_traces::schedule::ScheduleIter;
use dl7_traces::{ObjectId, RequestStream, SurgeUser};
use hdrhistogram::Histogram;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::engine::{Context, Model, Time};
use crate::Arch;
pub(crate) use cache::CacheSpec;
use cache::{FixedMap, NodeCache};
use dl7_core::costs::{Costs, ObjectCosts};
use host::{Station, Window};

const NONE: u32 = u32::MAX;
/// The event that means "the next Poisson arrival" (or the next request of a
/// timed replay), not a request slot.
pub(crate) const ARRIVAL: u32 = u32::MAX;
/// The event that means "the next fault of the schedule is due".
pub(crate) const FAULT: u32 = u32::MAX - 1;

/// Where a request is on its path; the event for a slot means "this phase is done".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A client waits (think time) before issuing its next request.
    Think,
    // Conventional: client -> FE -> server -> FE -> client.
    CFeRxReq,
    CFeParse,
    CFeTxReq,
    CSrvRxReq,
    CSrvServe,
    CSrvTxResp,
    CFeRxResp,
    CFeRelay,
    CFeTxResp,
    // Distributed: client -> FE (L4) -> receiver [-> owner -> receiver] -> client.
    DFeRxReq,
    DFeL4,
    DFeTxReq,
    DRcvRxReq,
    DRcvParse,
    DRcvTxFwd,
    DOwnRxFwd,
    DOwnServe,
    DOwnTxResp,
    DRcvRxResp,
    DRcvRelay,
    DRcvTxResp,
    // A miss at the owner: owner -> origin -> owner.
    MMiss,
    MOwnTxReq,
    MOrgRxReq,
    MOrgServe,
    MOrgTxResp,
    MOwnRxResp,
    MOwnStore,
    /// Parked behind another request's fetch of the same object at the owner.
    Waiting,
    /// Its owner died before sending a byte: the dispatcher sends it to the
    /// next live candidate (at this event).
    Retry,
    /// Its receiver died, or its owner mid-response: the client sees the
    /// connection fail (at this event).
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    obj: u32,
    receiver: u32,
    owner: u32,
    phase: Phase,
    start: Time,
    /// Next request parked on the same fetch.
    next_waiter: u32,
    /// A replayed request past the warm-up: counted whatever the clock says.
    measured: bool,
    /// Its owner served it from its cache.
    hit: bool,
    /// The incarnations of its receiver and owner when it was given them:
    /// a kill in between makes them stale.
    rcv_inc: u32,
    own_inc: u32,
}

/// Requests in flight per owner, for load-aware policies.
pub(crate) struct Inflight {
    per_server: Vec<u64>,
    total: u64,
}

impl LoadView for Inflight {
    fn inflight(&self, server: ServerId) -> u64 {
        self.per_server.get(server.index()).copied().unwrap_or(0)
    }
    fn total_inflight(&self) -> u64 {
        self.total
    }
}

/// How requests are generated. One value per run, so the size difference
/// between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Clients<'a> {
    /// Zero think time; one shared stream of object draws.
    Closed { stream: RequestStream<'a> },
    /// Open loop; new slots on demand up to `max_slots`, extra arrivals dropped.
    Poisson { stream: RequestStream<'a>, gap: Exp<f64>, rng: ChaCha8Rng, max_slots: usize },
    /// SURGE ON/OFF users, one per slot.
    OnOff { users: Vec<SurgeUser<'a>> },
    /// A trace's requests, each once; `next` counts those taken (sent or
    /// dropped) and the first `warmup` are not measured. Closed loop over
    /// the connection slots, or at the schedule's instants (`paced`).
    Replay { requests: &'a [ObjectId], next: usize, warmup: u64, paced: Option<Paced<'a>> },
}

/// A timed replay's client: every slot is a connection (pinned to a
/// receiver when it opens), holding at most one outstanding request.
pub(crate) struct Paced<'a> {
    /// Trace positions with their send instants, in send order.
    pub schedule: ScheduleIter<'a>,
    /// The trace position due at the next [`ARRIVAL`].
    pub due: Option<usize>,
    /// Free connections, the longest free first (the load generator's pool).
    pub idle: VecDeque<u32>,
    /// Most connections (outstanding requests); beyond, requests are dropped.
    pub max_outstanding: usize,
}

/// Statistics gathered in the measurement window.
pub(crate) struct Stats {
    /// Requests completed over the whole run, warm-up included.
    pub completed_all: u64,
    pub completed: u64,
    pub payload_bytes: u64,
    pub lookups: u64,
    pub hits: u64,
    pub lookup_bytes: u64,
    pub hit_bytes: u64,
    pub picks: u64,
    pub forwarded: u64,
    pub dropped: u64,
    /// Requests lost to a fault (in the window).
    pub errors: u64,
    /// Origin fetches over the whole run, warm-up included.
    pub fetches: u64,
    pub served_per_owner: Vec<u64>,
    pub latency_us: Histogram<u64>,
    /// When the last request completed (the end of a replay).
    pub last_completion: Time,
    /// A replay: the trace's measured requests (sent or dropped).
    pub replayed: u64,
    /// A replay: when each of the trace's requests was sent, by trace
    /// position (`Time::MAX`: dropped, or never sent).
    pub sent_at: Vec<Time>,
    /// Completions by interval, on the clock of the measured window.
    pub series: Recorder,
}

/// The hosts and their resources.
pub(crate) struct Cluster<'a> {
    pub arch: Arch,
    pub window: Window,
    pub fe_cpu: Station,
    pub fe_tx: Station,
    pub fe_rx: Station,
    pub cpu: Vec<Station>,
    pub tx: Vec<Station>,
    pub rx: Vec<Station>,
    pub origin_cpu: Station,
    pub origin_tx: Station,
    pub origin_rx: Station,
    pub caches: Vec<NodeCache>,
    keys: &'a [RequestKey<'a>],
    sizes: Vec<u64>,
    costs: Costs,
    /// Per object, indexed by object id.
    object_costs: Vec<ObjectCosts>,
    /// One per dispatcher (stateful policies), or one instance every
    /// dispatcher shares (pure and load-aware ones, or shared state).
    policies: Vec<Arc<dyn Policy>>,
    /// What each dispatcher knows of the load: the requests that it sent and
    /// that have not completed (one view per dispatcher, as independent
    /// KTCPVS dispatchers would have), or a single cluster-wide view.
    loads: Vec<Inflight>,
    /// Connections Squid holds open per server: requests from their arrival
    /// at the owner until the owner has sent the response.
    squid_open: Vec<u32>,
    /// IPVS round robin over connections (distributed).
    fe_next: u32,
    /// The fetches from the origin under way, by `flight_key(server, object)`,
    /// each with the first request parked on it (`NONE` if none): only
    /// fetches in flight take room, whatever the catalog's size.
    fetching: FixedMap<u64, u32>,
    reqs: Vec<Request>,
    free: Vec<u32>,
    clients: Clients<'a>,
    pub stats: Stats,
    /// Membership and liveness, changed by the fault schedule.
    pub(crate) nodes: faults::Nodes,
}

impl<'a> Cluster<'a> {
    /// A cluster with empty caches and no requests.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        arch: Arch,
        servers: usize,
        window: Window,
        keys: &'a [RequestKey<'a>],
        sizes: Vec<u64>,
        costs: Costs,
        object_costs: Vec<ObjectCosts>,
        policies: Vec<Arc<dyn Policy>>,
        load_views: usize,
        cache: CacheSpec,
        clients: Clients<'a>,
        series: Recorder,
    ) -> Self {
        let sent_at = match &clients {
            Clients::Replay { requests, .. } => vec![Time::MAX; requests.len()],
            _ => Vec::new(),
        };
        Cluster {
            arch,
            window,
            fe_cpu: Station::default(),
            fe_tx: Station::default(),
            fe_rx: Station::default(),
            cpu: vec![Station::default(); servers],
            tx: vec![Station::default(); servers],
            rx: vec![Station::default(); servers],
            origin_cpu: Station::default(),
            origin_tx: Station::default(),
            origin_rx: Station::default(),
            caches: (0..servers).map(|_| cache.empty()).collect(),
            keys,
            sizes,
            costs,
            object_costs,
            policies,
            loads: (0..load_views).map(|_| Inflight { per_server: vec![0; servers], total: 0 }).collect(),
            squid_open: vec![0; servers],
            fe_next: 0,
            fetching: FixedMap::default(),
            reqs: Vec::new(),
            free: Vec::new(),
            clients,
            nodes: faults::Nodes::new(servers, cache),
            stats: Stats {
                completed_all: 0,
                completed: 0,
                payload_bytes: 0,
                lookups: 0,
                hits: 0,
                lookup_bytes: 0,
                hit_bytes: 0,
                picks: 0,
                forwarded: 0,
                dropped: 0,
                errors: 0,
                fetches: 0,
                served_per_owner: vec![0; servers],
                // 1 us to 1 hour at 3 significant figures: a fixed footprint, whatever the run length.
                latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
                last_completion: 0,
                replayed: 0,
                sent_at,
                series,
            },
        }
    }

    /// Creates one client slot (a closed-loop or replay connection, or an
    /// ON/OFF user) per start instant; its first request goes out at that
    /// instant. A replay connection is pinned to one receiver, round robin
    /// in slot order.
    pub fn start_clients(&mut self, starts: impl Iterator<Item = Time>, ctx: &mut Context<u32>) {
        for at in starts {
            let slot = self.new_slot();
            if let Clients::Replay { .. } = self.clients {
                self.reqs[slot as usize].receiver = self.next_receiver();
            }
            let mut at = at;
            if let Clients::OnOff { users } = &mut self.clients {
                // ON/OFF users draw their first object (and think time) up front.
                let step = users[slot as usize].next_step();
                self.reqs[slot as usize].obj = step.object.0;
                at = at.saturating_add(step.think_ns);
            }
            self.reqs[slot as usize].phase = Phase::Think;
            ctx.schedule_at(at, slot);
        }
    }

    /// Schedules the first Poisson arrival, or opens a timed replay's pool
    /// of `pool` connections (pinned to receivers in order) and schedules its
    /// first request.
    pub fn start_arrivals(&mut self, pool: usize, ctx: &mut Context<u32>) {
        match &mut self.clients {
            Clients::Poisson { gap, rng, .. } => {
                let d = gap.sample(rng);
                ctx.schedule_in(crate::engine::seconds(d), ARRIVAL);
            }
            Clients::Replay { paced: Some(_), .. } => {
                for _ in 0..pool {
                    let slot = self.open_connection();
                    self.paced().idle.push_back(slot);
                }
                self.schedule_next_due(ctx);
            }
            _ => {}
        }
    }

    fn paced(&mut self) -> &mut Paced<'a> {
        match &mut self.clients {
            Clients::Replay { paced: Some(p), .. } => p,
            _ => unreachable!("a timed replay"),
        }
    }

    /// A new replay connection slot, given the front end's next receiver.
    fn open_connection(&mut self) -> u32 {
        let slot = self.new_slot();
        self.reqs[slot as usize].receiver = self.next_receiver();
        slot
    }

    /// The front end's next receiver: round robin over the members that run.
    fn next_receiver(&mut self) -> u32 {
        loop {
            let m = &self.nodes.members;
            let r = m[self.fe_next as usize % m.len()];
            self.fe_next = self.fe_next.wrapping_add(1);
            if self.nodes.alive[r as usize] || !self.nodes.alive.iter().any(|&a| a) {
                return r;
            }
        }
    }

    /// Schedules the timed replay's next request, if any is left.
    fn schedule_next_due(&mut self, ctx: &mut Context<u32>) {
        let p = self.paced();
        p.due = p.schedule.next().map(|(position, at)| {
            ctx.schedule_at(at, ARRIVAL);
            position
        });
    }

    /// A timed replay's request is due now: sent on the longest-free
    /// connection, on a new one when none is free, or dropped when
    /// `max_outstanding` are out.
    fn replay_due(&mut self, ctx: &mut Context<u32>) {
        let now = ctx.now();
        let Clients::Replay { requests, next, warmup, paced: Some(p) } = &mut self.clients else { return };
        let position = p.due.take().expect("an arrival is scheduled with its request");
        let obj = requests[position].0;
        let measured = *next as u64 >= *warmup;
        if *next as u64 == *warmup && *warmup > 0 {
            self.window.start = now;
        }
        *next += 1;
        let open = self.reqs.len();
        let slot = match p.idle.pop_front() {
            Some(slot) => Some(slot),
            None if open < p.max_outstanding => None,
            None => {
                self.stats.replayed += u64::from(measured);
                self.stats.dropped += u64::from(measured);
                self.schedule_next_due(ctx);
                return;
            }
        };
        let slot = slot.unwrap_or_else(|| self.open_connection());
        self.stats.replayed += u64::from(measured);
        self.stats.sent_at[position] = now;
        self.send(slot, obj, measured, now, ctx);
        self.schedule_next_due(ctx);
    }

    fn new_slot(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        self.reqs.push(Request {
            obj: 0,
            receiver: 0,
            owner: 0,
            phase: Phase::Think,
            start: 0,
            next_waiter: NONE,
            measured: false,
            hit: false,
            rcv_inc: 0,
            own_inc: 0,
        });
        (self.reqs.len() - 1) as u32
    }

    /// The object slot `slot` asks for next, and whether that request is a
    /// measured replay request; `None` when a replay has nothing left.
    fn next_object(&mut self, slot: u32, now: Time) -> Option<(u32, bool)> {
        match &mut self.clients {
            Clients::Closed { stream } | Clients::Poisson { stream, .. } => Some((stream.next_id().0, false)),
            // The ON/OFF user drew its object when it scheduled its think time.
            Clients::OnOff { .. } => Some((self.reqs[slot as usize].obj, false)),
            Clients::Replay { requests, next, warmup, .. } => {
                let obj = requests.get(*next)?.0;
                let measured = *next as u64 >= *warmup;
                if *next as u64 == *warmup && *warmup > 0 {
                    self.window.start = now;
                }
                self.stats.replayed += u64::from(measured);
                self.stats.sent_at[*next] = now;
                *next += 1;
                Some((obj, measured))
            }
        }
    }

    /// A client sends request `slot` now (a replay connection with nothing
    /// left to send closes instead).
    fn start_request(&mut self, r: u32, ctx: &mut Context<u32>) {
        let now = ctx.now();
        let Some((obj, measured)) = self.next_object(r, now) else { return };
        self.send(r, obj, measured, now, ctx);
    }

    /// Request `r` for object `obj` leaves its client now.
    fn send(&mut self, r: u32, obj: u32, measured: bool, now: Time, ctx: &mut Context<u32>) {
        let replay = matches!(self.clients, Clients::Replay { .. });
        if self.arch == Arch::Distributed && !replay {
            self.reqs[r as usize].receiver = self.next_receiver();
        }
        let rcv_inc = self.nodes.incarnation[self.reqs[r as usize].receiver as usize];
        let req = &mut self.reqs[r as usize];
        req.rcv_inc = rcv_inc;
        req.owner = NONE;
        req.obj = obj;
        req.start = now;
        req.next_waiter = NONE;
        req.measured = measured;
        let done = self.fe_rx.reserve(now, self.costs.req_wire, &self.window);
        match self.arch {
            Arch::Conventional => req.phase = Phase::CFeRxReq,
            // A replay connection keeps the receiver it was given when it opened.
            Arch::Distributed => req.phase = Phase::DFeRxReq,
        }
        ctx.schedule_at(done, r);
    }

    /// True when what happens to request `r` now is measured: inside the
    /// window, or (a replay) a request past the warm-up.
    #[inline]
    fn counts(&self, r: u32, now: Time) -> bool {
        match self.clients {
            Clients::Replay { .. } => self.reqs[r as usize].measured,
            _ => self.window.contains(now),
        }
    }

    /// The load view the dispatcher on `receiver` keeps.
    #[inline]
    fn load_view(&self, receiver: u32) -> usize {
        if self.loads.len() == 1 {
            0
        } else {
            receiver as usize
        }
    }

    /// The dispatcher on `receiver` (the front end in conventional runs)
    /// picks the owner of request `r`.
    fn pick(&mut self, r: u32, receiver: u32) -> u32 {
        let obj = self.reqs[r as usize].obj as usize;
        let p = if self.policies.len() == 1 { 0 } else { receiver as usize };
        let v = self.load_view(receiver);
        let view = faults::MemberView { load: &self.loads[v], members: &self.nodes.members };
        let pos = self.policies[p].pick(&self.keys[obj], &view).0;
        let mut owner = self.nodes.members[pos as usize];
        if !self.nodes.alive[owner as usize] {
            // The dispatchers route around a dead owner: the policy's next live candidate.
            owner = self.live_candidate(p, obj, &view).unwrap_or(owner);
        }
        self.loads[v].per_server[owner as usize] += 1;
        self.loads[v].total += 1;
        self.reqs[r as usize].own_inc = self.nodes.incarnation[owner as usize];
        owner
    }

    #[inline(always)]
    fn go(&mut self, r: u32, phase: Phase, done: Time, ctx: &mut Context<u32>) {
        self.reqs[r as usize].phase = phase;
        ctx.schedule_at(done, r);
    }

    /// The request reached its owner's cache.
    fn arrive_at_owner(&mut self, r: u32, ctx: &mut Context<u32>) {
        let now = ctx.now();
        let Request { obj, owner, .. } = self.reqs[r as usize];
        let hit = self.caches[owner as usize].lookup(obj);
        self.reqs[r as usize].hit = hit;
        self.squid_open[owner as usize] += 1;
        if self.counts(r, now) {
            let bytes = self.sizes[obj as usize];
            self.stats.lookups += 1;
            self.stats.lookup_bytes += bytes;
            self.stats.served_per_owner[owner as usize] += 1;
            if hit {
                self.stats.hits += 1;
                self.stats.hit_bytes += bytes;
            }
        }
        if hit {
            self.serve(r, ctx);
            return;
        }
        match self.fetching.entry(flight_key(owner, obj)) {
            std::collections::hash_map::Entry::Occupied(mut first) => {
                // Single flight: wait for the fetch already under way.
                let req = &mut self.reqs[r as usize];
                req.next_waiter = std::mem::replace(first.get_mut(), r);
                req.phase = Phase::Waiting;
                return;
            }
            std::collections::hash_map::Entry::Vacant(fetch) => {
                fetch.insert(NONE);
            }
        }
        self.stats.fetches += 1;
        let done = self.cpu[owner as usize].reserve(now, self.costs.miss, &self.window);
        self.go(r, Phase::MMiss, done, ctx);
    }

    /// The owner serves request `r` from its cache.
    fn serve(&mut self, r: u32, ctx: &mut Context<u32>) {
        let Request { obj, owner, receiver, .. } = self.reqs[r as usize];
        let c = &self.object_costs[obj as usize];
        let (cost, phase) = match self.arch {
            Arch::Conventional => (c.serve_net, Phase::CSrvServe),
            Arch::Distributed if owner == receiver => (c.serve_local, Phase::DOwnServe),
            Arch::Distributed => (c.serve_net, Phase::DOwnServe),
        };
        // Squid's poll() walks every open connection it holds.
        let poll = (self.costs.poll_ns_per_conn * self.squid_open[owner as usize] as f64) as Time;
        let done = self.cpu[owner as usize].reserve(ctx.now(), cost + poll, &self.window);
        self.go(r, phase, done, ctx);
    }

    fn complete(&mut self, r: u32, ctx: &mut Context<u32>) {
        let now = ctx.now();
        let Request { obj, start, hit, .. } = self.reqs[r as usize];
        self.unload(r);
        self.stats.completed_all += 1;
        self.stats.last_completion = now;
        let latency_us = ((now - start) / 1000).max(1);
        if self.counts(r, now) {
            self.stats.completed += 1;
            self.stats.payload_bytes += self.sizes[obj as usize];
            self.stats.latency_us.saturating_record(latency_us);
        }
        if self.charted(r, now) {
            let at = now as i64 - self.window.start as i64;
            self.stats.series.completed(at, self.sizes[obj as usize], latency_us, hit);
        }
        self.client_next(r, ctx);
    }

    /// True when what request `r` ends with now goes into the intervals.
    fn charted(&self, r: u32, now: Time) -> bool {
        match self.clients {
            Clients::Replay { .. } => self.reqs[r as usize].measured,
            // The warm-up too: its intervals are negative.
            _ => now < self.window.end,
        }
    }

    /// The client of slot `r`, its request done (answered or failed), goes on.
    fn client_next(&mut self, r: u32, ctx: &mut Context<u32>) {
        let now = ctx.now();
        match &mut self.clients {
            Clients::Replay { paced: Some(p), .. } => p.idle.push_back(r),
            Clients::Closed { .. } | Clients::Replay { .. } => self.start_request(r, ctx),
            Clients::Poisson { .. } => self.free.push(r),
            Clients::OnOff { users } => {
                let step = users[r as usize].next_step();
                self.reqs[r as usize].obj = step.object.0;
                self.go(r, Phase::Think, now.saturating_add(step.think_ns), ctx);
            }
        }
    }

    fn arrival(&mut self, ctx: &mut Context<u32>) {
        if let Clients::Replay { paced: Some(_), .. } = self.clients {
            self.replay_due(ctx);
            return;
        }
        let Clients::Poisson { gap, rng, max_slots, .. } = &mut self.clients else { return };
        let next = crate::engine::seconds(gap.sample(rng));
        let full = self.free.is_empty() && self.reqs.len() >= *max_slots;
        ctx.schedule_in(next.max(1), ARRIVAL);
        if full {
            if self.window.contains(ctx.now()) {
                self.stats.dropped += 1;
            }
            return;
        }
        let slot = self.new_slot();
        self.start_request(slot, ctx);
    }
}

impl Model for Cluster<'_> {
    type Event = u32;

    /// At N = 1024 with a million objects, 64k requests are in flight and
    /// thousands of events pass between two of one request's, so each event
    /// used to miss on its request record, its object's costs, size and key
    /// (the policy hashes the key) one after the other: prefetched a dozen
    /// events ahead, these misses overlap (that event loop ran about 13%
    /// faster).
    #[inline]
    fn soon(&self, r: u32) {
        let Some(req) = self.reqs.get(r as usize) else { return };
        prefetch(req);
        let obj = req.obj as usize;
        prefetch(&self.object_costs[obj]);
        prefetch(&self.keys[obj]);
        prefetch(&self.sizes[obj]);
    }

    fn handle(&mut self, r: u32, ctx: &mut Context<u32>) {
        if r == ARRIVAL {
            self.arrival(ctx);
            return;
        }
        if r == FAULT {
            self.next_fault(ctx);
            return;
        }
        if self.nodes.faulted && self.hit_by_fault(r) {
            return self.handle(r, ctx);
        }
        let now = ctx.now();
        let w = self.window;
        let Request { obj, receiver, owner, phase, .. } = self.reqs[r as usize];
        let (o, rc) = (owner as usize, receiver as usize);
        let c = &self.object_costs[obj as usize];
        match phase {
            Phase::Think => self.start_request(r, ctx),
            Phase::Waiting => unreachable!("a parked request has no event"),
            Phase::Retry => self.retry(r, ctx),
            Phase::Failed => self.fail(r, ctx),

            Phase::CFeRxReq => {
                let owner = self.pick(r, 0);
                self.reqs[r as usize].owner = owner;
                let done = self.fe_cpu.reserve(now, self.costs.fe_parse, &w);
                self.go(r, Phase::CFeParse, done, ctx);
            }
            Phase::CFeParse => {
                let done = self.fe_tx.reserve_cut_through(now, self.costs.req_wire, self.costs.frame_wire, &w);
                self.go(r, Phase::CFeTxReq, done, ctx);
            }
            Phase::CFeTxReq => {
                let done = self.rx[o].reserve(now, self.costs.req_wire, &w);
                self.go(r, Phase::CSrvRxReq, done, ctx);
            }
            Phase::CSrvRxReq => self.arrive_at_owner(r, ctx),
            Phase::CSrvServe => {
                let done = self.tx[o].reserve_cut_through(now, c.resp_wire, self.costs.frame_wire, &w);
                // The front end's ACKs for this response.
                self.fe_tx.reserve(now, c.ack_wire, &w);
                self.rx[o].reserve(now, c.ack_wire, &w);
                self.go(r, Phase::CSrvTxResp, done, ctx);
            }
            Phase::CSrvTxResp => {
                self.squid_open[o] -= 1;
                let done = self.fe_rx.reserve(now, c.resp_wire, &w);
                self.go(r, Phase::CFeRxResp, done, ctx);
            }
            Phase::CFeRxResp => {
                let done = self.fe_cpu.reserve(now, c.fe_relay, &w);
                self.go(r, Phase::CFeRelay, done, ctx);
            }
            Phase::CFeRelay => {
                let done = self.fe_tx.reserve(now, c.resp_wire, &w);
                // The client's ACKs.
                self.fe_rx.reserve(now, c.ack_wire, &w);
                self.go(r, Phase::CFeTxResp, done, ctx);
            }
            Phase::CFeTxResp | Phase::DRcvTxResp => self.complete(r, ctx),

            Phase::DFeRxReq => {
                let done = self.fe_cpu.reserve(now, self.costs.fe_l4_req, &w);
                self.go(r, Phase::DFeL4, done, ctx);
            }
            Phase::DFeL4 => {
                let done = self.fe_tx.reserve_cut_through(now, self.costs.req_wire, self.costs.frame_wire, &w);
                self.go(r, Phase::DFeTxReq, done, ctx);
            }
            Phase::DFeTxReq => {
                let done = self.rx[rc].reserve(now, self.costs.req_wire, &w);
                self.go(r, Phase::DRcvRxReq, done, ctx);
            }
            Phase::DRcvRxReq => {
                let owner = self.pick(r, receiver);
                self.reqs[r as usize].owner = owner;
                let local = owner == receiver;
                if self.counts(r, now) {
                    self.stats.picks += 1;
                    self.stats.forwarded += u64::from(!local);
                }
                let cost = if local { self.costs.parse_local } else { self.costs.parse_fwd };
                let done = self.cpu[rc].reserve(now, cost, &w);
                self.go(r, Phase::DRcvParse, done, ctx);
            }
            Phase::DRcvParse => {
                if owner == receiver {
                    self.arrive_at_owner(r, ctx);
                } else {
                    let done = self.tx[rc].reserve_cut_through(now, self.costs.req_wire, self.costs.frame_wire, &w);
                    self.go(r, Phase::DRcvTxFwd, done, ctx);
                }
            }
            Phase::DRcvTxFwd => {
                let done = self.rx[o].reserve(now, self.costs.req_wire, &w);
                self.go(r, Phase::DOwnRxFwd, done, ctx);
            }
            Phase::DOwnRxFwd => self.arrive_at_owner(r, ctx),
            Phase::DOwnServe => {
                if owner == receiver {
                    self.squid_open[o] -= 1;
                    let done = self.cpu[rc].reserve(now, c.relay_local, &w);
                    self.go(r, Phase::DRcvRelay, done, ctx);
                } else {
                    let done = self.tx[o].reserve_cut_through(now, c.resp_wire, self.costs.frame_wire, &w);
                    // The receiver's ACKs back to the owner.
                    self.tx[rc].reserve(now, c.ack_wire, &w);
                    self.rx[o].reserve(now, c.ack_wire, &w);
                    self.go(r, Phase::DOwnTxResp, done, ctx);
                }
            }
            Phase::DOwnTxResp => {
                self.squid_open[o] -= 1;
                let done = self.rx[rc].reserve(now, c.resp_wire, &w);
                self.go(r, Phase::DRcvRxResp, done, ctx);
            }
            Phase::DRcvRxResp => {
                let done = self.cpu[rc].reserve(now, c.relay_fwd, &w);
                self.go(r, Phase::DRcvRelay, done, ctx);
            }
            Phase::DRcvRelay => {
                // Direct routing: the response goes straight to the client;
                // only the client's ACKs pass through the front end.
                let done = self.tx[rc].reserve(now, c.resp_wire, &w);
                self.fe_rx.reserve(now, c.ack_wire, &w);
                self.fe_cpu.reserve(now, c.fe_l4_acks, &w);
                self.fe_tx.reserve(now, c.ack_wire, &w);
                self.rx[rc].reserve(now, c.ack_wire, &w);
                self.go(r, Phase::DRcvTxResp, done, ctx);
            }

            Phase::MMiss => {
                let done = self.tx[o].reserve_cut_through(now, self.costs.req_wire, self.costs.frame_wire, &w);
                self.go(r, Phase::MOwnTxReq, done, ctx);
            }
            Phase::MOwnTxReq => {
                let done = self.origin_rx.reserve(now, self.costs.req_wire, &w);
                self.go(r, Phase::MOrgRxReq, done, ctx);
            }
            Phase::MOrgRxReq => {
                let done = self.origin_cpu.reserve(now, c.origin_serve, &w);
                self.go(r, Phase::MOrgServe, done, ctx);
            }
            Phase::MOrgServe => {
                let done = self.origin_tx.reserve_cut_through(now, c.resp_wire, self.costs.frame_wire, &w);
                self.tx[o].reserve(now, c.ack_wire, &w);
                self.origin_rx.reserve(now, c.ack_wire, &w);
                self.go(r, Phase::MOrgTxResp, done, ctx);
            }
            Phase::MOrgTxResp => {
                let done = self.rx[o].reserve(now, c.resp_wire, &w);
                self.go(r, Phase::MOwnRxResp, done, ctx);
            }
            Phase::MOwnRxResp => {
                let done = self.cpu[o].reserve(now, c.store, &w);
                self.go(r, Phase::MOwnStore, done, ctx);
            }
            Phase::MOwnStore => {
                self.caches[o].insert(obj, self.sizes[obj as usize]);
                let mut waiter = self.fetching.remove(&flight_key(owner, obj)).expect("a fetch under way");
                self.serve(r, ctx);
                while waiter != NONE {
                    let next = self.reqs[waiter as usize].next_waiter;
                    self.serve(waiter, ctx);
                    waiter = next;
                }
            }
        }
    }
}

/// The policy instances and the number of load views for `dispatchers`
/// dispatchers. A pure or load-aware policy is built once and shared (it
/// holds nothing mutable, so every copy would answer alike: a cell at N =
/// 1024 builds one Maglev table, not 1024); a stateful one gets an instance
/// per dispatcher. Each dispatcher keeps its own load view unless the
/// policy never reads one (pure) or `shared` asks for one cluster-wide
/// instance and view.
pub(crate) fn build_policies(
    spec: &PolicySpec,
    members: &Membership,
    dispatchers: usize,
    shared: bool,
) -> Result<(Vec<Arc<dyn Policy>>, usize), PolicyError> {
    let first: Arc<dyn Policy> = Arc::from(spec.build(members)?);
    Ok(match first.state() {
        _ if shared => (vec![first], 1),
        State::Pure => (vec![first], 1),
        State::LoadAware => (vec![first], dispatchers),
        State::Stateful => {
            let mut policies = vec![first];
            for _ in 1..dispatchers {
                policies.push(Arc::from(spec.build(members)?));
            }
            (policies, dispatchers)
        }
    })
}

/// Asks the CPU to bring `value`'s first cache line in, without waiting.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing the program sees and never
        // faults, and x86_64 always has SSE.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// The single-flight map's key for `object` at `server`.
#[inline]
fn flight_key(server: u32, object: u32) -> u64 {
    u64::from(server) << 32 | u64::from(object)
}

/// Uniform start instants in `[0, spread)` for `count` clients, so that the
/// closed-loop connections do not all fire at the same nanosecond.
pub(crate) fn staggered_starts(count: usize, spread: Time, rng: &mut ChaCha8Rng) -> Vec<Time> {
    (0..count).map(|_| rng.gen_range(0..spread.max(1))).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use dl7_core::{Hardware, PolicyKind};

    use super::*;
    use crate::engine::Simulation;

    #[test]
    fn pure_and_load_aware_policies_are_built_once_stateful_ones_per_dispatcher() {
        let members = Membership::numbered(8).unwrap();
        let count = |name: &str, shared: bool| {
            let (policies, views) = build_policies(&PolicySpec::parse(name).unwrap(), &members, 8, shared).unwrap();
            (policies.len(), views)
        };
        assert_eq!(count("maglev", false), (1, 1));
        assert_eq!(count("md5", false), (1, 1));
        // One instance, but each dispatcher keeps its own view of the load.
        assert_eq!(count("bounded", false), (1, 8));
        assert_eq!(count("p2c", false), (1, 8));
        assert_eq!(count("rr", false), (8, 8));
        assert_eq!(count("lard", false), (8, 8));
        for name in ["maglev", "bounded", "rr"] {
            assert_eq!(count(name, true), (1, 1), "{name}");
        }
    }

    /// Returns the scripted owners in turn and records the load view it was shown.
    struct Scripted {
        owners: Mutex<Vec<u32>>,
        seen: Arc<Mutex<Vec<(u64, u64, u64)>>>,
    }

    impl Policy for Scripted {
        fn kind(&self) -> PolicyKind {
            PolicyKind::Bounded
        }
        fn state(&self) -> State {
            State::Stateful
        }
        fn pick(&self, _key: &RequestKey, load: &dyn LoadView) -> ServerId {
            self.seen.lock().unwrap().push((
                load.inflight(ServerId(0)),
                load.inflight(ServerId(1)),
                load.total_inflight(),
            ));
            ServerId(self.owners.lock().unwrap().remove(0))
        }
        fn servers(&self) -> usize {
            2
        }
    }

    /// The load view's one definition, the real dispatcher's too: every
    /// request this dispatcher picked and has not completed, served locally
    /// or forwarded (`realnet/src/dispatch.rs` tests the same script).
    #[test]
    fn the_load_view_counts_every_pick_until_its_request_completes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let scripted = |owners: Vec<u32>| -> Arc<dyn Policy> {
            Arc::new(Scripted { owners: Mutex::new(owners), seen: seen.clone() })
        };
        let keys = [RequestKey::new(b"/a")];
        let hw = Hardware::kwon2008();
        let costs = Costs::new(&hw);
        let objects = vec![costs.object(1000, false)];
        let window = Window { start: 0, end: u64::MAX };
        let clients = Clients::Replay { requests: &[], next: 0, warmup: 0, paced: None };
        let policies = vec![scripted(vec![0, 1, 0, 0]), scripted(vec![])];
        let series = Recorder::new(1_000_000_000, 0);
        let cluster = Cluster::new(
            Arch::Distributed,
            2,
            window,
            &keys,
            vec![1000],
            costs,
            objects,
            policies,
            2,
            CacheSpec { eviction: dl7_core::eviction::Eviction::Lru, bytes: 1 << 20, max_object: 1 << 20 },
            clients,
            series,
        );
        let mut sim = Simulation::new(cluster);
        sim.init(|c, ctx| {
            let pick = |c: &mut Cluster, r: u32| {
                let owner = c.pick(r, 0);
                c.reqs[r as usize].owner = owner;
            };
            let (local, remote) = (c.new_slot(), c.new_slot());
            pick(c, local); // owner 0: served by the receiver itself
            pick(c, remote); // owner 1: forwarded
            let third = c.new_slot();
            pick(c, third);
            c.complete(local, ctx);
            let fourth = c.new_slot();
            pick(c, fourth);
        });
        assert_eq!(*seen.lock().unwrap(), [(0, 0, 0), (1, 0, 1), (1, 1, 2), (1, 1, 2)]);
    }
}
