//! Spec vectors and disruption properties of every policy (policies.md).
//! Each test checks one property; the vectors are typed in from the spec.

use dl7_core::policy::carp::{self, Carp};
use dl7_core::policy::jump::jump;
use dl7_core::policy::maglev::Maglev;
use dl7_core::{
    LoadView, Membership, NoLoad, Params, Policy, PolicyError, PolicyKind, PolicySpec, RequestKey, Server, ServerId,
};

const SPEC_URLS: [&str; 3] =
    ["http://www.squid-cache.org/", "http://example.com/index.html", "http://example.com/img/1.jpg"];

fn build(name: &str, params: &[&str], members: &Membership) -> Box<dyn Policy> {
    let spec = PolicySpec {
        kind: PolicyKind::from_name(name).unwrap(),
        params: Params::parse(params.iter().copied()).unwrap(),
    };
    spec.build(members).unwrap()
}

fn picks(policy: &dyn Policy, urls: &[&str]) -> Vec<u32> {
    urls.iter().map(|u| policy.pick(&RequestKey::new(u.as_bytes()), &NoLoad).0).collect()
}

// ---------------------------------------------------------------- vectors

#[test]
fn spec_urls_have_the_stated_md5() {
    let hex: Vec<String> =
        SPEC_URLS.iter().map(|u| format!("{:032x}", RequestKey::new(u.as_bytes()).md5_128())).collect();
    assert_eq!(
        hex,
        ["f4d375d7a07ee003d29484143b1be447", "37ec62c647afde56313a6a8aa2302901", "a4a359709a664b3a5b6f26dff077c340"]
    );
}

#[test]
fn sixteen_server_table_md5() {
    assert_eq!(picks(&*build("md5", &[], &Membership::numbered(16).unwrap()), &SPEC_URLS), [7, 1, 0]);
}

#[test]
fn sixteen_server_table_ring_one_point() {
    let members = Membership::numbered(16).unwrap();
    assert_eq!(picks(&*build("mit_ch", &["points=1"], &members), &SPEC_URLS), [13, 11, 6]);
    assert_eq!(picks(&*build("mod_ch", &["points=1"], &members), &SPEC_URLS), [13, 11, 6]);
}

#[test]
fn sixteen_server_table_ring_160_points() {
    let members = Membership::numbered(16).unwrap();
    assert_eq!(picks(&*build("mod_ch", &[], &members), &SPEC_URLS), [7, 6, 1]);
    assert_eq!(picks(&*build("mit_ch", &["points=160"], &members), &SPEC_URLS), [7, 6, 1]);
}

#[test]
fn sixteen_server_table_hrw() {
    assert_eq!(picks(&*build("hrw", &[], &Membership::numbered(16).unwrap()), &SPEC_URLS), [13, 8, 2]);
}

#[test]
fn sixteen_server_table_maglev() {
    let members = Membership::numbered(16).unwrap();
    assert_eq!(picks(&*build("maglev", &[], &members), &SPEC_URLS), [1, 4, 1]);
    let table = Maglev::new(&members, 65537).unwrap();
    assert_eq!(&table.table()[..8], &[4, 15, 0, 10, 11, 5, 1, 11]);
}

#[test]
fn maglev_toy_example_from_the_paper() {
    let full = Maglev::with_permutations(&[(3, 4), (0, 2), (3, 1)], 7).unwrap();
    assert_eq!(full.table(), &[1, 0, 1, 0, 2, 2, 0]);
    // Without B1: B0 and B2 keep their permutations; B2 is index 1 here.
    let without_b1 = Maglev::with_permutations(&[(3, 4), (3, 1)], 7).unwrap();
    assert_eq!(without_b1.table(), &[0, 0, 0, 0, 1, 1, 1]);
}

