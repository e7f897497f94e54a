//! Server-side SVG charts of readings over time, drawn with `plotters`
//! (SVG backend, no font library: labels are SVG `<text>` the viewer lays out).
//!
//! Shared by the dashboard (readings API, `?points=`) and the trip report.
//! Every SVG carries machine-checkable markers so a test can see what was
//! drawn: the root `<svg>` has `data-series-count` and `data-point-count`,
//! each data line sits in `<g class="cg-series" data-label=…>`, each mark in
//! `<g class="cg-mark cg-mark-excursion|cg-mark-door">`, the limits band in
//! `<g class="cg-limits">`.
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
    draw(spec, &series, &mut groups, &mut buf).map_err(|e| ChartError::Draw(e.to_string()))?;
    Ok(post_process(&buf, &groups, series.len(), point_count))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(
    spec: &ChartSpec,
    series: &[(&str, Vec<(i64, f64)>)],
    groups: &mut Vec<String>,
    buf: &mut String,
) -> DrawResult {
    let root = SVGBackend::with_string(buf, (spec.width, spec.height)).into_drawing_area();
    root.fill(&WHITE)?;
    let y = value_range(series, spec.limits);
    let span = spec.to_ms - spec.from_ms;
    let x_fmt = |ms: &i64| format_time(*ms, span);
    let y_fmt = |v: &f64| format!("{v:.1}");

    let mut chart = ChartBuilder::on(&root)
        .caption(&spec.title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(spec.from_ms..spec.to_ms, y.clone())?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("UTC")
        .y_desc(spec.unit.as_str())
        .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
        // Readable when a 900-px chart is printed 18 cm wide.
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;

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

    for mark in &spec.marks {
        let from = mark.from_ms.clamp(spec.from_ms, spec.to_ms);
        let to = mark.to_ms.unwrap_or(spec.to_ms).clamp(from, spec.to_ms);
        let (class, fill) = match mark.kind {
            MarkKind::Excursion => ("cg-mark cg-mark-excursion", EXCURSION_FILL.mix(0.18)),
            MarkKind::Door => ("cg-mark cg-mark-door", DOOR_FILL.mix(0.25)),
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
        // Label inside the plot: left-aligned at the start, or right-aligned
        // at the end when the mark starts in the right part of the chart.
        let (at, h_pos) = if from - spec.from_ms > span / 10 * 7 {
            (to, HPos::Right)
        } else {
            (from, HPos::Left)
        };
        chart.draw_series(std::iter::once(Text::new(
            mark.label.clone(),
            (at, y.end),
            ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(h_pos, VPos::Top)),
        )))?;
        end(&root)?;
    }

    for (i, (label, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        begin(&root, groups, "cg-series", label)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        end(&root)?;
    }

    if series.iter().all(|(_, p)| p.is_empty()) {
        let (w, h) = (spec.width as i32, spec.height as i32);
        root.draw(&Text::new(
            "no data in this range",
            (w / 2, h / 2),
            ("sans-serif", 16)
                .into_font()
                .color(&RGBColor(0x55, 0x55, 0x55))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xAA, 0xAA, 0xAA))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
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
fn post_process(svg: &str, groups: &[String], series_count: usize, point_count: usize) -> String {
    let lines: Vec<&str> = svg.lines().collect();
    let mut out = String::with_capacity(svg.len() + 256);
    let mut i = 0;
    let mut root_done = false;
    while i < lines.len() {
        let line = lines[i];
        if !root_done && line.starts_with("<svg") {
            out.push_str(&format!(
                "<svg class=\"cg-chart\" role=\"img\" data-series-count=\"{series_count}\" data-point-count=\"{point_count}\""
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

/// Axis label: `HH:MM` within a day, `MM-DD HH:MM` beyond, `YYYY-MM-DD`
/// beyond 300 days; UTC.
fn format_time(ms: i64, span_ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    if span_ms <= 24 * 3600 * 1000 {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else if span_ms > 300 * 24 * 3600 * 1000 {
        format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    } else {
        format!(
            "{:02}-{:02} {:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    }
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
