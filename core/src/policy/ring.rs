//! `mit_ch` and `mod_ch`: the consistent-hash ring (Karger et al. 1997), one
//! type with the number of points per server `V` as its parameter `points`.
//!
//! Build: for each server `s` and `j in 0..V`, the point
//! `md5_64(s.name ++ "#" ++ decimal(j))` owned by `s`; points are sorted.
//! Lookup: `h = md5_64(url)`, the first point `>= h`, wrapping to the first.
//!
//! **Which variants the paper ran is not published** (no definition of
//! MOD_CH could be found), so both keep `V` as a parameter and report it:
//! * `mit_ch` defaults to `V = max(1, ceil(log2 N))`: Karger's O(log N) copies
//!   per server with constant 1, the "MIT" scheme as first described;
//! * `mod_ch` defaults to `V = 160`, the ketama density, read as the
//!   "improved" (modified) MIT scheme with many virtual points.
//!
//! Server weights are ignored (the paper's servers are identical); use
//! `ketama` for a weighted ring. Two points with the same 64-bit value (never
//! seen in practice) are ordered by server index, so the lower index owns the
//! first one.
//!
//! `candidates` walks the ring clockwise from the owner and lists distinct
//! servers: the servers a key falls to when its owners leave, in order.

use super::seen::{visit_distinct, Seen};
use super::{Policy, PolicyKind, State};
use crate::key::md5_64;
use crate::{LoadView, Membership, PolicyError, RequestKey, ServerId};

/// `mod_ch`'s default points per server (ketama's density).
pub const MOD_CH_DEFAULT_POINTS: usize = 160;

/// Upper bound on `points`, so that a typo cannot exhaust memory.
pub const MAX_POINTS_PER_SERVER: usize = 100_000;

/// Upper bound on the total points of a ring (16 Mi points = 128 MiB + index).
pub const MAX_RING_POINTS: usize = 1 << 24;

/// `mit_ch`'s default: `max(1, ceil(log2 n))`.
pub fn mit_ch_default_points(n: usize) -> usize {
    let ceil_log2 = (usize::BITS - n.saturating_sub(1).leading_zeros()) as usize;
    ceil_log2.max(1)
}

/// A sorted ring of 64-bit points with an owner per point, plus a bucket
/// index on the top bits of the hash so that a lookup is one or two cache
/// lines instead of a full binary search (O(1) expected, O(log P) worst).
#[derive(Debug, Clone)]
pub struct SortedRing {
    points: Vec<u64>,
    owners: Vec<u32>,
    /// `index[b]` = first position whose point is `>= b << shift`; one extra
    /// entry at the end holds `points.len()`.
    index: Vec<u32>,
    shift: u32,
}

impl SortedRing {
    /// Builds from `(point, owner)` pairs; sorts by point then owner. With
    /// `dedupe`, equal points keep only the first (lowest owner), as nginx does.
    pub fn new(mut pairs: Vec<(u64, u32)>, dedupe: bool) -> Self {
        pairs.sort_unstable();
        if dedupe {
            pairs.dedup_by_key(|p| p.0);
        }
        let points: Vec<u64> = pairs.iter().map(|p| p.0).collect();
        let owners: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        // About one point per bucket, capped at 2^20 buckets (4 MiB).
        let bits = (usize::BITS - points.len().max(1).saturating_sub(1).leading_zeros()).clamp(1, 20);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut pos = 0usize;
        for b in 0..buckets {
            let start = (b as u64) << shift;
            while pos < points.len() && points[pos] < start {
                pos += 1;
            }
            index.push(pos as u32);
        }
        index.push(points.len() as u32);
        Self { points, owners, index, shift }
    }

    /// Position of the first point `>= h`, wrapping to 0.
    #[inline]
    pub fn position(&self, h: u64) -> usize {
        let b = (h >> self.shift) as usize;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        let pos = lo + self.points[lo..hi].partition_point(|&p| p < h);
        if pos == self.points.len() {
            0
        } else {
            pos
        }
    }

    /// Owner of the first point `>= h`, wrapping.
    #[inline]
    pub fn owner(&self, h: u64) -> u32 {
        self.owners[self.position(h)]
    }

    /// Number of points after deduplication.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Always false for a built ring; present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Visits distinct owners clockwise from the owner of `h` until `visit`
    /// returns false or all `servers` were visited.
    pub(crate) fn walk(&self, h: u64, servers: usize, visit: &mut dyn FnMut(ServerId) -> bool) {
        if servers == 0 || self.points.is_empty() {
            return;
        }
        let mut seen = Seen::new(servers);
        let mut listed = 0;
        let start = self.position(h);
        for i in 0..self.points.len() {
            let p = (start + i) % self.points.len();
            if !visit_distinct(&mut seen, &mut listed, servers, self.owners[p], visit) {
                return;
            }
        }
    }
}

/// The MD5 consistent-hash ring behind `mit_ch` and `mod_ch`.
#[derive(Debug, Clone)]
pub struct Ring {
    kind: PolicyKind,
    ring: SortedRing,
    servers: usize,
    points_per_server: usize,
}

impl Ring {
    /// Builds a ring with `points_per_server` points for each member.
    /// `kind` is `MitCh` or `ModCh` (only the reported name differs).
    pub fn new(kind: PolicyKind, members: &Membership, points_per_server: usize) -> Result<Self, PolicyError> {
        let total = members.len().saturating_mul(points_per_server);
        if points_per_server == 0 || total > MAX_RING_POINTS {
            return Err(PolicyError::BadParam {
                policy: kind.name().into(),
                param: "points".into(),
                value: points_per_server.to_string(),
                expected: format!("1 or more, with points x servers at most {MAX_RING_POINTS}"),
            });
        }
        let mut pairs = Vec::with_capacity(total);
        let mut label = String::new();
        for (i, s) in members.servers().iter().enumerate() {
            for j in 0..points_per_server {
                label.clear();
                label.push_str(&s.name);
                label.push('#');
                label.push_str(&j.to_string());
                pairs.push((md5_64(label.as_bytes()), i as u32));
            }
        }
        Ok(Self { kind, ring: SortedRing::new(pairs, false), servers: members.len(), points_per_server })
    }

    /// `V`, the points per server this ring was built with.
    pub fn points_per_server(&self) -> usize {
        self.points_per_server
    }
}

impl Policy for Ring {
    fn kind(&self) -> PolicyKind {
        self.kind
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.servers
    }
    fn describe(&self) -> String {
        format!("points={}", self.points_per_server)
    }
    #[inline]
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        ServerId(self.ring.owner(key.md5_64()))
    }
    fn walk(&self, key: &RequestKey, _: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        self.ring.walk(key.md5_64(), self.servers, visit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mit_ch_default_is_ceil_log2() {
        let got: Vec<usize> = [1, 2, 3, 4, 5, 16, 17, 1024].iter().map(|&n| mit_ch_default_points(n)).collect();
        assert_eq!(got, [1, 1, 2, 2, 3, 4, 5, 10]);
    }

    #[test]
    fn bucket_index_agrees_with_plain_binary_search() {
        let pairs: Vec<(u64, u32)> = (0..1000u64).map(|i| (md5_64(&i.to_le_bytes()), (i % 7) as u32)).collect();
        let ring = SortedRing::new(pairs, false);
        for i in 0..5000u64 {
            let h = md5_64(&(i + 1_000_000).to_le_bytes());
            let plain = ring.points.partition_point(|&p| p < h) % ring.points.len();
            assert_eq!(ring.position(h), plain);
        }
        assert_eq!(ring.position(0), 0);
        assert_eq!(ring.position(u64::MAX), 0);
    }
}
