//! Properties of the cluster model, through the public `simulate` API.

use std::sync::Arc;

use dl7_core::Pace;
use dl7_core::PolicySpec;
use dl7_sim::{simulate, simulate_with_stats, Arch, CellSpec, ClientMode, Hardware};
use dl7_traces::{Catalog, ContentType, Object, ObjectId};

fn cell(catalog: Arc<Catalog>, arch: Arch, policy: &str, servers: u32) -> CellSpec {
    CellSpec {
        warmup_s: 3.0,
        measure_s: 5.0,
        seed: 7,
        ..CellSpec::paper("test", catalog, arch, PolicySpec::parse(policy).unwrap(), servers)
    }
}

fn surge100() -> Arc<Catalog> {
    Arc::new(dl7_traces::workload::builtin("surge100").unwrap())
}

/// One object of `size` body bytes.
fn single(size: u64) -> Arc<Catalog> {
    Arc::new(Catalog {
        objects: vec![Object {
            id: ObjectId(0),
            path: "/only.html".into(),
            size,
            content_type: ContentType::Html,
            weight: 1.0,
        }],
    })
}

#[test]
fn the_same_spec_gives_an_identical_row() {
    let hw = Hardware::kwon2008();
    for arch in [Arch::Conventional, Arch::Distributed] {
        let c = cell(surge100(), arch, "ht_rr", 4);
        let a = simulate(&c, &hw).unwrap();
        let b = simulate(&c, &hw).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let mut other = c.clone();
        other.seed = 8;
        assert_ne!(format!("{a:?}"), format!("{:?}", simulate(&other, &hw).unwrap()), "the seed must matter");
    }
}

#[test]
fn the_front_end_nic_carries_link_rate_times_efficiency() {
    // Body + 300 B of headers = exactly 10 full segments of 1448 B. Per
    // request the front end's TX carries the request to the server (200 B +
    // 90 B overhead + 4 control frames of 84 B = 626 B), the response to the
    // client (10 x 1538 + 3 x 84 = 15,632 B) and its ACKs to the server
    // (5 x 84 = 420 B): 16,678 B; its RX carries the same. At 100 Mbit/s
    // that is 749.5 requests/s and 85.0 Mbit/s of body.
    let body = 10 * 1448 - 300;
    let hw = Hardware::kwon2008();
    // rr so that one hot object does not make one server the bottleneck.
    // A long run: the 1,008 connections' backlog at the NIC settles slowly.
    let mut c = cell(single(body), Arch::Conventional, "rr", 16);
    (c.warmup_s, c.measure_s) = (10.0, 20.0);
    let row = simulate(&c, &hw).unwrap();
    let expected_rps = 100e6 / 8.0 / 16_678.0;
    assert!((row.req_per_s / expected_rps - 1.0).abs() < 0.01, "{} vs {expected_rps}", row.req_per_s);
    let expected_mbit = expected_rps * body as f64 * 8.0 / 1e6;
    assert!((row.mbit_per_s / expected_mbit - 1.0).abs() < 0.01, "{} vs {expected_mbit}", row.mbit_per_s);
    assert!(row.fe_nic_util > 0.99, "{}", row.fe_nic_util);
}

#[test]
fn one_conventional_server_is_cpu_bound_at_the_server() {
    let row = simulate(&cell(surge100(), Arch::Conventional, "rr", 1), &Hardware::kwon2008()).unwrap();
    assert!(row.max_server_cpu_util > 0.97, "{row:?}");
    assert!(row.fe_nic_util < 0.9 && row.fe_cpu_util < 0.5 && row.max_server_nic_util < 0.9, "{row:?}");
}

#[test]
fn sixteen_conventional_servers_are_bound_by_the_front_end_nic() {
    let row = simulate(&cell(surge100(), Arch::Conventional, "md5", 16), &Hardware::kwon2008()).unwrap();
    assert!(row.fe_nic_util > 0.98, "{row:?}");
    assert!(row.fe_cpu_util < 0.5 && row.max_server_cpu_util < 0.5, "{row:?}");
    // Goodput through a saturated 100 Mbit/s relay: under 90 Mbit/s.
    assert!(row.mbit_per_s > 80.0 && row.mbit_per_s < 90.0, "{}", row.mbit_per_s);
}

