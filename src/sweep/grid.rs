//! `SWEEP.toml`: a base run config, a grid over config keys and seeds, expanded into points.
//!
//! ```toml
//! seeds = 2                      # or a list: seeds = [0, 7]; absent: the base's seed (0)
//! [base]                         # a run config: the keys of train's config.toml
//! data = "mnist"
//! activation = "tanh"
//! [grid]                         # config keys, each a list or a range
//! depth = [10, 20, 40]
//! sigma_w2 = { start = 1.0, stop = 4.0, count = 13 }
//! lr = { start = 1e-3, stop = 1e-1, count = 5, scale = "log" }
//! ```
//!
//! Points are the Cartesian product of the grid's keys in alphabetical order (the last key
//! varying fastest), then the seeds (fastest of all). Integer keys (depth, width, …) given as a
//! range are rounded to the nearest integer and repeated values dropped; a list must not repeat a
//! value. Every point is resolved through [`Config`] before anything runs.

use crate::config::{CONFIG_KEYS, Config};
use crate::error::{Error, Result, closest};
use std::collections::BTreeMap;

/// Keys whose values are whole numbers: ranges over them are rounded and de-duplicated.
pub const INTEGER_KEYS: [&str; 9] =
    ["depth", "width", "batch_size", "epochs", "steps", "probe_every", "threads", "residual_block", "checkpoint_every"];

/// Keys that cannot be swept in `[grid]`, and why.
const NOT_SWEPT: [(&str, &str); 2] = [
    ("seed", "seeds go in the top-level `seeds` (a list or a count), not in [grid]"),
    ("threads", "threads is how a run is computed, not what; set it with --threads or in [base]"),
];

/// The top-level keys of a sweep file.
const SWEEP_KEYS: [&str; 3] = ["base", "grid", "seeds"];

/// How the values of a range are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced.
    Linear,
    /// Evenly spaced in the logarithm.
    Log,
}

/// One swept key and its values, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct GridAxis {
    /// The config key.
    pub key: String,
    /// Its values (TOML integers, floats, strings or booleans).
    pub values: Vec<toml::Value>,
    /// Log for a log-spaced range (figures then use a log axis).
    pub scale: Scale,
}

/// A parsed, checked sweep: the base config, the grid and the seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// The `[base]` table (a run config, unresolved).
    pub base: toml::Table,
    /// The swept keys, alphabetically.
    pub axes: Vec<GridAxis>,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
}

/// One grid point: one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Position in the expanded grid (0-based).
    pub index: usize,
    /// Stable id: the index, zero-padded (the run folder's name).
    pub id: String,
    /// The swept keys' values, in the order of [`Sweep::axes`].
    pub values: Vec<(String, toml::Value)>,
    /// The seed.
    pub seed: u64,
    /// The run's full config.
    pub config: Config,
}

fn bad(key: &str, value: impl ToString, hint: impl Into<String>) -> Error {
    Error::invalid(key, value, hint)
}

