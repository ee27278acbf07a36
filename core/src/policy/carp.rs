//! `carp`: the Cache Array Routing Protocol v1.0 (draft-vinod-carp-v1-03),
//! exactly as the draft and Wessels' *Web Caching* (App. C) define it.
//!
//! All arithmetic is wrapping u32 on unsigned bytes:
//! `member_hash`: `h += rotl(h,19) + c` per byte of the member name, then
//! `h += h * 0x62531965; h = rotl(h,21)`; per request
//! `combined = url_hash ^ member_hash; combined += combined * 0x62531965;
//! combined = rotl(combined,21)`, score `combined as f64 * X_k`, highest wins.
//! The URL is hashed **once** per request ([`RequestKey::carp_url_hash`]),
//! as the draft says, not once per member (a bug in recent Squid).
//!
//! Load-factor multipliers `X_k` come from the weights as the draft gives
//! them, over the members sorted by `p = weight / sum(weights)` ascending
//! (stable, so equal weights keep membership order). Score ties, which need
//! equal `X` and equal combined hashes, go to the member earlier in that
//! sorted order. `candidates` lists members by descending score.

use super::seen::ranked_walk;
use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

const MIX: u32 = 0x62531965;

/// CARP member hash of a proxy name.
pub fn member_hash(name: &[u8]) -> u32 {
    let h = crate::key::carp_url_hash(name);
    h.wrapping_add(h.wrapping_mul(MIX)).rotate_left(21)
}

/// The combined hash of a URL hash and a member hash.
#[inline]
pub fn combined_hash(url_hash: u32, member_hash: u32) -> u32 {
    let c = url_hash ^ member_hash;
    c.wrapping_add(c.wrapping_mul(MIX)).rotate_left(21)
}

/// The draft's load-factor multipliers for `weights`, in the given order.
pub fn load_multipliers(weights: &[f64]) -> Vec<f64> {
    let k_total = weights.len();
    let sum: f64 = weights.iter().sum();
    let mut order: Vec<usize> = (0..k_total).collect();
    order.sort_by(|&a, &b| weights[a].total_cmp(&weights[b]));
    let mut x = vec![0.0; k_total];
    let mut product = 1.0;
    let mut prev_p = 0.0;
    let mut prev_x = 0.0;
    for (pos, &member) in order.iter().enumerate() {
        let k = pos + 1; // the draft counts from 1
        let p = weights[member] / sum;
        let remaining = (k_total - k + 1) as f64;
        let xk = if k == 1 {
            (k_total as f64 * p).powf(1.0 / k_total as f64)
        } else {
            let raw = remaining * (p - prev_p) / product + f64::powf(prev_x, remaining);
            raw.powf(1.0 / remaining)
        };
        x[member] = xk;
        product *= xk;
        prev_p = p;
        prev_x = xk;
    }
    x
}

/// Per member, in tie-break order: id, member hash, multiplier.
#[derive(Debug, Clone, Copy)]
struct Member {
    id: u32,
    hash: u32,
    multiplier: f64,
}

/// A built CARP array.
#[derive(Debug, Clone)]
pub struct Carp {
    /// Sorted by `p` ascending (stable), the draft's order and the tie order.
    members: Vec<Member>,
}

impl Carp {
    /// Hashes every member name and derives the multipliers from the weights.
    pub fn new(members: &Membership) -> Self {
        let weights: Vec<f64> = members.servers().iter().map(|s| s.weight).collect();
        let x = load_multipliers(&weights);
        let mut list: Vec<Member> = members
            .servers()
            .iter()
            .enumerate()
            .map(|(i, s)| Member { id: i as u32, hash: member_hash(s.name.as_bytes()), multiplier: x[i] })
            .collect();
        list.sort_by(|a, b| weights[a.id as usize].total_cmp(&weights[b.id as usize]));
        Self { members: list }
    }

    /// The multiplier of each server, by `ServerId`.
    pub fn multipliers(&self) -> Vec<f64> {
        let mut x = vec![0.0; self.members.len()];
        for m in &self.members {
            x[m.id as usize] = m.multiplier;
        }
        x
    }

    /// The member hash of each server, by `ServerId`.
    pub fn member_hashes(&self) -> Vec<u32> {
        let mut h = vec![0; self.members.len()];
        for m in &self.members {
            h[m.id as usize] = m.hash;
        }
        h
    }
}

impl Policy for Carp {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Carp
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.members.len()
    }
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        let url = key.carp_url_hash();
        let mut best = (f64::NEG_INFINITY, 0u32);
        for m in &self.members {
            let score = combined_hash(url, m.hash) as f64 * m.multiplier;
            if score > best.0 {
                best = (score, m.id);
            }
        }
        ServerId(best.1)
    }
    fn walk(&self, key: &RequestKey, _: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        let url = key.carp_url_hash();
        // (score, tie-break position, id): score descending, then position
        // ascending, the pick's tie rule.
        ranked_walk(
            self.members.len(),
            |pos| {
                let m = &self.members[pos];
                (combined_hash(url, m.hash) as f64 * m.multiplier, pos as u32, m.id)
            },
            |a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)),
            |k| k.2,
            visit,
        );
    }
}
