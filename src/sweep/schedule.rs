//! Runs independent jobs on a fixed number of worker threads, handing results to one thread.
//!
//! Workers take the next job in order from a shared counter; every result goes through a channel
//! to the calling thread, which alone writes the results tables (so rows never interleave). When
//! the caller says stop (a run failed), workers take no new job; the runs already going finish
//! and are still handed over.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// What to do after a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep going.
    Continue,
    /// Start no new job.
    Stop,
}

/// Runs `work(worker, job)` for every job on `workers` threads (at least 1); `done` sees each
/// job and its result, in the order they finish, on the calling thread.
pub fn run<J: Sync, T: Send>(
    jobs: &[J],
    workers: usize,
    work: impl Fn(usize, &J) -> T + Sync,
    mut done: impl FnMut(&J, T) -> Next,
) {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, T)>();
    std::thread::scope(|scope| {
        for worker in 0..workers.clamp(1, jobs.len().max(1)) {
            let tx = tx.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    if tx.send((i, work(worker, job))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, result) in rx {
            if done(&jobs[i], result) == Next::Stop {
                stop.store(true, Ordering::SeqCst);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_and_stop_stops_new_ones() {
        let jobs: Vec<usize> = (0..100).collect();
        let mut seen = Vec::new();
        run(
            &jobs,
            3,
            |_, j| j * 2,
            |j, r| {
                assert_eq!(r, j * 2);
                seen.push(*j);
                Next::Continue
            },
        );
        seen.sort();
        assert_eq!(seen, jobs);
        // each result hands out one permit to run a job (two to begin with), so at most 2 + 5
        // jobs have run when the fifth result says stop, however slow the receiving thread is;
        // each of the two workers may also hold a job taken before the stop and waiting for a
        // permit: at most 9 results in all
        let (permit_tx, permit_rx) = mpsc::channel::<()>();
        permit_tx.send(()).unwrap();
        permit_tx.send(()).unwrap();
        let permits = std::sync::Mutex::new(permit_rx);
        let mut n = 0;
        run(
            &jobs,
            2,
            |_, j| {
                permits.lock().unwrap().recv().unwrap();
                *j
            },
            |_, _| {
                n += 1;
                permit_tx.send(()).unwrap();
                if n == 5 { Next::Stop } else { Next::Continue }
            },
        );
        assert!((5..=9).contains(&n), "{n}");
        run(&[] as &[usize], 4, |_, j| *j, |_, _| Next::Continue);
    }
}
