//! # dl7-testbed: an experiment's cells run as real processes
//!
//! The services of `dl7-services` started as `dl7` child processes from typed
//! config files, measured into the same [`dl7_core::ResultRow`] the simulator
//! gives:
//!
//! * [`cell`]: one cell, in stages: start, warm up, measure (with the fault
//!   schedule), stop, the row.
//! * [`placement`]: where a cell's processes run: [`placement::Local`]
//!   (loopback), [`placement::Netns`] (the emulated lab, [`netns`]) and
//!   [`placement::Ssh`] (lab machines, [`ssh`]); the sweep calls the trait.
//! * [`process`]: starting a service on a host, waiting for its ready line,
//!   stopping it with no orphans.
//! * [`nodes`]: a cell's node process table; [`faults`]: its fault schedule.
//! * [`lab`]: a lab file and its plan (hosts, roles, addresses), shared by
//!   the emulated lab and lab PCs; [`hostplan`] and [`deploy`]: the per-host
//!   setup both run; [`director`]: the health checks behind a kernel front end.
//! * [`error`]: [`TestbedError`], what went wrong, with the host, service,
//!   address, file or fault it is about.
//!
//! This crate knows how to run a cell, not what an experiment file says: the
//! `dl7` crate turns a plan into [`cell::RealCell`]s.

pub mod cell;
pub mod deploy;
pub mod director;
pub mod error;
pub mod faults;
pub mod hostplan;
pub mod lab;
pub mod netns;
pub mod nodes;
pub mod placement;
pub mod process;
pub mod ssh;

pub use error::TestbedError;
