//! Figures (PNG and SVG, plotters): per workload, requests per second, Mbit/s
//! and total cache storage against the number of servers, like the paper's
//! Figures 10-12 and its Figure 3 argument (RR stores every object on every
//! server; hashing policies store each object once).
//!
//! Three things are encoded separately so that any two series differ in at
//! least one a reader can see without colour:
//!
//! * colour is the policy (`RR` and `AS-RR` share one);
//! * the architecture: conventional is a solid line with hollow markers,
//!   distributed a dashed line with filled markers;
//! * the source: simulated rows are lines with small circles; measured rows
//!   (`mode` other than `sim`) are larger markers, one shape per mode (square
//!   `real`, triangle `real-lab`, diamond `real-ssh`, inverted triangle for
//!   any other), drawn without a line when a simulated line is there to
//!   compare with; the paper's published values, when given, are crosses
//!   (`+` conventional, `x` distributed) in the policy's colour.
//!
//! The legend is a panel beside the plot, so it never covers data, with one
//! entry per policy, architecture and source rather than one per series, so
//! it stays short; only measured series, when few, get an entry each.
//!
//! Text is rendered with an embedded font (Noto Sans, from the
//! `ttf-noto-sans` crate) through plotters' pure-Rust `ab_glyph` backend, so
//! no system font or fontconfig is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::cells::label;
use super::reference::ReferenceCell;
use super::summary::SummaryRow;

const WIDTH: u32 = 1180;
const HEIGHT: u32 = 640;
/// Width of the legend panel on the right of the plot.
const LEGEND_WIDTH: u32 = 230;
pub(super) const FONT: &str = "sans-serif";
/// Legend samples and headers that stand for no policy.
pub(super) const NEUTRAL: RGBColor = RGBColor(70, 70, 70);

/// Tableau-10: distinguishable, and readable by most colour-blind readers.
pub(super) const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// File name (without extension) of a figure: `<workload>_<kind>`.
pub fn file_stem(workload: &str, kind: &str) -> String {
    format!("{workload}_{kind}")
}

/// What a figure plots. `kind` is also the reference CSV's `metric`.
#[derive(Clone, Copy)]
struct Metric {
    kind: &'static str,
    title: &'static str,
    y_label: &'static str,
    value: fn(&SummaryRow) -> f64,
}

const METRICS: [Metric; 3] = [
    Metric { kind: "req_per_s", title: "requests per second", y_label: "requests/s", value: |r| r.req_per_s },
    Metric { kind: "mbit_per_s", title: "Mbit/s", y_label: "Mbit/s of responses", value: |r| r.mbit_per_s },
    Metric {
        kind: "cache_bytes",
        title: "total cache storage",
        y_label: "MB stored across all caches",
        value: |r| r.cache_bytes / 1e6,
    },
];

/// Marker shape: which source a point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    InvertedTriangle,
    /// The paper's published value.
    Cross,
}

/// The marker of a row's `mode`. Known modes have fixed shapes so that a
/// mode looks the same in every figure, whatever else is plotted with it.
pub(super) fn shape_of(mode: &str) -> Shape {
    match mode {
        "sim" => Shape::Circle,
        "real" => Shape::Square,
        "real-lab" => Shape::Triangle,
        "real-ssh" => Shape::Diamond,
        _ => Shape::InvertedTriangle,
    }
}

/// One line and/or set of markers of a figure.
#[derive(Debug)]
struct Series {
    /// The paper's column label and the source, e.g. `AS-RR (real-lab)`.
    label: String,
    /// Index into the figure's policies, for the colour and the legend.
    policy: usize,
    colour: RGBColor,
    /// Conventional: solid line, hollow marker (`+` for the paper).
    conventional: bool,
    line: bool,
    shape: Shape,
    /// Marker half-size in pixels.
    size: i32,
    /// Where the points come from: a row `mode` (`sim`, `real-lab`, ...) or `paper`.
    source: String,
    points: Vec<(f64, f64)>,
}

