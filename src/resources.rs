//! Memory refused up front: before a run allocates its network, [`training`] estimates what it
//! will hold (data, parameters, gradients, optimizer state, the activations of a batch, the
//! files it serialises) and [`check`] refuses, with the estimate and the limit, a run that does
//! not fit: `max_memory`, else the available memory (`MemAvailable` in `/proc/meminfo` on
//! Linux; elsewhere there is no default limit and only `max_memory` is checked).
//!
//! The estimate counts the large buffers only; the rest of the process (code, thread stacks,
//! the allocator's slack) is a few tens of MB. The buffers it counts are the ones named in
//! docs/DESIGN.md: the `Mlp` keeps z, h, φ′, ∂L/∂z and ∂L/∂h of every layer for the largest
//! batch it saw (the training batch or the evaluation chunk of max(batch_size, 256) rows), and
//! weights are drawn in f64 one layer at a time before they are rounded.

use crate::config::RunSpec;
use crate::data::{Dataset, Labels};
use crate::error::{Error, Result};
use crate::optim::Optimizer;

/// An estimate: named parts in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// (what, bytes), largest first when printed.
    pub parts: Vec<(&'static str, u64)>,
}

impl Estimate {
    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|p| p.1).fold(0u64, u64::saturating_add)
    }

    /// "80.0 GB (parameters 40.0 GB, gradients 40.0 GB, …)", the parts over 1% of the total.
    pub fn describe(&self) -> String {
        let total = self.total();
        let mut parts: Vec<_> = self.parts.iter().filter(|p| p.1 > 0 && p.1 as f64 >= total as f64 * 0.01).collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let list: Vec<String> = parts.iter().map(|(w, b)| format!("{w} {}", human(*b))).collect();
        format!("{} ({})", human(total), list.join(", "))
    }
}

/// Bytes in decimal units with three significant digits: "512 kB", "2.61 GB".
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    let (v, unit) = match b {
        _ if b >= 1e12 => (b / 1e12, "TB"),
        _ if b >= 1e9 => (b / 1e9, "GB"),
        _ if b >= 1e6 => (b / 1e6, "MB"),
        _ if b >= 1e3 => (b / 1e3, "kB"),
        _ => return format!("{bytes} B"),
    };
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// `MemAvailable` from `/proc/meminfo` (Linux), in bytes.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The inputs' and labels' bytes.
fn data_bytes(data: &Dataset) -> u64 {
    let split = |s: &crate::data::Split| {
        let y = match &s.y {
            Labels::Values(v) => v.len() * 4,
            Labels::Classes { labels, .. } | Labels::Steps { labels, .. } => {
                labels.len() * std::mem::size_of::<usize>()
            }
        };
        (s.x.len() * 4 + y) as u64
    };
    split(&data.train) + split(&data.test)
}

/// Layer sizes [inputs, width × depth, outputs] and the parameter count of the network `spec`
/// builds on `data` (linear layers, norm layers' γ, β and running statistics, projections).
fn parameters(spec: &RunSpec, sizes: &[usize]) -> (u64, u64) {
    let linear: u64 = sizes.windows(2).map(|w| (w[0] as u64) * (w[1] as u64) + w[1] as u64).sum();
    let hidden: u64 = sizes[1..sizes.len() - 1].iter().map(|&w| w as u64).sum();
    let norms = if spec.arch.norm.is_some() { 5 * hidden } else { 0 };
    let projection = if spec.arch.residual.is_some() && spec.depth > 0 && sizes[0] != spec.width {
        (sizes[0] as u64 + 1) * spec.width as u64
    } else {
        0
    };
    let largest = sizes.windows(2).map(|w| (w[0] as u64) * (w[1] as u64)).max().unwrap_or(0);
    (linear + norms + projection, largest)
}

