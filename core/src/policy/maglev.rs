//! `maglev`: Maglev hashing (Eisenbud et al., NSDI 2016), the lookup table
//! behind Google's and Envoy's load balancers.
//!
//! Build: a prime table size `M` (parameter `table_size`); per server
//! `offset = md5_64(name ++ "#offset") mod M` and
//! `skip = md5_64(name ++ "#skip") mod (M - 1) + 1`, its preference list being
//! `(offset + j * skip) mod M`; in rounds, each server in membership order
//! takes its next preferred empty slot until all `M` slots are filled.
//! Lookup: `table[md5_64(url) mod M]`, O(1). Weights are ignored.
//!
//! **Table size (documented choice).** The spec requires `M` prime and
//! `M > 100 N` (so that each server's share of slots is within about 1% of
//! even). The default is 65537 (Envoy's) while that satisfies the rule, i.e.
//! up to N = 655; for larger memberships it is the smallest prime at or
//! above the power of two above `100 N` (131101 for N = 656..1310, 262147 for
//! N = 1311..2621, ...). Because `M` is part of every server's permutation,
//! a change of `M` reshuffles the whole table; stepping by powers of two
//! keeps `M`, and so consistency, across ordinary joins and leaves, and
//! changes it only when `100 N` crosses a power of two (as `mit_ch`'s
//! default `V` does). An explicit `table_size` that is not prime or not
//! above `100 N` is an error naming the parameter and the smallest valid
//! value. [`Maglev::new`] itself only needs `M` prime and
//! `M >= N`, so the bare algorithm can still be benchmarked at any size.
//!
//! `candidates` (documented choice): the distinct servers met walking the
//! table from the key's slot, `table[(slot + i) mod M]`: a ring-like
//! successor order over the table.

use super::seen::{visit_distinct, Seen};
use super::{ParamReader, Policy, PolicyKind, State};
use crate::key::md5_64;
use crate::{LoadView, Membership, PolicyError, RequestKey, ServerId};

/// Envoy's default table size, prime.
pub const DEFAULT_TABLE_SIZE: u64 = 65537;

/// Upper bound on `table_size` (2^26 slots = 256 MiB).
pub const MAX_TABLE_SIZE: u64 = 1 << 26;

/// Trial-division primality, enough for table sizes.
// `is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
#[allow(clippy::manual_is_multiple_of)]
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime `> 100 n`: the least table size the spec allows.
pub fn min_table_size(n: usize) -> u64 {
    let mut m = 100 * n as u64 + 1;
    while !is_prime(m) {
        m += 1;
    }
    m
}

/// The default table size for `n` servers (see the module doc).
pub fn default_table_size(n: usize) -> u64 {
    let rule = 100 * n as u64;
    if DEFAULT_TABLE_SIZE > rule {
        return DEFAULT_TABLE_SIZE;
    }
    let mut m = (rule + 1).next_power_of_two();
    while !is_prime(m) {
        m += 1;
    }
    m
}

/// Reads and checks `table_size` for `n` servers (see the module doc).
pub(crate) fn read_table_size(p: &mut ParamReader, n: usize) -> Result<u64, PolicyError> {
    let minimum = min_table_size(n);
    let default = default_table_size(n);
    let expected = format!("a prime > 100 x {n} servers and <= {MAX_TABLE_SIZE} (smallest valid: {minimum})");
    let m: u64 = p.get("table_size", default, &expected)?;
    if !is_prime(m) || m <= 100 * n as u64 || m > MAX_TABLE_SIZE {
        return Err(p.bad("table_size", &m.to_string(), &expected));
    }
    Ok(m)
}

/// A built Maglev lookup table.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Vec<u32>,
    m: u64,
    servers: usize,
}

