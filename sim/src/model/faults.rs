//! The fault schedule in the model ([`dl7_core::fault`]), as the real
//! engine carries it out:
//!
//! * `kill`: the node's CPU and NIC stop (their backlog is dropped), its
//!   cache and single flights are lost, and every request it held fails
//!   when its next step comes: one whose owner died before sending a byte
//!   goes to the policy's next live candidate (as the real dispatchers retry
//!   a failed fetch), any other (its receiver died, or its owner died
//!   mid-response) is an error. Dispatchers route around the dead node.
//! * `restart`: the node runs again, its cache empty.
//! * `leave`: the node leaves the membership at that instant (every
//!   dispatcher's policy is rebuilt over the new one and swapped in); what
//!   it holds finishes, nothing new reaches it.
//! * `join`: a new node (empty cache) enters the membership.
//!
//! A request remembers the incarnation of its receiver and its owner when it
//! got them; a kill bumps the node's, so every stale step is noticed at its
//! own event, without searching the event queue.

use dl7_core::{Fault, FaultAction, LoadView, Membership, PolicySpec, ServerId};

use super::cache::CacheSpec;
use super::{Arch, Cluster, Inflight, Phase, NONE};
use crate::engine::{Context, Time};

/// What a membership change rebuilds the policies from.
pub(crate) struct Rebuild {
    pub spec: PolicySpec,
    /// Every node's logical name, by node index.
    pub names: Membership,
    pub dispatchers: usize,
    pub shared: bool,
}

/// Membership and liveness of the nodes, and the schedule that changes them.
pub(crate) struct Nodes {
    /// Members in membership order: the policy's positions map to these.
    pub members: Vec<u32>,
    pub alive: Vec<bool>,
    /// Bumped by each kill.
    pub incarnation: Vec<u32>,
    /// A kill happened: steps are checked for stale nodes from now on.
    pub faulted: bool,
    schedule: Vec<Fault>,
    next: usize,
    rebuild: Option<Rebuild>,
    /// The nodes' cache, for a node that loses its cache.
    cache: CacheSpec,
}

impl Nodes {
    /// `servers` nodes, all members and running, with caches of `cache`.
    pub fn new(servers: usize, cache: CacheSpec) -> Nodes {
        Nodes {
            members: (0..servers as u32).collect(),
            alive: vec![true; servers],
            incarnation: vec![0; servers],
            faulted: false,
            schedule: Vec::new(),
            next: 0,
            rebuild: None,
            cache,
        }
    }
}

/// The load view by membership position, over the per-node counts.
pub(crate) struct MemberView<'v> {
    pub load: &'v Inflight,
    pub members: &'v [u32],
}

impl LoadView for MemberView<'_> {
    #[inline]
    fn inflight(&self, pos: ServerId) -> u64 {
        self.members.get(pos.index()).map_or(0, |&n| self.load.inflight(ServerId(n)))
    }
    #[inline]
    fn total_inflight(&self) -> u64 {
        self.load.total_inflight()
    }
}

