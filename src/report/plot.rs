//! Draws [`Figure`]s with plotters: SVG text for the report and the `.svg` files, PNG bytes (at
//! twice the size, for slides) from the same drawing code.
//!
//! Text is laid out, and drawn into PNGs, with DejaVu Sans embedded in the binary (see
//! `assets/fonts/LICENSE-DejaVu.txt`), so figures look the same on a machine with no fonts.
//! In SVG the text stays text, in the browser's sans-serif.

use super::figures::{Axis, ColorBar, Figure, Mark, Panel, Rgb, Series, tick};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core): Bitstream Vera licence, DejaVu changes in
/// the public domain.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("gradscope internal error: the embedded font does not parse");
        }
    });
}

/// The figure as an SVG document.
pub fn svg(fig: &Figure) -> Result<String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, fig.size).into_drawing_area();
        draw(fig, &root, 1.0).map_err(|e| render_error(fig, e))?;
        root.present().map_err(|e| render_error(fig, e.to_string()))?;
    }
    Ok(out)
}

/// The figure as a PNG image, `scale` times the SVG's pixel size.
pub fn png(fig: &Figure, scale: u32) -> Result<Vec<u8>> {
    register_font();
    let (w, h) = (fig.size.0 * scale, fig.size.1 * scale);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(fig, &root, scale as f64).map_err(|e| render_error(fig, e))?;
        root.present().map_err(|e| render_error(fig, e.to_string()))?;
    }
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| render_error(fig, e.to_string()))?;
    writer.write_image_data(&rgb).map_err(|e| render_error(fig, e.to_string()))?;
    writer.finish().map_err(|e| render_error(fig, e.to_string()))?;
    Ok(bytes)
}

fn render_error(fig: &Figure, msg: String) -> Error {
    Error::Render { figure: fig.name.to_string(), msg }
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn font(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().color(&RGBColor(30, 30, 30))
}

/// Ticks to ask plotters for on an axis `pixels` long (it picks at most this many round values).
/// A tick's label: the category's at whole positions of a categorical axis, else [`tick`].
fn axis_tick(a: &Axis, v: f64) -> String {
    if a.labels.is_empty() {
        return tick(v, a.log, a.integer);
    }
    let i = v.round();
    if (v - i).abs() > 1e-9 || i < 0.0 {
        return String::new();
    }
    a.labels.get(i as usize).cloned().unwrap_or_default()
}

fn tick_count(a: &Axis, pixels: f64) -> usize {
    if !a.labels.is_empty() {
        // one tick per category while they fit (about 40 px each, 20 when turned upright), else
        // every other, …
        let each = if upright(a) { 20.0 } else { 40.0 };
        return a.labels.len().min(((pixels / each) as usize).max(2));
    }
    if a.log || a.integer {
        ((pixels / 34.0) as usize).clamp(3, 12).min((a.max - a.min).round() as usize + 1).max(2)
    } else {
        ((pixels / 60.0) as usize).clamp(4, 10)
    }
}

/// Category labels longer than this (layer names) are drawn upright on a horizontal axis.
const UPRIGHT_ABOVE: usize = 6;

/// Room below a horizontal axis with upright labels, besides the labels (the axis title).
pub const UPRIGHT_AREA: f64 = 44.0;

/// Pixels per character of an upright label.
pub const UPRIGHT_PX_PER_CHAR: f64 = 6.6;

/// Room left of a vertical axis, for its tick labels and title: 90 px, more for category labels
/// (layer names: DejaVu Sans at 15 px is about 8.5 px per character, and the title takes 40).
pub fn y_label_px(a: &Axis) -> f64 {
    let longest = a.labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    (8.5 * longest as f64 + 40.0).max(90.0)
}

/// Whether the axis's category labels are too long to lie side by side.
pub fn upright(a: &Axis) -> bool {
    a.labels.iter().any(|l| l.chars().count() > UPRIGHT_ABOVE)
}

type DrawResult = std::result::Result<(), String>;

fn draw<DB: DrawingBackend>(fig: &Figure, root: &DrawingArea<DB, Shift>, s: f64) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    // a top margin: the bitmap font's glyphs start above the anchor of top-aligned text
    let body = root.margin((8.0 * s) as i32, 0, 0, 0).titled(&fig.title, font(23.0 * s)).map_err(e)?;
    let (w, _) = body.dim_in_pixel();
    let side = (fig.side as f64 * s) as u32;
    let (main, side_area) = body.split_horizontally(w.saturating_sub(side));
    let columns = fig.columns.max(1);
    let rows = fig.panels.len().div_ceil(columns).max(1);
    let cells = main.split_evenly((rows, columns));
    let bar = fig.color_bar.as_ref();
    for (panel, area) in fig.panels.iter().zip(cells.iter()) {
        match panel {
            Panel::Lines { title, x, y, bands, series } => {
                let mut chart = chart(area, title, x, y, s)?;
                for b in bands {
                    let mut pts: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.2)).collect();
                    pts.extend(b.points.iter().rev().map(|p| (p.0, p.1)));
                    if pts.len() >= 3 {
                        chart
                            .draw_series(std::iter::once(Polygon::new(pts, rgb(b.color).mix(0.18).filled())))
                            .map_err(e)?;
                    }
                }
                draw_lines(&mut chart, series, s)?;
            }
            Panel::Heat { title, x, y, cells, lines } => {
                let mut chart = chart(area, title, x, y, s)?;
                let grey = RGBColor(200, 200, 200);
                chart
                    .draw_series(cells.iter().map(|c| {
                        let color = match (c.value, bar) {
                            (Some(v), Some(b)) => rgb(b.color(v)),
                            _ => grey,
                        };
                        Rectangle::new([(c.x.0, c.y.0), (c.x.1, c.y.1)], color.filled())
                    }))
                    .map_err(e)?;
                cell_texts(&mut chart, cells, bar, s)?;
                draw_lines(&mut chart, lines, s)?;
            }
            Panel::Note { title, text } => note(area, title, text, s).map_err(e)?,
        }
    }
    if let Some(b) = bar {
        color_bar(&side_area, b, s)?;
    } else if !fig.legend.is_empty() {
        legend(&side_area, fig, s).map_err(e)?;
    }
    Ok(())
}

