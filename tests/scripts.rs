//! The scripts and the documentation as users meet them (issue 12, item 5; issue 13, item 1).
//!
//! - The shell scripts under `scripts/` run for real against the built binary
//!   (`scripts/slurm-sweep.sh` is run by `tests/sweep.rs`).
//! - The Python scripts need PyTorch: they run for real when a Python that imports torch is found
//!   (`GRADSCOPE_TORCH_PYTHON`, else `python3`); otherwise they are compiled with `py_compile` and
//!   the test prints that the comparison with PyTorch was skipped.
//! - Every relative link of the README, CONTRIBUTING.md and docs/ points to a file (and a
//!   heading) that exists, and every `gradscope COMMAND --flag` they show is a flag that
//!   `gradscope COMMAND --help` lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gradscope")
}

/// Whether `python` runs and imports what the PyTorch scripts import.
fn imports_torch(python: &str) -> bool {
    Command::new(python).args(["-c", "import torch, numpy, safetensors"]).output().is_ok_and(|o| o.status.success())
}

/// The Python to run the PyTorch comparison with: `GRADSCOPE_TORCH_PYTHON` (which must import
/// torch: it was asked for), else `python3` when it imports torch, else none.
fn torch_python() -> Option<String> {
    if let Some(p) = std::env::var_os("GRADSCOPE_TORCH_PYTHON") {
        let p = p.to_string_lossy().into_owned();
        assert!(imports_torch(&p), "GRADSCOPE_TORCH_PYTHON={p} cannot import torch, numpy and safetensors");
        return Some(p);
    }
    imports_torch("python3").then(|| "python3".to_string())
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// Every Python script of scripts/ and bench/ compiles (run for real below when torch is there).
#[test]
fn python_scripts_compile() {
    let mut scripts = files_with_extension(&repo().join("scripts"), "py");
    let names: Vec<String> = scripts.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["torch_probe_check.py", "torch_remedies.py"] {
        assert!(names.iter().any(|n| n == expected), "scripts/{expected} is missing: {names:?}");
    }
    scripts.extend(files_with_extension(&repo().join("bench"), "py"));
    let python = torch_python().unwrap_or_else(|| "python3".into());
    if Command::new(&python).arg("--version").output().is_err() {
        eprintln!("note: no {python} on PATH: the Python scripts were not even compiled");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    for script in &scripts {
        let status = Command::new(&python)
            .args(["-c", "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"])
            .arg(script)
            .arg(out.path().join("compiled.pyc"))
            .status()
            .unwrap();
        assert!(status.success(), "{} does not compile", script.display());
    }
}

/// scripts/check-pytorch.sh: gradscope's probes always run; the comparison runs when PyTorch is
/// there and must be within its tolerances; without PyTorch the script exits 77 (skipped).
#[test]
fn the_pytorch_check_script_runs() {
    let torch = torch_python();
    let out = Command::new("bash")
        .arg(repo().join("scripts/check-pytorch.sh"))
        .arg(bin())
        .env("PYTHON", torch.as_deref().unwrap_or("python3"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("gradscope probed 13 networks"), "stdout:\n{stdout}\nstderr:\n{stderr}");
    match torch {
        Some(python) => {
            assert!(out.status.success(), "against PyTorch ({python}):\n{stdout}\nstderr:\n{stderr}");
            assert!(stdout.contains("every comparison within its tolerance"), "{stdout}");
            println!("{stdout}");
        }
        None => {
            assert_eq!(out.status.code(), Some(77), "stdout:\n{stdout}\nstderr:\n{stderr}");
            assert!(stdout.contains("SKIPPED"), "{stdout}");
            eprintln!(
                "note: the PyTorch comparison was SKIPPED (no Python that imports torch, numpy and \
                 safetensors; set GRADSCOPE_TORCH_PYTHON); gradscope's side of scripts/check-pytorch.sh ran"
            );
        }
    }
}

/// scripts/torch_recurrent_probe.py: `gradscope probe --weights` of PyTorch nn.RNN/nn.LSTM/nn.GRU
/// state_dicts on row-by-row MNIST, its per-step gradient norms against autograd's (issue 14).
/// Runs when a Python with torch is there and the MNIST files are; says so when skipped.
#[test]
fn the_recurrent_probe_matches_pytorch() {
    let mnist = std::env::var_os("GRADSCOPE_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data/mnist"));
    let (Some(python), true) = (torch_python(), mnist.is_dir()) else {
        eprintln!("note: the recurrent probe's PyTorch comparison was SKIPPED (no torch Python or no MNIST)");
        return;
    };
    let out = Command::new(&python)
        .arg(repo().join("scripts/torch_recurrent_probe.py"))
        .arg(bin())
        .arg(&mnist)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "against PyTorch ({python}):\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("every comparison within its tolerance"), "{stdout}");
    println!("{stdout}");
}

/// The README, CONTRIBUTING.md and every file of docs/.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md"), repo().join("CONTRIBUTING.md")];
    docs.extend(files_with_extension(&repo().join("docs"), "md"));
    docs
}

/// The lines of a Markdown file, each with whether it sits inside a fenced code block.
fn lines_with_fences(text: &str) -> Vec<(bool, &str)> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        out.push((in_code, line));
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    lines_with_fences(text)
        .into_iter()
        .filter(|(code, line)| !code && line.starts_with('#'))
        .map(|(_, line)| anchor(line.trim_start_matches('#')))
        .collect()
}

