//! PROVISIONAL stand-in for the report branch's `chart` module (interface
//! in the shared brief): replaced by its plotters implementation when that
//! lands. Same types and markers, minimal drawing.

use std::fmt::Write;

pub struct Series {
    pub label: String,
    pub points: Vec<(i64, f64)>,
}
pub struct Limits {
    pub low: Option<f64>,
    pub high: Option<f64>,
}
pub enum MarkKind {
    Excursion,
    Door,
}
pub struct Mark {
    pub kind: MarkKind,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub label: String,
}
pub struct ChartSpec {
    pub title: String,
    pub unit: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub width: u32,
    pub height: u32,
    pub series: Vec<Series>,
    pub limits: Option<Limits>,
    pub marks: Vec<Mark>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the time range is empty")]
    EmptyRange,
}

pub fn render_svg(spec: &ChartSpec) -> Result<String, ChartError> {
    if spec.from_ms >= spec.to_ms {
        return Err(ChartError::EmptyRange);
    }
    let (w, h) = (f64::from(spec.width), f64::from(spec.height));
    let values = spec.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if let Some(l) = &spec.limits {
        lo = lo.min(l.low.unwrap_or(lo));
        hi = hi.max(l.high.unwrap_or(hi));
    }
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(0.5);
    let (lo, hi) = (lo - pad, hi + pad);
    let span = (spec.to_ms - spec.from_ms) as f64;
    let x = |t: i64| (t - spec.from_ms) as f64 / span * w;
    let y = |v: f64| h - (v - lo) / (hi - lo) * h;
    let n: usize = spec.series.iter().map(|s| s.points.len()).sum();
    let mut out = String::new();
    let _ = write!(out, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" data-series-count="{}" data-point-count="{n}"><text x="4" y="14">{} ({})</text>"#, spec.series.len(), spec.title, spec.unit);
    if let Some(l) = &spec.limits {
        let (top, bottom) = (y(l.high.unwrap_or(hi)), y(l.low.unwrap_or(lo)));
        let _ = write!(out, r##"<rect class="cg-limits" x="0" y="{top:.1}" width="{w}" height="{:.1}" fill="#2a2" fill-opacity="0.12"/>"##, bottom - top);
    }
    for m in &spec.marks {
        let (a, b) = (x(m.from_ms), x(m.to_ms.unwrap_or(spec.to_ms)));
        let k = match m.kind {
            MarkKind::Excursion => "excursion",
            MarkKind::Door => "door",
        };
        let _ = write!(out, r##"<rect class="cg-mark cg-mark-{k}" x="{a:.1}" y="0" width="{:.1}" height="{h}" fill="#d33" fill-opacity="0.15"><title>{}</title></rect>"##, (b - a).max(1.0), m.label);
    }
    for s in &spec.series {
        let pts: Vec<String> = s.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let _ = write!(out, r##"<polyline class="cg-series" data-label="{}" fill="none" stroke="#36c" points="{}"/>"##, s.label, pts.join(" "));
    }
    if spec.series.is_empty() {
        let _ = write!(out, r#"<text x="{}" y="{}">no data in this range</text>"#, w / 2.0 - 60.0, h / 2.0);
    }
    out.push_str("</svg>");
    Ok(out)
}

/// Min/max-preserving bucket downsampling.
pub fn downsample(points: &[(i64, f64)], from_ms: i64, to_ms: i64, max_points: usize) -> Vec<(i64, f64)> {
    if points.len() <= max_points || max_points < 2 || to_ms <= from_ms {
        return points.iter().take(max_points.max(points.len().min(max_points))).copied().collect();
    }
    let buckets = (max_points / 2).max(1) as i64;
    let width = ((to_ms - from_ms) / buckets).max(1);
    let mut out = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let b = (points[i].0 - from_ms).div_euclid(width);
        let mut j = i;
        let (mut mn, mut mx) = (i, i);
        while j < points.len() && (points[j].0 - from_ms).div_euclid(width) == b {
            if points[j].1 < points[mn].1 { mn = j; }
            if points[j].1 > points[mx].1 { mx = j; }
            j += 1;
        }
        out.push(points[mn.min(mx)]);
        if mn != mx { out.push(points[mn.max(mx)]); }
        i = j;
    }
    out.truncate(max_points);
    out
}