/// Draws every figure for every section (a workload under one eviction,
/// [`super::cells::section`]) into `dir`; returns the files
/// written. `reference` holds the paper's published cells; those of a
/// workload, metric and (arch, policy, servers) cell that `rows` also has are
/// drawn beside ours. Pass `&[]` to draw our rows only.
pub fn draw_all(rows: &[SummaryRow], reference: &[ReferenceCell], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    let mut written = Vec::new();
    // One set per section: a workload under one eviction.
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.section.as_str()) {
            workloads.push(&r.section);
        }
    }
    for w in workloads {
        let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.section == w).collect();
        for metric in METRICS {
            let (policies, series) = build_series(&rows, reference, metric);
            let title = format!("{w}: {} vs cache servers", metric.title);
            let stem = file_stem(w, metric.kind);
            let png = dir.join(format!("{stem}.png"));
            let svg = dir.join(format!("{stem}.svg"));
            {
                let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, &title, metric.y_label, &policies, &series)
                    .map_err(|e| anyhow!("{}: {e}", png.display()))?;
                root.present().map_err(|e| anyhow!("cannot write {}: {e}", png.display()))?;
            }
            {
                let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, &title, metric.y_label, &policies, &series)
                    .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
                root.present().map_err(|e| anyhow!("cannot write {}: {e}", svg.display()))?;
            }
            written.push(png);
            written.push(svg);
        }
    }
    Ok(written)
}

pub(super) fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR).is_err() {
            result = Err(anyhow!("the embedded Noto Sans font could not be loaded"));
        }
    });
    result
}

/// The series of one figure of one workload's rows, simulated first, then
/// measured, then the paper's; and the policies in order of first appearance.
fn build_series<'a>(
    rows: &[&'a SummaryRow],
    reference: &[ReferenceCell],
    metric: Metric,
) -> (Vec<&'a str>, Vec<Series>) {
    let mut policies: Vec<&str> = Vec::new();
    let mut archs: Vec<&str> = Vec::new();
    let mut modes: Vec<&str> = Vec::new();
    for r in rows {
        for (v, x) in [(&mut policies, r.policy.as_str()), (&mut archs, r.arch.as_str()), (&mut modes, r.mode.as_str())]
        {
            if !v.contains(&x) {
                v.push(x);
            }
        }
    }
    archs.sort_by_key(|a| (*a != "conventional", *a != "distributed"));
    // Simulated lines first, real measurements drawn over them.
    modes.sort_by_key(|m| *m != "sim");
    let has_sim = modes.contains(&"sim");
    let mut series = Vec::new();
    for mode in &modes {
        let sim = *mode == "sim";
        for (pi, policy) in policies.iter().enumerate() {
            for arch in &archs {
                let points = sorted(
                    rows.iter()
                        .filter(|r| r.mode == *mode && r.policy == *policy && r.arch == *arch)
                        .map(|r| (f64::from(r.servers), (metric.value)(r))),
                );
                if points.is_empty() {
                    continue;
                }
                let mut text = label(arch, policy);
                if !sim {
                    text.push_str(&format!(" ({mode})"));
                }
                series.push(Series {
                    label: text,
                    policy: pi,
                    colour: COLOURS[pi % COLOURS.len()],
                    conventional: *arch == "conventional",
                    // Without a simulated line, a measured series is the only
                    // curve there is, and a line makes its trend readable.
                    line: sim || !has_sim,
                    shape: shape_of(mode),
                    size: if sim { 4 } else { 6 },
                    source: mode.to_string(),
                    points,
                });
            }
        }
    }
    // The paper's cells where we have one to compare with, in any mode.
    // The paper's cells are LRU's: a section of another eviction has none.
    let workload = rows.first().map(|r| r.section.as_str());
    for (pi, policy) in policies.iter().enumerate() {
        for arch in &archs {
            let points = sorted(
                reference
                    .iter()
                    .filter(|c| Some(c.workload.as_str()) == workload && c.metric == metric.kind)
                    .filter(|c| c.policy == *policy && c.arch == *arch)
                    .filter(|c| rows.iter().any(|r| r.policy == c.policy && r.arch == c.arch && r.servers == c.servers))
                    .map(|c| (f64::from(c.servers), c.value)),
            );
            if points.is_empty() {
                continue;
            }
            series.push(Series {
                label: format!("{} (paper)", label(arch, policy)),
                policy: pi,
                colour: COLOURS[pi % COLOURS.len()],
                conventional: *arch == "conventional",
                line: false,
                shape: Shape::Cross,
                size: 7,
                source: "paper".into(),
                points,
            });
        }
    }
    (policies, series)
}

