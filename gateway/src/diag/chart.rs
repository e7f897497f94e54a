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
//! the real ones.
//!
//! Design: plotters cannot put classes on what it draws, so before and after
//! each part we draw an invisible marker text and afterwards replace each
//! begin/end marker pair by a `<g …>`/`</g>`. The SVG backend writes one
//! element per line, and only `<svg>` and `<text>` are non-empty elements, so
//! the groups are always balanced.

use std::ops::Range;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// Average advance of a sans-serif glyph, in ems. There is no font library
/// here (the viewer lays the text out), so widths are estimated on the wide
/// side: DejaVu Sans, Debian's default, averages about 0.6 em.
const EM_ADVANCE: f64 = 0.65;
/// Mark labels stack in at most this many rows above the data; one that
/// fits in none is left out (its mark stays drawn) rather than overlap.
const MAX_LABEL_LANES: usize = 3;

/// Text `font_px` high as shown. plotters' SVG backend writes a font of
/// size `s` as `font-size` `s / 1.24` (its raster backends' em box), so
/// the size asked of it is scaled up to match.
fn sans(font_px: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, font_px * 1.24, FontStyle::Normal)
}

/// The estimated width of `text` drawn at `font_px`.
pub fn text_width(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * EM_ADVANCE
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

/// A labelled tick on the time axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeTick {
    pub at_ms: i64,
    pub label: String,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// More time labels than this are more than an eye takes in along one axis.
const MAX_TICKS: usize = 10;
/// The steps people read a clock by; days are UTC midnights.
const TICK_STEPS: [i64; 19] = [
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    28 * DAY,
    91 * DAY,
    182 * DAY,
    364 * DAY,
];

/// Ticks for `[from_ms, to_ms)` on an axis `axis_px` wide: the finest step
/// of [`TICK_STEPS`] whose labels, centred on their ticks, stay inside the
/// axis and at least two ems apart, at most [`MAX_TICKS`] of them. Labels
/// are `HH:MM` (UTC); where the range passes midnight the first tick and
/// the first of each new day also name the date (`7 Dec 00:00`); steps of
/// a day or more are dates only, with the year when the range passes a new
/// year.
pub fn time_ticks(from_ms: i64, to_ms: i64, axis_px: f64, font_px: f64) -> Vec<TimeTick> {
    if from_ms >= to_ms || axis_px <= 0.0 {
        return Vec::new();
    }
    let span = (to_ms - from_ms) as f64;
    let x = |t: i64| (t - from_ms) as f64 / span * axis_px;
    let passes_midnight = from_ms.div_euclid(DAY) != (to_ms - 1).div_euclid(DAY);
    let passes_new_year = year(from_ms) != year(to_ms - 1);
    let mut best = Vec::new();
    for step in TICK_STEPS {
        // More than one tick per 20 px never fits; skip without labelling.
        if (to_ms - from_ms) / step > (axis_px / 20.0) as i64 + 1 {
            continue;
        }
        let first = from_ms.div_euclid(step) * step
            + if from_ms.rem_euclid(step) == 0 {
                0
            } else {
                step
            };
        let times: Vec<i64> = std::iter::successors(Some(first), |t| t.checked_add(step))
            .take_while(|t| *t < to_ms)
            .collect();
        let ticks = label_ticks(&times, step, passes_midnight, passes_new_year);
        let edges_ok = |t: &TimeTick| {
            let half = text_width(&t.label, font_px) / 2.0;
            x(t.at_ms) - half >= 0.0 && x(t.at_ms) + half <= axis_px
        };
        // Ticks whose labels would hang over an edge are left out, and the
        // rest labelled again (the first kept one may now need the date).
        let kept: Vec<i64> = ticks
            .iter()
            .filter(|t| edges_ok(t))
            .map(|t| t.at_ms)
            .collect();
        let ticks = label_ticks(&kept, step, passes_midnight, passes_new_year);
        let apart = ticks.windows(2).all(|w| {
            let gap = x(w[1].at_ms) - x(w[0].at_ms);
            gap - (text_width(&w[0].label, font_px) + text_width(&w[1].label, font_px)) / 2.0
                >= 2.0 * font_px
        });
        if apart && ticks.len() <= MAX_TICKS && ticks.iter().all(edges_ok) {
            if ticks.len() >= 2 {
                return ticks;
            }
            if best.is_empty() {
                best = ticks;
            }
        }
    }
    best
}

fn year(ms: i64) -> Option<i32> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(|t| t.year())
}

