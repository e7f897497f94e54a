//! Server-side SVG charts of readings over time, drawn with `plotters`
//! (SVG backend, no font library: labels are SVG `<text>` the viewer lays out).
//!
//! Shared by the dashboard (readings API, `?points=`) and the trip report.
//! Every SVG carries machine-checkable markers so a test can see what was
//! drawn: the root `<svg>` has `data-series-count`, `data-point-count` and
//! `data-plot` (the data area: x y width height), each data line sits in
//! `<g class="cg-series" data-label=…>`, each mark with its label in
//! `<g class="cg-mark cg-mark-excursion|cg-mark-door">`, the limits band in
//! `<g class="cg-limits">`, the legend in `<g class="cg-legend">`, the time
//! labels in `<g class="cg-xticks">`.
//!
//! Readable at the size it is shown (the callers draw it at about the width
//! it is displayed, so its text keeps its size): nothing is printed over
//! the data but the lines and the shading. Title, legend and mark labels
//! sit in rows above the data area, the mark labels placed by
//! [`place_labels`] so none covers another; the time axis is ticked at
//! round times by [`time_ticks`]. Text widths are estimated, not measured
//! (there is no font here), on the wide side; the browser test measures
//! the real ones. The placement rules live in `placement`, pure and tested
//! on their own; this file is longer than most because laying out, drawing
//! and marking one chart read best in one place.
//!
//! Design: plotters cannot put classes on what it draws, so before and after
//! each part we draw an invisible marker text and afterwards replace each
//! begin/end marker pair by a `<g …>`/`</g>`. The SVG backend writes one
//! element per line, and only `<svg>` and `<text>` are non-empty elements, so
//! the groups are always balanced.
//!
//! One room: the axes, bands, marks and the min/max downsampling are drawn into one plotters
//! context and must agree on its scale.

use std::ops::Range;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod placement;
pub use placement::{place_labels, text_width, time_ticks, Placed, TimeTick};

/// One line on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// `(UTC ms, value)`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// A shaded acceptable range (e.g. 2..8 °C); None = open side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub low: Option<f64>,
    pub high: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Excursion,
    Door,
}

/// A marked interval on the time axis; `to_ms` None = still open (draw to the right edge).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub kind: MarkKind,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub title: String,
    /// The value axis' unit, e.g. "°C".
    pub unit: String,
    /// The time axis, UTC ms, `from_ms < to_ms`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Pixels (SVG user units).
    pub width: u32,
    pub height: u32,
    pub series: Vec<Series>,
    pub limits: Option<Limits>,
    pub marks: Vec<Mark>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("chart time range is empty: from {from_ms} ms is not before to {to_ms} ms")]
    EmptyRange { from_ms: i64, to_ms: i64 },
    #[error("chart time range from {from_ms} ms to {to_ms} ms is longer than {MAX_SPAN_MS} ms (100 years)")]
    RangeTooLong { from_ms: i64, to_ms: i64 },
    #[error("chart size {width}×{height} is outside {MIN_SIZE}..={MAX_SIZE} pixels per side")]
    Size { width: u32, height: u32 },
    #[error("cannot draw the chart: {0}")]
    Draw(String),
}

/// Longest time axis drawn: 100 years (a wider one is a caller's mistake).
pub const MAX_SPAN_MS: i64 = 100 * 366 * 24 * 3_600_000;
/// Values beyond this magnitude are drawn at it, so the axis stays finite.
const MAX_ABS_VALUE: f64 = 1e12;

/// Smallest and largest accepted width/height in pixels.
pub const MIN_SIZE: u32 = 120;
pub const MAX_SIZE: u32 = 8000;

/// Line colours (Okabe–Ito, readable by colour-blind people and in grey print).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x00, 0x00),
];
const LIMITS_FILL: RGBColor = RGBColor(0x2E, 0x9E, 0x4F);
const LIMITS_LINE: RGBColor = RGBColor(0x1B, 0x6E, 0x34);
const EXCURSION_FILL: RGBColor = RGBColor(0xD6, 0x27, 0x28);
const DOOR_FILL: RGBColor = RGBColor(0x7F, 0x7F, 0x7F);

