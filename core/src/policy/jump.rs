//! `jump`: Lamping & Veach's jump consistent hash (2014) on `key = md5_64(url)`.
//!
//! `b = -1; j = 0; while j < n { b = j; key = key * 2862933555777941757 + 1;
//! j = (b + 1) * (2^31 / ((key >> 33) + 1)) }`. O(log N), no table. Only the
//! highest-numbered server can leave cleanly: removing another one renumbers
//! the servers after it. Server weights are ignored.
//!
//! `candidates` (documented choice): the first is `jump(key, N)`; each next
//! one re-jumps a re-mixed key over the servers not yet listed
//! (`remaining[jump(mix(key, i), N - i)]`, `remaining` kept in index order),
//! so the keys of a failed server spread evenly over the others instead of
//! all landing on one neighbour.

use super::seen::Seen;
use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// `jump(key, n)` for `n >= 1`; 0 when `n == 0`.
#[inline]
pub fn jump(mut key: u64, n: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = (((b + 1) as f64) * ((1u64 << 31) as f64 / (((key >> 33) + 1) as f64))) as i64;
    }
    b.max(0) as u32
}

/// SplitMix64's finaliser, to derive the fallback keys.
fn mix(key: u64, round: u64) -> u64 {
    let mut z = key ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Jump consistent hash over the membership.
#[derive(Debug, Clone)]
pub struct Jump {
    n: u32,
}

impl Jump {
    /// Jump needs only N.
    pub fn new(members: &Membership) -> Self {
        Self { n: members.len() as u32 }
    }
}

impl Policy for Jump {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Jump
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.n as usize
    }
    #[inline]
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        ServerId(jump(key.md5_64(), self.n))
    }
    fn walk(&self, key: &RequestKey, _: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        let mut seen = Seen::new(self.n as usize);
        let k = key.md5_64();
        for round in 0..self.n {
            let left = self.n - round;
            let key_i = if round == 0 { k } else { mix(k, round as u64) };
            // The `at`-th server not listed yet, in index order.
            let mut at = jump(key_i, left);
            let next = (0..self.n)
                .filter(|&s| !seen.contains(s))
                .find(|_| {
                    let hit = at == 0;
                    at = at.wrapping_sub(1);
                    hit
                })
                .expect("fewer servers listed than exist");
            seen.insert(next);
            if !visit(ServerId(next)) {
                return;
            }
        }
    }
}