fn label_ticks(times: &[i64], step: i64, passes_midnight: bool, with_year: bool) -> Vec<TimeTick> {
    let mut previous_day = None;
    times
        .iter()
        .map(|&at_ms| {
            let day = at_ms.div_euclid(DAY);
            let dated = step >= DAY || (passes_midnight && previous_day != Some(day));
            previous_day = Some(day);
            TimeTick {
                at_ms,
                label: tick_label(at_ms, step >= DAY, dated, with_year),
            }
        })
        .collect()
}

fn tick_label(ms: i64, date_only: bool, dated: bool, with_year: bool) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let month = &format!("{}", t.month())[..3];
    let date = if !with_year {
        format!("{} {month}", t.day())
    } else {
        format!("{} {month} {}", t.day(), t.year())
    };
    match (date_only, dated) {
        (true, _) => date,
        (false, true) => format!("{date} {:02}:{:02}", t.hour(), t.minute()),
        (false, false) => format!("{:02}:{:02}", t.hour(), t.minute()),
    }
}

/// Where a label goes: its left edge and its row (0 next to the data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub x: f64,
    pub lane: usize,
}

/// Places labels of `(anchor, width)` in rows between `left` and `right`:
/// each starts at its anchor (pulled inside when it would run past the
/// right edge) in the first of `lanes` rows where it keeps `gap` from the
/// labels already there, taken in the order of their anchors. A label that
/// fits in no row gets None: a missing label can be looked up in the
/// table, one printed over another cannot be read at all.
pub fn place_labels(
    labels: &[(f64, f64)],
    left: f64,
    right: f64,
    lanes: usize,
    gap: f64,
) -> Vec<Option<Placed>> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|a, b| labels[*a].0.total_cmp(&labels[*b].0));
    let mut lane_end = vec![f64::NEG_INFINITY; lanes];
    let mut out = vec![None; labels.len()];
    for i in order {
        let (anchor, width) = labels[i];
        if !(anchor.is_finite() && width.is_finite()) || width > right - left {
            continue;
        }
        let x = anchor.min(right - width).max(left);
        if let Some(lane) = lane_end.iter().position(|end| x >= end + gap) {
            lane_end[lane] = x + width;
            out[i] = Some(Placed { x, lane });
        }
    }
    out
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
    let keep = (width_px / (font_px * EM_ADVANCE)).floor() as usize;
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3_600_000;

    fn spec(series: Vec<Series>, limits: Option<Limits>, marks: Vec<Mark>) -> ChartSpec {
        ChartSpec {
            title: "Zone <A> & B".into(),
            unit: "°C".into(),
            from_ms: 0,
            to_ms: 4 * H,
            width: 800,
            height: 300,
            series,
            limits,
            marks,
        }
    }

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    fn ramp(n: i64) -> Vec<(i64, f64)> {
        (0..n).map(|i| (i * 60_000, 4.0 + (i % 7) as f64)).collect()
    }

    #[test]
    fn svg_carries_series_marks_and_limits_markers_with_the_right_counts() {
        let svg = render_svg(&spec(
            vec![
                Series {
                    label: "zone-a \"front\"".into(),
                    points: ramp(30),
                },
                Series {
                    label: "zone-b".into(),
                    points: ramp(12),
                },
            ],
            Some(Limits {
                low: Some(2.0),
                high: Some(8.0),
            }),
            vec![
                Mark {
                    kind: MarkKind::Excursion,
                    from_ms: H,
                    to_ms: Some(2 * H),
                    label: "exc 1".into(),
                },
                Mark {
                    kind: MarkKind::Excursion,
                    from_ms: 3 * H,
                    to_ms: None,
                    label: "exc 2".into(),
                },
                Mark {
                    kind: MarkKind::Door,
                    from_ms: H / 2,
                    to_ms: Some(H / 2 + 60_000),
                    label: "door".into(),
                },
            ],
        ))
        .unwrap();
        assert!(
            svg.starts_with("<svg class=\"cg-chart\""),
            "{}",
            &svg[..200]
        );
        assert!(svg.contains("data-series-count=\"2\""));
        assert!(svg.contains("data-point-count=\"42\""));
        assert_eq!(count(&svg, "class=\"cg-series\""), 2);
        assert!(svg.contains("data-label=\"zone-a &quot;front&quot;\""));
        assert_eq!(count(&svg, "class=\"cg-mark cg-mark-excursion\""), 2);
        assert_eq!(count(&svg, "class=\"cg-mark cg-mark-door\""), 1);
        assert_eq!(count(&svg, "class=\"cg-limits\""), 1);
        assert_eq!(count(&svg, "<g "), count(&svg, "</g>"), "groups balanced");
        assert!(!svg.contains(MARKER), "markers all replaced");
        // Each series group holds a drawn line.
        for part in svg.split("class=\"cg-series\"").skip(1) {
            let group = &part[..part.find("</g>").unwrap()];
            assert!(group.contains("<polyline"), "{group}");
        }
        assert!(svg.contains("Zone &lt;A&gt; &amp; B"), "title escaped");
        assert!(svg.contains("<text"), "labels are SVG text");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn points_outside_the_range_or_not_finite_are_not_drawn_or_counted() {
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: vec![
                    (-1, 5.0),
                    (0, 5.0),
                    (H, f64::NAN),
                    (2 * H, 6.0),
                    (4 * H, 7.0),
                ],
            }],
            None,
            vec![],
        ))
        .unwrap();
        assert!(svg.contains("data-point-count=\"2\""), "{svg}");
        assert_eq!(count(&svg, "cg-limits"), 0);
    }

    #[test]
    fn an_open_sided_limit_shades_to_the_chart_edge() {
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: ramp(10),
            }],
            Some(Limits {
                low: None,
                high: Some(8.0),
            }),
            vec![],
        ))
        .unwrap();
        assert_eq!(count(&svg, "class=\"cg-limits\""), 1);
        assert!(svg.contains("data-label=\"high 8\""));
    }

    #[test]
    fn no_series_renders_a_no_data_chart_not_an_error() {
        let svg = render_svg(&spec(
            vec![],
            Some(Limits {
                low: Some(2.0),
                high: Some(8.0),
            }),
            vec![],
        ))
        .unwrap();
        assert!(svg.contains("no data in this range"));
        assert!(svg.contains("data-series-count=\"0\""));
        assert!(svg.contains("data-point-count=\"0\""));
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: vec![],
            }],
            None,
            vec![],
        ))
        .unwrap();
        assert!(svg.contains("no data in this range"));
        assert!(svg.contains("data-series-count=\"1\""));
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: ramp(3),
            }],
            None,
            vec![],
        ))
        .unwrap();
        assert!(!svg.contains("no data in this range"));
    }

    #[test]
    fn an_empty_time_range_or_silly_size_is_an_error_not_a_panic() {
        let mut s = spec(vec![], None, vec![]);
        s.to_ms = s.from_ms;
        assert!(matches!(render_svg(&s), Err(ChartError::EmptyRange { .. })));
        let mut s = spec(vec![], None, vec![]);
        s.width = 0;
        assert!(matches!(render_svg(&s), Err(ChartError::Size { .. })));
        let mut s = spec(vec![], None, vec![]);
        (s.from_ms, s.to_ms) = (i64::MIN, i64::MAX);
        assert!(matches!(
            render_svg(&s),
            Err(ChartError::RangeTooLong { .. })
        ));
    }

    #[test]
    fn values_at_the_ends_of_f64_still_draw_on_a_finite_axis() {
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: vec![(0, -f64::MAX), (H, f64::MAX), (2 * H, 5.0)],
            }],
            Some(Limits {
                low: Some(f64::MIN),
                high: Some(f64::MAX),
            }),
            vec![],
        ))
        .unwrap();
        assert!(svg.contains("data-point-count=\"3\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn a_flat_line_and_extreme_values_still_draw() {
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: vec![(0, 5.0), (H, 5.0)],
            }],
            None,
            vec![],
        ))
        .unwrap();
        assert!(svg.contains("data-point-count=\"2\""));
        let svg = render_svg(&spec(
            vec![Series {
                label: "s".into(),
                points: vec![(0, -1e12), (H, 1e12)],
            }],
            None,
            vec![Mark {
                kind: MarkKind::Door,
                from_ms: i64::MIN,
                to_ms: Some(i64::MAX),
                label: String::new(),
            }],
        ))
        .unwrap();
        assert_eq!(count(&svg, "cg-mark-door"), 1);
    }

    #[test]
    fn a_tiny_chart_with_many_series_and_marks_still_draws() {
        let mut s = spec(
            (0..12)
                .map(|i| Series {
                    label: format!("a rather long sensor name {i}"),
                    points: ramp(30),
                })
                .collect(),
            None,
            (0..20)
                .map(|i| Mark {
                    kind: MarkKind::Door,
                    from_ms: i * 10 * 60_000,
                    to_ms: Some(i * 10 * 60_000 + 60_000),
                    label: "door".into(),
                })
                .collect(),
        );
        (s.width, s.height) = (MIN_SIZE, MIN_SIZE);
        let svg = render_svg(&s).unwrap();
        assert_eq!(count(&svg, "class=\"cg-series\""), 12);
        assert_eq!(count(&svg, "<g "), count(&svg, "</g>"), "groups balanced");
    }

    #[test]
    fn downsample_keeps_min_and_max_of_each_bucket() {
        // 100 points over 100 minutes, spike up at 37, spike down at 71.
        let mut pts: Vec<(i64, f64)> = (0..100).map(|i| (i * 60_000, 5.0)).collect();
        pts[37].1 = 15.0;
        pts[71].1 = -3.0;
        let out = downsample(&pts, 0, 100 * 60_000, 10);
        assert!(out.len() <= 10);
        assert!(out.contains(&(37 * 60_000, 15.0)), "{out:?}");
        assert!(out.contains(&(71 * 60_000, -3.0)), "{out:?}");
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn downsample_edge_cases() {
        assert!(downsample(&[], 0, 10, 5).is_empty());
        assert_eq!(downsample(&[(3, 1.0)], 0, 10, 5), vec![(3, 1.0)]);
        assert_eq!(downsample(&[(3, 1.0)], 0, 10, 1), vec![(3, 1.0)]);
        assert!(downsample(&[(3, 1.0)], 0, 10, 0).is_empty());
        assert!(
            downsample(&[(3, 1.0)], 5, 10, 5).is_empty(),
            "outside the range"
        );
        assert!(
            downsample(&[(10, 1.0)], 0, 10, 5).is_empty(),
            "to_ms is exclusive"
        );
        assert_eq!(
            downsample(&[(1, 1.0), (2, 9.0), (3, 4.0)], 0, 10, 1),
            vec![(2, 9.0)]
        );
        assert!(
            downsample(&[(1, 1.0)], 10, 0, 5).is_empty(),
            "reversed range"
        );
        let unsorted = [(5, 1.0), (1, 2.0), (3, 3.0)];
        assert_eq!(
            downsample(&unsorted, 0, 10, 5),
            vec![(1, 2.0), (3, 3.0), (5, 1.0)]
        );
    }

    fn at(rfc3339: &str) -> i64 {
        crate::event::parse_rfc3339(rfc3339).unwrap()
    }

    fn labels(ticks: &[TimeTick]) -> Vec<&str> {
        ticks.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn ticks_of_three_hours_on_a_wide_chart_fall_on_half_hours() {
        let ticks = time_ticks(
            at("2026-12-07T00:07:13Z"),
            at("2026-12-07T03:07:13Z"),
            760.0,
            14.0,
        );
        assert!(ticks.len() >= 5, "{ticks:?}");
        assert!(
            ticks.iter().all(|t| t.at_ms % (30 * MINUTE) == 0),
            "{ticks:?}"
        );
        assert_eq!(ticks[0].label, "00:30");
    }

    #[test]
    fn ticks_of_three_hours_on_a_phone_are_fewer_and_on_the_hour() {
        let ticks = time_ticks(
            at("2026-12-07T00:07:13Z"),
            at("2026-12-07T03:07:13Z"),
            280.0,
            13.0,
        );
        assert!((2..=4).contains(&ticks.len()), "{ticks:?}");
        assert!(ticks.iter().all(|t| t.at_ms % HOUR == 0), "{ticks:?}");
    }

    #[test]
    fn a_range_past_midnight_names_the_date_at_its_first_tick_and_at_each_new_day() {
        let ticks = time_ticks(
            at("2026-12-06T20:00:00Z"),
            at("2026-12-07T04:00:00Z"),
            760.0,
            14.0,
        );
        let l = labels(&ticks);
        assert!(l[0].starts_with("6 Dec "), "{l:?}");
        assert!(l.contains(&"7 Dec 00:00"), "{l:?}");
        let dated = l.iter().filter(|l| l.contains("Dec")).count();
        assert_eq!(dated, 2, "only the first and the new day: {l:?}");
    }

    #[test]
    fn a_range_within_one_day_has_times_only() {
        let ticks = time_ticks(
            at("2026-12-07T08:00:00Z"),
            at("2026-12-07T20:00:00Z"),
            760.0,
            14.0,
        );
        assert!(ticks.iter().all(|t| !t.label.contains("Dec")), "{ticks:?}");
        assert!(ticks.iter().all(|t| t.at_ms % HOUR == 0), "{ticks:?}");
    }

    #[test]
    fn a_week_is_ticked_by_date_at_utc_midnights() {
        let ticks = time_ticks(
            at("2026-12-01T05:00:00Z"),
            at("2026-12-08T05:00:00Z"),
            760.0,
            14.0,
        );
        assert!(ticks.iter().all(|t| t.at_ms % DAY == 0), "{ticks:?}");
        assert_eq!(ticks[0].label, "2 Dec");
    }

    #[test]
    fn labels_that_would_overlap_go_to_separate_rows() {
        let placed = place_labels(
            &[(100.0, 80.0), (100.0, 80.0), (150.0, 40.0), (200.0, 30.0)],
            50.0,
            500.0,
            3,
            8.0,
        );
        let p: Vec<Placed> = placed.into_iter().map(Option::unwrap).collect();
        assert_eq!((p[0].x, p[0].lane), (100.0, 0));
        assert_eq!((p[1].x, p[1].lane), (100.0, 1));
        assert_eq!(p[2].lane, 2);
        assert_eq!(
            (p[3].x, p[3].lane),
            (200.0, 0),
            "after the first, in its row"
        );
    }

    #[test]
    fn a_label_that_fits_in_no_row_is_left_out_rather_than_printed_over_another() {
        let placed = place_labels(
            &[(100.0, 80.0), (110.0, 80.0), (120.0, 80.0)],
            0.0,
            500.0,
            2,
            8.0,
        );
        assert!(placed[0].is_some() && placed[1].is_some());
        assert_eq!(placed[2], None);
        assert_eq!(
            place_labels(&[(10.0, 600.0)], 0.0, 500.0, 3, 8.0),
            vec![None],
            "wider than the chart"
        );
    }

    #[test]
    fn a_label_near_the_right_edge_is_pulled_inside() {
        let placed = place_labels(&[(480.0, 60.0)], 0.0, 500.0, 1, 8.0);
        assert_eq!(placed, vec![Some(Placed { x: 440.0, lane: 0 })]);
    }

    proptest! {
        #[test]
        fn placed_labels_never_overlap_and_stay_between_the_edges(
            labels in proptest::collection::vec((-50.0f64..600.0, 1.0f64..200.0), 0..30),
            lanes in 0usize..4,
        ) {
            let placed = place_labels(&labels, 0.0, 500.0, lanes, 6.0);
            prop_assert_eq!(placed.len(), labels.len());
            let boxes: Vec<(f64, f64, usize)> = placed
                .iter()
                .zip(&labels)
                .filter_map(|(p, (_, w))| p.map(|p| (p.x, p.x + w, p.lane)))
                .collect();
            for (i, a) in boxes.iter().enumerate() {
                prop_assert!(a.0 >= 0.0 && a.1 <= 500.0 && a.2 < lanes, "{:?}", a);
                for b in &boxes[i + 1..] {
                    prop_assert!(a.2 != b.2 || a.1 + 6.0 <= b.0 || b.1 + 6.0 <= a.0, "{:?} {:?}", a, b);
                }
            }
        }

        #[test]
        fn tick_labels_never_crowd_or_hang_over_the_axis(
            from in 1_500_000_000_000i64..1_900_000_000_000,
            len in 60_000i64..(400 * DAY),
            axis in 150.0f64..2000.0,
            font in 11.0f64..16.0,
        ) {
            let ticks = time_ticks(from, from + len, axis, font);
            let x = |t: i64| (t - from) as f64 / len as f64 * axis;
            prop_assert!(ticks.len() <= MAX_TICKS);
            for t in &ticks {
                prop_assert!(t.at_ms >= from && t.at_ms < from + len);
                let half = text_width(&t.label, font) / 2.0;
                prop_assert!(x(t.at_ms) - half >= 0.0 && x(t.at_ms) + half <= axis, "{:?}", t);
                prop_assert!(t.at_ms % MINUTE == 0, "{:?}", t);
            }
            for w in ticks.windows(2) {
                let room = x(w[1].at_ms) - x(w[0].at_ms);
                let need =
                    (text_width(&w[0].label, font) + text_width(&w[1].label, font)) / 2.0 + 2.0 * font;
                prop_assert!(room >= need - 1e-6, "{:?}", w);
            }
            // A step of the clock: all ticks equally apart.
            let steps: std::collections::BTreeSet<i64> = ticks.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
            prop_assert!(steps.len() <= 1 || ticks.windows(2).all(|w| (w[1].at_ms - w[0].at_ms) % steps.first().copied().unwrap_or(1) == 0));
        }
    }

    proptest! {
        #[test]
        fn downsample_properties(
            raw in proptest::collection::vec((0i64..1_000_000, -50.0f64..50.0), 0..400),
            from in -10i64..500_000,
            len in 1i64..1_200_000,
            max_points in 0usize..64,
        ) {
            let to = from + len;
            let out = downsample(&raw, from, to, max_points);
            let inside: Vec<(i64, f64)> =
                raw.iter().copied().filter(|(t, _)| *t >= from && *t < to).collect();
            prop_assert!(out.len() <= max_points);
            prop_assert!(out.len() <= inside.len());
            prop_assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
            for p in &out {
                prop_assert!(inside.contains(p), "{:?} not from the input", p);
            }
            if inside.len() <= max_points {
                prop_assert_eq!(out.len(), inside.len());
            }
            if max_points >= 2 && !inside.is_empty() {
                // The extremes of the whole range survive.
                let min = inside.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                let max = inside.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                prop_assert!(out.iter().any(|p| p.1 == min));
                prop_assert!(out.iter().any(|p| p.1 == max));
            }
            if max_points >= 1 && !inside.is_empty() {
                prop_assert!(!out.is_empty());
            }
        }
    }
}
