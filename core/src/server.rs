//! Servers and memberships: the ordered list of cache servers a policy maps
//! keys onto. A server is its index in the list; its name (for example
//! `10.0.0.1:3128`) is what the hashing policies hash, so every dispatcher
//! that is given the same names agrees on every owner.

use crate::PolicyError;

/// Index of a server in its [`Membership`], 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ServerId(pub u32);

impl ServerId {
    /// The 0-based index as a `usize`, for indexing per-server arrays.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One cache server as the policies see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// The hashed identity, e.g. `10.0.0.1:3128`.
    pub name: String,
    /// Relative capacity; 1.0 for the paper's identical servers.
    pub weight: f64,
}

/// Most servers a cluster has, in every engine and on every command line:
/// an experiment's `sweep.servers`, `dl7 sim --servers`, `dl7 policy spread --servers`.
pub const MAX_SERVERS: u32 = 1024;

/// An ordered, non-empty list of servers with unique names.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    servers: Vec<Server>,
}

impl Membership {
    /// Builds a membership; empty lists, duplicate names and non-positive or
    /// non-finite weights are errors.
    pub fn new(servers: Vec<Server>) -> Result<Self, PolicyError> {
        if servers.is_empty() {
            return Err(PolicyError::EmptyMembership);
        }
        let mut seen = std::collections::HashSet::new();
        for s in &servers {
            if s.name.is_empty() {
                return Err(PolicyError::BadServer { name: s.name.clone(), reason: "empty name".into() });
            }
            if !(s.weight.is_finite() && s.weight > 0.0) {
                return Err(PolicyError::BadServer {
                    name: s.name.clone(),
                    reason: format!("weight {} must be a positive number", s.weight),
                });
            }
            if !seen.insert(s.name.as_str()) {
                return Err(PolicyError::DuplicateServer(s.name.clone()));
            }
        }
        Ok(Self { servers })
    }

    /// Servers of weight 1 with the given names, in order.
    pub fn from_names<I, S>(names: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(names.into_iter().map(|n| Server { name: n.into(), weight: 1.0 }).collect())
    }

    /// `n` servers named `10.0.0.1:3128` ... `10.0.0.n:3128`, the naming of the
    /// spec's test vectors and of the simulator.
    pub fn numbered(n: usize) -> Result<Self, PolicyError> {
        Self::from_names((1..=n).map(|i| format!("10.0.0.{i}:3128")))
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Always false: a membership is never empty. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    pub fn server(&self, id: ServerId) -> &Server {
        &self.servers[id.index()]
    }

    pub fn ids(&self) -> impl Iterator<Item = ServerId> + '_ {
        (0..self.servers.len() as u32).map(ServerId)
    }

    /// The membership without server `id` (ids after it shift down by one).
    pub fn without(&self, id: ServerId) -> Result<Self, PolicyError> {
        let mut servers = self.servers.clone();
        servers.remove(id.index());
        Self::new(servers)
    }

    /// The membership with `server` appended.
    pub fn with(&self, server: Server) -> Result<Self, PolicyError> {
        let mut servers = self.servers.clone();
        servers.push(server);
        Self::new(servers)
    }
}
