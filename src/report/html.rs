//! `report.html`: one self-contained page (inline SVG and CSS, no script, nothing fetched), the
//! figures with their captions, a verdict per run, and how every run was made.

use super::figures::Figure;
use super::model::{Report, Run, sci};
use crate::verdict::{self, Flow};
use std::fmt::Write;

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; margin: 0 auto;
  max-width: 1240px; padding: 24px 32px 48px; color: #1e1e1e; background: #fff; line-height: 1.45; }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 36px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin: 0 0 16px; }
.lead { font-size: 1.12rem; margin: 0 0 14px; }
table.runs { border-collapse: collapse; width: 100%; font-size: 0.93rem; }
table.runs th, table.runs td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
table.runs th { background: #f6f6f6; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85rem; font-weight: 600; white-space: nowrap; }
.vanishing { background: #fde2e1; color: #a4161a; }
.exploding { background: #fff0d6; color: #8a4b00; }
.healthy { background: #e0f4e4; color: #1d6b2f; }
.broken, .diverged { background: #e9e9e9; color: #333; }
.stuck { background: #ece4f7; color: #4a2a7a; }
.warning { background: #fff8e1; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 10px 0; }
figure { margin: 28px 0; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { margin-top: 6px; color: #333; max-width: 60em; }
ul.notes { color: #6a5000; font-size: 0.9rem; margin: 6px 0; }
.files { font-size: 0.85rem; color: #666; margin: 4px 0; }
.missing { border: 1px dashed #bbb; padding: 12px 16px; color: #444; }
details { margin: 10px 0; border: 1px solid #e4e4e4; border-radius: 6px; padding: 8px 12px; }
summary { cursor: pointer; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 10px 0; }
dt { color: #666; }
dd { margin: 0; }
pre, code { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.88rem; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; }
footer { margin-top: 40px; color: #666; font-size: 0.9rem; }
";

fn hex(c: (u8, u8, u8)) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The run's verdict, in the words the terminal prints (`crate::verdict`).
fn verdict_badge(run: &Run) -> String {
    let v = verdict::judge(&run.evidence());
    format!("<span class=\"badge {}\">{}</span>", v.class(), escape(&v.headline()))
}

fn runs_table(r: &Report, out: &mut String) {
    out.push_str(
        "<table class=\"runs\">\n<thead><tr><th>run</th><th>‖∂L/∂W‖ layer 0 / output layer, step 0</th>\
         <th>… at the last probe</th><th>loss at step 0 → at the end</th><th>test loss at the end</th>\
         <th>verdict</th></tr></thead>\n<tbody>\n",
    );
    for (i, run) in r.runs.iter().enumerate() {
        let (first, last) = (run.records.first(), run.records.last());
        let ratio = |rec: Option<&crate::probe::StepRecord>| rec.map_or("–".into(), |r| sci(r.vanishing_ratio));
        let loss_end = run.summary.as_ref().map_or("–".into(), |s| sci(s.train_loss));
        let test_end = run.summary.as_ref().and_then(|s| s.test_loss).map_or("–".into(), sci);
        let swatch = if r.runs.len() > 1 {
            format!("<span class=\"swatch\" style=\"background:{}\"></span>", hex(super::figures::run_color(i)))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr><td>{swatch}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} → {}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&run.label),
            ratio(first),
            ratio(last),
            first.map_or("–".into(), |r| sci(r.train_loss)),
            loss_end,
            test_end,
            verdict_badge(run),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The data key, and what `data.json` says of it: rows, inputs, standardisation, q⁰.
fn data_set(run: &Run) -> String {
    let key = escape(&run.config.data);
    let Some(d) = &run.data else { return key };
    let scaled = if d.standardized { "standardised on the training rows" } else { "as given (not standardised)" };
    format!(
        "{key} — {} training and {} test rows, {} inputs {scaled}, {} outputs; input scale q⁰ = {:.4}",
        d.train_rows, d.test_rows, d.inputs, d.outputs, d.q0
    )
}

/// String class labels as the network numbers them: `0 setosa, 1 versicolor, …`.
fn class_names(classes: &[String]) -> String {
    let listed: Vec<String> = classes.iter().enumerate().map(|(i, c)| format!("{i}&nbsp;{}", escape(c))).collect();
    format!("{} (output i is class i): {}", classes.len(), listed.join(", "))
}

fn run_details(run: &Run, out: &mut String) {
    let _ = writeln!(out, "<details>\n<summary>{} — {}</summary>\n<dl>", escape(&run.label), escape(&run.dir));
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    row("folder", format!("<code>{}</code>", escape(&run.dir)));
    row("data set", data_set(run));
    if let Some(classes) = run.data.as_ref().and_then(|d| d.classes.as_deref()) {
        row("classes", class_names(classes));
    }
    row("made by", run.command.as_deref().map_or("(not recorded)".into(), |c| format!("<code>{}</code>", escape(c))));
    if let Some(s) = &run.summary {
        row("gradscope", escape(&s.gradscope_version));
        let epochs = if s.epochs == 1 { "1 epoch".to_string() } else { format!("{} epochs", s.epochs) };
        row("steps", format!("{} ({epochs}, {:.1} s)", s.steps, s.wall_time_s));
        if !run.records.is_empty() {
            row("verdict", escape(&verdict::sentence(&run.evidence())));
        }
        if let Some(a) = s.test_accuracy {
            row("test accuracy", format!("{:.2} %", 100.0 * a));
        }
    }
    out.push_str("</dl>\n<p>config.toml:</p>\n<pre>");
    out.push_str(&escape(&run.config.to_toml()));
    out.push_str("</pre>\n");
    if let Some(m) = &run.model {
        let _ = writeln!(
            out,
            "<p>model ({}, {} {} parameters; layers in forward order):</p>\n<pre>",
            escape(&m.framework),
            escape(&m.class),
            m.parameters
        );
        for (l, layer) in m.layers.iter().enumerate() {
            let act = layer.activation.as_deref().map_or(String::new(), |a| format!(" → {a}"));
            let _ = writeln!(
                out,
                "{l:3}  {}  {}{act}  ({} parameters)",
                escape(&layer.name),
                escape(&layer.kind),
                layer.parameters
            );
        }
        out.push_str("</pre>\n");
        if !m.text.is_empty() {
            let _ = writeln!(out, "<pre>{}</pre>", escape(&m.text));
        }
    }
    out.push_str("</details>\n");
}

/// The page, with the figures' SVG documents (`svgs[i]` for `figures[i]`, None when empty).
pub fn page(r: &Report, figures: &[Figure], svgs: &[Option<String>]) -> String {
    let mut out = String::new();
    let what = match r.runs.as_slice() {
        [one] => format!("run {}", one.dir),
        runs => format!("{} runs", runs.len()),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>gradscope report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&what)
    );
    let _ = writeln!(out, "<header>\n<h1>gradscope report</h1>\n<p class=\"sub\">{}</p>\n</header>", escape(&what));
    out.push_str("<section id=\"summary\">\n");
    if let Some(lead) = lead(r) {
        let _ = writeln!(out, "<p class=\"lead\">{}</p>", escape(&lead));
    }
    runs_table(r, &mut out);
    for run in &r.runs {
        if let Some(w) = run.warning() {
            let text = if r.runs.len() > 1 {
                format!("{}: {w}", run.label)
            } else {
                let mut c = w.chars();
                c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
            };
            let _ = writeln!(out, "<p class=\"warning\">{}</p>", escape(&text));
        }
    }
    out.push_str("</section>\n<section id=\"figures\">\n");
    for (i, (fig, svg)) in figures.iter().zip(svgs).enumerate() {
        let n = i + 1;
        match svg {
            Some(svg) => {
                let _ = writeln!(out, "<figure id=\"fig-{0}\" data-figure=\"{0}\">", fig.name);
                out.push_str(svg_body(svg));
                let _ = writeln!(out, "\n<figcaption><b>Figure {n}.</b> {}</figcaption>", escape(&fig.caption));
            }
            None => {
                let _ = writeln!(out, "<figure id=\"fig-{0}\" data-figure=\"{0}\" class=\"missing\">", fig.name);
                let _ = writeln!(out, "<p><b>Figure {n}. {}</b>: not drawn.</p>", escape(&fig.title));
                for p in &fig.panels {
                    if let super::figures::Panel::Note { title, text } = p {
                        let t = if title.is_empty() { String::new() } else { format!("{}: ", escape(title)) };
                        let _ = writeln!(out, "<p>{t}{}</p>", escape(text));
                    }
                }
            }
        }
        if !fig.notes.is_empty() {
            out.push_str("<ul class=\"notes\">\n");
            for note in &fig.notes {
                let _ = writeln!(out, "<li>{}</li>", escape(note));
            }
            out.push_str("</ul>\n");
        }
        if svg.is_some() {
            let _ = writeln!(
                out,
                "<p class=\"files\">Also as <a href=\"figures/{0}.svg\">figures/{0}.svg</a> and \
                 <a href=\"figures/{0}.png\">figures/{0}.png</a>.</p>",
                fig.name
            );
        }
        out.push_str("</figure>\n");
    }
    out.push_str("</section>\n<section id=\"runs\">\n<h2>How the runs were made</h2>\n");
    for run in &r.runs {
        run_details(run, &mut out);
    }
    let _ = write!(
        out,
        "</section>\n<footer>Made by <code>{}</code> with gradscope {}. One self-contained file: \
         figures are inline SVG; nothing is fetched from the network.</footer>\n</body>\n</html>\n",
        escape(&r.command),
        escape(&r.version)
    );
    out
}

/// The one sentence to read first: the smallest and the largest first/output gradient ratio.
fn lead(r: &Report) -> Option<String> {
    let ratios: Vec<(&Run, f64)> = r
        .runs
        .iter()
        .filter_map(|run| run.records.first().map(|rec| (run, rec.vanishing_ratio)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let min = ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let max = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let says = |v: f64| Flow::of(v).word();
    if ratios.len() == 1 || min.1 == max.1 {
        return Some(format!(
            "At step 0 the first layer gets {} of the output layer's gradient: {}.",
            sci(min.1),
            says(min.1)
        ));
    }
    Some(format!(
        "At step 0 the first layer of {} gets {} of its output layer's gradient ({}); that of {} gets {} ({}).",
        min.0.label,
        sci(min.1),
        says(min.1),
        max.0.label,
        sci(max.1),
        says(max.1)
    ))
}

/// The `<svg …>…</svg>` element of an SVG document (without an XML declaration, if any).
fn svg_body(doc: &str) -> &str {
    doc.find("<svg").map_or(doc, |i| &doc[i..]).trim_end()
}