fn sorted(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = points.collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// A marker as two polygons in pixels around its point, drawn in order: for
/// a closed shape the outline in `colour` then its inside (white when
/// hollow, so that a line under it does not show through); for a cross its
/// two bars. Polygons rather than plotters' own markers because they give
/// every shape the same element type and a hollow variant.
pub(super) fn glyph(shape: Shape, hollow: bool, colour: RGBColor, size: i32) -> [(Vec<(i32, i32)>, ShapeStyle); 2] {
    let outer = colour.filled();
    let inner = if hollow { WHITE.filled() } else { outer };
    // Ring width of a hollow marker: thick enough to show the colour.
    let ring = (size / 2).max(2);
    match shape {
        Shape::Cross => {
            // Two bars about 3 px thick: upright for `+`, diagonal for `x`.
            let (s, t) = (size, 1);
            if hollow {
                [(vec![(-s, -t), (s, -t), (s, t), (-s, t)], outer), (vec![(-t, -s), (t, -s), (t, s), (-t, s)], outer)]
            } else {
                let d = s * 7 / 10;
                [
                    (vec![(-d - t, -d + t), (-d + t, -d - t), (d + t, d - t), (d - t, d + t)], outer),
                    (vec![(-d - t, d - t), (-d + t, d + t), (d + t, -d + t), (d - t, -d - t)], outer),
                ]
            }
        }
        _ => [(outline(shape, size), outer), (outline(shape, (size - ring).max(1)), inner)],
    }
}

/// The vertices of a closed marker shape of half-size `s`.
fn outline(shape: Shape, s: i32) -> Vec<(i32, i32)> {
    let f = f64::from(s);
    let at = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
    match shape {
        Shape::Circle => (0..20)
            .map(|k| {
                let a = f64::from(k) * std::f64::consts::TAU / 20.0;
                at(f * a.cos(), f * a.sin())
            })
            .collect(),
        Shape::Square => vec![(-s, -s), (s, -s), (s, s), (-s, s)],
        // Triangles a little larger than the square: they cover less area.
        Shape::Triangle => vec![at(0.0, -1.25 * f), at(1.15 * f, 0.8 * f), at(-1.15 * f, 0.8 * f)],
        Shape::InvertedTriangle => vec![at(0.0, 1.25 * f), at(1.15 * f, -0.8 * f), at(-1.15 * f, -0.8 * f)],
        Shape::Diamond => vec![at(0.0, -1.3 * f), at(1.3 * f, 0.0), at(0.0, 1.3 * f), at(-1.3 * f, 0.0)],
        Shape::Cross => vec![],
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    policies: &[&str],
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (x_lo, x_hi) = match (xs.first(), xs.last()) {
        (Some(&lo), Some(&hi)) => (lo / 1.25, hi * 1.25),
        _ => (0.5, 2.0),
    };
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let y_hi = if y_max > 0.0 { y_max * 1.12 } else { 1.0 };

    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x_lo..x_hi).log_scale().with_key_points(xs.clone()), 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("cache servers")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    // Lines under every marker, so that no line hides a measured point.
    for s in series.iter().filter(|s| s.line) {
        let style = ShapeStyle { color: s.colour.to_rgba(), filled: false, stroke_width: 2 };
        if s.conventional {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?;
        } else {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 10, 6, style))?;
        }
    }
    for s in series {
        let [(a, a_style), (b, b_style)] = glyph(s.shape, s.conventional, s.colour, s.size);
        chart.draw_series(
            s.points
                .iter()
                .map(|&p| EmptyElement::at(p) + Polygon::new(a.clone(), a_style) + Polygon::new(b.clone(), b_style)),
        )?;
    }
    draw_legend(&side, policies, series)?;
    Ok(())
}

