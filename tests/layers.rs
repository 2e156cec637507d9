//! The module dependency rules of `src/lib.rs`'s table, checked on the source: every
//! `crate::MODULE` a library module names (in `use` lines and in paths) must be allowed, and
//! the modules' graph has no cycle. The binary's `src/cli/` is not part of the library.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each library module may import (the table in lib.rs's docs and docs/DESIGN.md).
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("nn", &["error"]),
    ("data", &["error"]),
    ("optim", &["nn", "error"]),
    ("probe", &["nn", "optim", "error"]),
    ("nonfinite", &["nn", "optim", "probe", "error"]),
    ("io", &["nn", "optim", "probe", "nonfinite", "error"]),
    ("summary", &["nonfinite", "probe", "error"]),
    ("config", &["nn", "optim", "data", "error"]),
    ("theory", &["nn", "error"]),
    ("verdict", &[]),
    ("report", &["config", "io", "probe", "summary", "verdict", "error"]),
    ("prepare", &["config", "data", "error", "io", "nn"]),
    ("resources", &["config", "data", "error", "optim"]),
    (
        "run",
        &[
            "config",
            "data",
            "error",
            "io",
            "nn",
            "nonfinite",
            "optim",
            "prepare",
            "probe",
            "report",
            "resources",
            "summary",
            "theory",
        ],
    ),
    ("sweep", &["config", "error", "io", "nn", "report", "summary", "theory"]),
    ("export", &["report", "probe", "io", "error"]),
    ("demo", &["config"]),
    ("bench", &["nn", "optim", "probe", "nonfinite"]),
    ("peak", &[]),
];

/// Module → the crate modules its files name, for every library file under `src/`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            let module = first.trim_end_matches(".rs").to_string();
            if matches!(module.as_str(), "lib" | "main" | "cli") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let names = graph.entry(module.clone()).or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap();
                for (i, _) in code.match_indices("crate::") {
                    let rest = &code[i + "crate::".len()..];
                    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != module {
                        names.insert(name);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn every_import_is_allowed() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let graph = imports();
    let mut bad = Vec::new();
    for (module, names) in &graph {
        let Some(ok) = allowed.get(module.as_str()) else {
            bad.push(format!("{module} is not in the table; add it to ALLOWED, lib.rs and DESIGN.md"));
            continue;
        };
        bad.extend(names.iter().filter(|n| !ok.contains(&n.as_str())).map(|n| format!("{module} → {n}")));
    }
    assert!(bad.is_empty(), "imports outside the allowed graph: {bad:?}");
    // the rules the table encodes, stated on their own
    for (module, forbidden) in [
        ("nn", &["train", "run", "optim", "io", "report", "sweep", "cli", "config"][..]),
        ("report", &["nn", "theory", "train", "run"][..]),
    ] {
        let names = &graph[module];
        assert!(forbidden.iter().all(|f| !names.contains(*f)), "{module} imports one of {forbidden:?}: {names:?}");
    }
    assert!(!graph.contains_key("cli"), "cli belongs to the binary");
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = imports();
    // depth-first search with colours: 1 on the path, 2 done
    fn visit<'g>(
        m: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'g str, u8>,
        path: &mut Vec<&'g str>,
    ) {
        match colour.get(m) {
            Some(2) => return,
            Some(1) => panic!("import cycle: {} → {m}", path.join(" → ")),
            _ => {}
        }
        colour.insert(m, 1);
        path.push(m);
        for n in graph.get(m).into_iter().flatten() {
            visit(n, graph, colour, path);
        }
        path.pop();
        colour.insert(m, 2);
    }
    let mut colour = BTreeMap::new();
    for m in graph.keys() {
        visit(m, &graph, &mut colour, &mut Vec::new());
    }
    // the check itself finds a cycle
    let cyclic: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "a")].iter().map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()]))).collect();
    let found = std::panic::catch_unwind(|| {
        let mut colour = BTreeMap::new();
        visit("a", &cyclic, &mut colour, &mut Vec::new());
    });
    assert!(found.is_err(), "the cycle check missed a → b → a");
}