/// Begins every marker line; never produced by escaped user text (`@` is kept,
/// but no label line is exactly a marker because markers are only drawn here).
const MARKER: &str = "@@cg-group@@";

/// Draws the chart as a standalone SVG document.
pub fn render_svg(spec: &ChartSpec) -> Result<String, ChartError> {
    if spec.from_ms >= spec.to_ms {
        return Err(ChartError::EmptyRange {
            from_ms: spec.from_ms,
            to_ms: spec.to_ms,
        });
    }
    if i128::from(spec.to_ms) - i128::from(spec.from_ms) > i128::from(MAX_SPAN_MS) {
        return Err(ChartError::RangeTooLong {
            from_ms: spec.from_ms,
            to_ms: spec.to_ms,
        });
    }
    let sizes = MIN_SIZE..=MAX_SIZE;
    if !sizes.contains(&spec.width) || !sizes.contains(&spec.height) {
        return Err(ChartError::Size {
            width: spec.width,
            height: spec.height,
        });
    }
    let series: Vec<(&str, Vec<(i64, f64)>)> = spec
        .series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .copied()
                .filter(|(t, v)| (spec.from_ms..spec.to_ms).contains(t) && v.is_finite())
                .map(|(t, v)| (t, v.clamp(-MAX_ABS_VALUE, MAX_ABS_VALUE)))
                .collect();
            (s.label.as_str(), pts)
        })
        .collect();
    let point_count: usize = series.iter().map(|(_, p)| p.len()).sum();

    let mut groups: Vec<String> = Vec::new();
    let mut buf = String::new();
    let plot =
        draw(spec, &series, &mut groups, &mut buf).map_err(|e| ChartError::Draw(e.to_string()))?;
    Ok(post_process(&buf, &groups, series.len(), point_count, plot))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Mark labels stack in at most this many rows above the data; one that
/// fits in none is left out (its mark stays drawn) rather than overlap.
const MAX_LABEL_LANES: usize = 3;

/// Text `font_px` high as shown. plotters' SVG backend writes a font of
/// size `s` as `font-size` `s / 1.24` (its raster backends' em box), so
/// the size asked of it is scaled up to match.
fn sans(font_px: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, font_px * 1.24, FontStyle::Normal)
}

/// The chart's text size: 13 px on a narrow chart (shown about 1:1 on a
/// phone), 14 px on a wide one (shown at up to 0.85 in the report).
fn font_px(width: u32) -> f64 {
    if width < 600 {
        13.0
    } else {
        14.0
    }
}

/// Where things go, in pixels, worked out before plotters draws.
struct Layout {
    font: f64,
    pad: f64,
    title_font: f64,
    /// Legend entries: (series index, x, y of the text's top).
    legend: Vec<(usize, f64, f64)>,
    /// Per mark: its label's left edge and top, if it has room.
    mark_labels: Vec<Option<(f64, f64)>>,
    plot_left: f64,
    plot_right: f64,
    plot_top: f64,
    plot_bottom: f64,
    y_labels: usize,
}

