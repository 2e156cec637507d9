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

/// `text` with comments and the insides of string and char literals blanked (line breaks
/// kept), so that braces and `fn` can be counted: `//` and nested `/* */` comments, `"…"` with
/// escapes, raw strings `r#"…"#` (and `b`, `br`), char literals `'{'`, `'\''` (not lifetimes).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            loop {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if let Some((body, hashes)) = raw_string_at(&c, i) {
            // a raw string: r, then n hashes, a quote, … a quote and n hashes
            let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let end = (body..c.len()).find(|&j| c[j..].starts_with(&close)).expect("raw string closed");
            out.extend(&c[i..body]);
            c[body..end].iter().for_each(|&ch| blank(&mut out, ch));
            out.extend(&close);
            i = end + close.len();
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while c[i] != '"' {
                let n = if c[i] == '\\' { 2 } else { 1 };
                c[i..i + n].iter().for_each(|&ch| blank(&mut out, ch));
                i += n;
            }
            out.push('"');
            i += 1;
        } else if c[i] == '\'' && (next == Some('\\') || c.get(i + 2) == Some(&'\'')) {
            // a char literal ('x', '\n', '\u{7f}'); a lifetime ('a) has no closing quote
            let end = (i + 2..c.len()).find(|&j| c[j] == '\'' && (c[j - 1] != '\\' || c[j - 2] == '\\')).unwrap();
            out.push_str(&" ".repeat(end - i + 1));
            i = end + 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Where a raw string starting at `i` (`r"`, `r#"`, `br"`, …) has its body, and its hashes.
fn raw_string_at(c: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    let r = match (c[i], c.get(i + 1)) {
        ('r', _) => i + 1,
        ('b', Some('r')) => i + 2,
        _ => return None,
    };
    let hashes = c[r..].iter().take_while(|&&ch| ch == '#').count();
    (c.get(r + hashes) == Some(&'"')).then_some((r + hashes + 1, hashes))
}

/// Every function with a body in `code` (see [`code_only`]): its name, the line of `fn`
/// (1-based) and its length in lines, `fn` to the closing brace.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let b = code.as_bytes();
    let ident = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let line_of = |i: usize| code[..i].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (i, _) in code.match_indices("fn") {
        if (i > 0 && ident(b[i - 1])) || !b.get(i + 2).is_some_and(|x| x.is_ascii_whitespace()) {
            continue; // part of a name, or the type fn(…)
        }
        let name: String =
            code[i + 2..].trim_start().chars().take_while(|&ch| ch.is_alphanumeric() || ch == '_').collect();
        // the body is the first `{` outside brackets, unless a `;` (a declaration) comes first
        let mut nest = 0; // ( and [ of the signature: `[F; N]` holds a `;`
        let Some(open) = (i..b.len())
            .find(|&k| {
                nest += i32::from(matches!(b[k], b'(' | b'[')) - i32::from(matches!(b[k], b')' | b']'));
                nest == 0 && matches!(b[k], b'{' | b';')
            })
            .filter(|&k| b[k] == b'{')
        else {
            continue;
        };
        let mut depth = 0;
        let close = (open..b.len())
            .find(|&k| {
                depth += i32::from(b[k] == b'{') - i32::from(b[k] == b'}');
                depth == 0
            })
            .expect("braces balance");
        out.push((name, line_of(i), line_of(close) - line_of(i) + 1));
    }
    out
}

/// CONTRIBUTING.md's rule: no function in `src/` over 100 lines, counted from `fn` to its
/// closing brace (comments and literals blanked first, so their braces do not count).
#[test]
fn no_function_in_src_is_over_100_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut long, mut count) = (Vec::new(), 0);
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let code = code_only(&std::fs::read_to_string(&path).unwrap());
                for (name, line, len) in functions(&code) {
                    if std::env::var_os("GRADSCOPE_LIST_FUNCTIONS").is_some() {
                        eprintln!("{len:4} {}:{line}: fn {name}", path.display());
                    }
                    count += 1;
                    if len > 100 {
                        long.push(format!("{}:{line}: fn {name} has {len} lines", path.display()));
                    }
                }
            }
        }
    }
    assert!(count > 500, "only {count} functions found: the scan is broken");
    assert!(long.is_empty(), "functions over 100 lines: {long:?}");
    // the scan itself: braces in comments, strings, raw strings and chars do not count
    let sample = "fn a() {\n let s = \"}\"; // }\n let r = r#\"{\"#; let c = '}'; let l: &'static str = \"\";\n /* } /* } */ */\n}\nfn b(f: fn(u8) -> u8);\nfn c(l: [u8; 2]) { x }\n";
    let found = functions(&code_only(sample));
    assert_eq!(found, [("a".to_string(), 1, 5), ("c".to_string(), 7, 1)], "{found:?}");
}