/// One row of the legend panel.
enum Entry {
    Header(&'static str),
    /// A policy: its colour and its two column labels.
    Policy(RGBColor, String),
    /// An architecture: the line and marker it is drawn with.
    Arch {
        conventional: bool,
        text: &'static str,
    },
    /// A source: its marker (and line, for the simulator).
    Source {
        shape: Shape,
        line: bool,
        text: String,
    },
    /// One measured series, drawn exactly as in the plot.
    Measured {
        shape: Shape,
        line: bool,
        conventional: bool,
        colour: RGBColor,
        text: String,
    },
}

/// Up to this many measured series get a legend entry each (there are few in
/// a lab run, and each is a point a reader looks for); more get one entry per
/// mode, so that the legend fits beside the plot.
const MEASURED_ENTRIES: usize = 8;

/// The legend: which policies, architectures and sources the figure has.
fn legend_entries(policies: &[&str], series: &[Series]) -> Vec<Entry> {
    let mut entries = vec![Entry::Header("policy")];
    for (pi, p) in policies.iter().enumerate() {
        if series.iter().any(|s| s.policy == pi) {
            let text = format!("{} / {}", label("conventional", p), label("distributed", p));
            entries.push(Entry::Policy(COLOURS[pi % COLOURS.len()], text));
        }
    }
    entries.push(Entry::Header("architecture"));
    if series.iter().any(|s| s.conventional) {
        entries.push(Entry::Arch { conventional: true, text: "conventional (x)" });
    }
    if series.iter().any(|s| !s.conventional) {
        entries.push(Entry::Arch { conventional: false, text: "distributed (AS-x)" });
    }
    entries.push(Entry::Header("source"));
    let measured = |s: &&Series| s.source != "sim" && s.source != "paper";
    let one_each = series.iter().filter(measured).count() <= MEASURED_ENTRIES;
    let mut seen: Vec<&str> = Vec::new();
    for s in series {
        if one_each && measured(&s) {
            entries.push(Entry::Measured {
                shape: s.shape,
                line: s.line,
                conventional: s.conventional,
                colour: s.colour,
                text: s.label.clone(),
            });
            continue;
        }
        if seen.contains(&s.source.as_str()) {
            continue;
        }
        seen.push(&s.source);
        let text = match s.source.as_str() {
            "paper" => "paper (Kwon 2008)".to_string(),
            "sim" => "sim (simulated)".to_string(),
            mode => format!("{mode} (measured)"),
        };
        entries.push(Entry::Source { shape: s.shape, line: s.line, text });
    }
    entries
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    policies: &[&str],
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let text = |s: &str, x: i32, y: i32, size: u32, colour: RGBColor| {
        Text::new(
            s.to_string(),
            (x, y),
            (FONT, size).into_font().color(&colour).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    };
    let marker = |shape: Shape, hollow: bool, colour: RGBColor, size: i32, at: (i32, i32)| {
        let [(a, a_style), (b, b_style)] = glyph(shape, hollow, colour, size);
        EmptyElement::at(at) + Polygon::new(a, a_style) + Polygon::new(b, b_style)
    };
    // A line sample 36 px long with the marker in its middle: a dashed
    // sample shows a dash and a gap on either side of the marker.
    let line = |dashed: bool, colour: RGBColor, (x, y): (i32, i32)| {
        let style = ShapeStyle { color: colour.to_rgba(), filled: false, stroke_width: 2 };
        let spans: &[(i32, i32)] = if dashed { &[(0, 8), (13, 23), (28, 36)] } else { &[(0, 36)] };
        spans.iter().map(move |&(a, b)| PathElement::new(vec![(x + a, y), (x + b, y)], style)).collect::<Vec<_>>()
    };
    let (x0, x_text) = (8, 52);
    let mut y = 64;
    for entry in legend_entries(policies, series) {
        match entry {
            Entry::Header(h) => {
                if y > 64 {
                    y += 8;
                }
                area.draw(&text(h, x0, y, 16, BLACK))?;
            }
            Entry::Policy(colour, t) => {
                let style = ShapeStyle { color: colour.to_rgba(), filled: true, stroke_width: 1 };
                area.draw(&Rectangle::new([(x0, y - 5), (x0 + 36, y + 5)], style))?;
                area.draw(&text(&t, x_text, y, 15, BLACK))?;
            }
            Entry::Arch { conventional, text: t } => {
                for p in line(!conventional, NEUTRAL, (x0, y)) {
                    area.draw(&p)?;
                }
                area.draw(&marker(Shape::Circle, conventional, NEUTRAL, 5, (x0 + 18, y)))?;
                area.draw(&text(t, x_text, y, 15, BLACK))?;
            }
            Entry::Source { shape, line: with_line, text: t } => {
                if shape == Shape::Cross {
                    area.draw(&marker(shape, true, NEUTRAL, 6, (x0 + 8, y)))?;
                    area.draw(&marker(shape, false, NEUTRAL, 6, (x0 + 28, y)))?;
                } else {
                    if with_line {
                        for p in line(false, NEUTRAL, (x0, y)) {
                            area.draw(&p)?;
                        }
                    }
                    let size = if shape == Shape::Circle { 4 } else { 6 };
                    area.draw(&marker(shape, false, NEUTRAL, size, (x0 + 18, y)))?;
                }
                area.draw(&text(&t, x_text, y, 15, BLACK))?;
            }
            Entry::Measured { shape, line: with_line, conventional, colour, text: t } => {
                if with_line {
                    for p in line(!conventional, colour, (x0, y)) {
                        area.draw(&p)?;
                    }
                }
                area.draw(&marker(shape, conventional, colour, 6, (x0 + 18, y)))?;
                area.draw(&text(&t, x_text, y, 15, BLACK))?;
            }
        }
        y += 22;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(arch: &str, policy: &str, servers: u32, mode: &str, req: f64) -> SummaryRow {
        crate::report::summary::tests::summary_row("w", arch, policy, servers, mode, req, req / 10.0)
    }

    fn cell(arch: &str, policy: &str, servers: u32, value: f64) -> ReferenceCell {
        ReferenceCell {
            table: "T4".into(),
            workload: "w".into(),
            metric: "req_per_s".into(),
            arch: arch.into(),
            policy: policy.into(),
            servers,
            value,
        }
    }

    fn series_of(rows: &[SummaryRow], reference: &[ReferenceCell]) -> Vec<Series> {
        let refs: Vec<&SummaryRow> = rows.iter().collect();
        build_series(&refs, reference, METRICS[0]).1
    }

    #[test]
    fn real_rows_become_markers_over_sim_lines() {
        let rows = [
            row("conventional", "rr", 1, "sim", 10.0),
            row("conventional", "rr", 2, "sim", 20.0),
            row("distributed", "rr", 1, "sim", 8.0),
            row("distributed", "rr", 1, "real", 9.0),
        ];
        let s = series_of(&rows, &[]);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].source.as_str(), s[0].conventional, s[0].line), ("sim", true, true));
        assert_eq!(s[0].points, vec![(1.0, 10.0), (2.0, 20.0)]);
        assert_eq!((s[1].source.as_str(), s[1].conventional), ("sim", false));
        assert_eq!((s[2].source.as_str(), s[2].line, s[2].shape), ("real", false, Shape::Square));
        assert!(!s[2].conventional);
        assert_eq!(s[2].colour, s[1].colour, "same policy, same colour");
    }

