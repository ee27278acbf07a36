//! The one counting global allocator of dl7's tests and benchmarks: the
//! system allocator, plus how many allocations were made and how many heap
//! bytes are live and were at most. The no-allocation tests of the policies
//! and of the real hot path read [`allocations`]; the simulator's memory
//! test and scale benchmark read [`live_bytes`] and [`peak_bytes`].
//!
//! A test or benchmark installs it in its own binary:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: dl7_alloc_count::Counting = dl7_alloc_count::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The counting allocator; install it with `#[global_allocator]`.
pub struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        grow(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        match new_size.checked_sub(layout.size()) {
            Some(more) => grow(more),
            None => {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Allocations and reallocations made so far, by every thread.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Relaxed)
}

/// Heap bytes live now.
pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// Most heap bytes live at once since the start or the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Relaxed)
}

/// Starts a new peak from what is live now; returns that.
pub fn reset_peak() -> usize {
    let live = LIVE.load(Relaxed);
    PEAK.store(live, Relaxed);
    live
}