fn as_f64(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// The values of a `{ start, stop, count, scale }` range.
fn expand_range(key: &str, t: &toml::Table) -> Result<(Vec<toml::Value>, Scale)> {
    let name = format!("grid.{key}");
    for k in t.keys() {
        if !["start", "stop", "count", "scale"].contains(&k.as_str()) {
            return Err(bad(
                &name,
                toml::Value::Table(t.clone()),
                format!("unknown range key '{k}'; a range is {{ start, stop, count, scale = \"linear\" | \"log\" }}"),
            ));
        }
    }
    let num = |k: &str| -> Result<f64> {
        let v = t.get(k).ok_or_else(|| {
            bad(&name, toml::Value::Table(t.clone()), format!("a range needs '{k}' (start, stop and count)"))
        })?;
        as_f64(v).filter(|x| x.is_finite()).ok_or_else(|| bad(&format!("{name}.{k}"), v, "must be a finite number"))
    };
    let (start, stop) = (num("start")?, num("stop")?);
    let count = match t.get("count") {
        Some(toml::Value::Integer(n)) if *n >= 1 => *n as usize,
        Some(v) => return Err(bad(&format!("{name}.count"), v, "must be a whole number ≥ 1")),
        None => return Err(bad(&name, toml::Value::Table(t.clone()), "a range needs 'count' (start, stop and count)")),
    };
    if count > 100_000 {
        return Err(bad(&format!("{name}.count"), count, "must be at most 100000"));
    }
    if count == 1 && start != stop {
        return Err(bad(&format!("{name}.count"), 1, "a range of one value needs start = stop"));
    }
    let scale = match t.get("scale") {
        None => Scale::Linear,
        Some(toml::Value::String(s)) if s == "linear" => Scale::Linear,
        Some(toml::Value::String(s)) if s == "log" => Scale::Log,
        Some(v) => return Err(bad(&format!("{name}.scale"), v, "must be \"linear\" or \"log\"")),
    };
    if scale == Scale::Log && (start <= 0.0 || stop <= 0.0) {
        return Err(bad(&name, toml::Value::Table(t.clone()), "a log range needs start > 0 and stop > 0"));
    }
    let at = |i: usize| -> f64 {
        if i + 1 == count {
            return stop; // exactly, not start + (stop − start)·1 rounded
        }
        let f = if count == 1 { 0.0 } else { i as f64 / (count - 1) as f64 };
        match scale {
            Scale::Linear => start + (stop - start) * f,
            Scale::Log => (start.ln() + (stop.ln() - start.ln()) * f).exp(),
        }
    };
    let integer = INTEGER_KEYS.contains(&key);
    let mut values: Vec<toml::Value> = Vec::with_capacity(count);
    for i in 0..count {
        let x = if i == 0 { start } else { at(i) };
        let v = if integer {
            let r = x.round();
            if r < 0.0 {
                return Err(bad(&name, x, "an integer key's range must stay ≥ 0"));
            }
            toml::Value::Integer(r as i64)
        } else {
            toml::Value::Float(x)
        };
        if !values.contains(&v) {
            values.push(v);
        }
    }
    Ok((values, scale))
}

fn axis(key: &str, value: &toml::Value) -> Result<GridAxis> {
    let name = format!("grid.{key}");
    let (values, scale) = match value {
        toml::Value::Array(list) => {
            if list.is_empty() {
                return Err(bad(&name, "[]", "an empty list makes an empty grid; give at least one value"));
            }
            let mut values = Vec::with_capacity(list.len());
            for v in list {
                if matches!(v, toml::Value::Array(_) | toml::Value::Table(_)) {
                    return Err(bad(&name, v, "list items must be plain values (numbers, strings, booleans)"));
                }
                // 2 and 2.0 are one value of a float key
                if values.iter().any(|w: &toml::Value| w == v || as_f64(w).is_some() && as_f64(w) == as_f64(v)) {
                    return Err(bad(&name, v, "is listed twice; give each value once"));
                }
                values.push(v.clone());
            }
            (values, Scale::Linear)
        }
        toml::Value::Table(t) => expand_range(key, t)?,
        other => {
            return Err(bad(
                &name,
                other,
                "must be a list [a, b, …] or a range { start, stop, count }; a fixed value goes in [base]",
            ));
        }
    };
    Ok(GridAxis { key: key.to_string(), values, scale })
}

impl Sweep {
    /// Parses a sweep file's text; `origin` names it in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| bad("sweep file", origin, format!("not valid TOML: {e}")))?;
        Self::from_table(table, origin)
    }

    /// Parses and checks a sweep table; every point is resolved through [`Config`].
    pub fn from_table(mut table: toml::Table, origin: &str) -> Result<Self> {
        for key in table.keys() {
            if !SWEEP_KEYS.contains(&key.as_str()) {
                let hint = if CONFIG_KEYS.contains(&key.as_str()) {
                    format!("unknown top-level key in {origin}: run config keys go in [base] (fixed) or [grid] (swept)")
                } else {
                    match closest(key, &SWEEP_KEYS) {
                        Some(c) => format!("unknown top-level key in {origin} (did you mean '{c}'?)"),
                        None => format!("unknown top-level key in {origin}; valid: base, grid, seeds"),
                    }
                };
                return Err(bad("sweep key", key, hint));
            }
        }
        let base = match table.remove("base") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(v) => return Err(bad("base", v, format!("must be a table ([base]) in {origin}"))),
        };
        // the base alone must be a valid config (names its own bad keys)
        Config::from_table(base.clone(), &format!("[base] of {origin}"))?;
        let grid = match table.remove("grid") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(v) => return Err(bad("grid", v, format!("must be a table ([grid]) in {origin}"))),
        };
        if grid.is_empty() {
            return Err(bad(
                "grid",
                "(empty)",
                format!("{origin} sweeps nothing: give [grid] at least one config key with a list or a range"),
            ));
        }
        let mut axes = Vec::with_capacity(grid.len());
        let mut keys: Vec<&String> = grid.keys().collect();
        keys.sort();
        for key in keys {
            check_grid_key(key, &base, origin)?;
            axes.push(axis(key, &grid[key])?);
        }
        let seeds = seeds(table.remove("seeds"), &base, origin)?;
        let sweep = Self { base, axes, seeds };
        if sweep.len() > 10_000_000 {
            return Err(bad("grid", sweep.len(), "has more than 10 million points"));
        }
        // resolve every point before anything runs: a bad value fails now, naming the point
        for i in 0..sweep.len() {
            sweep.point(i)?;
        }
        Ok(sweep)
    }

    /// Number of points (grid size × seeds).
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product::<usize>() * self.seeds.len()
    }

    /// True when the sweep has no point (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of the zero-padded ids.
    fn id_width(&self) -> usize {
        (self.len().saturating_sub(1)).to_string().len().max(4)
    }

    /// The id of point `index`.
    pub fn id(&self, index: usize) -> String {
        format!("{index:0w$}", w = self.id_width())
    }

    /// Point `index` (0 ≤ index < len), its config resolved and checked.
    pub fn point(&self, index: usize) -> Result<Point> {
        let mut rest = index / self.seeds.len();
        let seed = self.seeds[index % self.seeds.len()];
        let mut values = vec![(String::new(), toml::Value::Boolean(false)); self.axes.len()];
        for (slot, a) in values.iter_mut().zip(&self.axes).rev() {
            let n = a.values.len();
            *slot = (a.key.clone(), a.values[rest % n].clone());
            rest /= n;
        }
        let mut table = self.base.clone();
        for (k, v) in &values {
            table.insert(k.clone(), v.clone());
        }
        table.insert("seed".into(), toml::Value::Integer(seed as i64));
        let id = self.id(index);
        let describe = || {
            let vals: Vec<String> = values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("grid point {id} ({}, seed {seed})", vals.join(", "))
        };
        let config = Config::from_table(table, &describe()).map_err(|e| match e {
            // a bad name: say which point holds it, as for a value `resolve` refuses
            Error::UnknownName { .. } => bad("grid point", id.clone(), format!("{} ({e})", describe())),
            e => e,
        })?;
        config.resolve().map_err(|e| bad("grid point", id.clone(), format!("{} ({e})", describe())))?;
        Ok(Point { index, id, values, seed, config })
    }

    /// Every point, in order.
    pub fn points(&self) -> Result<Vec<Point>> {
        (0..self.len()).map(|i| self.point(i)).collect()
    }

    /// The swept keys, in column order.
    pub fn keys(&self) -> Vec<&str> {
        self.axes.iter().map(|a| a.key.as_str()).collect()
    }

    /// The base config's value of `key` as TOML (None when the base leaves it at its default).
    pub fn base_value(&self, key: &str) -> Option<&toml::Value> {
        self.base.get(key)
    }

    /// The values of every swept key, by key.
    pub fn values_by_key(&self) -> BTreeMap<&str, &[toml::Value]> {
        self.axes.iter().map(|a| (a.key.as_str(), a.values.as_slice())).collect()
    }
}