#[test]
fn carp_member_hashes_and_multipliers() {
    let names = ["test1.ircache.net", "test2.web-cache.com", "test3.squid-cache.org", "test4.packet-pushers.com"];
    let weights = [1.0, 1.0, 2.0, 3.0];
    let members =
        Membership::new(names.iter().zip(weights).map(|(n, w)| Server { name: n.to_string(), weight: w }).collect())
            .unwrap();
    let c = Carp::new(&members);
    assert_eq!(c.member_hashes(), [0x96010320, 0x84965f0f, 0x4f5d7332, 0xa79af670]);
    for (n, h) in names.iter().zip(c.member_hashes()) {
        assert_eq!(carp::member_hash(n.as_bytes()), h);
    }
    let x = c.multipliers();
    for (got, want) in x.iter().zip([0.869442, 0.869442, 1.064844, 1.242318]) {
        assert!((got - want).abs() < 5e-7, "multiplier {got} != {want}");
    }
    assert_eq!(carp::load_multipliers(&weights), x);
}

#[test]
fn carp_url_hash_and_routing() {
    assert_eq!(RequestKey::new(b"http://www.squid-cache.org/").carp_url_hash(), 0x16073a01);
    assert_eq!(RequestKey::new(b"http://www.squid-cache.org").carp_url_hash(), 0x64741632);
    let members = Membership::new(vec![
        Server { name: "test1.ircache.net".into(), weight: 1.0 },
        Server { name: "test2.web-cache.com".into(), weight: 1.0 },
        Server { name: "test3.squid-cache.org".into(), weight: 2.0 },
        Server { name: "test4.packet-pushers.com".into(), weight: 3.0 },
    ])
    .unwrap();
    let carp = build("carp", &[], &members);
    assert_eq!(picks(&*carp, &["http://www.squid-cache.org/"]), [3]);
}

#[test]
fn ketama_matches_nginx() {
    let members = Membership::from_names(["127.0.0.1:7777", "127.0.0.1:7778"]).unwrap();
    let k = build("ketama", &[], &members);
    let urls = [
        "/some/path",
        "/some/longer/path",
        "/sad/zaidoon",
        "/g",
        "/pingora/team/is/cool/and/this/is/a/long/uri",
        "/i/am/not/confident/in/this/code",
    ];
    // 7777 is index 0, 7778 index 1.
    assert_eq!(picks(&*k, &urls), [1, 0, 1, 0, 1, 0]);
}

#[test]
fn jump_table_n_1_to_19() {
    let table: [(u64, [u32; 19]); 4] = [
        (1, [0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17]),
        (0xdeadbeef, [0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16]),
        (0x0ddc0ffeebadf00d, [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15]),
        (0, [0; 19]),
    ];
    for (key, want) in table {
        let got: Vec<u32> = (1..=19).map(|n| jump(key, n)).collect();
        assert_eq!(got, want, "key {key:#x}");
    }
    assert_eq!(jump(1, 60), 55);
    assert_eq!(jump(2, 60), 46);
}

// ------------------------------------------------------------- disruption

/// The consistent policies with the parameters the property applies to.
const KEYS: usize = 100_000;

fn urls() -> Vec<String> {
    (0..KEYS).map(|i| format!("http://example.com/obj/{i}.html")).collect()
}

/// The owner's name of every key.
fn owners<'a>(name: &str, params: &[&str], members: &'a Membership, keys: &[RequestKey]) -> Vec<&'a str> {
    let p = build(name, params, members);
    keys.iter().map(|k| members.server(p.pick(k, &NoLoad)).name.as_str()).collect()
}

struct Moves {
    fraction: f64,
    /// Keys that moved although neither their old nor new owner changed membership.
    strays: usize,
}

fn moves(before: &[&str], after: &[&str], changed: &str) -> Moves {
    let moved = before.iter().zip(after).filter(|(a, b)| a != b).count();
    let strays = before.iter().zip(after).filter(|(a, b)| a != b && **a != changed && **b != changed).count();
    Moves { fraction: moved as f64 / before.len() as f64, strays }
}

