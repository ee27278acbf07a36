//! dl7-core's integration tests, one binary: the policies against the spec's
//! vectors, and their properties under proptest. The no-allocation test is
//! its own binary: it counts the whole process's allocations.

mod policies;
mod properties;