/// A slice `K/N` of a grid: the points whose index is K modulo N (round robin, so every shard
/// gets a similar mix of cheap and costly points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0 ≤ k < n.
    pub k: usize,
    /// Number of shards.
    pub n: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { k: 0, n: 1 };

    /// Parses `K/N` (0-based K, as `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`).
    pub fn parse(s: &str) -> Result<Self> {
        let hint = "must be K/N with 0 ≤ K < N (0-based, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)";
        let (k, n) = s.split_once('/').ok_or_else(|| bad("shard", s, hint))?;
        let (k, n): (usize, usize) = match (k.trim().parse(), n.trim().parse()) {
            (Ok(k), Ok(n)) => (k, n),
            _ => return Err(bad("shard", s, hint)),
        };
        if n == 0 || k >= n {
            return Err(bad("shard", s, hint));
        }
        Ok(Self { k, n })
    }

    /// Whether point `index` belongs to this shard.
    pub fn contains(&self, index: usize) -> bool {
        index % self.n == self.k
    }

    /// The indices of this shard among `len` points.
    pub fn indices(&self, len: usize) -> impl Iterator<Item = usize> + '_ {
        (self.k..len).step_by(self.n)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The `seeds` key: a count (seeds 0..n) or a list; without it, the base's seed (or the default).
