//! `gradscope sweep`, `merge` and `phase`: grids of runs, their tables, their phase diagram.

use super::Status;
use anyhow::Context;
use clap::Args;
use gradscope::Summary;
use gradscope::error::Error;
use gradscope::io;
use gradscope::sweep::merge::{self, describe};
use gradscope::sweep::phase::{self, Theory};
use gradscope::sweep::results::{self, RESULTS_CSV, RESULTS_JSONL, Row};
use gradscope::sweep::schedule::{self, Next};
use gradscope::sweep::{Point, SWEEP_FILE, Shard, Sweep, SweepDir, read_sweep};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

/// Flags of `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep file: [base] (a run config), [grid] (keys with a list or a range) and seeds.
    #[arg(long, value_name = "SWEEP.toml")]
    pub config: PathBuf,
    /// Output folder (sweep.toml, results.csv, results.jsonl, runs/<id>/) [default:
    /// gradscope-out/<the sweep file's name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Runs at once [default: the cores divided by --threads].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Threads inside each run [default: the base's threads if set, else 1].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run only the slice K/N of the grid (points whose index is K modulo N; 0 ≤ K < N), e.g.
    /// --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; join the slices with `merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Keep each run's metrics.jsonl (by default it is removed when the run finishes).
    #[arg(long)]
    pub keep_metrics: bool,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Sweep folders (shards of one sweep).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Folder for the merged sweep.toml, results.csv and results.jsonl.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Flags of `phase`.
#[derive(Debug, Args)]
pub struct PhaseArgs {
    /// A sweep folder (written by sweep or merge).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The swept key along the horizontal axis.
    #[arg(long, default_value = "sigma_w2")]
    pub x: String,
    /// The swept key along the vertical axis.
    #[arg(long, default_value = "depth")]
    pub y: String,
    /// The column to colour by (test_accuracy, test_loss, train_loss, vanishing_ratio, …).
    #[arg(long, default_value = "test_accuracy")]
    pub metric: String,
    /// The value that separates trained from untrained cells in the printed comparison with
    /// 6 ξ_c (accuracies: at least; losses: at most) [default: the midpoint of the cells' range].
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Folder for phase-<metric>.svg, .png and .csv [default: DIR].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads per run and runs at once: by default one thread per run and one run per core (the
/// measured best on the example's shapes: docs/sweeps.md).
pub fn split_threads(jobs: Option<usize>, threads: Option<usize>, base_threads: usize, cores: usize) -> (usize, usize) {
    let threads = threads.or((base_threads > 0).then_some(base_threads)).unwrap_or(1).max(1);
    let jobs = jobs.unwrap_or((cores / threads).max(1)).max(1);
    (jobs, threads)
}

fn values_text(p: &Point) -> String {
    let v: Vec<String> = p.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} seed={}", v.join(" "), p.seed)
}

fn outcome_text(row: &Row) -> String {
    let f = |name: &str| row.metric(name);
    let mut s = match (f("test_accuracy"), f("test_loss"), f("train_loss")) {
        (Some(a), _, _) => format!("test accuracy {a:.4}"),
        (None, Some(l), _) => format!("test loss {l:.4}"),
        (None, None, Some(l)) => format!("train loss {l:.4}"),
        _ => "no finite loss".into(),
    };
    if f("diverged") == Some(1.0) {
        s = format!("diverged at step {}", f("diverged_at_step").unwrap_or(f64::NAN));
    }
    format!("{s}, {:.1} s", f("wall_time_s").unwrap_or(f64::NAN))
}

/// A run's process was interrupted (SIGINT or SIGTERM; exit 130), or the sweep was before the
/// run started: the sweep starts no new run and exits with 130 too.
#[derive(Debug)]
struct RunInterrupted;

impl std::fmt::Display for RunInterrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for RunInterrupted {}

/// Runs one point as its own process, `gradscope train --config runs/<id>/config.toml --out
/// runs/<id>`, so that its folder (and every number in it) is what `train` writes for that
/// config, bit for bit; a diverged run (exit 1) is a result. Returns its row, written last.
fn run_point(exe: &Path, p: &Point, threads: usize, dir: &Path, keep_metrics: bool) -> anyhow::Result<Row> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    io::create_dir(dir)?;
    let mut config = p.config.clone();
    config.threads = threads;
    let config_path = dir.join(io::CONFIG_FILE);
    io::write_atomic(&config_path, config.to_toml().as_bytes())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("train").arg("--config").arg(&config_path).arg("--out").arg(dir).args(["--quiet", "--no-report"]);
    // the folder is the sweep's, made fresh above with the point's config.toml in it
    cmd.arg("--overwrite");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let out = cmd.output().with_context(|| format!("cannot start {}", exe.display()))?;
    if out.status.code() == Some(130) || killed_by_interrupt(&out.status) {
        return Err(RunInterrupted.into());
    }
    if !matches!(out.status.code(), Some(0 | 1)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("gradscope train ended with {}: {}", out.status, stderr.trim());
    }
    let summary_path = dir.join(io::SUMMARY_FILE);
    let text = std::fs::read_to_string(&summary_path).map_err(|err| Error::Io {
        action: "cannot read",
        path: summary_path.clone(),
        err,
    })?;
    let summary: Summary =
        serde_json::from_str(&text).map_err(|e| Error::Data { path: summary_path.clone(), msg: e.to_string() })?;
    if !keep_metrics {
        let m = dir.join(io::METRICS_FILE);
        std::fs::remove_file(&m).with_context(|| format!("cannot remove {}", m.display()))?;
    }
    let row = Row::new(&p.id, p.index, &p.values, p.seed, &summary);
    results::write_row_file(dir, &row)?;
    Ok(row)
}