/// The memory a training run of `spec` on `data` needs, in f32.
pub fn training(spec: &RunSpec, data: &Dataset) -> Estimate {
    let mut sizes = vec![data.inputs()];
    sizes.extend(std::iter::repeat_n(spec.width, spec.depth));
    sizes.push(data.outputs());
    let (params, largest) = parameters(spec, &sizes);
    let f = 4u64;
    let state = match spec.optimizer {
        Optimizer::Sgd(s) if s.momentum > 0.0 => 1,
        Optimizer::Sgd(_) => 0,
        Optimizer::Adam(_) => 2,
    };
    let (train, test) = (data.train.len(), data.test.len());
    let eval_rows = spec.batch_size.max(256).min(train.max(test));
    let rows = spec.batch_size.min(train).max(eval_rows) as u64;
    let units: u64 = sizes[1..].iter().map(|&s| s as u64).sum();
    Estimate {
        parts: vec![
            ("data", data_bytes(data)),
            ("parameters", params * f),
            ("gradients", params * f),
            ("optimizer state", state * params * f),
            ("activations", rows * (5 * units + sizes[0] as u64) * f),
            ("initialisation (f64, one layer)", largest * 8),
            ("checkpoint and weights files", (1 + state) * params * f),
        ],
    }
}

/// The memory `probe` needs for `rows` rows through layers `sizes`, in f64.
pub fn probe(data: &Dataset, sizes: &[usize], rows: usize) -> Estimate {
    let params: u64 = sizes.windows(2).map(|w| (w[0] as u64) * (w[1] as u64) + w[1] as u64).sum();
    let units: u64 = sizes[1..].iter().map(|&s| s as u64).sum();
    let rows = rows as u64;
    Estimate {
        parts: vec![
            ("data", data_bytes(data)),
            ("parameters and gradients (f64)", 2 * params * 8),
            ("activations (f64)", rows * (5 * units + 2 * sizes[0] as u64) * 8),
            ("files written", 2 * params * 4),
        ],
    }
}

/// Refuses `estimate` when it exceeds `max_memory` (or, without it, the available memory).
/// `what` names the job ("this run"), `fix` says what to change.
pub fn check(estimate: &Estimate, max_memory: Option<u64>, what: &str, fix: &str) -> Result<()> {
    let (limit, source) = match max_memory {
        Some(m) => (m, "--max-memory".to_string()),
        None => match available() {
            Some(a) => (a, "the available memory (MemAvailable in /proc/meminfo)".to_string()),
            None => return Ok(()),
        },
    };
    if estimate.total() <= limit {
        return Ok(());
    }
    Err(Error::Resources {
        msg: format!(
            "{what} needs about {}, more than {} of {source}; {fix}, or raise --max-memory SIZE",
            estimate.describe(),
            human(limit)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(2_610_000_000), "2.61 GB");
        assert_eq!(human(80_000_000_000), "80.0 GB");
        assert_eq!(human(512_000), "512 kB");
    }

    #[test]
    fn estimate_counts_what_the_run_holds() {
        let config = crate::config::Config { width: 100, depth: 2, batch_size: 10, ..Default::default() };
        let spec = config.resolve().unwrap();
        let data = crate::data::synthetic::regression(0);
        let e = training(&spec, &data);
        // regression: 16 inputs, 1 output → (16·100 + 100) + (100·100 + 100) + (100 + 1) parameters
        let params = 1700 + 10_100 + 101;
        let part = |name: &str| e.parts.iter().find(|p| p.0 == name).unwrap().1;
        assert_eq!(part("parameters"), params * 4);
        assert_eq!(part("optimizer state"), 0, "plain SGD keeps no state");
        assert_eq!(part("initialisation (f64, one layer)"), 10_000 * 8);
        // the evaluation chunk (256 rows, fewer when the split is smaller) is the largest batch
        let rows = 256.min(data.train.len().max(data.test.len())) as u64;
        assert_eq!(part("activations"), rows * (5 * 201 + 16) * 4);
        assert!(check(&e, Some(e.total()), "this run", "x").is_ok());
        let err = check(&e, Some(e.total() - 1), "this run", "use fewer units").unwrap_err().to_string();
        assert!(err.contains("this run needs about") && err.contains("use fewer units"), "{err}");
    }
}