fn seeds(value: Option<toml::Value>, base: &toml::Table, origin: &str) -> Result<Vec<u64>> {
    Ok(match value {
        None => {
            let seed = match base.get("seed") {
                Some(toml::Value::Integer(s)) => *s as u64,
                _ => Config::default().seed,
            };
            vec![seed]
        }
        Some(_) if base.contains_key("seed") => {
            return Err(bad("seeds", "…", format!("both `seeds` and [base] seed are given in {origin}; remove one")));
        }
        Some(toml::Value::Integer(n)) if (1..=1_000_000).contains(&n) => (0..n as u64).collect(),
        Some(toml::Value::Array(list)) if !list.is_empty() => {
            let mut seeds = Vec::with_capacity(list.len());
            for v in &list {
                match v {
                    toml::Value::Integer(s) if *s >= 0 => {
                        if seeds.contains(&(*s as u64)) {
                            return Err(bad("seeds", s, "is listed twice; give each seed once"));
                        }
                        seeds.push(*s as u64)
                    }
                    _ => return Err(bad("seeds", v, "seeds are whole numbers ≥ 0")),
                }
            }
            seeds
        }
        Some(v) => {
            return Err(bad("seeds", v, "must be a count (1 to 1000000: seeds 0, 1, …) or a non-empty list of seeds"));
        }
    })
}