/// How tightly a policy meets the spec's disruption properties.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Moved fractions within 0.01 of 1/16 and 1/17, no stray moves.
    EvenAndExact,
    /// No stray moves, but single shares are uneven (the spec says so for
    /// `mit_ch` with few points and for `carp`); the mean is checked in
    /// `uneven_policies_move_one_share_on_average`.
    Exact,
    /// Within 0.01 of 1/16 and 1/17; under 1% of keys move between staying
    /// servers (Maglev's table shifts a few slots).
    EvenAndApproximate,
}

/// N = 16, 100k keys: server 5 leaves (for `jump` the last one, the only
/// server it can lose cleanly), then `10.0.0.17:3128` joins.
fn check_disruption(name: &str, params: &[&str], expect: Expect) {
    let urls = urls();
    let keys: Vec<RequestKey> = urls.iter().map(|u| RequestKey::new(u.as_bytes())).collect();
    let base = Membership::numbered(16).unwrap();
    let joiner = Server { name: "10.0.0.17:3128".into(), weight: 1.0 };
    let joined = base.with(joiner.clone()).unwrap();
    let leaver = if name == "jump" { ServerId(15) } else { ServerId(5) };
    let left = base.without(leaver).unwrap();
    let before = owners(name, params, &base, &keys);
    let leave = moves(&before, &owners(name, params, &left, &keys), &base.server(leaver).name);
    let join = moves(&before, &owners(name, params, &joined, &keys), &joiner.name);
    let report = format!(
        "{name}: leave {:.4} ({} strays), join {:.4} ({} strays)",
        leave.fraction, leave.strays, join.fraction, join.strays
    );
    println!("{report}");
    if expect != Expect::Exact {
        assert!((leave.fraction - 1.0 / 16.0).abs() <= 0.01, "{report}");
        assert!((join.fraction - 1.0 / 17.0).abs() <= 0.01, "{report}");
    }
    if expect == Expect::EvenAndApproximate {
        assert!((leave.strays as f64) < 0.01 * KEYS as f64, "{report}");
        assert!((join.strays as f64) < 0.01 * KEYS as f64, "{report}");
    } else {
        assert_eq!(leave.strays, 0, "{report}");
        assert_eq!(join.strays, 0, "{report}");
    }
}

/// `mit_ch` gets a fixed `points`: its default `ceil(log2 N)` is 4 at N = 16
/// but 5 at N = 17, and a rebuild with a different V moves far more keys
/// (see `mit_ch_default_points_change_at_a_power_of_two`).
#[test]
fn disruption_mit_ch() {
    check_disruption("mit_ch", &["points=4"], Expect::Exact);
}

#[test]
fn disruption_mod_ch() {
    check_disruption("mod_ch", &[], Expect::EvenAndExact);
}

#[test]
fn disruption_carp() {
    check_disruption("carp", &[], Expect::Exact);
}

#[test]
fn disruption_ketama() {
    check_disruption("ketama", &[], Expect::EvenAndExact);
}

#[test]
fn disruption_maglev() {
    check_disruption("maglev", &[], Expect::EvenAndApproximate);
}

#[test]
fn disruption_jump_tail() {
    check_disruption("jump", &[], Expect::EvenAndExact);
}

#[test]
fn disruption_hrw() {
    check_disruption("hrw", &[], Expect::EvenAndExact);
}

#[test]
fn md5_moves_almost_every_key() {
    let urls = urls();
    let keys: Vec<RequestKey> = urls.iter().take(20_000).map(|u| RequestKey::new(u.as_bytes())).collect();
    let base = Membership::numbered(16).unwrap();
    let before = owners("md5", &[], &base, &keys);
    let left = base.without(ServerId(15)).unwrap();
    let after = owners("md5", &[], &left, &keys);
    let m = moves(&before, &after, "10.0.0.16:3128");
    assert!((m.fraction - 15.0 / 16.0).abs() < 0.02, "md5 moved {}", m.fraction);
}

