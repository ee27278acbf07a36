//! A fault schedule, the same for every engine: what happens to which node
//! and when, counted from the start of the measured window.
//!
//! * `kill`: the node stops at once and loses its state (SIGKILL); it stays
//!   a member, so dispatchers route around it by health, not by policy.
//! * `restart`: a killed node comes back with an empty cache.
//! * `leave`: a graceful exit: the node leaves every dispatcher's
//!   membership first, then drains and stops.
//! * `join`: a new node (index N, N+1, ... for a cluster of N) starts and
//!   enters every dispatcher's membership.
//!
//! [`Timeline`] replays a schedule against a cluster size: it checks it and
//! says who is a member and who is alive at any step; [`moved_frac`] is
//! the share of keys a membership change moves, the figure every engine's
//! `moved_frac` column is checked against. This module does nothing to any
//! node; the engines do.

use serde::{Deserialize, Serialize};

use crate::policy::State;
use crate::{Membership, NoLoad, Policy, PolicyError, PolicySpec, RequestKey};

/// What happens to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultAction {
    /// Abrupt stop, state lost.
    Kill,
    /// A killed node starts again, empty.
    Restart,
    /// Graceful exit from the membership.
    Leave,
    /// A new node enters the membership.
    Join,
}

impl FaultAction {
    /// Every action, in the order of messages.
    pub const ALL: [FaultAction; 4] = [FaultAction::Kill, FaultAction::Restart, FaultAction::Leave, FaultAction::Join];

    /// The name used in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Restart => "restart",
            FaultAction::Leave => "leave",
            FaultAction::Join => "join",
        }
    }

    /// The action called `name`.
    pub fn from_name(name: &str) -> Option<FaultAction> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// True for the actions that change the membership (and so the owners).
    pub fn changes_membership(self) -> bool {
        matches!(self, FaultAction::Leave | FaultAction::Join)
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// Seconds after the measured window opens.
    pub at_s: f64,
    pub action: FaultAction,
    /// 0-based node index; a join names the next new index.
    pub node: u32,
}

/// Why a fault cannot happen when the schedule says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// A time that is not a number of seconds from the window's start.
    #[error("at_s {at_s}: expected seconds >= 0")]
    BadTime { at_s: f64 },
    /// A fault listed before an earlier one.
    #[error("at_s {at_s} comes before the previous fault's {previous}: list faults in time order")]
    OutOfOrder { at_s: f64, previous: f64 },
    /// A join that does not add the next node index.
    #[error("join adds node {next} next (nodes 0..{next} exist), not node {node}")]
    JoinOutOfOrder { node: u32, next: u32 },
    /// A node index the schedule has not made.
    #[error("node {node} does not exist (nodes 0..{known})")]
    NoSuchNode { node: u32, known: u32 },
    /// A kill of a node that is not running.
    #[error("node {node} is not running")]
    NotRunning { node: u32 },
    /// A restart of a node that was not killed.
    #[error("only a killed node restarts; node {node} is not one")]
    NotKilled { node: u32 },
    /// A leave of a node that is not a running member.
    #[error("node {node} is not a running member")]
    NotAMember { node: u32 },
    /// A leave that would leave no member.
    #[error("node {node} is the last member")]
    LastMember { node: u32 },
}

impl FaultError {
    /// The fault's field the error is about: `at_s` for times, `node` for the rest.
    pub fn field(&self) -> &'static str {
        match self {
            FaultError::BadTime { .. } | FaultError::OutOfOrder { .. } => "at_s",
            _ => "node",
        }
    }
}

/// Who is a member and who runs, step by step through a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Members in membership order (a join appends, a leave removes).
    pub members: Vec<u32>,
    /// Per node index ever known: running (not killed, not left).
    pub alive: Vec<bool>,
}

impl Timeline {
    /// A cluster of `servers` nodes, all members and running.
    pub fn new(servers: u32) -> Timeline {
        Timeline { members: (0..servers).collect(), alive: vec![true; servers as usize] }
    }

    /// Applies one fault, or says why it cannot happen now.
    pub fn apply(&mut self, f: &Fault) -> Result<(), FaultError> {
        let i = f.node;
        let known = self.alive.len() as u32;
        let alive = |t: &Timeline| t.alive[i as usize];
        match f.action {
            FaultAction::Join => {
                if i != known {
                    return Err(FaultError::JoinOutOfOrder { node: i, next: known });
                }
                self.alive.push(true);
                self.members.push(f.node);
            }
            _ if i >= known => return Err(FaultError::NoSuchNode { node: i, known }),
            FaultAction::Kill if !alive(self) => return Err(FaultError::NotRunning { node: i }),
            FaultAction::Kill => self.alive[i as usize] = false,
            FaultAction::Restart if alive(self) || !self.members.contains(&f.node) => {
                return Err(FaultError::NotKilled { node: i })
            }
            FaultAction::Restart => self.alive[i as usize] = true,
            FaultAction::Leave if !alive(self) || !self.members.contains(&f.node) => {
                return Err(FaultError::NotAMember { node: i })
            }
            FaultAction::Leave if self.members.len() == 1 => return Err(FaultError::LastMember { node: i }),
            FaultAction::Leave => {
                self.alive[i as usize] = false;
                self.members.retain(|&m| m != f.node);
            }
        }
        Ok(())
    }