/// The targets of the Markdown links `[text](target)` and images `![alt](target)` of a line.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &line[i + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn relative_links_point_to_files_and_headings_that_exist() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        for (code, line) in lines_with_fences(&text) {
            if code {
                continue;
            }
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
                let file = if path.is_empty() { doc.clone() } else { dir.join(path) };
                if !file.exists() {
                    broken.push(format!("{}: {target} (no such file)", doc.strip_prefix(repo()).unwrap().display()));
                } else if !fragment.is_empty() && file.extension().is_some_and(|x| x == "md") {
                    let heads = anchors(&std::fs::read_to_string(&file).unwrap());
                    if !heads.contains(fragment) {
                        broken.push(format!(
                            "{}: {target} (no such heading)",
                            doc.strip_prefix(repo()).unwrap().display()
                        ));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The commands `gradscope --help` lists.
fn commands() -> Vec<String> {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed = help.split("Commands:").nth(1).expect("gradscope --help lists its commands");
    listed
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `gradscope COMMAND …` as the documents show it: in code blocks, lines that start with it (after
/// an optional `$ `); inline code spans that start with it; and table rows whose first cell is
/// one of `commands` in backticks (docs/reference.md's flag table). Returns (command, its text).
fn shown_commands(text: &str, commands: &[String]) -> Vec<(String, String)> {
    let mut shown = Vec::new();
    for (code, line) in lines_with_fences(text) {
        if let Some(row) = line.strip_prefix("| `")
            && let Some((first, rest)) = row.split_once("` |")
            && commands.iter().any(|c| c == first)
        {
            shown.push((first.to_string(), rest.to_string()));
        }
        let spans: Vec<&str> = if code {
            vec![line.trim_start().trim_start_matches("$ ")]
        } else {
            line.split('`').skip(1).step_by(2).collect()
        };
        for span in spans {
            if let Some(rest) = span.strip_prefix("gradscope ") {
                let command = rest.split_whitespace().next().unwrap_or("").to_string();
                if command.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !command.starts_with('-') {
                    shown.push((command, rest.to_string()));
                }
            }
        }
    }
    shown
}

/// The `--flags` in a piece of text.
fn flags(text: &str) -> Vec<String> {
    text.match_indices("--")
        .filter(|(i, _)| *i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric())
        .map(|(i, _)| {
            let name: String = text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            format!("--{name}")
        })
        .filter(|f| f.len() > 2)
        .collect()
}

fn help(command: &str) -> Option<String> {
    let out = Command::new(bin()).args([command, "--help"]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_command_and_flag_the_docs_show_exists() {
    let mut shown: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let commands = commands();
    let mut sources = documents();
    sources.extend(files_with_extension(&repo().join("scripts"), "sh"));
    for doc in sources {
        let mut text = std::fs::read_to_string(&doc).unwrap();
        if doc.extension().is_some_and(|x| x == "sh") {
            // a script: its commands and the usage in its comments, each line as code
            let lines: Vec<&str> = text.lines().map(|l| l.trim_start_matches(['#', ' '])).collect();
            text = format!("```\n{}\n```\n", lines.join("\n"));
        }
        let name = doc.strip_prefix(repo()).unwrap().display().to_string();
        for (command, rest) in shown_commands(&text, &commands) {
            let set = shown.entry(command).or_default();
            set.insert((name.clone(), String::new()));
            for flag in flags(&rest) {
                set.insert((name.clone(), flag));
            }
        }
    }
    assert!(shown.contains_key("train") && shown.contains_key("demo"), "found: {:?}", shown.keys());
    let mut unknown = Vec::new();
    for (command, uses) in &shown {
        let Some(help) = help(command) else {
            unknown.push(format!("`gradscope {command}` (in {:?}) is not a command", uses.iter().next().unwrap().0));
            continue;
        };
        let listed = flags(&help);
        for (doc, flag) in uses.iter().filter(|(_, f)| !f.is_empty()) {
            if !listed.contains(flag) {
                unknown.push(format!("{doc}: `gradscope {command}` has no {flag}"));
            }
        }
    }
    assert!(unknown.is_empty(), "the docs show what the binary does not have:\n{}", unknown.join("\n"));
}

/// bench/probe_cost.sh (docs/performance.md, session 13) runs against the built binary: one
/// round of a short `tiny` gives a round line and the summary with both ratios; without its
/// arguments, or with a binary that is not there, it says how to call it and exits 2.
#[test]
fn the_probe_cost_script_runs() {
    let script = repo().join("bench/probe_cost.sh");
    let run = |args: &[&str]| Command::new("bash").arg(&script).args(args).current_dir(repo()).output().unwrap();
    let out = run(&["tiny", "1", "5", "1", bin()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("round 1: unprobed "), "{text}");
    assert!(text.contains("tiny at 1 thread(s): unprobed ") && text.contains("every 10 steps"), "{text}");
    for args in [&["tiny"][..], &["tiny", "1", "5", "1", "/nonexistent/gradscope"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}