#[test]
fn mit_ch_default_points_change_at_a_power_of_two() {
    // Documented consequence of V = ceil(log2 N): growing from 16 to 17
    // servers rebuilds every server's points, so far more than 1/17 moves.
    let urls = urls();
    let keys: Vec<RequestKey> = urls.iter().take(20_000).map(|u| RequestKey::new(u.as_bytes())).collect();
    let base = Membership::numbered(16).unwrap();
    let joined = Membership::numbered(17).unwrap();
    let m = moves(&owners("mit_ch", &[], &base, &keys), &owners("mit_ch", &[], &joined, &keys), "10.0.0.17:3128");
    assert!(m.strays > 0 && m.fraction > 0.1, "moved {}", m.fraction);
}

#[test]
fn uneven_policies_move_one_share_on_average() {
    // Averaged over every possible leaver, a policy that moves only the
    // leaver's keys moves exactly the mean share 1/N.
    let urls = urls();
    let keys: Vec<RequestKey> = urls.iter().take(20_000).map(|u| RequestKey::new(u.as_bytes())).collect();
    let base = Membership::numbered(16).unwrap();
    let cases: [(&str, &[&str]); 2] = [("mit_ch", &["points=4"]), ("carp", &[])];
    for (name, params) in cases {
        let before = owners(name, params, &base, &keys);
        let mut total = 0.0;
        for id in base.ids() {
            let left = base.without(id).unwrap();
            total += moves(&before, &owners(name, params, &left, &keys), &base.server(id).name).fraction;
        }
        assert!((total / 16.0 - 1.0 / 16.0).abs() < 1e-9, "{name}: mean moved {}", total / 16.0);
    }
}

// ------------------------------------------------------ basic invariants

#[test]
fn every_policy_agrees_across_instances() {
    let members = Membership::numbered(16).unwrap();
    let urls = urls();
    for &kind in PolicyKind::ALL {
        let a = PolicySpec::new(kind).build(&members).unwrap();
        let b = PolicySpec::new(kind).build(&members).unwrap();
        for u in urls.iter().take(2000) {
            let k = RequestKey::new(u.as_bytes());
            assert_eq!(a.pick(&k, &NoLoad), b.pick(&k, &NoLoad), "{kind} disagrees on {u}");
        }
    }
}

#[test]
fn empty_membership_is_an_error() {
    assert_eq!(Membership::from_names(Vec::<String>::new()), Err(PolicyError::EmptyMembership));
    assert!(Maglev::with_permutations(&[], 7).is_err());
}

#[test]
fn one_server_takes_every_key() {
    let members = Membership::numbered(1).unwrap();
    let urls = urls();
    for &kind in PolicyKind::ALL {
        let p = PolicySpec::new(kind).build(&members).unwrap();
        let mut out = Vec::new();
        for u in urls.iter().take(500) {
            let k = RequestKey::new(u.as_bytes());
            assert_eq!(p.pick(&k, &NoLoad), ServerId(0), "{kind}");
            p.candidates(&k, &NoLoad, 4, &mut out);
            assert_eq!(out, [ServerId(0)], "{kind}");
        }
    }
}

#[test]
fn every_name_builds_with_defaults_and_reports_its_kind() {
    let members = Membership::numbered(16).unwrap();
    for &kind in PolicyKind::ALL {
        let p = PolicySpec::new(kind).build(&members).unwrap();
        assert_eq!(p.kind(), kind);
        assert_eq!(p.servers(), 16);
    }
}

#[test]
fn bad_parameters_are_errors_naming_them() {
    let members = Membership::numbered(16).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("mit_ch", "points=0", "points"),
        ("mod_ch", "points=abc", "points"),
        ("maglev", "table_size=65536", "table_size"),
        ("maglev", "table_size=1597", "table_size"),
        ("ht_rr", "buckets=0", "buckets"),
        ("bounded", "c=0.5", "c"),
        ("bounded", "base=jump", "base"),
        ("lard", "t_low=70", "t_low"),
        ("md5", "points=3", "points"),
    ];
    for &(name, param, named) in cases {
        let spec = PolicySpec { kind: PolicyKind::from_name(name).unwrap(), params: Params::parse([param]).unwrap() };
        let err = spec.build(&members).err().unwrap_or_else(|| panic!("{name} {param} should fail")).to_string();
        assert!(err.contains(named), "{err}");
    }
}