impl Maglev {
    /// Builds the table for `members` with `table_size` slots, deriving each
    /// server's permutation from its name. `table_size` must be prime and at
    /// least the number of servers.
    pub fn new(members: &Membership, table_size: u64) -> Result<Self, PolicyError> {
        if !is_prime(table_size) || table_size < members.len() as u64 || table_size > MAX_TABLE_SIZE {
            return Err(PolicyError::BadParam {
                policy: "maglev".into(),
                param: "table_size".into(),
                value: table_size.to_string(),
                expected: format!("a prime >= the {} servers and <= {MAX_TABLE_SIZE}", members.len()),
            });
        }
        let m = table_size;
        let perms: Vec<(u64, u64)> = members
            .servers()
            .iter()
            .map(|s| {
                let offset = md5_64(format!("{}#offset", s.name).as_bytes()) % m;
                let skip = md5_64(format!("{}#skip", s.name).as_bytes()) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        Self::with_permutations(&perms, m)
    }

    /// Builds the table from explicit `(offset, skip)` pairs, one per server
    /// in order (the paper's toy example uses this). `m` must be prime, at
    /// least `perms.len()`, with `offset < m` and `1 <= skip < m`.
    ///
    /// ```
    /// use dl7_core::policy::maglev::Maglev;
    /// let t = Maglev::with_permutations(&[(3, 4), (0, 2), (3, 1)], 7).unwrap();
    /// assert_eq!(t.table(), &[1, 0, 1, 0, 2, 2, 0]);
    /// ```
    pub fn with_permutations(perms: &[(u64, u64)], m: u64) -> Result<Self, PolicyError> {
        let n = perms.len();
        // A non-prime M or a zero skip would leave a preference list that
        // never reaches some slots, and the fill below would not end.
        let bad = |value: String, expected: &str| PolicyError::BadParam {
            policy: "maglev".into(),
            param: "table_size".into(),
            value,
            expected: expected.into(),
        };
        if n == 0 {
            return Err(PolicyError::EmptyMembership);
        }
        if !is_prime(m) || m < n as u64 || m > MAX_TABLE_SIZE {
            return Err(bad(m.to_string(), "a prime >= the number of servers"));
        }
        if let Some(&(o, s)) = perms.iter().find(|&&(o, s)| o >= m || s == 0 || s >= m) {
            return Err(bad(format!("{m} with (offset {o}, skip {s})"), "offset < M and 1 <= skip < M"));
        }
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; m as usize];
        // Current preferred slot of each server; advanced by its skip.
        let mut next: Vec<u64> = perms.iter().map(|&(offset, _)| offset % m).collect();
        let mut filled = 0u64;
        'fill: while filled < m {
            for (i, &(_, skip)) in perms.iter().enumerate() {
                let mut c = next[i];
                while table[c as usize] != EMPTY {
                    c += skip;
                    if c >= m {
                        c -= m;
                    }
                }
                table[c as usize] = i as u32;
                c += skip;
                if c >= m {
                    c -= m;
                }
                next[i] = c;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Ok(Self { table, m, servers: n })
    }

    /// The lookup table: slot -> server index.
    pub fn table(&self) -> &[u32] {
        &self.table
    }

    /// `M`.
    pub fn table_size(&self) -> u64 {
        self.m
    }
}

impl Policy for Maglev {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Maglev
    }
    fn state(&self) -> State {
        State::Pure
    }
    fn servers(&self) -> usize {
        self.servers
    }
    fn describe(&self) -> String {
        format!("table_size={}", self.m)
    }
    #[inline]
    fn pick(&self, key: &RequestKey, _: &dyn LoadView) -> ServerId {
        ServerId(self.table[(key.md5_64() % self.m) as usize])
    }
    fn walk(&self, key: &RequestKey, _: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        if self.servers == 0 {
            return;
        }
        let mut seen = Seen::new(self.servers);
        let mut listed = 0;
        let start = (key.md5_64() % self.m) as usize;
        // Every server owns at least one slot (M >= N and the fill is round
        // robin), so one lap of the table lists them all.
        for i in 0..self.table.len() {
            let slot = (start + i) % self.table.len();
            if !visit_distinct(&mut seen, &mut listed, self.servers, self.table[slot], visit) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_size_steps_by_powers_of_two() {
        assert_eq!(default_table_size(1), 65537);
        assert_eq!(default_table_size(655), 65537);
        assert_eq!(default_table_size(656), 131101);
        assert_eq!(default_table_size(1024), 131101);
        assert_eq!(default_table_size(1310), 131101);
        assert_eq!(default_table_size(1311), 262147);
        for n in [1, 16, 655, 656, 1024, 5000] {
            let m = default_table_size(n);
            assert!(is_prime(m) && m > 100 * n as u64, "{n}: {m}");
        }
        assert_eq!(min_table_size(16), 1601);
    }
}
