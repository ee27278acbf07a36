//! Routing as operators of the same design expect it (issue 19, item 5),
//! through a node's dispatcher and the conventional front end, in front of
//! a web server that is not dl7's origin:
//!
//! * `hash_key = path` (Traffic Server's `qstring=ignore`): every query of a
//!   path has the path's owner, and each query is still its own cache entry
//!   there (the cache key is the whole URL); `url` spreads the queries.
//! * Ramp-up (the Varnish shard director's `rampup`): a node that has just
//!   joined takes none of the keys late in its ramp, which go to the next
//!   candidate; without ramp-up it takes them at once.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::core_owner;
use common::web::{Cluster, Reply, Seen, Web};
use dl7_core::{HashKey, RequestKey};
use dl7_services::http::ClientConn;

/// A web server whose every answer is storable for a minute, its body the target.
async fn web() -> Web {
    Web::start(|req: &Seen| Reply::new(200, req.target.as_bytes()).header("Cache-Control", "max-age=60")).await
}

/// The node that served each of `targets` entering at `entry`, after checking each body.
async fn served_by(entry: SocketAddr, targets: &[String]) -> Vec<u32> {
    let mut conn = ClientConn::connect(entry, Duration::from_secs(2)).await.unwrap();
    let mut body = Vec::new();
    let mut out = Vec::new();
    for t in targets {
        let head = conn.get(t, false, &mut body).await.unwrap();
        assert_eq!((head.status, body.as_slice()), (200, t.as_bytes()), "{t}");
        out.push(head.served_by.expect("a dl7 node says who served it"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_key_gives_every_query_its_paths_owner_and_each_its_own_entry() {
    let targets: Vec<String> = (0..16).map(|i| format!("/search/results.html?q={i}")).collect();
    let owner_of_path = core_owner("md5", 4, "/search/results.html");
    for key in [HashKey::Path, HashKey::Url] {
        let web = web().await;
        let c = Cluster::start_tuned(4, web.addr, true, |_, nc| nc.hash_key = key, |fc| fc.hash_key = key).await;
        let want: Vec<u32> = match key {
            HashKey::Path => vec![owner_of_path; targets.len()],
            HashKey::Url => targets.iter().map(|t| core_owner("md5", 4, t)).collect(),
        };
        // Through a node's dispatcher, then the front end's: the same owners, whose copies answer the second time.
        assert_eq!(served_by(c.nodes[0], &targets).await, want, "{key} through node 0");
        assert_eq!(served_by(c.front.unwrap(), &targets).await, want, "{key} through the front end");
        for t in &targets {
            assert_eq!(web.count(t), 1, "{key}: {t} fetched once, and apart from the other queries");
        }
        let owners: std::collections::BTreeSet<u32> = want.iter().copied().collect();
        assert_eq!(owners.len() == 1, key == HashKey::Path, "{key}: owners {owners:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_has_just_joined_takes_its_keys_as_its_ramp_up_reaches_them() {
    // Paths node 2 owns once it is a member, late in a ramp (past its half):
    // they stay elsewhere for the first half hour of an hour's ramp-up.
    let rampup = Duration::from_secs(3600);
    let late: Vec<String> = (0..)
        .map(|i| format!("/ramp/{i}.html"))
        .filter(|p| {
            core_owner("md5", 3, p) == 2
                && !dl7_services::dispatch::ramp_takes(&RequestKey::new(p.as_bytes()), rampup / 2, rampup)
        })
        .take(8)
        .collect();
    for ramp in [rampup, Duration::ZERO] {
        let web = web().await;
        let mut admins = Vec::new();
        for _ in 0..4 {
            admins.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: Vec<SocketAddr> = admins.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut listeners = admins.into_iter().map(Some).collect::<Vec<_>>();
        let mut front_admin = listeners.pop().unwrap();
        let c = Cluster::start_tuned(
            3,
            web.addr,
            true,
            |i, nc| {
                nc.rampup = ramp;
                nc.admin = listeners[i].take();
                nc.initial_members = Some(vec![0, 1]);
            },
            |fc| {
                fc.rampup = ramp;
                fc.admin = front_admin.take();
                fc.initial_members = Some(vec![0, 1]);
            },
        )
        .await;
        // Node 2 joins every dispatcher, as the testbed's join does.
        for &a in &addrs {
            dl7_services::admin::put_members(a, &[0, 1, 2], None, Duration::from_secs(2)).await.unwrap();
        }
        for entry in [c.nodes[0], c.front.unwrap()] {
            let got = served_by(entry, &late).await;
            if ramp.is_zero() {
                assert!(got.iter().all(|&s| s == 2), "no ramp-up: the new owner at once: {got:?}");
            } else {
                assert!(got.iter().all(|&s| s != 2), "ramping up: its late keys elsewhere: {got:?}");
            }
        }
        let diverted = c.node_metrics[0].stats().rampup_diverted;
        assert_eq!(diverted > 0, !ramp.is_zero(), "node 0 counted {diverted} diverted requests");
    }
}