#[test]
fn maglev_grows_its_default_table_for_large_memberships() {
    let members = Membership::numbered(700).unwrap();
    let p = build("maglev", &[], &members);
    assert!(p.pick(&RequestKey::new(b"http://example.com/"), &NoLoad).index() < 700);
    assert!(PolicySpec { kind: PolicyKind::Maglev, params: Params::parse(["table_size=65537"]).unwrap() }
        .build(&members)
        .is_err());
}

#[test]
fn unknown_policy_lists_valid_names() {
    let err = PolicyKind::from_name("md6").unwrap_err().to_string();
    assert!(err.contains("md6") && err.contains("ht_rr_shared") && err.contains("maglev"), "{err}");
}

#[test]
fn ht_rr_assigns_buckets_round_robin_and_keeps_them() {
    let members = Membership::numbered(4).unwrap();
    let p = build("ht_rr", &[], &members);
    let urls = urls();
    let keys: Vec<RequestKey> = urls.iter().take(8).map(|u| RequestKey::new(u.as_bytes())).collect();
    let first: Vec<u32> = keys.iter().map(|k| p.pick(k, &NoLoad).0).collect();
    assert_eq!(first, [0, 1, 2, 3, 0, 1, 2, 3]);
    let again: Vec<u32> = keys.iter().rev().map(|k| p.pick(k, &NoLoad).0).collect();
    assert_eq!(again, [3, 2, 1, 0, 3, 2, 1, 0]);
}

#[test]
fn shared_by_default_only_for_ht_rr_shared() {
    let shared: Vec<PolicyKind> = PolicyKind::ALL.iter().copied().filter(|k| k.shared_by_default()).collect();
    assert_eq!(shared, [PolicyKind::HtRrShared]);
    let members = Membership::numbered(4).unwrap();
    assert_eq!(build("ht_rr_shared", &[], &members).kind(), PolicyKind::HtRrShared);
}

// ------------------------------------------------------- load-aware ones

#[test]
fn bounded_never_overfills_while_another_server_has_room() {
    for base in ["maglev", "mod_ch"] {
        let members = Membership::numbered(16).unwrap();
        let p = build("bounded", &[&format!("base={base}")], &members);
        let mut loads = vec![0; 16];
        // A hot spot: 10 URLs repeated, nothing ever completes.
        let urls: Vec<String> = (0..10).map(|i| format!("http://example.com/hot/{i}")).collect();
        for step in 0..5000 {
            let key = RequestKey::new(urls[step % urls.len()].as_bytes());
            let total = loads.total_inflight();
            let cap = (1.25 * (total + 1) as f64 / 16.0).ceil() as u64;
            let s = p.pick(&key, &loads);
            assert!(loads[s.index()] < cap, "{base}: step {step} sent to a full server ({loads:?})", loads = loads);
            loads[s.index()] += 1;
            assert!(loads.iter().all(|&l| l <= cap));
        }
    }
}

#[test]
fn bounded_without_load_is_its_base() {
    let members = Membership::numbered(16).unwrap();
    let b = build("bounded", &[], &members);
    let m = build("maglev", &[], &members);
    for u in urls().iter().take(1000) {
        let k = RequestKey::new(u.as_bytes());
        assert_eq!(b.pick(&k, &NoLoad), m.pick(&k, &NoLoad));
    }
}

