//! Fork–join for two threads with a helper that stays hot between joins.
//!
//! `rayon::join` parks a worker that found nothing to do for a few dozen rounds; the next join
//! must wake it through the kernel, which on this VM takes longer than half of a `deep` product
//! (≈ 7 µs): the caller then runs both halves itself and a second thread buys nothing (`deep`,
//! two threads, was slower than one; docs/performance.md, session 7). OpenMP runtimes spin a
//! while before parking for that reason. [`join`] does the same: one helper thread per process
//! spins for [`SPIN`] after its last job before it parks, so within a training step every join
//! finds it awake.
//!
//! [`join`] uses the helper only when the current rayon pool has exactly two threads (the
//! `threads = 2` runs) and the helper is free; otherwise — more threads, a join inside a join,
//! several callers at once (tests) — it is `rayon::join`. Either way `a` and `b` are the same
//! halves, so the bits do not depend on which thread ran them.
//!
//! [`join_helper_leads`] is the same join with the roles turned: the helper takes the first
//! closure, the caller the second — which may wait for the first's progress, and ends with what
//! it wrote in the caller's cache (the halves of an MLP step, `mlp::halves`).

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before it parks.
pub const SPIN: Duration = Duration::from_millis(1);

const EMPTY: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;

/// The helper's mailbox: one job at a time.
struct Helper {
    /// Held by the caller that owns the mailbox for one join.
    busy: AtomicBool,
    /// EMPTY → POSTED (caller) → RUNNING (helper) → DONE (helper) → EMPTY (caller); or
    /// POSTED → EMPTY when the caller takes its job back before the helper started it.
    state: AtomicU8,
    /// The posted job (a `Job<F, R>` on the caller's stack) and the function that runs it.
    job: AtomicPtr<()>,
    run: AtomicUsize,
    /// Whether the helper is parked (or about to), so the caller must unpark it.
    parked: AtomicBool,
    thread: OnceLock<Thread>,
}

static HELPER: Helper = Helper {
    busy: AtomicBool::new(false),
    state: AtomicU8::new(EMPTY),
    job: AtomicPtr::new(std::ptr::null_mut()),
    run: AtomicUsize::new(0),
    parked: AtomicBool::new(false),
    thread: OnceLock::new(),
};

/// A closure and the place for its result, on the caller's stack while it runs elsewhere.
struct Job<F, R> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<Result<R, Box<dyn Any + Send>>>>,
}

impl<F: FnOnce() -> R, R> Job<F, R> {
    /// Runs the job behind `ptr`.
    ///
    /// # Safety
    /// `ptr` points to a live `Job<F, R>` whose closure has not been taken, and nothing else
    /// touches it until this returns.
    unsafe fn execute(ptr: *mut ()) {
        // SAFETY: as the caller promises.
        let job = unsafe { &*(ptr as *const Self) };
        // SAFETY: only this thread touches the job until DONE is published.
        let f = unsafe { (*job.f.get()).take() }.expect("gradscope internal error: a join job ran twice");
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        // SAFETY: as above.
        unsafe { *job.result.get() = Some(r) };
    }
}

/// Runs `a` and `b`, in parallel when a second thread is free, and returns both results.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match on_helper(a, b) {
        Ok(r) => r,
        Err((a, b)) => rayon::join(a, b),
    }
}

/// Runs `lead` and `follow`, where `follow` may wait for what `lead` publishes as it goes (and
/// `lead` never waits for `follow`): with the helper, `lead` on the helper and `follow` on the
/// calling thread at once; otherwise `rayon::join(lead, follow)`, which starts `lead` on the
/// calling thread and runs `follow` beside it or after it. So `follow` never waits for work that
/// has not started, and ends on the calling thread whenever the helper ran `lead` — what it
/// wrote last is in the caller's cache when the join returns.
pub fn join_helper_leads<L, W, RL, RW>(lead: L, follow: W) -> (RL, RW)
where
    L: FnOnce() -> RL + Send,
    W: FnOnce() -> RW + Send,
    RL: Send,
    RW: Send,
{
    match on_helper(follow, lead) {
        Ok((rw, rl)) => (rl, rw),
        Err((follow, lead)) => rayon::join(lead, follow),
    }
}

