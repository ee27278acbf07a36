//! The lab's keepalived: while a distributed cell runs behind the kernel
//! front end (the nftables `fwd` map), probe its nodes as every dispatcher
//! does ([`crate::health`], from the root namespace over the bridge) and,
//! when one goes out or comes back, or the fault schedule changes the
//! membership, replace the map in place so that the front end stops
//! forwarding to a dead or departed node and starts forwarding to a joined
//! one ([`LabPlan::direct_routing_reroute`]): ldirectord's job on an IPVS box.
//!
//! The map is stateless (no connection table, unlike IPVS): when a node's
//! slot moves, so do the connections hashed to it, and the requests in
//! flight on them are resent by the load generator when no byte of their
//! response came, or fail.
//!
//! It only rewrites the rule; the architecture switch between cells stays
//! [`super::set_architecture`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::LabPlan;
use crate::health::{Health, HealthSpec};
use crate::http::wait_true;

/// Watches `nodes` (every node a cell's schedule will have) and routes the
/// front end's map over those that are members (`members`, the indices the
/// fault schedule has in the membership at each instant) and up, until `stop`
/// turns true. The first map is in place when this returns, so that a cell
/// whose schedule later joins nodes starts with a map of their size.
/// Returns the health it keeps (for counters).
pub async fn spawn(
    plan: LabPlan,
    nodes: Vec<SocketAddr>,
    spec: HealthSpec,
    mut members: watch::Receiver<Vec<usize>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Arc<Health>, String> {
    let health = Health::new(spec, nodes.iter().map(|_| true));
    let routed = {
        let (h, nodes) = (health.clone(), nodes.len());
        move |members: &[usize]| -> Vec<bool> { (0..nodes).map(|i| members.contains(&i) && h.is_up(i)).collect() }
    };
    let first = routed(&members.borrow_and_update());
    apply(&plan, first).await?;
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
            match apply(&plan, routed).await {
                Ok(()) => tracing::warn!("lab front end: nodes routed {shown}"),
                Err(e) => tracing::warn!("lab front end: {e}"),
            }
        }
    });
    Ok(health)
}

/// Replaces the front end's map with one over the nodes that are `routed`.
async fn apply(plan: &LabPlan, routed: Vec<bool>) -> Result<(), String> {
    let step = plan.direct_routing_reroute(routed.len(), &routed);
    match tokio::task::spawn_blocking(move || super::exec::run_steps(&[step], &mut |_| {})).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot update the forwarding map: {e}")),
        Err(e) => Err(e.to_string()),
    }
}
