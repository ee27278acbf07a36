//! Figures of `timeseries.csv` (PNG and SVG): one per section (a workload under one eviction) and cluster
//! size, requests per second above and hit ratio below against time since
//! the measured window began, one line per architecture, policy and source
//! (the mean over seeds), so that a replayed day, a flash crowd or a
//! failure can be seen. An interval in which nothing completed breaks the
//! hit-ratio line (it has no hit ratio). The warm-up (negative time) is shaded, and
//! [`Mark`]s (faults, membership changes) are drawn as labelled vertical
//! lines across both panels.
//!
//! Encodings are those of [`super::figures`]: colour is the policy, a solid
//! line conventional and a dashed one distributed, and a measured source
//! (`mode` other than `sim`) adds its marker shape on every interval.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use dl7_core::eviction::Eviction;
use dl7_core::timeseries::IntervalRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::cells::label;
use super::figures::{glyph, register_font, shape_of, COLOURS, FONT};

const WIDTH: u32 = 1180;
const HEIGHT: u32 = 760;
const LEGEND_WIDTH: u32 = 250;
/// The warm-up's shading.
const WARMUP: RGBColor = RGBColor(236, 236, 236);
const MARK: RGBColor = RGBColor(200, 30, 30);

/// An instant to mark on every timeline: a fault, a membership change.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Seconds since the measured window began.
    pub t_s: f64,
    /// Shown beside the line (e.g. `kill node 1`).
    pub label: String,
}

/// File name (without extension) of the timeline of `workload` on `servers` servers.
pub fn file_stem(workload: &str, servers: u32) -> String {
    format!("{workload}_{servers}servers_timeseries")
}

/// One line of a timeline: a source, architecture and policy, averaged over seeds.
#[derive(Debug)]
struct Line {
    label: String,
    policy: usize,
    conventional: bool,
    mode: String,
    /// (t_s, req/s, hit ratio).
    points: Vec<(f64, f64, f64)>,
}

/// Draws the timeline of every (section, servers) group of `rows` into
/// `dir`, with `marks` on each; returns the files written. A section is a
/// workload under one eviction ([`super::cells::section`]): runs of two
/// evictions share their seeds, and their lines are never averaged together.
pub fn draw_all(rows: &[IntervalRow], marks: &[Mark], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    register_font()?;
    let mut groups: Vec<((&str, Eviction), u32)> = Vec::new();
    for r in rows {
        let key = ((r.workload.as_str(), r.eviction), r.servers);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let mut written = Vec::new();
    for ((workload, eviction), servers) in groups {
        let group: Vec<&IntervalRow> =
            rows.iter().filter(|r| r.workload == workload && r.eviction == eviction && r.servers == servers).collect();
        let lines = lines(&group);
        let section = super::cells::section(workload, eviction);
        let title = format!("{section}, {servers} servers: requests/s and hit ratio over time");
        let stem = file_stem(&section, servers);
        let png = dir.join(format!("{stem}.png"));
        let svg = dir.join(format!("{stem}.svg"));
        {
            let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, &title, &lines, marks).map_err(|e| anyhow!("{}: {e}", png.display()))?;
            root.present().map_err(|e| anyhow!("cannot write {}: {e}", png.display()))?;
        }
        {
            let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, &title, &lines, marks).map_err(|e| anyhow!("{}: {e}", svg.display()))?;
            root.present().map_err(|e| anyhow!("cannot write {}: {e}", svg.display()))?;
        }
        written.push(png);
        written.push(svg);
    }
    Ok(written)
}

