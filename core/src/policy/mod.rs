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
//! only: 16 independent dispatchers agree on every owner), load-aware (a
//! function of key, membership and the load view the engine passes in:
//! `bounded`, `p2c`) or stateful (`rr`, `ht_rr`, `lard` own a counter or a
//! table). Pure and load-aware policies hold nothing mutable, so one built
//! instance serves every dispatcher (a load-aware one shown each
//! dispatcher's own load view); the engine decides whether its dispatchers
//! share a stateful instance or each keep their own.
//!
//! | name | type | parameters (default) | state |
//! |---|---|---|---|
//! | `rr` | [`rr::RoundRobin`] | none | counter |
//! | `md5` | [`md5::Md5Mod`] | none | pure |
//! | `mit_ch` | [`ring::Ring`] | `points` (`max(1, ceil(log2 N))`) | pure |
//! | `mod_ch` | [`ring::Ring`] | `points` (160) | pure |
//! | `carp` | [`carp::Carp`] | none (server weights) | pure |
//! | `ht_rr`, `ht_rr_shared` | [`ht_rr::HashTableRr`] | `buckets` (65536) | table + counter |
//! | `ketama` | [`ketama::Ketama`] | none (server weights) | pure |
//! | `maglev` | [`maglev::Maglev`] | `table_size` (65537; for N > 655 the first prime from the power of two above 100 N) | pure |
//! | `jump` | [`jump::Jump`] | none | pure |
//! | `hrw` | [`hrw::Hrw`] | none (server weights) | pure |
//! | `bounded` | [`bounded::Bounded`] | `c` (1.25), `base` (`maglev` or `mod_ch`) | load-aware |
//! | `p2c` | [`p2c::PowerOfTwo`] | none | load-aware |
//! | `lard` | [`lard::Lard`] | `t_low` (25), `t_high` (65) | table, reads load |
//!
//! Every method takes `&self`, so one built policy serves every dispatcher
//! that may share it (the simulator's and the real nodes', across threads)
//! without a lock; `rr` and `ht_rr` keep their counter and table in atomics,
//! `lard` its table behind its own lock. Every `pick` and `walk` is
//! allocation-free for up to 1,024 servers (tests/no_alloc.rs counts), and
//! `candidates` writes only into the caller's `Vec`.

pub mod bounded;
pub mod carp;
pub mod hrw;
pub mod ht_rr;
pub mod jump;
pub mod ketama;
pub mod lard;
pub mod maglev;
pub mod md5;
pub mod p2c;
pub mod ring;
pub mod rr;
mod seen;

use std::collections::BTreeMap;
use std::fmt;

use crate::{LoadView, Membership, PolicyError, RequestKey, ServerId};

/// Whether a policy's answer depends on anything but the key and the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A function of (key, membership): every instance agrees.
    Pure,
    /// A function of (key, membership, load view) holding nothing mutable:
    /// instances agree when shown the same load, so dispatchers that keep
    /// their own load views may still share one instance.
    LoadAware,
    /// Owns a counter or a table that picks change: instances may disagree.
    Stateful,
}

/// A built request-distribution policy.
///
/// Every method takes `&self`: a built policy is shared (`Arc<dyn Policy>`)
/// by every dispatcher that may share it, across threads, without a lock.
/// Stateful policies keep their counter or table in atomics or behind their
/// own lock.
pub trait Policy: Send + Sync {
    /// The registry name (`md5`, `mod_ch`, ...).
    fn kind(&self) -> PolicyKind;

    /// Pure, load-aware or stateful; see [`State`].
    fn state(&self) -> State;

    /// The server that should serve `key`. Never allocates.
    fn pick(&self, key: &RequestKey, load: &dyn LoadView) -> ServerId;

    /// Visits distinct servers in order of preference, the pick's answer
    /// first, until `visit` returns false or every server was visited. The
    /// default is the pick followed by the other servers in index order
    /// after it; consistent policies override it with their own successor
    /// order (the ring walk, the HRW ranking, ...). Never allocates (for up to
    /// 1,024 servers).
    fn walk(&self, key: &RequestKey, load: &dyn LoadView, visit: &mut dyn FnMut(ServerId) -> bool) {
        let n = self.servers() as u32;
        let first = self.pick(key, load).0;
        for i in 0..n {
            if !visit(ServerId((first + i) % n)) {
                return;
            }
        }
    }

    /// Up to `max` distinct servers in order of preference (the first `max`
    /// of [`Policy::walk`]), written to `out` (cleared first).
    fn candidates(&self, key: &RequestKey, load: &dyn LoadView, max: usize, out: &mut Vec<ServerId>) {
        out.clear();
        if max == 0 {
            return;
        }
        self.walk(key, load, &mut |s| {
            out.push(s);
            out.len() < max
        });
    }