/// Borders around the cells that carry a text, and the text, dark or light by the cell's colour.
fn cell_texts<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    cells: &[super::figures::Cell],
    bar: Option<&ColorBar>,
    s: f64,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let marked: Vec<&super::figures::Cell> = cells.iter().filter(|c| c.text.is_some()).collect();
    let border = ShapeStyle::from(&WHITE).stroke_width((1.5 * s).round().max(1.0) as u32);
    chart.draw_series(marked.iter().map(|c| Rectangle::new([(c.x.0, c.y.0), (c.x.1, c.y.1)], border))).map_err(e)?;
    let center = Pos::new(HPos::Center, VPos::Center);
    chart
        .draw_series(marked.iter().filter(|c| c.text.as_deref().is_some_and(|t| !t.is_empty())).map(|c| {
            let (r, g, b) = match (c.value, bar) {
                (Some(v), Some(bar)) => bar.color(v),
                _ => (200, 200, 200),
            };
            // relative luminance: dark text on light cells (viridis' yellow end), light on dark
            let light = 0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64 > 140.0;
            let ink = if light { RGBColor(20, 20, 20) } else { RGBColor(245, 245, 245) };
            let text = c.text.clone().unwrap_or_default();
            let at = ((c.x.0 + c.x.1) / 2.0, (c.y.0 + c.y.1) / 2.0);
            Text::new(text, at, (FAMILY, 13.0 * s).into_font().color(&ink).pos(center))
        }))
        .map_err(e)?;
    Ok(())
}