fn layout(spec: &ChartSpec, y: &Range<f64>) -> Layout {
    let (w, h) = (f64::from(spec.width), f64::from(spec.height));
    let font = font_px(spec.width);
    let pad = 8.0;
    let title_font = font + 1.0;
    let line = font * 1.4;
    // The value labels' column, as wide as the widest of its ends.
    let y_label_w = [y.start, y.end]
        .iter()
        .map(|v| text_width(&format!("{v:.1}"), font))
        .fold(0.0, f64::max)
        + 10.0;
    let plot_left = (pad + y_label_w).round();
    let plot_right = (w - pad - font / 2.0).round();

    // The legend in rows under the title, never over the data.
    let mut top = pad + title_font * 1.4;
    let mut legend = Vec::new();
    let mut x = pad;
    for (i, s) in spec.series.iter().enumerate() {
        let item = 22.0 + text_width(&s.label, font);
        if x > pad && x + item > w - pad {
            x = pad;
            top += line;
        }
        legend.push((i, x, top));
        x += item + font;
    }
    if !legend.is_empty() {
        top += line;
    }

    // Mark labels in rows above the data, as few rows as they need, and
    // never so many that the data has less than a third of the height.
    let span = (spec.to_ms - spec.from_ms) as f64;
    let plot_w = plot_right - plot_left;
    let wanted: Vec<(f64, f64)> = spec
        .marks
        .iter()
        .map(|m| {
            let from = m.from_ms.clamp(spec.from_ms, spec.to_ms);
            let anchor = plot_left + (from - spec.from_ms) as f64 / span * plot_w;
            (anchor, text_width(&m.label, font))
        })
        .collect();
    let bottom_area = font * 1.3 + 8.0;
    let room = ((h - top - pad - bottom_area) * 2.0 / 3.0 / line)
        .floor()
        .max(0.0) as usize;
    let placed = place_labels(
        &wanted,
        plot_left,
        w - pad,
        MAX_LABEL_LANES.min(room),
        font * 0.8,
    );
    let lanes = placed
        .iter()
        .flatten()
        .map(|p| p.lane + 1)
        .max()
        .unwrap_or(0);
    let lanes_bottom = top + lanes as f64 * line;
    let mark_labels = placed
        .iter()
        .map(|p| p.map(|p| (p.x, lanes_bottom - (p.lane + 1) as f64 * line)))
        .collect();
    let plot_top = (lanes_bottom + font * 0.6).round();
    let plot_bottom = (h - pad - bottom_area).round().max(plot_top + 10.0);
    let y_labels = (((plot_bottom - plot_top) / (font * 2.2)) as usize).clamp(2, 8);
    Layout {
        font,
        pad,
        title_font,
        legend,
        mark_labels,
        plot_left,
        plot_right,
        plot_top,
        plot_bottom,
        y_labels,
    }
}