    /// Checks a whole schedule on `servers` nodes (times in order, every
    /// fault possible when it comes); the error gives the fault's index.
    pub fn check(faults: &[Fault], servers: u32) -> Result<Timeline, (usize, FaultError)> {
        let mut t = Timeline::new(servers);
        let mut last = 0.0;
        for (k, f) in faults.iter().enumerate() {
            if !(f.at_s.is_finite() && f.at_s >= 0.0) {
                return Err((k, FaultError::BadTime { at_s: f.at_s }));
            }
            if f.at_s < last {
                return Err((k, FaultError::OutOfOrder { at_s: f.at_s, previous: last }));
            }
            last = f.at_s;
            t.apply(f).map_err(|e| (k, e))?;
        }
        Ok(t)
    }

    /// Every node index the schedule ever has: `servers` plus its joins.
    pub fn node_count(faults: &[Fault], servers: u32) -> u32 {
        servers + faults.iter().filter(|f| f.action == FaultAction::Join).count() as u32
    }
}

/// Share of keys whose owner differs between two owner lists of the same
/// keys, in the same order (0 for no keys).
pub fn disruption(before: &[u32], after: &[u32]) -> f64 {
    if before.is_empty() {
        return 0.0;
    }
    before.iter().zip(after).filter(|(a, b)| a != b).count() as f64 / before.len() as f64
}

/// The core's figure for what a membership change moves: the share of
/// `keys` whose owning node differs when `policy` routes over the nodes
/// `before` and then over `after` (node indices; node `i` has the name
/// [`Membership::numbered`] gives it, as the engines name their nodes).
/// `None` for a policy whose pick is not a function of the key alone
/// (stateful or load-aware): no membership fixes its owners.
pub fn moved_frac(
    policy: &PolicySpec,
    before: &[u32],
    after: &[u32],
    keys: &[RequestKey<'_>],
) -> Result<Option<f64>, PolicyError> {
    let most = before.iter().chain(after).map(|&i| i as usize + 1).max().unwrap_or(1);
    let names = Membership::numbered(most)?;
    let build = |nodes: &[u32]| {
        policy.build(&Membership::new(nodes.iter().map(|&i| names.servers()[i as usize].clone()).collect())?)
    };
    let (b, a) = (build(before)?, build(after)?);
    if b.state() != State::Pure {
        return Ok(None);
    }
    let owners = |p: &dyn Policy, nodes: &[u32]| -> Vec<u32> {
        keys.iter().map(|k| nodes[p.pick(k, &NoLoad).index()]).collect()
    };
    Ok(Some(disruption(&owners(&*b, before), &owners(&*a, after))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(at_s: f64, action: FaultAction, node: u32) -> Fault {
        Fault { at_s, action, node }
    }

    #[test]
    fn a_schedule_changes_members_and_liveness_as_it_says() {
        use FaultAction::*;
        let s = [f(1.0, Kill, 1), f(2.0, Restart, 1), f(3.0, Leave, 2), f(4.0, Join, 4)];
        let t = Timeline::check(&s, 4).unwrap();
        assert_eq!(t.members, vec![0, 1, 3, 4]);
        assert_eq!(t.alive, vec![true, true, false, true, true]);
        assert_eq!(Timeline::node_count(&s, 4), 5);
    }

    #[test]
    fn impossible_faults_are_named_by_index() {
        use FaultAction::*;
        let err = |s: &[Fault]| Timeline::check(s, 3).unwrap_err();
        assert_eq!(err(&[f(1.0, Restart, 0)]).0, 0);
        assert!(err(&[f(1.0, Kill, 0), f(2.0, Kill, 0)]).1.to_string().contains("not running"));
        assert!(err(&[f(1.0, Join, 5)]).1.to_string().contains("join adds node 3"));
        assert!(err(&[f(1.0, Kill, 7)]).1.to_string().contains("does not exist"));
        assert!(err(&[f(2.0, Kill, 0), f(1.0, Restart, 0)]).1.to_string().contains("time order"));
        assert!(err(&[f(1.0, Leave, 1), f(2.0, Restart, 1)]).1.to_string().contains("only a killed node"));
        assert!(Timeline::check(&[f(1.0, Leave, 0)], 1).unwrap_err().1.to_string().contains("last member"));
        assert_eq!(FaultAction::from_name("leave"), Some(Leave));
        assert_eq!(FaultAction::from_name("crash"), None);
    }

    #[test]
    fn moved_frac_is_the_share_of_owners_changed() {
        assert_eq!(disruption(&[0, 1, 2, 3], &[0, 1, 1, 3]), 0.25);
        assert_eq!(disruption(&[], &[]), 0.0);
        let urls: Vec<String> = (0..4000).map(|i| format!("/obj/{i}")).collect();
        let keys: Vec<RequestKey> = urls.iter().map(|u| RequestKey::new(u.as_bytes())).collect();
        let moved = |p: &str, b: &[u32], a: &[u32]| moved_frac(&PolicySpec::parse(p).unwrap(), b, a, &keys).unwrap();
        // Modulo hashing from 4 to 5 nodes keeps a key only where k mod 4 = k mod 5: about 1/5.
        let md5 = moved("md5", &[0, 1, 2, 3], &[0, 1, 2, 3, 4]).unwrap();
        assert!((md5 - 0.8).abs() < 0.03, "{md5}");
        // A consistent policy moves the joined node's share, about 1/5, all of it to the new node.
        let ketama = moved("ketama", &[0, 1, 2, 3], &[0, 1, 2, 3, 4]).unwrap();
        assert!((ketama - 0.2).abs() < 0.06, "{ketama}");
        assert_eq!(moved("ketama", &[0, 1, 2], &[0, 1, 2]), Some(0.0));
        // A node's names come from its index, so a leave of node 1 moves only node 1's keys.
        let left = moved("ketama", &[0, 1, 2, 3], &[0, 2, 3]).unwrap();
        assert!(left > 0.1 && left < 0.4, "{left}");
        assert_eq!(moved("rr", &[0, 1], &[0, 1, 2]), None);
    }
}