/// Whether a run's process died of SIGINT or SIGTERM before its own handler was installed.
#[cfg(unix)]
fn killed_by_interrupt(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(libc::SIGINT | libc::SIGTERM))
}

#[cfg(not(unix))]
fn killed_by_interrupt(_status: &std::process::ExitStatus) -> bool {
    false
}

/// On Linux, a run's process is killed when the sweep's thread that started it dies (a sweep
/// killed with SIGKILL leaves no run behind to write into a folder the next sweep redoes).
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(9); // the sweep died before prctl took effect
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut std::process::Command) {}

/// What a sweep says at its end, and its status: interrupted, failed (the error) or done.
#[allow(clippy::too_many_arguments)]
fn conclude(
    a: &SweepArgs,
    out: &Path,
    shard: Shard,
    rows: &[Row],
    total: usize,
    start: Instant,
    interrupted: bool,
    failure: Option<anyhow::Error>,
) -> anyhow::Result<Status> {
    if interrupted && failure.is_none() {
        eprintln!(
            "sweep interrupted; the {} finished runs are kept in {}: run the same command to resume",
            rows.len(),
            out.display()
        );
        return Ok(Status::Interrupted);
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "the sweep stopped; the {} finished runs are kept in {}: fix the problem and run the same command to resume",
            rows.len(),
            out.display()
        )));
    }
    if !a.quiet {
        crate::outln!(
            "{} runs in {:.1} s; results: {} and {} ({} rows{})",
            total,
            start.elapsed().as_secs_f64(),
            out.join(RESULTS_CSV).display(),
            out.join(RESULTS_JSONL).display(),
            rows.len(),
            if shard == Shard::ALL {
                String::new()
            } else {
                "; merge the shards with `gradscope merge DIR... --out DIR`".to_string()
            }
        );
    }
    Ok(Status::Ok)
}