#[test]
fn distributed_rr_forwards_all_but_one_in_n_and_hashing_stores_one_copy() {
    let hw = Hardware::kwon2008();
    let catalog = surge100();
    let unique = catalog.unique_bytes();
    let rr = simulate(&cell(catalog.clone(), Arch::Distributed, "rr", 4), &hw).unwrap();
    assert!((rr.forwarded_frac - 0.75).abs() < 0.01, "{}", rr.forwarded_frac);
    let md5 = simulate(&cell(catalog.clone(), Arch::Distributed, "md5", 4), &hw).unwrap();
    // Each object on its owner only, versus on (nearly) every server.
    assert!(md5.cache_bytes <= unique, "{} > {unique}", md5.cache_bytes);
    assert!(rr.cache_bytes > 3 * unique, "{} vs {unique}", rr.cache_bytes);
    assert!(md5.imbalance > rr.imbalance, "{} vs {}", md5.imbalance, rr.imbalance);
    let one = simulate(&cell(catalog, Arch::Distributed, "rr", 1), &hw).unwrap();
    assert_eq!(one.forwarded_frac, 0.0);
}

#[test]
fn the_paper_shape_holds_at_one_and_sixteen_servers() {
    let hw = Hardware::kwon2008();
    let run = |arch, policy, n| simulate(&cell(surge100(), arch, policy, n), &hw).unwrap().req_per_s;
    // One server: conventional wins (no L7 work on the weak server).
    assert!(run(Arch::Conventional, "rr", 1) > run(Arch::Distributed, "rr", 1));
    // Sixteen: distributed wins, for rr by a wide margin.
    let conv16 = run(Arch::Conventional, "rr", 16);
    assert!(run(Arch::Distributed, "rr", 16) > 3.0 * conv16);
    assert!(run(Arch::Distributed, "md5", 16) > conv16);
}

#[test]
fn a_light_poisson_load_is_served_in_full_with_no_queueing() {
    let hw = Hardware::kwon2008();
    let mut c = cell(surge100(), Arch::Distributed, "md5", 4);
    c.clients = ClientMode::Poisson { rate: 100.0 };
    let row = simulate(&c, &hw).unwrap();
    assert!((row.req_per_s / 100.0 - 1.0).abs() < 0.1, "{}", row.req_per_s);
    assert_eq!(row.errors, 0);
    assert!(row.max_server_cpu_util < 0.3, "{}", row.max_server_cpu_util);
    // An unloaded forwarded request: a few ms of CPU and wire, no queue.
    assert!(row.p50_ms > 1.0 && row.p50_ms < 20.0, "{}", row.p50_ms);
}

#[test]
fn surge_on_off_users_think_between_requests() {
    let hw = Hardware::kwon2008();
    let mut closed = cell(surge100(), Arch::Conventional, "md5", 2);
    closed.measure_s = 10.0;
    let mut onoff = closed.clone();
    onoff.clients = ClientMode::OnOff { per_server: 63 };
    let busy = simulate(&closed, &hw).unwrap().req_per_s;
    let thinking = simulate(&onoff, &hw).unwrap();
    assert!(thinking.req_per_s > 10.0 && thinking.req_per_s < busy / 2.0, "{} vs {busy}", thinking.req_per_s);
}

#[test]
fn events_per_request_stay_small() {
    let (row, stats) =
        simulate_with_stats(&cell(surge100(), Arch::Distributed, "rr", 16), &Hardware::kwon2008()).unwrap();
    assert!(row.requests > 0);
    // Conventional: 9 resource visits per request; distributed forwarded: 12.
    assert!(stats.events_per_request() < 13.0, "{}", stats.events_per_request());
}

