//! Lays a [`TripReport`] out as one HTML document: inline CSS (screen and
//! `@media print`, A4), the chart as inline SVG, no external resource.
//! Everything that came from outside (ids, lot numbers, serials) is escaped.
//! Elements carry `id`/`data-*` attributes so a test can read the figures
//! back without scraping prose.

use std::fmt::Write;

use super::chart::escape_attr as esc;
use super::{format_duration, unit_label as unit, MktFinding, ReportSubject, TripReport};

const CSS: &str = r#"
:root { --ok: #1b6e34; --warn: #9a6700; --bad: #b3261e; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 10.5pt;
       color: #111; margin: 0 auto; padding: 16px; max-width: 210mm; }
h1 { font-size: 17pt; margin: 0 0 2px; }
h2 { font-size: 12pt; margin: 14px 0 5px; border-bottom: 1px solid #999; padding-bottom: 2px; }
.sub { color: #444; margin: 0 0 10px; }
.verdict { font-size: 14pt; font-weight: bold; padding: 8px 12px; border: 2px solid;
           border-radius: 4px; margin: 10px 0 4px; }
.verdict.within-profile { color: var(--ok); }
.verdict.excursion-within-allowance { color: var(--warn); }
.verdict.allowance-exceeded, .verdict.assessment-required, .verdict.record-incomplete { color: var(--bad); }
ul.reasons { margin: 4px 0 0 18px; padding: 0; }
table { border-collapse: collapse; width: 100%; margin: 4px 0; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.time { min-width: 6.5em; }
.mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 9.5pt; }
.chart svg { width: 100%; height: auto; display: block; }
.chart-narrow { display: none; }
.chart-narrow svg { max-width: 560px; }
.scroll { overflow-x: auto; }
@media screen and (max-width: 760px) {
  body { padding: 10px; }
  .chart-wide { display: none; }
  .chart-narrow { display: block; }
}
.legend-note { color: #444; font-size: 9pt; }
.none { color: #555; font-style: italic; }
footer { margin-top: 18px; color: #555; font-size: 8.5pt; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { padding: 0; max-width: none; font-size: 9pt; }
  h2 { margin: 10px 0 4px; }
  .verdict { margin: 6px 0 2px; padding: 5px 10px; }
  h2 { break-after: avoid; }
  table, tr, .chart, .verdict { break-inside: avoid; }
  th { background: #f0f0f0 !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .chart svg { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .scroll { overflow: visible; }
  /* Room for the monitoring record on the one page of a one-excursion trip. */
  .legend-note { font-size: 7.5pt; margin: 2px 0; }
  .chart svg { max-height: 240px; }
  h2 { margin: 6px 0 3px; }
}
"#;

pub(super) fn time(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

pub fn render(r: &TripReport) -> String {
    let mut h = String::with_capacity(32 * 1024 + r.chart_svg.len());
    let subject = match &r.subject {
        ReportSubject::Sscc(s) => format!("Pallet SSCC {s}"),
        ReportSubject::Lot { lot, .. } => match r.lots.first() {
            Some(l) => format!("Lot {} (GTIN {})", lot, l.gtin),
            None => format!("Lot {lot}"),
        },
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Trip report — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&subject)
    );
    let _ = write!(
        h,
        "<header>\n<h1>Trip report — {}</h1>\n<p class=\"sub\">Gateway <span class=\"mono\">{}</span> · \
         generated {} by coldgate {}</p>\n",
        esc(&subject),
        esc(&r.gateway_id),
        time(r.generated_ms),
        env!("CARGO_PKG_VERSION")
    );
    let _ = write!(
        h,
        "<p id=\"verdict\" class=\"verdict {}\" data-verdict=\"{}\">Verdict: {}</p>\n<ul class=\"reasons\">\n",
        r.verdict.slug(),
        r.verdict.as_str(),
        r.verdict.as_str()
    );
    for reason in &r.reasons {
        let _ = writeln!(h, "<li>{}</li>", esc(reason));
    }
    h.push_str("</ul>\n</header>\n");

    // Identity.
    h.push_str("<section id=\"identity\">\n<h2>Identity</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>SSCC</th><th>GTIN</th><th>Lot</th><th>Expiry</th><th>Serials</th></tr></thead>\n<tbody>\n");
    let mut seen = std::collections::BTreeSet::new();
    for (sscc, item) in &r.items {
        let key = (sscc, &item.gtin, &item.lot, &item.serials);
        if !seen.insert(key) {
            continue; // the same pallet loaded twice lists its items once
        }
        let serials = if item.serials.is_empty() {
            "<span class=\"none\">not serialised</span>".to_string()
        } else {
            item.serials
                .iter()
                .map(|s| esc(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            h,
            "<tr class=\"item\"><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\" data-lot=\"{}\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(sscc),
            esc(&item.gtin),
            esc(&item.lot),
            esc(&item.lot),
            item.expiry.as_deref().map_or("—".to_string(), esc),
            serials
        );
    }
    h.push_str("</tbody>\n</table></div>\n</section>\n");

    // Route.
    h.push_str("<section id=\"route\">\n<h2>Route</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>Gateway</th><th>SSCC</th><th>Zone</th><th>Profile</th><th>Loaded</th><th>Unloaded</th><th>Time on board</th></tr></thead>\n<tbody>\n");
    for s in &r.stays {
        let unloaded = match s.unloaded_at_ms {
            Some(u) => time(u),
            None => format!("on board (as of {})", time(s.end_ms)),
        };
        let _ = writeln!(
            h,
            "<tr class=\"stay\"><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"time\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.gateway_id),
            esc(&s.sscc),
            esc(&s.zone),
            esc(&s.profile),
            time(s.loaded_at_ms),
            unloaded,
            format_duration(s.end_ms - s.loaded_at_ms)
        );
    }
    h.push_str("</tbody>\n</table></div>\n</section>\n");

    // Chart.
    h.push_str("<section id=\"chart\" class=\"chart\">\n<h2>Temperature</h2>\n");
    h.push_str("<div class=\"chart-wide\">\n");
    h.push_str(&r.chart_svg);
    h.push_str("</div>\n<div class=\"chart-narrow\">\n");
    h.push_str(&r.narrow_chart_svg);
    h.push_str("</div>\n");
    h.push_str("<p class=\"legend-note\">Green band: the profile's acceptable range. Red: excursions. Grey: door openings. One line per sensor of the zones the goods were in, during their stays; times in UTC.</p>\n</section>\n");

    // Excursions.
    h.push_str("<section id=\"excursions\">\n<h2>Excursions</h2>\n");
    if r.excursions.is_empty() {
        h.push_str("<p class=\"none\">None.</p>\n");
    } else {
        h.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>Excursion</th><th>Zone / sensor</th><th>Rule</th><th>Start</th><th>End</th><th>Duration</th><th>Min</th><th>Max</th></tr></thead>\n<tbody>\n");
        for e in &r.excursions {
            let end = match (e.ended_ms, e.ongoing_as_of_ms) {
                (Some(t), _) => time(t),
                (None, Some(t)) => format!("ongoing as of {}", time(t)),
                (None, None) => "ongoing".to_string(),
            };
            let _ = writeln!(
                h,
                "<tr class=\"excursion\" data-excursion-id=\"{id}\" data-duration-s=\"{dur_s}\" data-ongoing=\"{ongoing}\"><td class=\"mono\">{id}</td><td>{zone} / {sensor}</td><td>{rule}</td><td class=\"time\">{start}</td><td class=\"time\">{end}</td><td class=\"num duration\">{dur}</td><td class=\"num\">{min} {unit}</td><td class=\"num\">{max} {unit}</td></tr>",
                id = esc(&e.id),
                dur_s = e.duration_ms / 1000,
                ongoing = e.ended_ms.is_none(),
                zone = esc(&e.zone),
                sensor = esc(&e.sensor),
                rule = esc(&e.rule),
                unit = esc(unit(&e.unit)),
                start = time(e.started_ms),
                end = end,
                dur = format_duration(e.duration_ms),
                min = num(e.min),
                max = num(e.max),
            );
        }
        h.push_str("</tbody>\n</table></div>\n");
    }
    let _ = writeln!(
        h,
        "<p>Door openings while on board: <span id=\"door-count\">{}</span>.</p>\n</section>",
        r.doors.len()
    );

    // Record: gaps and completeness.
    h.push_str("<section id=\"record\">\n<h2>Monitoring record</h2>\n");
    let completeness = r.completeness.map_or("—".to_string(), |c| {
        format!("{:.1} %", (c * 1000.0).floor() / 10.0)
    });
    let _ = write!(
        h,
        "<p>Data completeness: <strong id=\"completeness\" data-completeness=\"{}\">{completeness}</strong> of the stays had readings at the expected interval.",
        r.completeness.map_or(String::new(), |c| format!("{c:.4}"))
    );
    if r.gaps.is_empty() {
        h.push_str(" <span class=\"none\" id=\"gap-count\" data-gap-count=\"0\">No monitoring gap or downtime during the stays.</span></p>\n");
    } else {
        h.push_str("</p>\n");
        let _ = writeln!(
            h,
            "<div class=\"scroll\"><table id=\"gaps\" data-gap-count=\"{}\">\n<thead><tr><th>Start</th><th>End</th><th>Length</th><th>Cause</th><th>Zone / sensor</th></tr></thead>\n<tbody>",
            r.gaps.len()
        );
        for g in &r.gaps {
            let end = match g.end_ms {
                Some(t) => time(t),
                None => format!("open as of {}", time(r.as_of_ms)),
            };
            let place = match (&g.zone, &g.sensor, &g.quantity) {
                (None, ..) => "all zones".to_string(),
                (Some(z), Some(s), Some(q)) => format!("{} / {} ({})", esc(z), esc(s), esc(q)),
                (Some(z), Some(s), None) => format!("{} / {}", esc(z), esc(s)),
                (Some(z), None, Some(q)) => format!("{} ({})", esc(z), esc(q)),
                (Some(z), None, None) => esc(z),
            };
            let _ = writeln!(
                h,
                "<tr class=\"gap\" data-cause=\"{cause}\" data-length-s=\"{len_s}\"><td class=\"time\">{start}</td><td class=\"time\">{end}</td><td class=\"num\">{len}</td><td>{cause}</td><td>{place}</td></tr>",
                cause = g.cause.as_str(),
                len_s = g.length_ms(r.as_of_ms) / 1000,
                start = time(g.start_ms),
                len = format_duration(g.length_ms(r.as_of_ms)),
            );
        }
        h.push_str("</tbody>\n</table></div>\n");
    }
    if !r.gaps.is_empty() || r.completeness.is_some_and(|c| c < 1.0) {
        h.push_str("<p class=\"legend-note\">A gap is a stretch longer than the profile's silence limit without a reading (sensor silent, gateway down, or no readings stored); completeness is the share of each stay, per judged quantity, that readings vouch for, each reading for at most the silence limit (docs/report.md).</p>\n");
    }
    h.push_str("</section>\n");

    // Exposure.
    h.push_str("<section id=\"exposure\">\n<h2>Exposure</h2>\n");
    let mkt = r.mkt.map_or("—".to_string(), |m| format!("{m:.2} °C"));
    let limit = r
        .mkt_limit
        .map_or(String::new(), |l| format!(" (profile limit {l:.1} °C)"));
    let _ = writeln!(
        h,
        "<p>Mean kinetic temperature over the trip: <strong id=\"mkt\">{mkt}</strong>{limit}.</p>"
    );
    for (lot, f) in &r.mkt_findings {
        let (status, text) = match f {
            MktFinding::NoLimit => continue,
            MktFinding::NotEvaluated { why, .. } => {
                ("not-evaluated", format!("not evaluated: {why}"))
            }
            MktFinding::Holds { value, limit } => (
                "holds",
                format!("{value:.2} °C, within the limit of {limit:.1} °C"),
            ),
            MktFinding::Exceeded { what } => ("exceeded", format!("exceeded {what}")),
        };
        let _ = writeln!(
            h,
            "<p class=\"mkt-status\" data-mkt-status=\"{status}\">MKT limit of lot {}: {}.</p>",
            esc(lot),
            esc(&text)
        );
    }
    h.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>GTIN</th><th>Lot</th><th>Rule</th><th>Time out of range</th><th>Allowance</th><th>Left</th></tr></thead>\n<tbody>\n");
    let mut rows = 0;
    for lot in &r.lots {
        for rule in &lot.rules {
            rows += 1;
            let (budget, left) = match rule.budget_ms {
                Some(b) if rule.total_ms >= b => (format_duration(b), "exhausted".to_string()),
                Some(b) => (format_duration(b), format_duration(b - rule.total_ms)),
                None => ("none".to_string(), "—".to_string()),
            };
            let _ = writeln!(
                h,
                "<tr class=\"budget\" data-total-ms=\"{}\"><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td data-rule=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                rule.total_ms,
                esc(&lot.gtin),
                esc(&lot.lot),
                esc(&rule.rule),
                esc(&rule.name),
                format_duration(rule.total_ms),
                budget,
                left
            );
        }
    }
    if rows == 0 {
        h.push_str(
            "<tr><td colspan=\"6\" class=\"none\">No time out of range recorded.</td></tr>\n",
        );
    }
    h.push_str("</tbody>\n</table></div>\n");
    h.push_str("<p class=\"legend-note\">Time out of range and budgets are per lot, over all its pallets and stays on this gateway, as the excursion engine's ledger recorded them.</p>\n</section>\n");

    let _ = write!(
        h,
        "<footer>coldgate trip report · gateway {} · {}. Times in UTC.</footer>\n</body>\n</html>\n",
        esc(&r.gateway_id),
        time(r.generated_ms)
    );
    h
}