#[test]
fn p2c_without_load_is_hrw() {
    let members = Membership::numbered(16).unwrap();
    let p = build("p2c", &[], &members);
    let h = build("hrw", &[], &members);
    for u in urls().iter().take(1000) {
        let k = RequestKey::new(u.as_bytes());
        assert_eq!(p.pick(&k, &NoLoad), h.pick(&k, &NoLoad));
    }
}

#[test]
fn p2c_picks_the_less_loaded_of_its_two_hrw_candidates() {
    let members = Membership::numbered(16).unwrap();
    let p2c = build("p2c", &[], &members);
    let hrw = build("hrw", &[], &members);
    let mut ranking = Vec::new();
    for (i, u) in urls().iter().take(300).enumerate() {
        let k = RequestKey::new(u.as_bytes());
        hrw.candidates(&k, &NoLoad, 2, &mut ranking);
        let (first, second) = (ranking[0], ranking[1]);
        let mut loads = vec![5; 16];
        match i % 3 {
            0 => loads[first.index()] = 9,  // second is less loaded
            1 => loads[second.index()] = 9, // first is less loaded
            _ => {}                         // tie: the HRW winner
        }
        let want = if i % 3 == 0 { second } else { first };
        assert_eq!(p2c.pick(&k, &loads), want, "{u}");
    }
}

#[test]
fn lard_moves_a_url_only_when_its_server_is_overloaded() {
    let members = Membership::numbered(4).unwrap();
    let lard = build("lard", &[], &members);
    let k = RequestKey::new(b"http://example.com/a");
    let mut loads = vec![10, 0, 10, 10];
    assert_eq!(lard.pick(&k, &loads), ServerId(1), "first use goes to the least loaded");
    loads = vec![0, 60, 0, 0];
    assert_eq!(lard.pick(&k, &loads), ServerId(1), "at or below t_high it stays");
    loads = vec![30, 66, 30, 30];
    assert_eq!(lard.pick(&k, &loads), ServerId(1), "over t_high but nobody under t_low: stays");
    loads = vec![30, 66, 20, 30];
    assert_eq!(lard.pick(&k, &loads), ServerId(2), "over t_high and a server under t_low: moves");
    loads = vec![130, 130, 130, 129];
    assert_eq!(lard.pick(&k, &loads), ServerId(3), "at 2 x t_high it moves regardless");
}

#[test]
fn maglev_default_stays_consistent_for_large_memberships() {
    // Above N = 655 the default table grows; it must not change between
    // N = 1023, 1024 and 1025, or every key would move.
    let urls = urls();
    let keys: Vec<RequestKey> = urls.iter().take(20_000).map(|u| RequestKey::new(u.as_bytes())).collect();
    let base = Membership::numbered(1024).unwrap();
    let before = owners("maglev", &[], &base, &keys);
    for other in [1023, 1025] {
        let changed = Membership::numbered(other).unwrap();
        let changed_name = format!("10.0.0.{}:3128", other.max(1024));
        let m = moves(&before, &owners("maglev", &[], &changed, &keys), &changed_name);
        // Ideal is 1/1024 ~ 0.001; Maglev's slot reshuffle adds a few times
        // that. A changed table size would move nearly every key.
        assert!(m.fraction < 0.01, "N = 1024 -> {other} moved {}", m.fraction);
    }
}

#[test]
fn describe_reports_the_resolved_parameters() {
    let members = Membership::numbered(16).unwrap();
    assert_eq!(build("mit_ch", &[], &members).describe(), "points=4");
    assert_eq!(build("mod_ch", &[], &members).describe(), "points=160");
    assert_eq!(build("maglev", &[], &members).describe(), "table_size=65537");
    assert_eq!(build("ht_rr", &["buckets=1024"], &members).describe(), "buckets=1024");
    assert_eq!(build("bounded", &["base=mod_ch", "c=1.5"], &members).describe(), "c=1.5 base=mod_ch points=160");
    assert_eq!(build("lard", &[], &members).describe(), "t_low=25 t_high=65");
    assert_eq!(build("md5", &[], &members).describe(), "");
}
