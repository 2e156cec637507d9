//! This machine's floating-point peak, measured: the f32 FLOP/s its cores sustain when they do
//! nothing but fused multiply-adds on registers.
//!
//! `gradscope bench` divides every config's GFLOP/s by this figure, so "how far from the limit"
//! is measured on the machine that runs, not assumed from a data sheet (issue 16: a 2-core peak
//! of 155 GFLOP/s was assumed once; the machine had 233). The kernel keeps
//! [`ACCUMULATORS`] independent vector accumulators per thread, more than FMA latency × FMA
//! ports (4 cycles × 2 on current x86 and Arm cores), touches no memory, and is chosen at run
//! time: AVX-512, AVX2+FMA, NEON or scalar. A CPU that executes AVX-512 as two 256-bit halves
//! reports the same peak through either x86 kernel.
//!
//! ```text
//! per iteration, per accumulator r:   acc_r ← acc_r · m + a     (one FMA per lane = 2 FLOPs)
//! FLOPs per iteration = 2 · lanes · ACCUMULATORS
//! peak = Σ_threads FLOPs / thread CPU time, best of ROUNDS rounds, every thread running at once
//! ```
//!
//! Each thread's rate is taken over its own CPU time (`CLOCK_THREAD_CPUTIME_ID`; wall time where
//! there is no such clock), so the figure is what the cores do while they run: a machine shared
//! with other processes still reports its hardware peak (the first version, timed by the wall
//! clock, reported 47 GFLOP/s for 2 threads of this AVX-512 machine while other builds ran).
//! The benchmark's own GFLOP/s stay wall-clock figures: they say how long a step takes.

use serde::Serialize;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Independent accumulators per thread.
pub const ACCUMULATORS: usize = 12;

/// Timed rounds; the peak is the best one (a peak is a maximum; other processes only lower it).
pub const ROUNDS: usize = 5;

/// How long each thread runs the kernel in one round.
pub const ROUND_TIME: Duration = Duration::from_millis(20);

/// The instruction set the kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isa {
    /// x86-64 AVX-512F: 16 f32 lanes.
    Avx512,
    /// x86-64 AVX2 with FMA3: 8 f32 lanes.
    Avx2Fma,
    /// AArch64 Advanced SIMD: 4 f32 lanes.
    Neon,
    /// Plain `acc * m + a` in f32 (a multiply and an add), whatever the compiler makes of it.
    Scalar,
}

impl Isa {
    /// The best kernel this CPU can run, detected at run time.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Self::Avx2Fma;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Self::Neon;
            }
        }
        Self::Scalar
    }

    /// Whether this CPU can run the kernel for `self`.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "aarch64")]
            Self::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            Self::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The name printed by `bench` (`avx512`, `avx2_fma`, `neon`, `scalar`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2Fma => "avx2_fma",
            Self::Neon => "neon",
            Self::Scalar => "scalar",
        }
    }

    /// f32 lanes per register.
    pub fn lanes(self) -> usize {
        match self {
            Self::Avx512 => 16,
            Self::Avx2Fma => 8,
            Self::Neon => 4,
            Self::Scalar => 1,
        }
    }

    /// FLOPs of `iters` kernel iterations: 2 (multiply and add) per lane per accumulator.
    pub fn flops(self, iters: u64) -> f64 {
        2.0 * (self.lanes() * ACCUMULATORS) as f64 * iters as f64
    }
}

/// Runs `iters` iterations of `acc ← acc·m + a` on [`ACCUMULATORS`] registers that start at 0,
/// and returns the sum of every lane of every accumulator (so that the work cannot be dropped,
/// and so that tests can count it: with m = a = 1 each lane ends at `iters`).
///
/// **Panics** if this CPU cannot run `isa` ([`Isa::available`]).
pub fn kernel(isa: Isa, iters: u64, m: f32, a: f32) -> f64 {
    assert!(isa.available(), "gradscope internal error: the {} kernel needs a CPU that has it", isa.name());
    match isa {
        // SAFETY: the CPU has the instructions, checked just above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::avx512(iters, m, a) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { x86::avx2_fma(iters, m, a) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => arm::neon(iters, m, a),
        _ => scalar(iters, m, a),
    }
}

