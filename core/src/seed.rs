//! The one seed derivation: every random number of every engine comes from
//! the experiment's seed through these functions, so a run is the same on
//! every machine, thread count and release. Changing them changes every
//! published number (the tests pin literal values).

use crate::{Arch, PolicySpec};

/// The identity of a cell as a stable string: what the per-run seed hashes.
/// Parameters iterate in key order (a `BTreeMap`), so the string is canonical.
pub fn cell_key(workload: &str, arch: Arch, policy: &PolicySpec, servers: u32) -> String {
    let mut key = format!("{workload}/{}/{}", arch.name(), policy.kind.name());
    for (k, v) in policy.params.iter() {
        key.push_str(&format!(",{k}={v}"));
    }
    key.push_str(&format!("/{servers}"));
    key
}

/// The seed of run `index` of a cell: FNV-1a of the cell key mixed with the
/// experiment seed and the index through SplitMix64. A fixed function, never
/// std's randomised hasher.
pub fn derive_seed(experiment_seed: u64, cell_key: &str, index: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cell_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(splitmix64(experiment_seed ^ h).wrapping_add(u64::from(index)))
}

/// The seed of stream `index` within a run (a client connection, a SURGE
/// user): well mixed, so neighbouring indices give unrelated streams.
pub fn sub_seed(run_seed: u64, index: u64) -> u64 {
    splitmix64(run_seed.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// The SplitMix64 finaliser of `x + golden gamma`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyKind;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Vigna's splitmix64.c with state 0: the first outputs.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn derived_seeds_are_pinned() {
        assert_eq!(derive_seed(2008, "surge100/conventional/rr/1", 0), PINNED_RUN_SEED);
        assert_eq!(sub_seed(1, 0), splitmix64(1));
        assert_eq!(sub_seed(1, 1), PINNED_SUB_SEED);
    }

    #[test]
    fn every_input_changes_the_seed() {
        let a = derive_seed(2008, "surge100/conventional/rr/1", 0);
        assert_ne!(a, derive_seed(2008, "surge100/conventional/rr/1", 1));
        assert_ne!(a, derive_seed(2008, "surge100/conventional/rr/2", 0));
        assert_ne!(a, derive_seed(2009, "surge100/conventional/rr/1", 0));
        assert_ne!(sub_seed(a, 0), sub_seed(a, 1));
    }

    #[test]
    fn cell_key_includes_parameters_in_order() {
        let mut spec = PolicySpec::new(PolicyKind::ModCh);
        spec.params.insert("vnodes", "100");
        spec.params.insert("a", "1");
        assert_eq!(cell_key("w", Arch::Distributed, &spec, 8), "w/distributed/mod_ch,a=1,vnodes=100/8");
    }

    // The seed of the first surge100/conventional/rr/1 run in reports/paper/results.csv.
    const PINNED_RUN_SEED: u64 = 1_872_425_563_696_974_012;
    const PINNED_SUB_SEED: u64 = 13_757_245_211_066_428_519;
}