    #[test]
    fn the_two_architectures_of_one_mode_look_different() {
        // The bug: RR (real-lab) and AS-RR (real-lab) were the same blue dot.
        let rows = [row("conventional", "rr", 1, "real-lab", 10.0), row("distributed", "rr", 1, "real-lab", 9.0)];
        let s = series_of(&rows, &[]);
        assert_eq!(s[0].shape, s[1].shape);
        assert_ne!(s[0].conventional, s[1].conventional);
        let [(_, a0), (_, b0)] = glyph(s[0].shape, s[0].conventional, s[0].colour, s[0].size);
        let [(_, a1), (_, b1)] = glyph(s[1].shape, s[1].conventional, s[1].colour, s[1].size);
        assert_eq!(a0.color, a1.color, "same outline colour: the policy");
        assert_eq!(b0.color, WHITE.to_rgba(), "conventional is hollow");
        assert_eq!(b1.color, a1.color, "distributed is filled");
        assert!(s.iter().all(|x| x.line), "no simulated line to compare with: measured points are joined");
    }

    #[test]
    fn every_mode_has_its_own_shape() {
        let shapes: Vec<Shape> = ["sim", "real", "real-lab", "real-ssh", "other"].iter().map(|m| shape_of(m)).collect();
        for (i, a) in shapes.iter().enumerate() {
            assert!(!shapes[i + 1..].contains(a), "{a:?} used twice");
            assert_ne!(*a, Shape::Cross, "crosses are the paper's");
        }
    }