impl Cluster<'_> {
    /// Of the cluster's nodes only the first `servers` run at first (the
    /// others are the joins of `faults`); `faults` happen at their instants
    /// after the window opens (`now` is the run's start).
    pub(crate) fn schedule_faults(
        &mut self,
        servers: usize,
        faults: Vec<Fault>,
        rebuild: Rebuild,
        ctx: &mut Context<u32>,
    ) {
        let n = &mut self.nodes;
        n.members.truncate(servers);
        for a in &mut n.alive[servers..] {
            *a = false;
        }
        n.schedule = faults;
        n.rebuild = Some(rebuild);
        if let Some(f) = n.schedule.first() {
            ctx.schedule_at(self.window.start + crate::engine::seconds(f.at_s), super::FAULT);
        }
    }

    /// The next fault of the schedule is due now.
    pub(crate) fn next_fault(&mut self, ctx: &mut Context<u32>) {
        let Some(&f) = self.nodes.schedule.get(self.nodes.next) else { return };
        self.nodes.next += 1;
        if let Some(g) = self.nodes.schedule.get(self.nodes.next) {
            ctx.schedule_at(self.window.start + crate::engine::seconds(g.at_s), super::FAULT);
        }
        let (i, now) = (f.node as usize, ctx.now());
        match f.action {
            FaultAction::Kill => self.kill(i, now, ctx),
            FaultAction::Restart => self.nodes.alive[i] = true,
            FaultAction::Leave => {
                self.nodes.members.retain(|&m| m as usize != i);
                self.rebuild_policies();
            }
            FaultAction::Join => {
                self.nodes.alive[i] = true;
                self.nodes.members.push(i as u32);
                self.rebuild_policies();
            }
        }
    }

    fn kill(&mut self, i: usize, now: Time, ctx: &mut Context<u32>) {
        let w = self.window;
        self.nodes.alive[i] = false;
        self.nodes.incarnation[i] += 1;
        self.nodes.faulted = true;
        // Empty, of the cell's eviction: a restart comes back with nothing cached.
        self.caches[i] = self.nodes.cache.empty();
        self.cpu[i].stop(now, &w);
        self.tx[i].stop(now, &w);
        self.rx[i].stop(now, &w);
        self.squid_open[i] = 0;
        // Its fetches are gone: the requests parked on them hear it now.
        let lost: Vec<u64> = self.fetching.keys().copied().filter(|k| (k >> 32) as usize == i).collect();
        for key in lost {
            let mut waiter = self.fetching.remove(&key).expect("listed above");
            while waiter != NONE {
                let next = self.reqs[waiter as usize].next_waiter;
                ctx.schedule_at(now, waiter);
                waiter = next;
            }
        }
    }

    fn rebuild_policies(&mut self) {
        let r = self.nodes.rebuild.as_ref().expect("a schedule brings its rebuild");
        let servers = self.nodes.members.iter().map(|&m| r.names.servers()[m as usize].clone()).collect();
        let members = Membership::new(servers).expect("a schedule never empties the membership");
        // The spec built at the start: only a bad membership could fail, and the schedule was checked.
        let (policies, _) = super::build_policies(&r.spec, &members, r.dispatchers, r.shared)
            .expect("the policy builds over any membership the schedule allows");
        self.policies = policies;
    }

    /// The first candidate of the policy `p` for object `obj` that runs.
    pub(crate) fn live_candidate(&self, p: usize, obj: usize, view: &MemberView) -> Option<u32> {
        let mut candidates = Vec::new();
        self.policies[p].candidates(&self.keys[obj], view, self.nodes.members.len(), &mut candidates);
        candidates.into_iter().map(|c| self.nodes.members[c.index()]).find(|&n| self.nodes.alive[n as usize])
    }

    /// Marks request `r` for a retry or a failure when its step now runs on a
    /// node that died since it got it; true when it did.
    pub(crate) fn hit_by_fault(&mut self, r: u32) -> bool {
        use Phase::*;
        let req = self.reqs[r as usize];
        let (rc, o) = (req.receiver as usize, req.owner);
        let dead = |node: usize, inc: u32| self.nodes.incarnation[node] != inc || !self.nodes.alive[node];
        let rdead = dead(rc, req.rcv_inc);
        let odead = o != NONE && dead(o as usize, req.own_inc);
        let at_owner = matches!(
            req.phase,
            Waiting | MMiss | MOwnTxReq | MOrgRxReq | MOrgServe | MOrgTxResp | MOwnRxResp | MOwnStore
        );
        let verdict = match (self.arch, req.phase) {
            (_, Think | Retry | Failed) => None,
            (Arch::Conventional, CFeTxReq | CSrvRxReq | CSrvServe) if odead => Some(Retry),
            (Arch::Conventional, _) if at_owner && odead => Some(Retry),
            (Arch::Conventional, CSrvTxResp) if odead => Some(Failed),
            (Arch::Distributed, DFeTxReq | DRcvRxReq | DRcvParse | DRcvTxFwd | DRcvRxResp | DRcvRelay | DRcvTxResp)
                if rdead =>
            {
                Some(Failed)
            }
            (Arch::Distributed, DOwnTxResp) if odead || rdead => Some(Failed),
            (Arch::Distributed, DOwnServe) if rdead && o as usize == rc => Some(Failed),
            (Arch::Distributed, DOwnRxFwd | DOwnServe) if odead => Some(if rdead { Failed } else { Retry }),
            (Arch::Distributed, _) if at_owner && odead => Some(if rdead { Failed } else { Retry }),
            _ => None,
        };
        match verdict {
            Some(phase) => {
                self.reqs[r as usize].phase = phase;
                true
            }
            None => false,
        }
    }

    /// Takes request `r` off its dispatcher's load view (once).
    pub(crate) fn unload(&mut self, r: u32) {
        let req = &mut self.reqs[r as usize];
        if req.owner == NONE {
            return;
        }
        let (owner, receiver) = (req.owner, req.receiver);
        let v = self.load_view(receiver);
        let load = &mut self.loads[v];
        load.per_server[owner as usize] -= 1;
        load.total -= 1;
    }

    /// The owner of `r` died before answering: its dispatcher sends it to
    /// the next live candidate now, or fails it when none runs.
    pub(crate) fn retry(&mut self, r: u32, ctx: &mut Context<u32>) {
        self.unload(r);
        self.reqs[r as usize].owner = NONE;
        let receiver = match self.arch {
            Arch::Conventional => 0,
            Arch::Distributed => self.reqs[r as usize].receiver,
        };
        let owner = self.pick(r, receiver);
        self.reqs[r as usize].owner = owner;
        if !self.nodes.alive[owner as usize] {
            self.reqs[r as usize].phase = Phase::Failed;
            return self.fail(r, ctx);
        }
        let phase = match self.arch {
            Arch::Conventional => Phase::CFeParse,
            Arch::Distributed => Phase::DRcvParse,
        };
        self.go(r, phase, ctx.now(), ctx);
    }

    /// Request `r` is lost: its client sees the failure now and goes on.
    pub(crate) fn fail(&mut self, r: u32, ctx: &mut Context<u32>) {
        self.unload(r);
        self.reqs[r as usize].owner = NONE;
        let now = ctx.now();
        if self.counts(r, now) {
            self.stats.errors += 1;
        }
        if self.charted(r, now) {
            self.stats.series.failed(now as i64 - self.window.start as i64);
        }
        self.client_next(r, ctx);
    }
}
