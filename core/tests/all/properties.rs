//! Property tests: invariants every policy keeps over random memberships,
//! weights and keys.

use std::collections::BTreeSet;

use dl7_core::policy::State;
use dl7_core::{LoadView, Membership, NoLoad, PolicyKind, PolicySpec, RequestKey, Server, ServerId};
use proptest::prelude::*;

/// Distinct server names from distinct numbers.
fn membership(ids: &BTreeSet<u16>, weights: &[u8]) -> Membership {
    let servers = ids
        .iter()
        .zip(weights.iter().cycle())
        .map(|(&i, &w)| Server {
            name: format!("10.{}.{}.1:{}", i >> 8, i & 0xff, 3000 + (i % 7)),
            weight: 1.0 + (w % 4) as f64,
        })
        .collect();
    Membership::new(servers).unwrap()
}

fn arb_members() -> impl Strategy<Value = Membership> {
    (prop::collection::btree_set(any::<u16>(), 1..24), prop::collection::vec(any::<u8>(), 1..4))
        .prop_map(|(ids, weights)| membership(&ids, &weights))
}

fn arb_urls() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn picks_are_in_range_and_candidates_distinct(members in arb_members(), urls in arb_urls(), max in 1usize..40, load_seed in any::<u64>()) {
        let n = members.len();
        let loads: Vec<u64> = (0..n as u64).map(|i| (load_seed >> (i % 60)) % 5).collect();
        let mut out = Vec::new();
        for &kind in PolicyKind::ALL {
            let p = PolicySpec::new(kind).build(&members).unwrap();
            for url in &urls {
                let key = RequestKey::new(url);
                let pick = p.pick(&key, &loads);
                prop_assert!(pick.index() < n, "{} picked {} of {}", kind, pick, n);
                p.candidates(&key, &loads, max, &mut out);
                prop_assert_eq!(out.len(), max.min(n), "{} gave {:?}", kind, out);
                let distinct: BTreeSet<_> = out.iter().collect();
                prop_assert_eq!(distinct.len(), out.len(), "{} repeated a candidate: {:?}", kind, out);
                prop_assert!(out.iter().all(|s| s.index() < n));
                // rr advances its counter on every call, so its candidates
                // start one step later; every other policy lists its pick first.
                if kind != PolicyKind::Rr {
                    prop_assert_eq!(out[0], pick, "{}: first candidate is not the pick", kind);
                }
            }
        }
    }

    /// What lets the simulator share one load-aware instance among
    /// dispatchers that keep their own load views.
    #[test]
    fn load_aware_policies_are_functions_of_key_membership_and_load(members in arb_members(), urls in arb_urls(), load_seed in any::<u64>()) {
        let n = members.len() as u64;
        let loads: Vec<u64> = (0..n).map(|i| (load_seed >> (i % 60)) % 7).collect();
        for &kind in PolicyKind::ALL {
            let a = PolicySpec::new(kind).build(&members).unwrap();
            if a.state() != State::LoadAware {
                continue;
            }
            let b = PolicySpec::new(kind).build(&members).unwrap();
            let from_a: Vec<_> = urls.iter().map(|u| a.pick(&RequestKey::new(u), &loads)).collect();
            let mut from_b: Vec<_> = urls.iter().rev().map(|u| b.pick(&RequestKey::new(u), &loads)).collect();
            from_b.reverse();
            prop_assert_eq!(&from_a, &from_b, "{}", kind);
            // And a second round on the same instance: nothing it keeps changed.
            let again: Vec<_> = urls.iter().map(|u| a.pick(&RequestKey::new(u), &loads)).collect();
            prop_assert_eq!(from_a, again, "{}", kind);
        }
    }

    #[test]
    fn pure_policies_are_functions_of_key_and_membership(members in arb_members(), urls in arb_urls()) {
        for &kind in PolicyKind::ALL {
            let a = PolicySpec::new(kind).build(&members).unwrap();
            if a.state() != State::Pure {
                continue;
            }
            let b = PolicySpec::new(kind).build(&members).unwrap();
            // b sees the keys in reverse order: no hidden state may matter.
            let from_a: Vec<_> = urls.iter().map(|u| a.pick(&RequestKey::new(u), &NoLoad)).collect();
            let mut from_b: Vec<_> = urls.iter().rev().map(|u| b.pick(&RequestKey::new(u), &NoLoad)).collect();
            from_b.reverse();
            prop_assert_eq!(from_a, from_b, "{}", kind);
        }
    }

    #[test]
    fn removing_a_server_moves_only_its_keys(members in arb_members(), urls in arb_urls(), which in any::<prop::sample::Index>()) {
        prop_assume!(members.len() >= 2);
        let gone = ServerId(which.index(members.len()) as u32);
        let weighted = members;
        let exact = [PolicyKind::ModCh, PolicyKind::MitCh, PolicyKind::Carp, PolicyKind::Ketama, PolicyKind::Hrw];
        for kind in exact {
            // CARP's multipliers depend on every weight, so only with equal
            // weights does a departure leave the other members' keys alone.
            let members = if kind == PolicyKind::Carp {
                Membership::from_names(weighted.servers().iter().map(|s| s.name.clone())).unwrap()
            } else {
                weighted.clone()
            };
            let left = members.without(gone).unwrap();
            let mut before = PolicySpec::new(kind).build(&members).unwrap();
            // A fixed V: mit_ch's default depends on N.
            let mut spec = PolicySpec::new(kind);
            if kind == PolicyKind::MitCh {
                let v = dl7_core::policy::ring::mit_ch_default_points(members.len()).to_string();
                spec.params.insert("points", v.clone());
                before = spec.build(&members).unwrap();
            }
            let after = spec.build(&left).unwrap();
            for url in &urls {
                let key = RequestKey::new(url);
                let old = members.server(before.pick(&key, &NoLoad)).name.clone();
                let new = &left.server(after.pick(&key, &NoLoad)).name;
                if old != members.server(gone).name {
                    prop_assert_eq!(&old, new, "{} moved a key of a staying server", kind);
                }
            }
        }
    }

    #[test]
    fn jump_losing_its_last_server_moves_only_that_servers_keys(n in 2usize..200, urls in arb_urls()) {
        let members = Membership::numbered(n).unwrap();
        let left = members.without(ServerId(n as u32 - 1)).unwrap();
        let before = PolicySpec::new(PolicyKind::Jump).build(&members).unwrap();
        let after = PolicySpec::new(PolicyKind::Jump).build(&left).unwrap();
        for url in &urls {
            let key = RequestKey::new(url);
            let old = before.pick(&key, &NoLoad);
            if old.index() != n - 1 {
                prop_assert_eq!(old, after.pick(&key, &NoLoad));
            }
        }
    }

    #[test]
    fn bounded_goes_to_a_server_under_capacity(members in arb_members(), urls in arb_urls(), loads in prop::collection::vec(0u64..50, 24)) {
        let n = members.len();
        let loads = loads[..n].to_vec();
        let total_weight: f64 = members.servers().iter().map(|s| s.weight).sum();
        let p = PolicySpec::new(PolicyKind::Bounded).build(&members).unwrap();
        for url in &urls {
            let s = p.pick(&RequestKey::new(url), &loads);
            let share = members.server(s).weight / total_weight;
            let cap = (1.25 * (loads.total_inflight() + 1) as f64 * share).ceil() as u64;
            prop_assert!(loads.inflight(s) < cap, "server {} at {} of cap {}", s, loads.inflight(s), cap);
        }
    }
}
