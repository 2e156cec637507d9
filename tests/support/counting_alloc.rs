//! A global allocator that counts the allocations (and reallocations) of marked threads while
//! counting is on, for the tests that check that a training step allocates nothing. A test
//! binary includes it with `#[path = "support/counting_alloc.rs"] mod counting_alloc;`, which
//! installs it as that binary's `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;
static ON: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the threads whose allocations count: the test's own, or a training pool's (not
    /// those of threads of earlier pools winding down, which made counts flaky).
    static MARKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counts() -> bool {
    ON.load(Ordering::Relaxed) && MARKED.with(|f| f.get())
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counts() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counts() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Marks (or unmarks) the calling thread: while marked, its allocations count. A rayon pool's
/// threads mark themselves in its `start_handler`.
pub fn mark_this_thread(marked: bool) {
    MARKED.with(|f| f.set(marked));
}

/// The allocations marked threads make while `f` runs.
pub fn allocations_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    let out = f();
    ON.store(false, Ordering::SeqCst);
    (ALLOCATIONS.swap(0, Ordering::SeqCst), out)
}