/// `a` on the calling thread and `b` on the helper, when the current rayon pool has exactly two
/// threads and the helper is free; otherwise both closures back, untouched.
///
/// If the helper has not started `b` when `a` is done, the caller runs `b` itself: `a` must not
/// wait for `b` to *start* — only for what `b` publishes once the helper runs it, which it does
/// without fail (the helper takes every posted job; a parked helper is woken here).
fn on_helper<A, B, RA, RB>(a: A, b: B) -> Result<(RA, RB), (A, B)>
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if rayon::current_num_threads() != 2 || HELPER.busy.swap(true, Ordering::Acquire) {
        return Err((a, b));
    }
    let helper = HELPER.thread.get_or_init(|| {
        thread::Builder::new()
            .name("gradscope-join".into())
            .spawn(helper_loop)
            .expect("gradscope: cannot start the join helper thread")
            .thread()
            .clone()
    });
    let job = Job { f: UnsafeCell::new(Some(b)), result: UnsafeCell::new(None) };
    HELPER.job.store(&job as *const Job<B, RB> as *mut (), Ordering::Relaxed);
    HELPER.run.store(Job::<B, RB>::execute as unsafe fn(*mut ()) as usize, Ordering::Relaxed);
    HELPER.state.store(POSTED, Ordering::SeqCst);
    if HELPER.parked.load(Ordering::SeqCst) {
        helper.unpark();
    }
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    // Take `b` back if the helper has not started it; otherwise wait for it (it borrows this
    // stack frame, so nothing may return or unwind before it is done).
    if HELPER.state.compare_exchange(POSTED, EMPTY, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        // SAFETY: the helper did not take the job, and cannot any more (state is EMPTY).
        unsafe { Job::<B, RB>::execute(&job as *const Job<B, RB> as *mut ()) };
    } else {
        spin_until(|| HELPER.state.load(Ordering::Acquire) == DONE);
        HELPER.state.store(EMPTY, Ordering::Relaxed);
    }
    HELPER.busy.store(false, Ordering::Release);
    let rb = job.result.into_inner().expect("gradscope internal error: a join job did not run");
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => Ok((ra, rb)),
        (Err(p), _) | (_, Err(p)) => panic::resume_unwind(p),
    }
}

/// Waits until `done()` holds: spinning first (the other thread is expected within
/// microseconds), then yielding the core, in case the thread waited for shares it.
pub(crate) fn spin_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins = spins.saturating_add(1);
        if spins < 1 << 16 {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// The helper thread: runs posted jobs; spins [`SPIN`] after each before parking.
fn helper_loop() {
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    loop {
        if HELPER.state.load(Ordering::Acquire) == POSTED
            && HELPER.state.compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            let ptr = HELPER.job.load(Ordering::Relaxed);
            let run = HELPER.run.load(Ordering::Relaxed);
            // SAFETY: `run` was stored from a `Job::<B, RB>::execute` for the job at `ptr`
            // before POSTED was published (SeqCst store, read by the Acquire above); the
            // caller waits for DONE before its frame ends.
            unsafe {
                let run: unsafe fn(*mut ()) = std::mem::transmute(run);
                run(ptr);
            }
            HELPER.state.store(DONE, Ordering::Release);
            idle_since = Instant::now();
            spins = 0;
            continue;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        HELPER.parked.store(true, Ordering::SeqCst);
        if HELPER.state.load(Ordering::SeqCst) != POSTED {
            thread::park();
        }
        HELPER.parked.store(false, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_return_in_a_two_thread_pool() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            for i in 0..2000u64 {
                let mut left = vec![0u64; 100];
                let mut right = vec![0u64; 100];
                let (x, y) = join(
                    || {
                        left.iter_mut().for_each(|v| *v = i);
                        i * 2
                    },
                    || {
                        right.iter_mut().for_each(|v| *v = i + 1);
                        i * 3
                    },
                );
                assert_eq!((x, y), (i * 2, i * 3));
                assert!(left.iter().all(|&v| v == i) && right.iter().all(|&v| v == i + 1));
                if i % 500 == 0 {
                    // let the helper park, then wake it
                    thread::sleep(SPIN * 3);
                }
            }
        });
    }

    /// `follow` may wait for what `lead` publishes: with the helper (`follow` then on the calling
    /// thread), inside a join that holds the helper (`rayon::join`, `lead` first), and on a pool
    /// of one thread (both in turn) — no run waits for work that has not started.
    #[test]
    fn follow_may_wait_for_lead_with_or_without_the_helper() {
        let waits = |i: u64| {
            let published = AtomicUsize::new(0);
            let caller = thread::current().id();
            let (rl, (rf, on_caller)) = join_helper_leads(
                || {
                    published.store(1, Ordering::Release);
                    i * 2
                },
                || {
                    spin_until(|| published.load(Ordering::Acquire) == 1);
                    (i * 3, thread::current().id() == caller)
                },
            );
            assert_eq!((rl, rf), (i * 2, i * 3));
            on_caller
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            for i in 0..2000u64 {
                assert!(waits(i), "with the helper, follow runs on the calling thread");
                if i % 500 == 0 {
                    thread::sleep(SPIN * 3);
                }
            }
            // the helper is held by the outer join: the inner ones fall back to rayon::join
            join(|| (0..200).for_each(|i| _ = waits(i)), || (0..200).for_each(|i| _ = waits(i)));
        });
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        one.install(|| (0..100).for_each(|i| assert!(waits(i))));
    }

    #[test]
    fn a_panic_in_either_half_reaches_the_caller_after_both_ran() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            for which in [0, 1] {
                let ran = AtomicUsize::new(0);
                let r = panic::catch_unwind(AssertUnwindSafe(|| {
                    join(
                        || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            if which == 0 {
                                panic!("left");
                            }
                        },
                        || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            if which == 1 {
                                panic!("right");
                            }
                        },
                    )
                }));
                assert!(r.is_err());
                assert_eq!(ran.load(Ordering::SeqCst), 2);
            }
            // and the helper is free again
            assert_eq!(join(|| 1, || 2), (1, 2));
        });
    }
}
