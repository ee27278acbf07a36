//! The two architectures the paper compares, by one name in every crate.

use serde::{Deserialize, Serialize};

/// The two architectures the paper compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// One L7 box (KTCPVS) parses, picks, forwards and relays every response.
    Conventional,
    /// An L4 balancer (IPVS-DR) in front, an L7 dispatcher on every server,
    /// responses straight from the receiver to the client.
    Distributed,
}

impl Arch {
    /// Both, in the order results are written.
    pub const ALL: &'static [Arch] = &[Arch::Conventional, Arch::Distributed];

    /// The name used in experiment files and `results.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Conventional => "conventional",
            Arch::Distributed => "distributed",
        }
    }

    /// The architecture called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
