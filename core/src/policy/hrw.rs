//! `hrw`: rendezvous (highest random weight) hashing, Thaler & Ravishankar
//! 1998. Each server scores `md5_64(name ++ "|" ++ url)`; the highest wins
//! (ties: lower index). Removing a server moves only its own keys, and a
//! joining server takes keys only for itself: ideal disruption, at O(N) MD5s
//! per pick.
//!
//! Weighted variant (when the weights are not all equal): score
//! `-w_i / ln(u_i)` with `u_i = (top 53 bits of the hash + 0.5) / 2^53`, which
//! lies strictly inside (0, 1). With equal weights this ordering equals the
//! raw-hash ordering, and the raw hash is used so that the spec vectors are
//! exact.
//!
//! Speed: each server's MD5 state after absorbing `name ++ "|"` is computed
//! at build and cloned per pick, so a pick absorbs only the URL per server.
//! `walk` is the full ranking by descending score.

use md5::{Digest, Md5};

use super::seen::ranked_walk;
use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// A server's precomputed hash prefix and weight.
#[derive(Clone)]
struct Member {
    prefix: Md5,
    weight: f64,
}

/// Rendezvous hashing over a membership.
#[derive(Clone)]
pub struct Hrw {
    members: Vec<Member>,
    weighted: bool,
}

impl std::fmt::Debug for Hrw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hrw").field("servers", &self.members.len()).field("weighted", &self.weighted).finish()
    }
}

impl Hrw {
    /// Precomputes each server's MD5 state after `name ++ "|"`.
    pub fn new(members: &Membership) -> Self {
        let list: Vec<Member> = members
            .servers()
            .iter()
            .map(|s| {
                let mut prefix = Md5::new();
                prefix.update(s.name.as_bytes());
                prefix.update(b"|");
                Member { prefix, weight: s.weight }
            })
            .collect();
        let weighted = list.iter().any(|m| m.weight != list[0].weight);
        Self { members: list, weighted }
    }

    /// `md5_64(name_i ++ "|" ++ url)` for server `i`.
    #[inline]
    pub fn raw_score(&self, i: usize, url: &[u8]) -> u64 {
        let digest = self.members[i].prefix.clone().chain_update(url).finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("MD5 digest has 16 bytes"))
    }

    /// The comparable score of server `i` given its raw hash.
    #[inline]
    fn score(&self, i: usize, raw: u64) -> f64 {
        if self.weighted {
            let u = ((raw >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            -self.members[i].weight / u.ln()
        } else {
            0.0
        }
    }

    /// The best and second-best servers for `url` (the second is `None` for
    /// a single server). Allocates nothing.
    pub fn top_two(&self, url: &[u8]) -> (ServerId, Option<ServerId>) {
        // Compare (weighted score, raw hash) so equal weights reduce to the
        // raw-hash order; on full ties the lower index wins (strict `>`).
        let mut best: Option<(f64, u64, u32)> = None;
        let mut second: Option<(f64, u64, u32)> = None;
        for i in 0..self.members.len() {
            let raw = self.raw_score(i, url);
            let cand = (self.score(i, raw), raw, i as u32);
            if !matches!(best, Some(b) if !greater(cand, b)) {
                second = best;
                best = Some(cand);
            } else if !matches!(second, Some(s) if !greater(cand, s)) {
                second = Some(cand);
            }
        }
        let best = best.expect("a membership is never empty");
        (ServerId(best.2), second.map(|s| ServerId(s.2)))
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false; present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Visits the servers by descending score for `url` until `visit`
    /// returns false.
    pub fn ranked(&self, url: &[u8], visit: &mut dyn FnMut(ServerId) -> bool) {
        ranked_walk(
            self.members.len(),
            |i| {
                let raw = self.raw_score(i, url);
                (self.score(i, raw), raw, i as u32)
            },
            |a, b| order(*a, *b),
            |k| k.2,
            visit,
        );
    }
}

/// Total order on (score, raw, index): higher score, then higher raw hash,
/// then *lower* index is better.
#[inline]
fn order(a: (f64, u64, u32), b: (f64, u64, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2))
}

#[inline]
fn greater(a: (f64, u64, u32), b: (f64, u64, u32)) -> bool {
    order(a, b) == std::cmp::Ordering::Greater
}

impl Policy for Hrw {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Hrw
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.members.len()
    }
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        let url = key.url();
        let mut best = (0.0, 0u64, 0u32);
        for i in 0..self.members.len() {
            let raw = self.raw_score(i, url);
            let cand = (self.score(i, raw), raw, i as u32);
            if i == 0 || greater(cand, best) {
                best = cand;
            }
        }
        ServerId(best.2)
    }
    fn walk(&self, key: &RequestKey, _: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        self.ranked(key.url(), visit);
    }
}
