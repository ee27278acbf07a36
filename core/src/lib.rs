//! # dl7-core: which server owns this URL?
//!
//! The shared scheduling core of dl7. Both engines (the discrete-event
//! simulator in `dl7-sim` and the real services in `dl7-services`) ask this
//! crate the same question per request and get the answer from the *same*
//! policy objects, which is what makes a sim-vs-real comparison mean something.
//!
//! This crate is pure: no tokio, no sockets, no files, no clocks, no unseeded
//! randomness. Servers are [`ServerId`]s into a [`Membership`].
//!
//! It also holds the vocabulary every engine shares: one [`Arch`], one
//! [`ClientMode`], one seed derivation ([`seed`]), one hardware profile
//! ([`Hardware`]) and one cost model ([`costs`]) derived from it, one fault
//! schedule ([`fault`]), and one TOML error helper ([`config`]).
//!
//! One request, in code:
//! ```
//! use dl7_core::{Membership, PolicySpec, RequestKey, NoLoad};
//! let members = Membership::from_names(["10.0.0.1:3128", "10.0.0.2:3128"]).unwrap();
//! let mut policy = PolicySpec::parse("md5").unwrap().build(&members).unwrap();
//! let key = RequestKey::new(b"http://example.com/index.html"); // hashes computed once
//! let owner = policy.pick(&key, &NoLoad);
//! assert!(owner.index() < 2);
//! ```
//!
//! ## How to add a policy
//! 1. Write a small type in `policy/<name>.rs` implementing [`Policy`].
//! 2. Add its name to the `policy_kinds!` list behind [`PolicyKind`] and a
//!    match arm to [`PolicySpec::build`], reading its parameters through the
//!    `ParamReader` (unknown parameters are then an error), and a row to the
//!    table in [`policy`].
//! 3. Add its spec test vectors and a disruption test in `tests/`.
//! 4. Add it to the `pick` benchmark.

pub mod arch;
pub mod clients;
pub mod config;
pub mod costs;
pub mod error;
pub mod eviction;
pub mod fault;
pub mod hardware;
pub mod key;
pub mod load;
pub mod policy;
pub mod result;
pub mod seed;
pub mod server;
pub mod timeseries;

pub use arch::Arch;
pub use clients::{ClientError, ClientMode, Pace};
pub use config::{ConfigError, Source};
pub use fault::{Fault, FaultAction};
pub use hardware::Hardware;

pub use error::PolicyError;
pub use key::{HashKey, RequestKey};
pub use load::{LoadView, NoLoad};
pub use policy::{Params, Policy, PolicyKind, PolicySpec};
pub use result::ResultRow;
pub use server::{Membership, Server, ServerId};