#[test]
fn bad_cells_and_bad_hardware_are_errors_not_panics() {
    let hw = Hardware::kwon2008();
    let mut c = cell(surge100(), Arch::Distributed, "md5", 0);
    assert!(simulate(&c, &hw).unwrap_err().to_string().contains("servers"));
    c.servers = 2;
    c.measure_s = 0.0;
    assert!(simulate(&c, &hw).unwrap_err().to_string().contains("measure_s"));
    c.measure_s = 1.0;
    c.catalog = Arc::new(Catalog::default());
    assert!(simulate(&c, &hw).unwrap_err().to_string().contains("no objects"));

    let text = include_str!("../../experiments/hardware/kwon2008.toml");
    let err = Hardware::from_toml_str(&text.replace("mss_bytes", "mss"), "my.toml").unwrap_err().to_string();
    assert!(err.starts_with("my.toml:") && err.contains("mss"), "{err}");
    let err = Hardware::from_toml_str(&text.replace("conn_us = 150.0", "conn_us = \"fast\""), "my.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("my.toml:") && err.contains("server.conn_us"), "{err}");
}

#[test]
fn concurrent_misses_for_one_object_at_one_server_share_one_fetch() {
    let hw = Hardware::kwon2008();
    // 63 x 4 connections all ask for the one object at once.
    let (_, conv_rr) = simulate_with_stats(&cell(single(5000), Arch::Conventional, "rr", 4), &hw).unwrap();
    assert_eq!(conv_rr.origin_fetches, 4, "one fetch per server under rr");
    let (_, dist_md5) = simulate_with_stats(&cell(single(5000), Arch::Distributed, "md5", 4), &hw).unwrap();
    assert_eq!(dist_md5.origin_fetches, 1, "one fetch, at the owner, under hashing");
    // A cache too small for the object: it is never stored, so every request
    // misses; each fetch serves the requests parked on it, then the next
    // miss starts another.
    let mut tiny = cell(single(5000), Arch::Distributed, "md5", 4);
    tiny.cache_bytes_per_server = Some(1000);
    let (row, stats) = simulate_with_stats(&tiny, &hw).unwrap();
    assert_eq!(row.hit_ratio, 0.0);
    assert!(stats.origin_fetches > 5, "{}", stats.origin_fetches);
}

/// A replay of `times.len()` requests over surge100's objects (request k
/// for object k mod 100), at `speed` when given.
fn replay(times: Vec<u64>, speed: Option<f64>, max_outstanding: u32) -> CellSpec {
    let mut c = cell(surge100(), Arch::Distributed, "md5", 4);
    c.requests = Some(Arc::new((0..times.len() as u32).map(|k| ObjectId(k % 100)).collect()));
    c.times = Some(Arc::new(times));
    let pace = speed.map(|speed| Pace { speed, max_outstanding });
    c.clients = ClientMode::Replay { connections: 4, warmup_requests: 0, pace };
    c
}

#[test]
fn a_timed_replay_sends_each_request_within_a_millisecond_of_its_logged_time_over_the_speed() {
    // Known timestamps: three requests in second 0, one in 1, four in 7, two in 30.
    let times = vec![1000, 1000, 1000, 1001, 1007, 1007, 1007, 1007, 1030, 1030];
    // Second T's k-th of m requests is due at (T - 1000 + k/m) / 10 seconds, by hand:
    let due_ms = [0.0, 33.333, 66.667, 100.0, 700.0, 725.0, 750.0, 775.0, 3000.0, 3050.0];
    let (row, stats) = simulate_with_stats(&replay(times, Some(10.0), 100), &Hardware::kwon2008()).unwrap();
    assert_eq!(stats.sent_at.len(), due_ms.len());
    for (k, (&sent, due)) in stats.sent_at.iter().zip(due_ms).enumerate() {
        let sent_ms = sent as f64 / 1e6;
        assert!((sent_ms - due).abs() < 1.0, "request {k} sent at {sent_ms} ms, due at {due} ms");
    }
    assert_eq!((row.replayed, row.requests, row.dropped, row.errors), (10, 10, 0, 0));
    // The run lasts the schedule (3.05 s) and then the last response.
    let t: Vec<f64> = stats.intervals.iter().map(|i| i.t_s).collect();
    assert_eq!(t, [0.0, 1.0, 2.0, 3.0]);
    assert!(stats.intervals[1].req_per_s == 0.0 && stats.intervals[2].req_per_s == 0.0, "quiet seconds");
}

#[test]
fn a_timed_replay_drops_beyond_max_outstanding_and_loses_nothing_silently() {
    // 2,000 requests logged in one second, replayed at speed 1: one every
    // 0.5 ms, faster than four servers answer. At most 8 out at once.
    let (row, stats) = simulate_with_stats(&replay(vec![7; 2000], Some(1.0), 8), &Hardware::kwon2008()).unwrap();
    assert!(row.dropped > 100, "{row:?}");
    assert_eq!(row.replayed, 2000);
    assert_eq!(row.requests + row.dropped, row.replayed, "each request completed or dropped");
    assert_eq!(stats.sent_at.iter().filter(|&&t| t == u64::MAX).count() as u64, row.dropped);
    // Without the bound nothing is dropped.
    let (free, _) = simulate_with_stats(&replay(vec![7; 2000], Some(1.0), 4096), &Hardware::kwon2008()).unwrap();
    assert_eq!((free.dropped, free.requests), (0, 2000));
}

#[test]
fn without_speed_a_replay_stays_closed_loop_and_ignores_the_times() {
    let hw = Hardware::kwon2008();
    let timed = replay(vec![1, 1_000_000], None, 1);
    let (row, stats) = simulate_with_stats(&timed, &hw).unwrap();
    assert_eq!((row.replayed, row.requests), (2, 2));
    assert!(stats.sent_at[1] < 1_000_000_000, "the second request does not wait for its logged time");
}

#[test]
fn intervals_cover_the_warm_up_and_the_window_and_add_up_to_the_row() {
    let hw = Hardware::kwon2008();
    let mut c = cell(surge100(), Arch::Distributed, "md5", 4);
    (c.warmup_s, c.measure_s, c.interval_s) = (1.5, 4.0, 0.5);
    let (row, stats) = simulate_with_stats(&c, &hw).unwrap();
    let t: Vec<f64> = stats.intervals.iter().map(|i| i.t_s).collect();
    let expected: Vec<f64> = (-3..8).map(|k| f64::from(k) * 0.5).collect();
    assert_eq!(t, expected);
    let measured: f64 = stats.intervals.iter().filter(|i| i.t_s >= 0.0).map(|i| i.req_per_s * 0.5).sum();
    assert!(
        (measured - row.requests as f64).abs() < 1e-6,
        "the window's intervals hold its completions: {measured} vs {}",
        row.requests
    );
    // Caches start cold: the first warm-up interval has the lowest hit ratio.
    let first = stats.intervals[0].hit_ratio;
    assert!(stats.intervals.iter().skip(1).all(|i| i.hit_ratio >= first), "{:?}", stats.intervals);
    assert!(stats.intervals.iter().all(|i| i.p99_ms > 0.0 && i.errors == 0));
    let (again, stats2) = simulate_with_stats(&c, &hw).unwrap();
    assert_eq!((again, stats2.intervals), (row, stats.intervals), "deterministic");
}

/// A catalog whose paths keep their queries (`dl7 trace import
/// --keep-query`): with the path as the hash key, every query of the path
/// is cached at one owner, as the real dispatchers route it; with the whole
/// URL, the queries spread over the servers. Either way each is its own object.
#[test]
fn the_path_key_caches_every_query_of_a_path_at_its_one_owner() {
    let objects = (0..24u32)
        .map(|i| Object {
            id: ObjectId(i),
            path: format!("/search.html?q={i}"),
            size: 2000,
            content_type: ContentType::Html,
            weight: 1.0,
        })
        .collect();
    let catalog = Arc::new(Catalog { objects });
    let hw = Hardware::kwon2008();
    for key in dl7_core::HashKey::ALL {
        let c = CellSpec { hash_key: key, ..cell(catalog.clone(), Arch::Distributed, "md5", 4) };
        let (_, stats) = simulate_with_stats(&c, &hw).unwrap();
        let holding: Vec<usize> = stats.cached.iter().map(Vec::len).filter(|&n| n > 0).collect();
        assert_eq!(holding.iter().sum::<usize>(), 24, "{key}: every query its own object, cached once");
        assert_eq!(holding.len() == 1, key == dl7_core::HashKey::Path, "{key}: objects per server {holding:?}");
    }
}