    /// Number of servers the policy was built for.
    fn servers(&self) -> usize;

    /// The resolved parameters as `key=value` pairs separated by spaces
    /// (defaults filled in, e.g. `points=4` for `mit_ch` at N = 16), so that
    /// reports can say which variant ran. Empty for policies without any.
    fn describe(&self) -> String {
        String::new()
    }
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

/// A policy kind is written by its registry name (`"md5"`).
impl serde::Serialize for PolicyKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for PolicyKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_name(&name).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// Policy parameters as `key=value` strings; each policy takes the ones it
/// knows and [`PolicySpec::build`] rejects the rest.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
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
/// membership, and to rebuild it when the membership changes. Serialized as
/// `{"kind": "mod_ch", "params": {"points": "40"}}` (the services' configs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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

    /// Builds the policy for `members`. Checks every parameter: an unknown
    /// one, or a value out of range, is an error naming it.
    ///
    /// ```
    /// use dl7_core::{Membership, Params, PolicyKind, PolicySpec};
    /// let members = Membership::numbered(16).unwrap();
    /// let spec = PolicySpec { kind: PolicyKind::ModCh, params: Params::parse(["points=40"]).unwrap() };
    /// assert_eq!(spec.build(&members).unwrap().servers(), 16);
    /// let typo = PolicySpec { kind: PolicyKind::ModCh, params: Params::parse(["pionts=40"]).unwrap() };
    /// assert!(typo.build(&members).err().unwrap().to_string().contains("pionts"));
    /// ```
    pub fn build(&self, members: &Membership) -> Result<Box<dyn Policy>, PolicyError> {
        let mut p = ParamReader::new(self.kind, &self.params);
        let n = members.len();
        let policy: Box<dyn Policy> = match self.kind {
            PolicyKind::Rr => Box::new(rr::RoundRobin::new(members)),
            PolicyKind::Md5 => Box::new(md5::Md5Mod::new(members)),
            PolicyKind::MitCh => {
                let points = p.get_range("points", ring::mit_ch_default_points(n), 1, ring::MAX_POINTS_PER_SERVER)?;
                Box::new(ring::Ring::new(PolicyKind::MitCh, members, points)?)
            }
            PolicyKind::ModCh => {
                let points = p.get_range("points", ring::MOD_CH_DEFAULT_POINTS, 1, ring::MAX_POINTS_PER_SERVER)?;
                Box::new(ring::Ring::new(PolicyKind::ModCh, members, points)?)
            }
            PolicyKind::Carp => Box::new(carp::Carp::new(members)),
            kind @ (PolicyKind::HtRr | PolicyKind::HtRrShared) => {
                let buckets = p.get_range("buckets", ht_rr::DEFAULT_BUCKETS, 1, ht_rr::MAX_BUCKETS)?;
                Box::new(ht_rr::HashTableRr::new(kind, members, buckets))
            }
            PolicyKind::Ketama => Box::new(ketama::Ketama::new(members)?),
            PolicyKind::Maglev => {
                let table_size = maglev::read_table_size(&mut p, n)?;
                Box::new(maglev::Maglev::new(members, table_size)?)
            }
            PolicyKind::Jump => Box::new(jump::Jump::new(members)),
            PolicyKind::Hrw => Box::new(hrw::Hrw::new(members)),
            PolicyKind::Bounded => Box::new(bounded::Bounded::from_params(&mut p, members)?),
            PolicyKind::P2c => Box::new(p2c::PowerOfTwo::new(members)),
            PolicyKind::Lard => {
                let t_low: u64 = p.get("t_low", lard::DEFAULT_T_LOW, "a non-negative integer")?;
                let t_high: u64 = p.get("t_high", lard::DEFAULT_T_HIGH, "a non-negative integer")?;
                if t_low > t_high {
                    return Err(p.bad("t_low", &t_low.to_string(), &format!("at most t_high ({t_high})")));
                }
                Box::new(lard::Lard::new(members, t_low, t_high))
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
    pub(crate) fn get<T: std::str::FromStr>(
        &mut self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, PolicyError> {
        self.used.push(name);
        match self.params.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| self.bad(name, v, expected)),
        }
    }

    /// Like [`ParamReader::get`] for an integer that must lie in `min..=max`.
    pub(crate) fn get_range(
        &mut self,
        name: &'static str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, PolicyError> {
        let expected = format!("an integer in {min}..={max}");
        let value: usize = self.get(name, default, &expected)?;
        if value < min || value > max {
            return Err(self.bad(name, &value.to_string(), &expected));
        }
        Ok(value)
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
