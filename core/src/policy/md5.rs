//! `md5`: static hashing, `i = md5_128(url) mod N`, the paper's quoted rule
//! `cache server = hash(URL) mod number of cache servers`. Pure. Moves about
//! (N-1)/N of the keys on any membership change.

use super::{Policy, PolicyKind, State};
use crate::{LoadView, Membership, RequestKey, ServerId};

/// `md5_128(url) mod N`.
pub struct Md5Mod {
    n: u128,
}

impl Md5Mod {
    /// Static hashing over `members.len()` servers.
    pub fn new(members: &Membership) -> Self {
        Self { n: members.len() as u128 }
    }
}

impl Policy for Md5Mod {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Md5
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.n as usize
    }
    #[inline]
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        ServerId((key.md5_128() % self.n) as u32)
    }
}