fn draw(
    spec: &ChartSpec,
    series: &[(&str, Vec<(i64, f64)>)],
    groups: &mut Vec<String>,
    buf: &mut String,
) -> Result<(i32, i32, i32, i32), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(buf, (spec.width, spec.height)).into_drawing_area();
    root.fill(&WHITE)?;
    let y = value_range(series, spec.limits);
    let span = spec.to_ms - spec.from_ms;
    let lay = layout(spec, &y);
    let font = lay.font;
    let y_fmt = |v: &f64| format!("{v:.1}");
    let px = |v: f64| v.round() as i32;

    let mut chart = ChartBuilder::on(&root)
        .margin_top(px(lay.plot_top))
        .margin_left(px(lay.pad))
        .margin_right(px(f64::from(spec.width) - lay.plot_right))
        .margin_bottom(px(f64::from(spec.height) - lay.plot_bottom))
        .x_label_area_size(0)
        .y_label_area_size(px(lay.plot_left - lay.pad))
        .build_cartesian_2d(spec.from_ms..spec.to_ms, y.clone())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        // The time ticks are drawn below, at round times.
        .x_labels(2)
        .y_labels(lay.y_labels)
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .label_style(sans(font))
        .draw()?;
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let plot_w = f64::from(xs.end - xs.start);

    // Time ticks: grid lines in the data, labels under it.
    let ticks = time_ticks(spec.from_ms, spec.to_ms, plot_w, font);
    for t in &ticks {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t.at_ms, y.start), (t.at_ms, y.end)],
            RGBColor(0xDD, 0xDD, 0xDD).stroke_width(1),
        )))?;
    }
    // The axis line along the bottom of the data.
    root.draw(&PathElement::new(
        vec![(xs.start, ys.end), (xs.end, ys.end)],
        BLACK.stroke_width(1),
    ))?;
    begin(&root, groups, "cg-xticks", "UTC")?;
    for t in &ticks {
        let x = xs.start + px((t.at_ms - spec.from_ms) as f64 / span as f64 * plot_w);
        root.draw(&PathElement::new(
            vec![(x, ys.end), (x, ys.end + 4)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Text::new(
            t.label.clone(),
            (x, ys.end + 6),
            sans(font)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    end(&root)?;

    // Limits band under everything else.
    if let Some(limits) = spec.limits {
        let in_axis = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| v.clamp(y.start, y.end));
        let low = in_axis(limits.low).unwrap_or(y.start);
        let high = in_axis(limits.high).unwrap_or(y.end);
        let mut label = String::new();
        if let Some(l) = limits.low {
            label.push_str(&format!("low {l}"));
        }
        if let Some(h) = limits.high {
            if !label.is_empty() {
                label.push_str(", ");
            }
            label.push_str(&format!("high {h}"));
        }
        begin(&root, groups, "cg-limits", &label)?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(spec.from_ms, high), (spec.to_ms, low)],
            LIMITS_FILL.mix(0.12).filled(),
        )))?;
        for edge in [in_axis(limits.low), in_axis(limits.high)]
            .into_iter()
            .flatten()
        {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(spec.from_ms, edge), (spec.to_ms, edge)],
                LIMITS_LINE.mix(0.8).stroke_width(1),
            )))?;
        }
        end(&root)?;
    }

    for (mark, label_at) in spec.marks.iter().zip(&lay.mark_labels) {
        let from = mark.from_ms.clamp(spec.from_ms, spec.to_ms);
        let to = mark.to_ms.unwrap_or(spec.to_ms).clamp(from, spec.to_ms);
        let (class, fill, ink) = match mark.kind {
            MarkKind::Excursion => (
                "cg-mark cg-mark-excursion",
                EXCURSION_FILL.mix(0.18),
                RGBColor(0x9B, 0x1C, 0x1C),
            ),
            MarkKind::Door => (
                "cg-mark cg-mark-door",
                DOOR_FILL.mix(0.25),
                RGBColor(0x44, 0x44, 0x44),
            ),
        };
        begin(&root, groups, class, &mark.label)?;
        // At least one pixel wide, so a short door opening still shows.
        let min_width = span / i64::from(spec.width).max(1);
        let to = if to - from < min_width {
            (from + min_width).min(spec.to_ms)
        } else {
            to
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, y.end), (to, y.start)],
            fill.filled(),
        )))?;
        // The label in its row above the data, from where the mark starts.
        if let Some((x, top)) = label_at {
            root.draw(&Text::new(
                mark.label.clone(),
                (px(*x), px(*top)),
                sans(font)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
        }
        end(&root)?;
    }

    for (i, (label, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        begin(&root, groups, "cg-series", label)?;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?;
        end(&root)?;
    }

    if series.iter().all(|(_, p)| p.is_empty()) {
        root.draw(&Text::new(
            "no data in this range",
            ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2),
            sans(font + 2.0)
                .into_font()
                .color(&RGBColor(0x55, 0x55, 0x55))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    if !lay.legend.is_empty() {
        begin(&root, groups, "cg-legend", "")?;
        for &(i, x, top) in &lay.legend {
            let color = PALETTE[i % PALETTE.len()];
            let mid = px(top + font * 0.6);
            root.draw(&PathElement::new(
                vec![(px(x), mid), (px(x + 18.0), mid)],
                color.stroke_width(3),
            ))?;
            root.draw(&Text::new(
                spec.series[i].label.clone(),
                (px(x + 22.0), px(top)),
                sans(font)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
        }
        end(&root)?;
    }
    let title = format!("{} ({}, UTC)", spec.title, spec.unit);
    root.draw(&Text::new(
        fit(
            &title,
            f64::from(spec.width) - 2.0 * lay.pad,
            lay.title_font,
        ),
        (px(lay.pad), px(lay.pad)),
        sans(lay.title_font)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    root.present()?;
    Ok((xs.start, ys.start, xs.end - xs.start, ys.end - ys.start))
}

/// `text`, shortened with an ellipsis to fit `width_px`.
fn fit(text: &str, width_px: f64, font_px: f64) -> String {
    if text_width(text, font_px) <= width_px {
        return text.to_string();
    }
    let keep = (width_px / text_width("m", font_px)).floor() as usize;
    let mut out: String = text.chars().take(keep.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn begin<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    groups: &mut Vec<String>,
    class: &str,
    label: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let attrs = format!(
        "class=\"{}\" data-label=\"{}\"",
        escape_attr(class),
        escape_attr(label)
    );
    groups.push(attrs);
    marker(root, &format!("{MARKER}b{}", groups.len() - 1))
}

fn end<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    marker(root, &format!("{MARKER}e"))
}

fn marker<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.draw(&Text::new(
        text.to_string(),
        (0, 0),
        ("sans-serif", 1).into_font().color(&BLACK),
    ))?;
    Ok(())
}

/// Replaces each marker `<text>` (three lines: open tag, content, close tag)
/// by the group it stands for, and adds the counts to the root element.
fn post_process(
    svg: &str,
    groups: &[String],
    series_count: usize,
    point_count: usize,
    plot: (i32, i32, i32, i32),
) -> String {
    let lines: Vec<&str> = svg.lines().collect();
    let mut out = String::with_capacity(svg.len() + 256);
    let mut i = 0;
    let mut root_done = false;
    while i < lines.len() {
        let line = lines[i];
        if !root_done && line.starts_with("<svg") {
            out.push_str(&format!(
                "<svg class=\"cg-chart\" role=\"img\" data-series-count=\"{series_count}\" data-point-count=\"{point_count}\" data-plot=\"{} {} {} {}\"",
                plot.0, plot.1, plot.2, plot.3
            ));
            out.push_str(&line[4..]);
            out.push('\n');
            root_done = true;
            i += 1;
            continue;
        }
        if line.starts_with("<text") && i + 2 < lines.len() && lines[i + 2] == "</text>" {
            if let Some(rest) = lines[i + 1].strip_prefix(MARKER) {
                if rest == "e" {
                    out.push_str("</g>\n");
                } else if let Some(attrs) = rest
                    .strip_prefix('b')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| groups.get(n))
                {
                    out.push_str("<g ");
                    out.push_str(attrs);
                    out.push_str(">\n");
                }
                i += 3;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out
}

/// The value axis: the data and the limits, with a margin; a 1-unit range
/// around a flat line; 0..10 when there is nothing at all.
fn value_range(series: &[(&str, Vec<(i64, f64)>)], limits: Option<Limits>) -> Range<f64> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v));
    let limit_values = limits
        .into_iter()
        .flat_map(|l| [l.low, l.high])
        .flatten()
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(-MAX_ABS_VALUE, MAX_ABS_VALUE));
    for v in values.chain(limit_values) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..10.0;
    }
    let pad = ((hi - lo) * 0.08).max(0.5);
    (lo - pad)..(hi + pad)
}

/// Escapes text for an XML/HTML attribute or element content.
pub fn escape_attr(s: &str) -> String {
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

/// Keeps at most `max_points` of the points in `[from_ms, to_ms)`, by
/// min/max-preserving bucket downsampling over time, so a spike is never
/// averaged away: the range is cut into `max_points / 2` equal time buckets
/// and each keeps its lowest and highest point (one if they are the same).
/// Points outside the range and non-finite values are dropped; the result
/// is ordered by time. Fewer points than `max_points` come back unchanged;
/// `max_points == 1` keeps the single highest point, `0` keeps nothing.
pub fn downsample(
    points: &[(i64, f64)],
    from_ms: i64,
    to_ms: i64,
    max_points: usize,
) -> Vec<(i64, f64)> {
    let mut inside: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, v)| *t >= from_ms && *t < to_ms && v.is_finite())
        .collect();
    if !inside.windows(2).all(|w| w[0].0 <= w[1].0) {
        inside.sort_by_key(|(t, _)| *t);
    }
    if inside.len() <= max_points {
        return inside;
    }
    if max_points == 0 {
        return Vec::new();
    }
    if max_points == 1 {
        let top = inside
            .iter()
            .copied()
            .reduce(|a, b| if b.1 > a.1 { b } else { a });
        return top.into_iter().collect();
    }
    let buckets = (max_points / 2) as i128;
    let span = i128::from(to_ms) - i128::from(from_ms);
    let bucket_of = |t: i64| ((i128::from(t) - i128::from(from_ms)) * buckets / span) as usize;

    let mut out = Vec::with_capacity(max_points);
    let mut i = 0;
    while i < inside.len() {
        let b = bucket_of(inside[i].0);
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < inside.len() && bucket_of(inside[j].0) == b {
            if inside[j].1 < inside[lo].1 {
                lo = j;
            }
            if inside[j].1 > inside[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let (first, second) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(inside[first]);
        if second != first {
            out.push(inside[second]);
        }
        i = j;
    }
    out
}

#[cfg(test)]
#[cfg(test)]
mod tests;