/// Runs `gradscope sweep`.
pub fn run(a: &SweepArgs) -> anyhow::Result<Status> {
    let text = std::fs::read_to_string(&a.config).map_err(|err| Error::Io {
        action: "cannot read",
        path: a.config.clone(),
        err,
    })?;
    let sweep = Sweep::from_toml(&text, &a.config.display().to_string())?;
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::ALL);
    if a.jobs == Some(0) {
        return Err(Error::invalid("jobs", 0, "must be at least 1").into());
    }
    if a.threads == Some(0) {
        return Err(Error::invalid("threads", 0, "must be at least 1").into());
    }
    let base_threads = sweep.point(0)?.config.threads;
    let (jobs, threads) = split_threads(a.jobs, a.threads, base_threads, cores());
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = a.config.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().to_string());
        PathBuf::from("gradscope-out").join(stem)
    });
    let sd = SweepDir::open(&out, sweep, &text)?;
    let mut rows = sd.recover()?;
    let done: std::collections::HashSet<usize> = rows.iter().map(|r| r.index).collect();
    let todo: Vec<Point> = shard
        .indices(sd.sweep.len())
        .filter(|i| !done.contains(i))
        .map(|i| sd.sweep.point(i))
        .collect::<gradscope::Result<_>>()?;
    let in_shard = shard.indices(sd.sweep.len()).count();
    let jobs = jobs.min(todo.len()).max(1);
    if !a.quiet {
        let slice = if shard == Shard::ALL { String::new() } else { format!(", shard {shard} has {in_shard}") };
        crate::outln!(
            "sweep: {} points{slice}; {} finished before, {} to run, {jobs} at a time × {threads} thread{} each → {}",
            sd.sweep.len(),
            in_shard - todo.len(),
            todo.len(),
            if threads == 1 { "" } else { "s" },
            out.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the gradscope binary to run the runs with")?;
    // Ctrl-C reaches the runs too (one process group): each ends its step and exits 130, and the
    // sweep then starts no new run and exits 130; the same command redoes the interrupted runs.
    super::install_signal_handlers()?;
    let work = |_worker: usize, p: &Point| -> anyhow::Result<Row> {
        if super::interrupted() {
            return Err(RunInterrupted.into());
        }
        let dir = sd.run_dir(&p.id);
        let result = run_point(&exe, p, threads, &dir, a.keep_metrics);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir); // no half-written run folder stays
        }
        result
    };
    let start = Instant::now();
    let (total, mut finished) = (todo.len(), 0usize);
    let mut failure: Option<anyhow::Error> = None;
    let mut interrupted = false;
    schedule::run(&todo, jobs, work, |p, result| match result {
        Ok(row) => {
            if let Err(e) = sd.append(&row) {
                failure.get_or_insert(e.into());
                return Next::Stop;
            }
            finished += 1;
            if !a.quiet {
                crate::outln!(
                    "[{finished:>w$}/{total}] {} {}: {}",
                    p.id,
                    values_text(p),
                    outcome_text(&row),
                    w = total.to_string().len()
                );
            }
            rows.push(row);
            Next::Continue
        }
        // once the sweep itself is interrupted, a run that ended badly was interrupted too
        Err(e) if e.is::<RunInterrupted>() || super::interrupted() => {
            interrupted = true;
            Next::Stop
        }
        Err(e) => {
            failure.get_or_insert(e.context(format!("run {} ({}) failed", p.id, values_text(p))));
            Next::Stop
        }
    });
    sd.finish(&mut rows)?;
    // a signal that came after the last runs started (and that they did not see) still ends
    // the sweep with 130
    interrupted |= super::interrupted();
    conclude(a, &out, shard, &rows, total, start, interrupted, failure)
}

