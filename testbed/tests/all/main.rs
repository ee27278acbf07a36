//! dl7-testbed's integration tests, one binary: the lab plans against
//! their golden files, and (root only, SKIPPED elsewhere) the emulated lab
//! brought up and down for real.

mod lab_golden;
mod lab_netns;