    #[test]
    fn paper_values_are_drawn_only_for_cells_we_have() {
        let rows = [row("conventional", "rr", 1, "sim", 10.0), row("distributed", "rr", 4, "sim", 30.0)];
        let reference = [
            cell("conventional", "rr", 1, 12.0),
            cell("distributed", "rr", 4, 33.0),
            cell("distributed", "rr", 16, 99.0),
            cell("distributed", "md5", 4, 50.0),
            ReferenceCell { metric: "mbit_per_s".into(), ..cell("conventional", "rr", 1, 1.0) },
            ReferenceCell { workload: "other".into(), ..cell("conventional", "rr", 1, 2.0) },
        ];
        let paper: Vec<Series> = series_of(&rows, &reference).into_iter().filter(|s| s.source == "paper").collect();
        assert_eq!(paper.len(), 2);
        assert_eq!((paper[0].conventional, paper[0].points.clone()), (true, vec![(1.0, 12.0)]));
        assert_eq!((paper[1].conventional, paper[1].points.clone()), (false, vec![(4.0, 33.0)]));
        assert!(paper.iter().all(|s| s.shape == Shape::Cross && !s.line));
        let legend = legend_entries(&["rr"], &series_of(&rows, &reference));
        assert!(legend.iter().any(|e| matches!(e, Entry::Source { text, .. } if text == "paper (Kwon 2008)")));
    }

    #[test]
    fn many_measured_series_share_one_legend_entry_per_mode() {
        let few: Vec<SummaryRow> = ["rr", "md5"].iter().map(|p| row("distributed", p, 2, "real", 1.0)).collect();
        let texts = |rows: &[SummaryRow]| -> Vec<String> {
            let refs: Vec<&SummaryRow> = rows.iter().collect();
            let (policies, series) = build_series(&refs, &[], METRICS[0]);
            legend_entries(&policies, &series)
                .into_iter()
                .filter_map(|e| match e {
                    Entry::Source { text, .. } | Entry::Measured { text, .. } => Some(text),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(texts(&few), ["AS-RR (real)", "AS-MD5 (real)"]);
        let many: Vec<SummaryRow> =
            (0..=MEASURED_ENTRIES).map(|k| row("distributed", &format!("p{k}"), 2, "real", 1.0)).collect();
        assert_eq!(texts(&many), ["real (measured)"]);
    }

    #[test]
    fn writes_png_and_svg_for_each_metric() {
        let rows = [
            row("conventional", "rr", 1, "sim", 10.0),
            row("distributed", "md5", 4, "sim", 40.0),
            row("distributed", "md5", 4, "real-lab", 38.0),
        ];
        let reference = [cell("distributed", "md5", 4, 42.0)];
        let dir = std::env::temp_dir().join(format!("dl7-figures-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = draw_all(&rows, &reference, &dir).unwrap();
        assert_eq!(files.len(), 6);
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 1000, "{}", f.display());
        }
        let svg = std::fs::read_to_string(dir.join("w_req_per_s.svg")).unwrap();
        for text in ["MD5 / AS-MD5", "cache servers", "AS-MD5 (real-lab)", "paper (Kwon 2008)", "distributed (AS-x)"] {
            assert!(svg.contains(text), "{text}");
        }
        let cache = std::fs::read_to_string(dir.join("w_cache_bytes.svg")).unwrap();
        assert!(!cache.contains("paper (Kwon 2008)"), "the paper published no cache sizes");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