/// A [grid] key must be a config key that can be swept and is not also fixed in [base].
fn check_grid_key(key: &str, base: &toml::Table, origin: &str) -> Result<()> {
    if let Some((_, why)) = NOT_SWEPT.iter().find(|(k, _)| *k == key) {
        return Err(bad("grid key", key, *why));
    }
    if !CONFIG_KEYS.contains(&key) {
        let hint = match closest(key, &CONFIG_KEYS) {
            Some(c) => format!("unknown config key in [grid] of {origin} (did you mean '{c}'?)"),
            None => format!("unknown config key in [grid] of {origin}; valid keys: {}", CONFIG_KEYS.join(", ")),
        };
        return Err(bad("grid key", key, hint));
    }
    if base.contains_key(key) {
        return Err(bad(
            "grid key",
            key,
            format!("'{key}' is both fixed in [base] and swept in [grid] of {origin}; remove one"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sweep(text: &str) -> Result<Sweep> {
        Sweep::from_toml(text, "test.toml")
    }

    fn floats(a: &GridAxis) -> Vec<f64> {
        a.values.iter().map(|v| as_f64(v).unwrap()).collect()
    }

    #[test]
    fn lists_and_seeds_multiply() {
        let s = sweep(
            "seeds = 3\n[base]\nwidth = 8\n[grid]\ndepth = [1, 2]\nactivation = [\"tanh\", \"relu\", \"sigmoid\"]",
        )
        .unwrap();
        assert_eq!(s.len(), 2 * 3 * 3);
        assert_eq!(s.keys(), ["activation", "depth"]);
        assert_eq!(s.seeds, [0, 1, 2]);
        let p = s.points().unwrap();
        // seeds fastest, then the last key
        assert_eq!((p[0].seed, p[1].seed, p[3].config.depth), (0, 1, 2));
        assert_eq!(p[6].config.activation, crate::nn::ActivationKind::Relu);
        assert_eq!(p[17].id, "0017");
        assert!(p.iter().all(|p| p.config.width == 8));
        // every point distinct
        let mut seen: Vec<_> = p.iter().map(|p| (p.values.clone(), p.seed)).collect();
        seen.dedup();
        assert_eq!(seen.len(), 18);
    }

    #[test]
    fn linear_and_log_ranges() {
        let s = sweep("[grid]\nsigma_w2 = { start = 1, stop = 4, count = 13 }").unwrap();
        let v = floats(&s.axes[0]);
        assert_eq!(v.len(), 13);
        assert_eq!((v[0], v[12]), (1.0, 4.0));
        assert!((v[4] - 2.0).abs() < 1e-12, "{v:?}");
        let s = sweep("[grid]\nlr = { start = 1e-4, stop = 1e-1, count = 4, scale = \"log\" }").unwrap();
        let v = floats(&s.axes[0]);
        for (got, want) in v.iter().zip([1e-4, 1e-3, 1e-2, 1e-1]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{v:?}");
        }
        assert_eq!(s.axes[0].scale, Scale::Log);
        // descending ranges are allowed
        let s = sweep("[grid]\nmomentum = { start = 0.9, stop = 0.0, count = 4 }").unwrap();
        assert_eq!(floats(&s.axes[0])[3], 0.0);
    }

    #[test]
    fn integer_ranges_round_and_deduplicate() {
        let s = sweep("[grid]\ndepth = { start = 1, stop = 100, count = 5 }").unwrap();
        assert_eq!(s.axes[0].values, [1, 26, 51, 75, 100].map(|d: i64| toml::Value::Integer(d)));
        let s = sweep("[grid]\ndepth = { start = 1, stop = 64, count = 10, scale = \"log\" }").unwrap();
        let d: Vec<i64> = s.axes[0].values.iter().map(|v| v.as_integer().unwrap()).collect();
        assert_eq!(d, [1, 2, 3, 4, 6, 10, 16, 25, 40, 64]);
        let s = sweep("[grid]\ndepth = { start = 1, stop = 3, count = 9 }").unwrap();
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn bad_grids_are_named() {
        let err = |t: &str| sweep(t).unwrap_err().to_string();
        assert!(err("[grid]\ndepth = []").contains("empty grid"), "{}", err("[grid]\ndepth = []"));
        assert!(err("[base]\ndepth = 2").contains("sweeps nothing"));
        assert!(err("[grid]\ndetph = [1, 2]").contains("did you mean 'depth'"));
        assert!(err("[base]\ndepth = 3\n[grid]\ndepth = [1, 2]").contains("both fixed in [base] and swept"));
        assert!(err("[grid]\nseed = [1, 2]").contains("seeds"));
        assert!(err("[grid]\nthreads = [1, 2]").contains("--threads"));
        assert!(err("[grid]\ndepth = 3").contains("a fixed value goes in [base]"));
        assert!(err("[grid]\ndepth = [1, 1]").contains("listed twice"));
        assert!(err("[grid]\nlr = { start = 0, stop = 1, count = 3, scale = \"log\" }").contains("start > 0"));
        assert!(err("[grid]\nlr = { start = 0.1, stop = 1, count = 0 }").contains("count"));
        assert!(err("[grid]\nlr = { start = 0.1, stop = 1 }").contains("needs 'count'"));
        assert!(err("[grid]\nlr = { start = 0.1, stop = 1, count = 2, step = 3 }").contains("unknown range key"));
        assert!(err("[grid]\nlr = { start = 0.1, stop = 1, count = 2, scale = \"ln\" }").contains("\"log\""));
        assert!(err("[grid]\nlr = [0.1]\n[base]\ndetph = 2").contains("did you mean 'depth'"));
        assert!(err("depth = 2\n[grid]\nlr = [0.1]").contains("[base]"));
        assert!(err("sedes = 2\n[grid]\nlr = [0.1]").contains("did you mean 'seeds'"));
        assert!(err("seeds = 0\n[grid]\nlr = [0.1]").contains("seeds"));
        assert!(err("seeds = [1, 1]\n[grid]\nlr = [0.1]").contains("listed twice"));
        assert!(err("seeds = [1]\n[base]\nseed = 3\n[grid]\nlr = [0.1]").contains("remove one"));
        // a value Config rejects fails before anything runs, naming the point
        let e = err("[grid]\nlr = [0.1, -1.0]");
        assert!(e.contains("grid point 0001") && e.contains("lr"), "{e}");
        let e = err("[grid]\nactivation = [\"tanh\", \"rleu\"]");
        assert!(e.contains("did you mean 'relu'"), "{e}");
        let e = err("[grid]\ndepth = [1, 2.5]");
        assert!(e.contains("depth"), "{e}");
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(Shard::parse("3/8").unwrap(), Shard { k: 3, n: 8 });
        for bad in ["8/8", "1/0", "x/2", "3", "-1/2"] {
            assert!(Shard::parse(bad).unwrap_err().to_string().contains("K/N"), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn shards_cover_every_point_once(len in 0usize..=500, n in 1usize..=70) {
            let mut seen = vec![0u32; len];
            for k in 0..n {
                let shard = Shard { k, n };
                for i in shard.indices(len) {
                    prop_assert!(shard.contains(i));
                    seen[i] += 1;
                }
                prop_assert_eq!(shard.indices(len).count(), (0..len).filter(|&i| shard.contains(i)).count());
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }
    }
}