/// The lines of one group, simulated first; colours follow the policies' order of appearance.
fn lines(rows: &[&IntervalRow]) -> Vec<Line> {
    let mut policies: Vec<&str> = Vec::new();
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for r in rows {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
        let key = (r.mode.as_str(), r.arch.as_str(), r.policy.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort_by_key(|(mode, arch, _)| (*mode != "sim", *arch != "conventional"));
    keys.into_iter()
        .map(|(mode, arch, policy)| {
            // Mean over seeds at each interval start.
            let mut sums: Vec<(f64, f64, f64, u32)> = Vec::new();
            for r in rows.iter().filter(|r| r.mode == mode && r.arch == arch && r.policy == policy) {
                match sums.iter_mut().find(|s| s.0 == r.t_s) {
                    Some(s) => {
                        s.1 += r.req_per_s;
                        s.2 += r.hit_ratio;
                        s.3 += 1;
                    }
                    None => sums.push((r.t_s, r.req_per_s, r.hit_ratio, 1)),
                }
            }
            sums.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut text = label(arch, policy);
            if mode != "sim" {
                text.push_str(&format!(" ({mode})"));
            }
            Line {
                label: text,
                policy: policies.iter().position(|p| *p == policy).expect("listed"),
                conventional: arch == "conventional",
                mode: mode.to_string(),
                points: sums.into_iter().map(|(t, q, h, n)| (t, q / f64::from(n), h / f64::from(n))).collect(),
            }
        })
        .collect()
}

/// One of the two panels of a timeline.
struct Panel {
    y_label: &'static str,
    y_hi: f64,
    /// Its value of a point (t_s, req/s, hit ratio).
    value: fn(&(f64, f64, f64)) -> f64,
    /// An interval with no response breaks the line (it has no such value).
    gaps: bool,
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Line],
    marks: &[Mark],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let plot = plot.titled(title, (FONT, 24))?;
    let (top, bottom) = plot.split_vertically(plot.dim_in_pixel().1 / 2);
    let ts = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_lo = ts().fold(f64::INFINITY, f64::min).min(0.0);
    let x_hi = ts().fold(f64::NEG_INFINITY, f64::max);
    // One more interval's width past the last start, so that the last point is inside.
    let mut starts: Vec<f64> = ts().collect();
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    let step = starts.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let x_hi = x_hi + if step.is_finite() { step } else { 1.0 };
    let req_max = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let panels = [
        Panel {
            y_label: "requests/s",
            y_hi: if req_max > 0.0 { req_max * 1.12 } else { 1.0 },
            value: |p| p.1,
            gaps: false,
        },
        Panel { y_label: "hit ratio", y_hi: 1.05, value: |p| p.2, gaps: true },
    ];
    for (area, Panel { y_label, y_hi, value, gaps }) in [&top, &bottom].into_iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)?;
        if x_lo < 0.0 {
            chart.draw_series(std::iter::once(Rectangle::new([(x_lo, 0.0), (0.0, y_hi)], WARMUP.filled())))?;
        }
        chart
            .configure_mesh()
            .x_desc("seconds since the measured window began")
            .y_desc(y_label)
            .y_label_formatter(&|y| if y_hi > 2.0 { format!("{y:.0}") } else { format!("{y:.1}") })
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        for m in marks {
            let style = ShapeStyle { color: MARK.to_rgba(), filled: false, stroke_width: 1 };
            chart.draw_series(DashedLineSeries::new(vec![(m.t_s, 0.0), (m.t_s, y_hi)], 6, 4, style))?;
            let font = (FONT, 14).into_font().color(&MARK).pos(Pos::new(HPos::Left, VPos::Top));
            chart.draw_series(std::iter::once(Text::new(format!(" {}", m.label), (m.t_s, y_hi), font)))?;
        }
        for l in lines {
            let colour = COLOURS[l.policy % COLOURS.len()];
            let style = ShapeStyle { color: colour.to_rgba(), filled: false, stroke_width: 2 };
            // An interval with no response has no hit ratio: a gap, not a zero.
            let segments = l.points.split(|p| gaps && p.1 == 0.0).filter(|s| !s.is_empty());
            for segment in segments {
                let points: Vec<(f64, f64)> = segment.iter().map(|p| (p.0, value(p))).collect();
                if l.conventional {
                    chart.draw_series(LineSeries::new(points.clone(), style))?;
                } else {
                    chart.draw_series(DashedLineSeries::new(points.clone(), 10, 6, style))?;
                }
                if l.mode != "sim" {
                    let [(a, a_style), (b, b_style)] = glyph(shape_of(&l.mode), l.conventional, colour, 3);
                    chart.draw_series(points.iter().map(|&p| {
                        EmptyElement::at(p) + Polygon::new(a.clone(), a_style) + Polygon::new(b.clone(), b_style)
                    }))?;
                }
            }
        }
    }
    draw_legend(&side, lines, marks)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line],
    marks: &[Mark],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let text = |s: &str, x: i32, y: i32, size: u32| {
        Text::new(s.to_string(), (x, y), (FONT, size).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center)))
    };
    let sample = |dashed: bool, colour: RGBColor, (x, y): (i32, i32)| {
        let style = ShapeStyle { color: colour.to_rgba(), filled: false, stroke_width: 2 };
        let spans: &[(i32, i32)] = if dashed { &[(0, 8), (13, 23), (28, 36)] } else { &[(0, 36)] };
        spans.iter().map(move |&(a, b)| PathElement::new(vec![(x + a, y), (x + b, y)], style)).collect::<Vec<_>>()
    };
    let (x0, x_text) = (8, 52);
    let mut y = 64;
    area.draw(&text("line", x0, y, 16))?;
    y += 22;
    for l in lines {
        let colour = COLOURS[l.policy % COLOURS.len()];
        for p in sample(!l.conventional, colour, (x0, y)) {
            area.draw(&p)?;
        }
        if l.mode != "sim" {
            let [(a, a_style), (b, b_style)] = glyph(shape_of(&l.mode), l.conventional, colour, 4);
            area.draw(&(EmptyElement::at((x0 + 18, y)) + Polygon::new(a, a_style) + Polygon::new(b, b_style)))?;
        }
        area.draw(&text(&l.label, x_text, y, 15))?;
        y += 22;
    }
    y += 8;
    area.draw(&text("solid: conventional (x)", x0, y, 14))?;
    area.draw(&text("dashed: distributed (AS-x)", x0, y + 20, 14))?;
    y += 40;
    if lines.iter().any(|l| l.mode != "sim") {
        area.draw(&text("markers: measured", x0, y, 14))?;
        y += 20;
    }
    if lines.iter().any(|l| l.points.first().is_some_and(|p| p.0 < 0.0)) {
        area.draw(&Rectangle::new([(x0, y - 6), (x0 + 36, y + 6)], WARMUP.filled()))?;
        area.draw(&text("warm-up", x_text, y, 14))?;
    }
    if !marks.is_empty() {
        y += 22;
        let style = ShapeStyle { color: MARK.to_rgba(), filled: false, stroke_width: 1 };
        area.draw(&PathElement::new(vec![(x0 + 18, y - 8), (x0 + 18, y + 8)], style))?;
        area.draw(&text("event", x_text, y, 14))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mode: &str, arch: &str, policy: &str, seed: u64, t_s: f64, req: f64, hit: f64) -> IntervalRow {
        IntervalRow {
            mode: mode.into(),
            workload: "w".into(),
            arch: arch.into(),
            policy: policy.into(),
            eviction: Eviction::Lru,
            servers: 4,
            seed,
            t_s,
            req_per_s: req,
            mbit_per_s: 0.0,
            hit_ratio: hit,
            errors: 0,
            p99_ms: 0.0,
        }
    }

    #[test]
    fn a_line_per_source_arch_and_policy_averaged_over_seeds() {
        let rows = [
            row("real", "distributed", "md5", 1, 0.0, 10.0, 0.5),
            row("sim", "distributed", "md5", 1, 0.0, 8.0, 0.4),
            row("sim", "distributed", "md5", 2, 0.0, 12.0, 0.6),
            row("sim", "distributed", "md5", 1, -1.0, 2.0, 0.0),
            row("sim", "conventional", "rr", 1, 0.0, 5.0, 1.0),
        ];
        let refs: Vec<&IntervalRow> = rows.iter().collect();
        let lines = lines(&refs);
        let policies: Vec<usize> = lines.iter().map(|l| l.policy).collect();
        assert_eq!(policies, [1, 0, 0], "md5 first seen, rr second");
        let labels: Vec<&str> = lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["RR", "AS-MD5", "AS-MD5 (real)"], "simulated first, conventional first");
        assert_eq!(lines[1].points, vec![(-1.0, 2.0, 0.0), (0.0, 10.0, 0.5)]);
    }

    #[test]
    fn writes_a_timeline_per_workload_and_size_with_its_marks() {
        let mut rows: Vec<IntervalRow> =
            (-2..6).map(|t| row("sim", "distributed", "md5", 1, f64::from(t), 100.0, 0.9)).collect();
        rows.push(IntervalRow { servers: 8, ..rows[0].clone() });
        let dir = std::env::temp_dir().join(format!("dl7-timeline-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marks = [Mark { t_s: 2.0, label: "kill node 1".into() }];
        let files = draw_all(&rows, &marks, &dir).unwrap();
        assert_eq!(files.len(), 4, "{files:?}");
        let svg = std::fs::read_to_string(dir.join(format!("{}.svg", file_stem("w", 4)))).unwrap();
        for text in ["AS-MD5", "hit ratio", "requests/s", "kill node 1", "warm-up", "seconds since the measured window"]
        {
            assert!(svg.contains(text), "{text}");
        }
        assert!(draw_all(&[], &marks, &dir).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