/// Lines (solid or dashed, with markers if asked) on a chart.
fn draw_lines<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, series: &[Series], s: f64) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    for ser in series {
        let style = ShapeStyle::from(&rgb(ser.color)).stroke_width((2.0 * s).round() as u32);
        if ser.dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    ser.points.iter().copied(),
                    (7.0 * s) as i32,
                    (5.0 * s) as i32,
                    style,
                ))
                .map_err(e)?;
        } else {
            chart.draw_series(LineSeries::new(ser.points.iter().copied(), style)).map_err(e)?;
        }
        if ser.markers {
            let r = (3.5 * s) as i32;
            chart.draw_series(ser.points.iter().map(|&p| Circle::new(p, r, rgb(ser.color).filled()))).map_err(e)?;
        }
    }
    Ok(())
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: &Axis,
    y: &Axis,
    s: f64,
) -> std::result::Result<Chart<'a, DB>, String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    // upright labels (layer names) need room below the axis: DejaVu Sans at 13 px is about
    // 6.6 px per character
    let longest = x.labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let x_area = if upright(x) { UPRIGHT_AREA + UPRIGHT_PX_PER_CHAR * longest as f64 } else { 54.0 };
    let mut b = ChartBuilder::on(area);
    b.margin((10.0 * s) as i32)
        .margin_right((18.0 * s) as i32)
        .x_label_area_size((x_area * s) as i32)
        .y_label_area_size((y_label_px(y) * s) as i32);
    if !title.is_empty() {
        b.caption(title, font(17.0 * s));
    }
    // an empty range would make plotters look for key points forever: widen it to one unit
    let range = |a: &Axis| if a.max > a.min { a.min..a.max } else { a.min - 0.5..a.min + 0.5 };
    let mut chart = b.build_cartesian_2d(range(x), range(y)).map_err(e)?;
    let (w, h) = chart.plotting_area().dim_in_pixel();
    let (nx, ny) = (tick_count(x, w as f64 / s), tick_count(y, h as f64 / s));
    // category labels on a vertical axis lie one above the other: one a line (about 20 px)
    let ny = if y.labels.is_empty() { ny } else { y.labels.len().min(((h as f64 / s / 20.0) as usize).max(2)) };
    let (xl, yl) = (x.clone(), y.clone());
    // upright labels are drawn below, by `upright_labels`: the mesh would centre them on the axis
    let xf = move |v: &f64| if upright(&xl) { String::new() } else { axis_tick(&xl, *v) };
    let yf = move |v: &f64| axis_tick(&yl, *v);
    chart
        .configure_mesh()
        .x_desc(x.label.as_str())
        .y_desc(y.label.as_str())
        .x_labels(nx)
        .y_labels(ny)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .label_style(font(15.0 * s))
        .axis_desc_style(font(17.0 * s))
        .bold_line_style(RGBColor(0, 0, 0).mix(0.08))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(90, 90, 90))
        .draw()
        .map_err(e)?;
    if upright(x) {
        upright_labels(area, &chart, x, y.min, s)?;
    }
    Ok(chart)
}

/// Category labels of `x` written downwards from just below the axis (every k-th one when they
/// would overlap, about 20 px apart).
fn upright_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    x: &Axis,
    y_min: f64,
    s: f64,
) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (ox, oy) = area.get_base_pixel();
    let (w, _) = chart.plotting_area().dim_in_pixel();
    let n = x.labels.len().max(1);
    let every = (n as f64 * 20.0 * s / w.max(1) as f64).ceil().max(1.0) as usize;
    let style = font(13.0 * s).transform(FontTransform::Rotate90).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, label) in x.labels.iter().enumerate().step_by(every) {
        let (px, py) = chart.backend_coord(&(i as f64, y_min));
        let at = (px - ox, py - oy + (8.0 * s) as i32);
        area.draw(&Text::new(label.clone(), at, style.clone())).map_err(e)?;
    }
    Ok(())
}

/// Splits a sentence into lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

fn note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    text: &str,
    s: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (w, h) = area.dim_in_pixel();
    let center = Pos::new(HPos::Center, VPos::Center);
    area.draw(&Rectangle::new(
        [((6.0 * s) as i32, (6.0 * s) as i32), (w as i32 - (6.0 * s) as i32, h as i32 - (6.0 * s) as i32)],
        RGBColor(0, 0, 0).mix(0.15),
    ))?;
    if !title.is_empty() {
        area.draw(&Text::new(title.to_string(), ((w / 2) as i32, (24.0 * s) as i32), font(17.0 * s).pos(center)))?;
    }
    let chars = ((w as f64 / s) / 8.0).max(20.0) as usize;
    let lines = wrap(text, chars);
    let line_h = 23.0 * s;
    let top = h as f64 / 2.0 - line_h * (lines.len() as f64 - 1.0) / 2.0;
    for (i, line) in lines.iter().enumerate() {
        let y = (top + line_h * i as f64) as i32;
        area.draw(&Text::new(line.clone(), ((w / 2) as i32, y), font(17.0 * s).pos(center)))?;
    }
    Ok(())
}

fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
    s: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // 27 px a line, closer (and a smaller font) when the entries would not fit the height:
    // a report comparing 16 runs must not draw its last entries off the figure
    let (_, h) = area.dim_in_pixel();
    let top = 34.0 * s;
    let fits = (h as f64 - top - 8.0 * s) / fig.legend.len().max(1) as f64;
    let line = (27.0 * s).min(fits.max(9.0 * s));
    let font_px = (16.0 * s).min(line * 0.62);
    let x0 = (6.0 * s) as i32;
    let x1 = (40.0 * s) as i32;
    let left = Pos::new(HPos::Left, VPos::Center);
    for (i, entry) in fig.legend.iter().enumerate() {
        let y = (top + i as f64 * line) as i32;
        let color = rgb(entry.color);
        let style = ShapeStyle::from(&color).stroke_width((2.5 * s).round() as u32);
        match entry.mark {
            Mark::Line => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?,
            Mark::Dashed => {
                area.draw(&DashedPathElement::new(vec![(x0, y), (x1, y)], (6.0 * s) as i32, (4.0 * s) as i32, style))?
            }
            Mark::Band => {
                let half = (7.0 * s).min(line * 0.35) as i32;
                area.draw(&Rectangle::new([(x0, y - half), (x1, y + half)], color.mix(0.3).filled()))?;
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?;
            }
        }
        area.draw(&Text::new(entry.label.clone(), (x1 + (8.0 * s) as i32, y), font(font_px).pos(left)))?;
    }
    Ok(())
}

