//! The lab's keepalived: while a distributed cell runs behind a kernel
//! front end, probe its nodes as every dispatcher does ([`dl7_services::health`],
//! from the controller over the lab network) and, when one goes out or comes
//! back, or the fault schedule changes the membership, change the front
//! end's forwarding in place so that it stops forwarding to a dead or
//! departed node and starts forwarding to a joined one: ldirectord's job on
//! an IPVS box. The emulated lab's front end is its nftables map
//! ([`lab_map`], [`LabPlan::direct_routing_reroute`]); a lab PC's is IPVS
//! weights or the same map, over SSH ([`crate::hostplan::front_reroute`]).
//!
//! The nftables map is stateless (no connection table, unlike IPVS): when a
//! node's slot moves, so do the connections hashed to it, and the requests
//! in flight on them are resent by the load generator when no byte of their
//! response came, or fail. IPVS keeps a quiesced node's connections.
//!
//! It only changes the forwarding; the architecture switch between cells
//! stays the engine's.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::lab::LabPlan;
use crate::TestbedError;
use dl7_services::health::{Health, HealthSpec};
use dl7_services::http::wait_true;

/// How the front end's forwarding is changed: given, per node, whether it
/// is routed; run off the async threads (it may run commands).
pub type Reroute = Arc<dyn Fn(Vec<bool>) -> Result<(), TestbedError> + Send + Sync>;

/// The emulated lab's front end: its nftables map, in its namespace.
pub fn lab_map(plan: LabPlan) -> Reroute {
    Arc::new(move |routed: Vec<bool>| {
        let step = plan.direct_routing_reroute(routed.len(), &routed);
        crate::netns::run_steps(&[step], &mut |_| {})
            .map_err(|source| TestbedError::LabAction { action: "cannot update the forwarding map", source })
    })
}

/// Watches `nodes` (every node a cell's schedule will have) and routes the
/// front end (`reroute`) over those that are members (`members`, the indices
/// the fault schedule has in the membership at each instant) and up, until
/// `stop` turns true. The first routing is in place when this returns, so
/// that a cell whose schedule later joins nodes starts with a map of their
/// size. Returns the health it keeps (for counters).
pub async fn spawn(
    reroute: Reroute,
    nodes: Vec<SocketAddr>,
    spec: HealthSpec,
    mut members: watch::Receiver<Vec<usize>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Arc<Health>, TestbedError> {
    let health = Health::new(spec, nodes.iter().map(|_| true));
    let routed = {
        let (h, nodes) = (health.clone(), nodes.len());
        move |members: &[usize]| -> Vec<bool> { (0..nodes).map(|i| members.contains(&i) && h.is_up(i)).collect() }
    };
    let first = routed(&members.borrow_and_update());
    apply(&reroute, first).await?;
    health.spawn_probes(&nodes, stop.clone());
    let mut changes = health.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                c = changes.changed() => if c.is_err() { return },
                c = members.changed() => if c.is_err() { return },
                _ = wait_true(&mut stop) => return,
            }
            let routed = routed(&members.borrow_and_update());
            let shown = format!("{routed:?}");
            match apply(&reroute, routed).await {
                Ok(()) => tracing::warn!("lab front end: nodes routed {shown}"),
                Err(e) => tracing::warn!("lab front end: {e}"),
            }
        }
    });
    Ok(health)
}

/// Routes the front end over the nodes that are `routed`.
async fn apply(reroute: &Reroute, routed: Vec<bool>) -> Result<(), TestbedError> {
    let reroute = Arc::clone(reroute);
    tokio::task::spawn_blocking(move || reroute(routed)).await?
}