fn scalar(iters: u64, m: f32, a: f32) -> f64 {
    let (m, a) = (std::hint::black_box(m), std::hint::black_box(a));
    let mut acc = [0.0f32; ACCUMULATORS];
    for _ in 0..iters {
        for r in &mut acc {
            *r = *r * m + a;
        }
    }
    acc.iter().map(|&v| v as f64).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACCUMULATORS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) fn avx512(iters: u64, m: f32, a: f32) -> f64 {
        let (m, a) = (_mm512_set1_ps(m), _mm512_set1_ps(a));
        let mut acc = [_mm512_setzero_ps(); ACCUMULATORS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm512_fmadd_ps(*r, m, a);
            }
        }
        let mut total = 0.0;
        for r in acc {
            let mut lanes = [0.0f32; 16];
            // SAFETY: `lanes` holds exactly one 512-bit vector; the store is unaligned.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), r) };
            total += lanes.iter().map(|&v| v as f64).sum::<f64>();
        }
        total
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2_fma(iters: u64, m: f32, a: f32) -> f64 {
        let (m, a) = (_mm256_set1_ps(m), _mm256_set1_ps(a));
        let mut acc = [_mm256_setzero_ps(); ACCUMULATORS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm256_fmadd_ps(*r, m, a);
            }
        }
        let mut total = 0.0;
        for r in acc {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds exactly one 256-bit vector; the store is unaligned.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), r) };
            total += lanes.iter().map(|&v| v as f64).sum::<f64>();
        }
        total
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::ACCUMULATORS;
    use std::arch::aarch64::*;

    pub(super) fn neon(iters: u64, m: f32, a: f32) -> f64 {
        // SAFETY: NEON is part of every AArch64 target Rust supports (and was checked).
        unsafe {
            let (m, a) = (vdupq_n_f32(m), vdupq_n_f32(a));
            let mut acc = [vdupq_n_f32(0.0); ACCUMULATORS];
            for _ in 0..iters {
                for r in &mut acc {
                    *r = vfmaq_f32(a, *r, m);
                }
            }
            acc.iter().map(|&r| vaddvq_f32(r) as f64).sum()
        }
    }
}

/// CPU time consumed by the calling thread, in seconds, where the platform has such a clock.
fn thread_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9);
        }
    }
    None
}

/// The measured peak.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Peak {
    /// The kernel's instruction set.
    pub isa: Isa,
    /// Threads that ran it at once.
    pub threads: usize,
    /// Total GFLOP/s of all threads together (best round; each thread over its own CPU time).
    pub gflops: f64,
}

/// Measures the peak of `threads` threads running the kernel at once, on the best instruction
/// set of this CPU; `threads` is clamped to between 1 and the number of cores.
pub fn measure(threads: usize) -> Peak {
    measure_with(Isa::detect(), threads, ROUND_TIME)
}

/// [`measure`] with a chosen kernel and round length.
///
/// **Panics** if this CPU cannot run `isa`.
pub fn measure_with(isa: Isa, threads: usize, round: Duration) -> Peak {
    // more threads than cores would count a core twice (each thread's rate is over its CPU time)
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.clamp(1, cores);
    // calibrate: iterations that take about `round` on one thread
    let probe = 20_000;
    let start = Instant::now();
    std::hint::black_box(kernel(isa, probe, 1.0, 1.0));
    let per_iter = start.elapsed().as_secs_f64().max(1e-9) / probe as f64;
    let iters = ((round.as_secs_f64() / per_iter) as u64).max(1000);
    let barrier = Barrier::new(threads);
    let mut best: f64 = 0.0;
    for _ in 0..ROUNDS {
        let secs: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let (wall, cpu) = (Instant::now(), thread_cpu_seconds());
                        std::hint::black_box(kernel(isa, iters, 1.0, 1.0));
                        match (cpu, thread_cpu_seconds()) {
                            (Some(a), Some(b)) if b > a => b - a,
                            _ => wall.elapsed().as_secs_f64(),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("peak kernel thread")).collect()
        });
        let total: f64 = secs.iter().map(|&t| isa.flops(iters) / t).sum();
        best = best.max(total);
    }
    Peak { isa, threads, gflops: best / 1e9 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU can run does exactly the FLOPs it is credited with: with m = a = 1
    /// each of its lanes·accumulators counts its FMAs (exact in f32 below 2²⁴).
    #[test]
    fn each_kernel_does_the_flops_it_counts() {
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Scalar] {
            if !isa.available() {
                continue;
            }
            for iters in [0, 1, 7, 1000] {
                let fmas = kernel(isa, iters, 1.0, 1.0);
                assert_eq!(2.0 * fmas, isa.flops(iters), "{} at {iters} iterations", isa.name());
            }
            // not just a count: 0·m + a, then (a)·m + a, …
            assert_eq!(kernel(isa, 2, 3.0, 1.0), 4.0 * (isa.lanes() * ACCUMULATORS) as f64);
        }
        assert!(Isa::Scalar.available() && Isa::detect().available());
    }

    /// The figure is positive and below what the hardware could possibly do: two FMA units of
    /// the detected width per core at 6 GHz (at least 4 lanes: the scalar loop may be
    /// vectorised with SSE or NEON).
    #[test]
    fn the_measured_peak_is_sane() {
        let isa = Isa::detect();
        let p = measure_with(isa, 1, Duration::from_millis(5));
        let ceiling = 2.0 * 2.0 * isa.lanes().max(4) as f64 * 6.0;
        assert!(p.gflops > 0.0 && p.gflops < ceiling, "{} GFLOP/s on {} (ceiling {ceiling})", p.gflops, isa.name());
        assert_eq!((p.isa, p.threads), (isa, 1));
    }
}