fn color_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, b: &ColorBar, s: f64) -> DrawResult {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (_, h) = area.dim_in_pixel();
    let area = area.margin((30.0 * s) as i32, ((h as f64 * 0.25) as i32).max((40.0 * s) as i32), 0, 0);
    let mut chart = ChartBuilder::on(&area)
        .margin((4.0 * s) as i32)
        .y_label_area_size((76.0 * s) as i32)
        .build_cartesian_2d(0.0..1.0, b.min..b.max)
        .map_err(e)?;
    let log = b.log;
    let fmt = move |v: &f64| tick(*v, log, false);
    let axis = Axis { label: String::new(), log, integer: false, min: b.min, max: b.max, labels: Vec::new() };
    chart
        .configure_mesh()
        .disable_x_axis()
        .disable_x_mesh()
        .disable_y_mesh()
        .y_labels(tick_count(&axis, 320.0).min(8))
        .y_label_formatter(&fmt)
        .y_desc(b.label.as_str())
        .label_style(font(14.5 * s))
        .axis_desc_style(font(16.0 * s))
        .draw()
        .map_err(e)?;
    let steps = 64;
    chart
        .draw_series((0..steps).map(|i| {
            let lo = b.min + (b.max - b.min) * i as f64 / steps as f64;
            let hi = b.min + (b.max - b.min) * (i + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, lo), (1.0, hi)], rgb(b.color((lo + hi) / 2.0)).filled())
        }))
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::LegendEntry;

    /// The y of each legend label (`<text … y="…">run k</text>`) of an SVG, in order.
    fn legend_ys(svg: &str) -> Vec<f64> {
        svg.split("<text")
            .filter(|t| t.split_once('>').is_some_and(|(_, text)| text.trim_start().starts_with("run ")))
            .map(|t| {
                let y = t.split(" y=\"").nth(1).expect("a y attribute");
                y[..y.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn a_long_legend_fits_its_figure() {
        let entries = |n: usize| -> Vec<LegendEntry> {
            (0..n).map(|k| LegendEntry { label: format!("run {k}"), color: (10, 20, 30), mark: Mark::Line }).collect()
        };
        let fig = |n: usize| Figure {
            name: "legend",
            title: "legend".into(),
            caption: String::new(),
            notes: Vec::new(),
            panels: vec![Panel::Note { title: "t".into(), text: "nothing".into() }],
            columns: 1,
            legend: entries(n),
            color_bar: None,
            size: (700, 360),
            side: 200,
        };
        // a short legend keeps its 27 px lines
        let few = legend_ys(&svg(&fig(3)).unwrap());
        assert_eq!(few.len(), 3);
        assert!((few[1] - few[0] - 27.0).abs() <= 1.0, "{few:?}");
        // 18 entries (16 compared runs and two style keys) close up instead of leaving the figure
        let many = legend_ys(&svg(&fig(18)).unwrap());
        assert_eq!(many.len(), 18);
        assert!(many.windows(2).all(|w| w[1] - w[0] >= 9.0), "{many:?}");
        assert!(*many.last().unwrap() < 360.0, "the last entry is drawn at y = {}", many.last().unwrap());
    }

    #[test]
    fn ticks_read_as_powers_of_ten_and_whole_layers() {
        assert_eq!(tick(-17.0, true, false), "10⁻¹⁷");
        assert_eq!(tick(2.0, true, false), "10²");
        assert_eq!(tick(-2.5, true, false), "3.16e-3");
        assert_eq!(tick(3.0, false, true), "3");
        assert_eq!(tick(2.5, false, true), "");
        assert_eq!(tick(1500.0, false, false), "1500");
        assert_eq!(tick(0.25, false, false), "0.25");
    }

    #[test]
    fn notes_wrap_at_word_boundaries() {
        assert_eq!(wrap("only one probed step here", 10), ["only one", "probed", "step here"]);
    }
}
