//! Figures (PNG and SVG, plotters): per workload, requests per second, Mbit/s
//! and total cache storage against the number of servers, like the paper's
//! Figures 10-12 and its Figure 3 argument (RR stores every object on every
//! server; hashing policies store each object once).
//!
//! Conventional runs are solid lines, distributed dashed, one colour per
//! policy. Rows of a real cluster (`mode` other than `sim`) are drawn as
//! markers over the simulated lines when both are present.
//!
//! Text is rendered with an embedded font (Noto Sans, from the
//! `ttf-noto-sans` crate) through plotters' pure-Rust `ab_glyph` backend, so
//! no system font or fontconfig is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::cells::label;
use super::summary::SummaryRow;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 640;
const FONT: &str = "sans-serif";

/// Tableau-10: distinguishable, and readable by most colour-blind readers.
const COLOURS: [RGBColor; 10] = [
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

/// What a figure plots.
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

/// One line (or set of markers) of a figure.
struct Series {
    label: String,
    colour: RGBColor,
    dashed: bool,
    line: bool,
    markers: bool,
    points: Vec<(f64, f64)>,
}

/// Draws every figure for every workload into `dir`; returns the files written.
pub fn draw_all(rows: &[SummaryRow], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    let mut written = Vec::new();
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    for w in workloads {
        let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.workload == w).collect();
        for metric in METRICS {
            let series = build_series(&rows, metric);
            let title = format!("{w}: {} vs cache servers", metric.title);
            let stem = file_stem(w, metric.kind);
            let png = dir.join(format!("{stem}.png"));
            let svg = dir.join(format!("{stem}.svg"));
            {
                let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, &title, metric.y_label, &series).map_err(|e| anyhow!("{}: {e}", png.display()))?;
                root.present().map_err(|e| anyhow!("cannot write {}: {e}", png.display()))?;
            }
            {
                let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, &title, metric.y_label, &series).map_err(|e| anyhow!("{}: {e}", svg.display()))?;
                root.present().map_err(|e| anyhow!("cannot write {}: {e}", svg.display()))?;
            }
            written.push(png);
            written.push(svg);
        }
    }
    Ok(written)
}

fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR).is_err() {
            result = Err(anyhow!("the embedded Noto Sans font could not be loaded"));
        }
    });
    result
}

fn build_series(rows: &[&SummaryRow], metric: Metric) -> Vec<Series> {
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
        let real = *mode != "sim";
        for (pi, policy) in policies.iter().enumerate() {
            for arch in &archs {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.mode == *mode && r.policy == *policy && r.arch == *arch)
                    .map(|r| (f64::from(r.servers), (metric.value)(r)))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut text = label(arch, policy);
                if real {
                    text.push_str(&format!(" ({mode})"));
                }
                series.push(Series {
                    label: text,
                    colour: COLOURS[pi % COLOURS.len()],
                    dashed: *arch != "conventional",
                    line: !(real && has_sim),
                    markers: real,
                    points,
                });
            }
        }
    }
    series
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let mut xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (x_lo, x_hi) = match (xs.first(), xs.last()) {
        (Some(&lo), Some(&hi)) => (lo / 1.25, hi * 1.25),
        _ => (0.5, 2.0),
    };
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let y_hi = if y_max > 0.0 { y_max * 1.12 } else { 1.0 };

    let mut chart = ChartBuilder::on(root)
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

    for s in series {
        let colour = s.colour;
        let style = ShapeStyle { color: colour.to_rgba(), filled: false, stroke_width: 2 };
        let anno = if s.line && s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 10, 6, style))?
        } else if s.line {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?
        } else {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 5, colour.filled())))?
        };
        // Legend sample: a dashed line is two short strokes, a solid one two
        // touching strokes, markers-only a dot (the unused parts transparent,
        // so that every sample has the same element type).
        let gap = if s.dashed { 5 } else { 0 };
        let invisible = ShapeStyle { color: TRANSPARENT, filled: true, stroke_width: 0 };
        let line_style = if s.line { style } else { invisible };
        let dot_style = if s.markers { colour.filled() } else { invisible };
        anno.label(s.label.clone()).legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (7, 0)], line_style)
                + PathElement::new(vec![(7 + gap, 0), (19, 0)], line_style)
                + Circle::new((10, 0), 4, dot_style)
        });
        if s.markers && s.line {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(arch: &str, policy: &str, servers: u32, mode: &str, req: f64) -> SummaryRow {
        crate::report::summary::tests::summary_row("w", arch, policy, servers, mode, req, req / 10.0)
    }

    #[test]
    fn real_rows_become_markers_over_sim_lines() {
        let rows = [
            row("conventional", "rr", 1, "sim", 10.0),
            row("conventional", "rr", 2, "sim", 20.0),
            row("distributed", "rr", 1, "sim", 8.0),
            row("distributed", "rr", 1, "real", 9.0),
        ];
        let refs: Vec<&SummaryRow> = rows.iter().collect();
        let s = build_series(&refs, METRICS[0]);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].label.as_str(), s[0].dashed, s[0].line), ("RR", false, true));
        assert_eq!(s[0].points, vec![(1.0, 10.0), (2.0, 20.0)]);
        assert_eq!((s[1].label.as_str(), s[1].dashed), ("AS-RR", true));
        assert_eq!((s[2].label.as_str(), s[2].line, s[2].markers), ("AS-RR (real)", false, true));
        assert_eq!(s[2].colour, s[1].colour, "same policy, same colour");
    }

    #[test]
    fn writes_png_and_svg_for_each_metric() {
        let rows = [row("conventional", "rr", 1, "sim", 10.0), row("distributed", "md5", 4, "sim", 40.0)];
        let dir = std::env::temp_dir().join(format!("dl7-figures-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = draw_all(&rows, &dir).unwrap();
        assert_eq!(files.len(), 6);
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 1000, "{}", f.display());
        }
        let svg = std::fs::read_to_string(dir.join("w_req_per_s.svg")).unwrap();
        assert!(svg.contains("AS-MD5") && svg.contains("cache servers"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
