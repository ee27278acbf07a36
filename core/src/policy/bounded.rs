//! `bounded`: consistent hashing with bounded loads (Mirrokni, Thorup &
//! Zadimoghaddam, SODA 2018; HAProxy `hash-balance-factor`, Envoy
//! `hash_balance_factor`).
//!
//! Each server's capacity is `ceil(c * (inflight_total + 1) * w_i / W)`
//! (`W` the sum of weights; `ceil(c * (total + 1) / N)` for equal weights),
//! `c` = parameter `c` (default 1.25, at least 1). A request walks the base
//! policy's candidate order (parameter `base`: `maglev`, the default, or
//! `mod_ch`, each with its default parameters) and goes to the first server
//! whose in-flight count is below its capacity. Because `c >= 1` the
//! capacities add up to more than the in-flight total, so such a server
//! always exists. With no load it is exactly the base policy.
//!
//! Reads the engine's [`LoadView`] and holds nothing mutable: load-aware in
//! the sense of [`State`] (dispatchers with different load views may
//! disagree, but may share one instance).
//! `candidates` lists the under-capacity servers in base order, then the rest.

use super::maglev::{default_table_size, Maglev};
use super::ring::{Ring, MOD_CH_DEFAULT_POINTS};
use super::seen::Seen;
use super::{ParamReader, Policy, PolicyKind, State};
use crate::{LoadView, Membership, PolicyError, RequestKey, ServerId};

/// Default balance factor, as in the paper's experiments and HAProxy docs.
pub const DEFAULT_C: f64 = 1.25;

/// Bounded-load walk over a base policy.
pub struct Bounded {
    base: Box<dyn Policy>,
    c: f64,
    /// `w_i / W` per server.
    shares: Vec<f64>,
}

impl Bounded {
    /// Reads `c` and `base` and builds the base policy.
    pub(crate) fn from_params(p: &mut ParamReader, members: &Membership) -> Result<Self, PolicyError> {
        let c: f64 = p.get("c", DEFAULT_C, "a number >= 1")?;
        if !(c.is_finite() && c >= 1.0) {
            return Err(p.bad("c", &c.to_string(), "a number >= 1"));
        }
        let base_name: String = p.get("base", "maglev".to_string(), "maglev or mod_ch")?;
        let base: Box<dyn Policy> = match base_name.as_str() {
            "maglev" => Box::new(Maglev::new(members, default_table_size(members.len()))?),
            "mod_ch" => Box::new(Ring::new(PolicyKind::ModCh, members, MOD_CH_DEFAULT_POINTS)?),
            other => return Err(p.bad("base", other, "maglev or mod_ch")),
        };
        Ok(Self::new(base, members, c))
    }

    /// Wraps an already built base policy; `c` must be at least 1.
    pub fn new(base: Box<dyn Policy>, members: &Membership, c: f64) -> Self {
        let total: f64 = members.servers().iter().map(|s| s.weight).sum();
        let shares = members.servers().iter().map(|s| s.weight / total).collect();
        Self { base, c: c.max(1.0), shares }
    }

    /// Capacity of `server` when `total` requests are in flight.
    #[inline]
    pub fn capacity(&self, server: ServerId, total: u64) -> u64 {
        (self.c * (total + 1) as f64 * self.shares[server.index()]).ceil() as u64
    }

    /// The base policy's kind (`maglev` or `mod_ch`).
    pub fn base(&self) -> PolicyKind {
        self.base.kind()
    }
}

impl Policy for Bounded {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Bounded
    }
    fn state(&self) -> State {
        State::LoadAware
    }
    fn servers(&self) -> usize {
        self.shares.len()
    }
    fn describe(&self) -> String {
        let base = self.base.describe();
        format!("c={} base={}{}{}", self.c, self.base.kind(), if base.is_empty() { "" } else { " " }, base)
    }
    fn pick(&self, key: &RequestKey, load: &dyn LoadView) -> ServerId {
        let total = load.total_inflight();
        let first = self.base.pick(key, load);
        if load.inflight(first) < self.capacity(first, total) {
            return first;
        }
        let mut chosen = first;
        self.base.walk(key, load, &mut |s| {
            if load.inflight(s) < self.capacity(s, total) {
                chosen = s;
                return false;
            }
            true
        });
        chosen
    }
    fn walk(&self, key: &RequestKey, load: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        let total = load.total_inflight();
        // Marked in the first pass, so a load that changes between the
        // passes (other threads) cannot list a server twice or never.
        let mut listed = Seen::new(self.shares.len());
        let mut going = true;
        self.base.walk(key, load, &mut |s| {
            if load.inflight(s) < self.capacity(s, total) {
                listed.insert(s.0);
                going = visit(s);
            }
            going
        });
        if going {
            self.base.walk(key, load, &mut |s| listed.contains(s.0) || visit(s));
        }
    }
}
