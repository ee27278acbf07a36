//! The `Policy` abstraction and the registry of named policies.
//!
//! A policy is split in two steps, as in Pingora: **build** (from a
//! [`Membership`] and [`Params`], once per membership change; precomputes
//! rings and tables) and **pick** (per request, on a [`RequestKey`] whose
//! hashes are already computed). `candidates` gives the ordered fallbacks for
//! when the first choice is down or full; health filtering lives in the
//! engine, over this list, not inside each policy.
//!
//! Policies declare whether they are pure (a function of key and membership
//! only: 16 independent dispatchers agree on every owner) or stateful (`rr`,
//! `ht_rr`, `lard` own a counter or a table). The engine decides whether its
//! dispatchers share a stateful instance or each keep their own.

mod md5;
mod rr;

use std::collections::BTreeMap;
use std::fmt;

use crate::{LoadView, Membership, PolicyError, RequestKey, ServerId};

/// Whether a policy's answer depends on anything but the key and the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A function of (key, membership): every instance agrees.
    Pure,
    /// Owns a counter, a table, or reads the load: instances may disagree.
    Stateful,
}

/// A built request-distribution policy.
pub trait Policy: Send {
    /// The registry name (`md5`, `mod_ch`, ...).
    fn kind(&self) -> PolicyKind;

    /// Pure or stateful; see [`State`].
    fn state(&self) -> State;

    /// The server that should serve `key`. Never allocates.
    fn pick(&mut self, key: &RequestKey, load: &dyn LoadView) -> ServerId;

    /// Up to `max` distinct servers in order of preference, written to `out`
    /// (cleared first). The default is the pick followed by the other servers
    /// in index order after it; consistent policies override it with their
    /// own successor order (the ring walk, the HRW ranking, ...).
    fn candidates(&mut self, key: &RequestKey, load: &dyn LoadView, max: usize, out: &mut Vec<ServerId>) {
        out.clear();
        let n = self.servers() as u32;
        let first = self.pick(key, load).0;
        out.extend((0..n).map(|i| ServerId((first + i) % n)).take(max));
    }

    /// Number of servers the policy was built for.
    fn servers(&self) -> usize;
}

macro_rules! policy_kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every policy dl7 knows, by the name used in TOML and on the CLI.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum PolicyKind { $($variant),* }

        impl PolicyKind {
            /// All policies in registry order.
            pub const ALL: &'static [PolicyKind] = &[$(PolicyKind::$variant),*];

            /// The registry name.
            pub fn name(self) -> &'static str {
                match self { $(PolicyKind::$variant => $name),* }
            }

            /// Parses a registry name; the error lists the valid ones.
            pub fn from_name(name: &str) -> Result<Self, PolicyError> {
                match name {
                    $($name => Ok(PolicyKind::$variant),)*
                    _ => Err(PolicyError::UnknownPolicy { name: name.to_string(), valid: Self::valid_names() }),
                }
            }
        }
    };
}

policy_kinds! {
    Rr => "rr",
    Md5 => "md5",
    MitCh => "mit_ch",
    ModCh => "mod_ch",
    Carp => "carp",
    HtRr => "ht_rr",
    HtRrShared => "ht_rr_shared",
    Ketama => "ketama",
    Maglev => "maglev",
    Jump => "jump",
    Hrw => "hrw",
    Bounded => "bounded",
    P2c => "p2c",
    Lard => "lard",
}

impl PolicyKind {
    /// The valid names, comma-separated, for error messages.
    pub fn valid_names() -> String {
        Self::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// The paper's six, in the order of its tables.
    pub const PAPER: &'static [PolicyKind] =
        &[PolicyKind::Rr, PolicyKind::Md5, PolicyKind::MitCh, PolicyKind::Carp, PolicyKind::ModCh, PolicyKind::HtRr];

    /// True when every dispatcher of a cluster should use one shared instance
    /// (`ht_rr_shared`); engines may also force sharing for any policy.
    pub fn shared_by_default(self) -> bool {
        self == PolicyKind::HtRrShared
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// Policy parameters as `key=value` strings; each policy takes the ones it
/// knows and [`Params::finish`] rejects the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parses `key=value` items; a missing `=` is an error.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, PolicyError> {
        let mut values = BTreeMap::new();
        for item in items {
            let (k, v) = item.split_once('=').ok_or_else(|| PolicyError::MalformedParam(item.to_string()))?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(Self { values })
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A policy name with its parameters: everything needed to build it for any
/// membership, and to rebuild it when the membership changes.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub kind: PolicyKind,
    pub params: Params,
}

impl PolicySpec {
    /// A policy with default parameters.
    pub fn new(kind: PolicyKind) -> Self {
        Self { kind, params: Params::default() }
    }

    /// Parses a bare name (`md5`) with default parameters.
    pub fn parse(name: &str) -> Result<Self, PolicyError> {
        Ok(Self::new(PolicyKind::from_name(name)?))
    }

    /// Builds the policy for `members`. Checks every parameter.
    pub fn build(&self, members: &Membership) -> Result<Box<dyn Policy>, PolicyError> {
        let mut p = ParamReader::new(self.kind, &self.params);
        let policy: Box<dyn Policy> = match self.kind {
            PolicyKind::Rr => Box::new(rr::RoundRobin::new(members)),
            PolicyKind::Md5 => Box::new(md5::Md5Mod::new(members)),
            other => {
                return Err(PolicyError::BadParam {
                    policy: other.name().into(),
                    param: "(policy)".into(),
                    value: other.name().into(),
                    expected: "a policy that is built in this version".into(),
                })
            }
        };
        p.finish()?;
        Ok(policy)
    }
}

/// Reads typed parameters for one policy and remembers which were used, so
/// that a misspelt parameter is an error rather than silently ignored.
pub(crate) struct ParamReader<'a> {
    kind: PolicyKind,
    params: &'a Params,
    used: Vec<&'static str>,
}

impl<'a> ParamReader<'a> {
    fn new(kind: PolicyKind, params: &'a Params) -> Self {
        Self { kind, params, used: Vec::new() }
    }

    /// The value of `name` parsed as `T`, or `default` when absent.
    pub(crate) fn get<T: std::str::FromStr>(&mut self, name: &'static str, default: T, expected: &str) -> Result<T, PolicyError> {
        self.used.push(name);
        match self.params.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| self.bad(name, v, expected)),
        }
    }

    pub(crate) fn bad(&self, name: &str, value: &str, expected: &str) -> PolicyError {
        PolicyError::BadParam {
            policy: self.kind.name().into(),
            param: name.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }

    fn finish(&self) -> Result<(), PolicyError> {
        for key in self.params.values.keys() {
            if !self.used.contains(&key.as_str()) {
                return Err(PolicyError::UnknownParam {
                    policy: self.kind.name().into(),
                    param: key.clone(),
                    valid: if self.used.is_empty() { "none".into() } else { self.used.join(", ") },
                });
            }
        }
        Ok(())
    }
}
