//! The load generator's timer accuracy: how late a timed replay's requests
//! reach their connection after their scheduled instants (`send_lag_*` of
//! `dl7 load --speed`), at several rates, against an origin on a runtime of
//! its own (as `dl7 load` and the services are processes of their own).
//! Prints one line per rate; `reports/replay-timed/timer.txt` holds a run.
//!
//! Run: `cargo bench -p dl7-services --bench timer`

use std::sync::Arc;
use std::time::Duration;

use dl7_services::load::{self, LoadConfig, Requests};
use dl7_services::origin::OriginConfig;
use dl7_traces::{Catalog, ContentType, Object, ObjectId};

/// Seconds each rate runs.
const SECONDS: u64 = 4;

fn main() {
    let catalog = Arc::new(Catalog {
        objects: (0..64)
            .map(|i| Object {
                id: ObjectId(i),
                path: format!("/t/{i}.html"),
                size: 2000,
                content_type: ContentType::Html,
                weight: 1.0,
            })
            .collect(),
    });
    let origin_rt = dl7_services::service::runtime(None).expect("runtime");
    let (addr, _stop) = origin_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = OriginConfig::new(catalog.clone());
        tokio::spawn(async move {
            dl7_services::origin::run(listener, cfg, async {
                let _ = rx.await;
            })
            .await
        });
        (addr, tx)
    });
    let load_rt = dl7_services::service::runtime(None).expect("runtime");
    let loadavg = || {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    };
    println!("# timed replay send lag, {SECONDS} s per rate, 2 kB objects from an origin on 127.0.0.1");
    println!("# load average before: {}", loadavg());
    println!("{:>9} {:>8} {:>8} {:>10} {:>10} {:>10}", "req/s", "sent", "dropped", "p50 ms", "p99 ms", "max ms");
    for rate in [100u64, 1_000, 5_000] {
        let n = (rate * SECONDS) as usize;
        // `rate` requests logged in each second, replayed at speed 1.
        let times: Vec<u64> = (0..n as u64).map(|k| k / rate).collect();
        let list: Vec<ObjectId> = (0..n as u32).map(|k| ObjectId(k % 64)).collect();
        let mut cfg = LoadConfig::new(addr, catalog.clone());
        cfg.requests =
            Requests::Timed { list: Arc::new(list), times: Arc::new(times), speed: 1.0, max_outstanding: 4096 };
        cfg.connections = 8;
        cfg.timeout = Duration::from_secs(5);
        let r = load_rt.block_on(load::run(cfg)).expect("a valid run");
        println!(
            "{rate:>9} {:>8} {:>8} {:>10.3} {:>10.3} {:>10.3}",
            r.requests + r.errors,
            r.dropped,
            r.send_lag_p50_ms,
            r.send_lag_p99_ms,
            r.send_lag_max_ms
        );
    }
    println!("# load average after: {}", loadavg());
}