/// Runs `gradscope merge`.
pub fn run_merge(a: &MergeArgs) -> anyhow::Result<Status> {
    for d in &a.dirs {
        if same_dir(d, &a.out) {
            return Err(Error::invalid("out", a.out.display(), "must not be one of the folders merged").into());
        }
    }
    let m = merge::merge(&a.dirs)?;
    for d in &m.torn {
        eprintln!(
            "warning: {} ends in a torn line (a sweep killed while writing), skipped",
            d.join(RESULTS_JSONL).display()
        );
    }
    io::create_dir(&a.out)?;
    io::write_atomic(&a.out.join(SWEEP_FILE), m.text.as_bytes())?;
    results::write_tables(&a.out, &m.sweep.keys(), &m.rows)?;
    crate::outln!(
        "merged {} rows of {} folders into {} and {}: {} of {} grid points",
        m.rows.len(),
        a.dirs.len(),
        a.out.join(RESULTS_CSV).display(),
        a.out.join(RESULTS_JSONL).display(),
        m.rows.len(),
        m.sweep.len()
    );
    const SHOWN: usize = 20;
    if !m.missing.is_empty() {
        crate::outln!("missing: {} points", m.missing.len());
        for &i in m.missing.iter().take(SHOWN) {
            crate::outln!("  {}", describe(&m.sweep, i));
        }
        if m.missing.len() > SHOWN {
            crate::outln!("  … and {} more", m.missing.len() - SHOWN);
        }
    }
    if !m.duplicates.is_empty() {
        crate::outln!(
            "duplicates: {} points found more than once (the first folder's row is kept)",
            m.duplicates.len()
        );
        for (id, dirs) in m.duplicates.iter().take(SHOWN) {
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            crate::outln!("  {id} in {}", dirs.join(", "));
        }
        if m.duplicates.len() > SHOWN {
            crate::outln!("  … and {} more", m.duplicates.len() - SHOWN);
        }
    }
    if m.missing.is_empty() && m.duplicates.is_empty() {
        crate::outln!("complete: every grid point once");
        Ok(Status::Ok)
    } else {
        Ok(Status::CheckFailed)
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn fmt_depth(d: Option<f64>) -> String {
    d.map_or("—".into(), |d| format!("{d}"))
}

/// Runs `gradscope phase`.
pub fn run_phase(a: &PhaseArgs) -> anyhow::Result<Status> {
    let (sweep, _) = read_sweep(&a.dir)?;
    let path = a.dir.join(RESULTS_JSONL);
    if !path.exists() {
        return Err(
            Error::RunFolder { path: a.dir.clone(), msg: format!("no {RESULTS_JSONL}: no run has finished") }.into()
        );
    }
    let (rows, _) = results::read_jsonl(&path, &sweep.keys())?;
    let g = phase::phase_grid(&sweep, &rows, &a.x, &a.y, &a.metric)?;
    let theory = Theory::for_sweep(&sweep, &g);
    let title = format!("{} over {} and {}", g.metric, g.x_key, g.y_key);
    let fig = phase::figure(&g, theory.as_ref().ok(), &title);
    let out = a.out.clone().unwrap_or_else(|| a.dir.clone());
    io::create_dir(&out)?;
    let stem = format!("phase-{}", g.metric);
    let svg = gradscope::report::plot::svg(&fig)?;
    let png = gradscope::report::plot::png(&fig, 2)?;
    let csv = phase_csv(&g, theory.as_ref().ok())?;
    io::write_atomic(&out.join(format!("{stem}.svg")), svg.as_bytes())?;
    io::write_atomic(&out.join(format!("{stem}.png")), &png)?;
    io::write_atomic(&out.join(format!("{stem}.csv")), &csv)?;
    let cells: usize = g.runs.iter().flatten().filter(|&&n| n > 0).count();
    crate::outln!(
        "{}: {} rows in {} of {} cells{}",
        title,
        rows.len(),
        cells,
        g.xs.len() * g.ys.len(),
        if g.averaged_over.is_empty() {
            String::new()
        } else {
            format!(", averaged over {}", g.averaged_over.join(" and "))
        }
    );
    for n in &fig.notes {
        crate::outln!("note: {n}");
    }
    match &theory {
        Ok(t) => {
            if let Some(threshold) = a.threshold.or(g.midpoint()) {
                print_boundary(&g, t, threshold);
            }
        }
        Err(why) => crate::outln!("{why}"),
    }
    crate::outln!("figure: {} (and .png, .csv)", out.join(format!("{stem}.svg")).display());
    Ok(Status::Ok)
}

/// The table behind the phase figure: one row per cell, with 6 ξ_c when the theory applies.
fn phase_csv(g: &phase::PhaseGrid, theory: Option<&Theory>) -> anyhow::Result<Vec<u8>> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        g.x_key.clone(),
        g.y_key.clone(),
        format!("mean_{}", g.metric),
        "runs".into(),
        "runs_without_value".into(),
    ];
    if theory.is_some() {
        header.push("six_xi_c".into());
    }
    csv.write_record(&header)?;
    for (iy, y) in g.ys.iter().enumerate() {
        for (ix, x) in g.xs.iter().enumerate() {
            let mut rec = vec![
                x.to_string(),
                y.to_string(),
                g.mean[iy][ix].map_or(String::new(), |v| v.to_string()),
                g.runs[iy][ix].to_string(),
                g.missing[iy][ix].to_string(),
            ];
            if let Some(t) = theory {
                let s = if g.x_key == "sigma_w2" { *x } else { *y };
                rec.push(t.trainable_depth(s).map_or("inf".into(), |d| d.to_string()));
            }
            csv.write_record(&rec)?;
        }
    }
    csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Prints where training succeeded against where the theory says it can (depth ≤ 6 ξ_c).
fn print_boundary(g: &phase::PhaseGrid, t: &Theory, threshold: f64) {
    let (b, agree, total) = phase::boundary(g, t, threshold);
    let rule = if phase::higher_is_better(&g.metric) { "≥" } else { "≤" };
    crate::outln!(
        "trained = mean {} {rule} {threshold:.4}; trainable by theory = depth ≤ 6 ξ_c ({}, σ_b² = {})",
        g.metric,
        t.activation.name(),
        t.sigma_b2
    );
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["σ_w²", "6 ξ_c", "deepest trained", "shallowest not trained"]);
    for r in &b {
        table.add_row([
            format!("{}", r.sigma_w2),
            r.six_xi_c.map_or("∞".into(), |d| format!("{d:.1}")),
            fmt_depth(r.deepest_trained),
            fmt_depth(r.shallowest_failed),
        ]);
    }
    crate::outln!("{table}");
    crate::outln!(
        "{agree} of {total} cells ({:.0}%) agree with the theory (trained exactly when depth ≤ 6 ξ_c)",
        100.0 * agree as f64 / total.max(1) as f64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_split_over_cores() {
        assert_eq!(split_threads(None, None, 0, 8), (8, 1));
        assert_eq!(split_threads(None, Some(2), 0, 8), (4, 2));
        assert_eq!(split_threads(None, None, 4, 8), (2, 4));
        assert_eq!(split_threads(Some(3), None, 0, 8), (3, 1));
        assert_eq!(split_threads(None, Some(16), 0, 8), (1, 16));
    }
}
