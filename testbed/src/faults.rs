//! A cell's fault schedule ([`dl7_core::fault`]) carried out on the real
//! node processes ([`crate::nodes`]) while the measured load runs, and
//! [`owners`]: which node a live dispatcher picks for each path, for the
//! row's `moved_frac`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dl7_core::Fault;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::nodes::{NodeSet, STEP_TIMEOUT};
use crate::TestbedError;

/// Runs `faults` on `set`, each `at_s` after `window_start`; returns the
/// instants at which each one was done (seconds after `window_start`).
pub(crate) async fn run_schedule(
    set: &Mutex<NodeSet>,
    faults: &[Fault],
    window_start: Instant,
    exe: &Path,
    dir: &Path,
    front: Option<SocketAddr>,
) -> Result<Vec<f64>, TestbedError> {
    let mut done = Vec::new();
    for f in faults {
        tokio::time::sleep_until(window_start + Duration::from_secs_f64(f.at_s)).await;
        set.lock().await.apply(f, exe, dir, front).await?;
        tracing::info!("fault at {:.2} s: {} node {}", f.at_s, f.action.name(), f.node);
        done.push(window_start.elapsed().as_secs_f64());
    }
    Ok(done)
}

/// The node the dispatcher at `addr` picks for each of `paths` (its
/// `/_dl7/owner` answers, over one keep-alive connection).
pub(crate) async fn owners(addr: SocketAddr, paths: &[String]) -> Result<Vec<u32>, TestbedError> {
    let failed = |e: &dyn std::fmt::Display| TestbedError::exchange(addr, "owners", e);
    let mut conn = dl7_services::http::ClientConn::connect(addr, STEP_TIMEOUT).await.map_err(|e| failed(&e))?;
    let mut body = Vec::new();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let lookup = format!("{}{p}", dl7_services::dispatch::OWNER_PREFIX);
        let head = conn.get(&lookup, false, &mut body).await.map_err(|e| failed(&e))?;
        let owner = std::str::from_utf8(&body).ok().and_then(|t| t.trim().parse().ok());
        match owner {
            Some(o) if head.status == 200 => out.push(o),
            _ => return Err(failed(&format_args!("no owner for {p} (status {})", head.status))),
        }
    }
    Ok(out)
}
