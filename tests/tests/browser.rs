//! Debian's chromium, headless, opens the dashboard of a running
//! `coldgate demo`, waits for the sensor table and the zone charts to show
//! data, checks them through the DOM, and writes screenshots at 1366×768 and
//! 375×812 to `target/browser-test/`.
//!
//! Needs chromium (`apt-get install chromium`); `.ci/run` installs it and
//! runs this with `--ignored`. Without it the test FAILS, it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldgate_tests::{free_port, http_get, wait_for_port, wait_until, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!("chromium is not installed: this test needs it (apt-get install chromium); .ci/run installs it");
}

fn out_dir() -> PathBuf {
    // tests/ is the package; the workspace's target/ is beside it.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("browser-test");
    std::fs::create_dir_all(&dir).expect("output folder");
    dir
}

/// Runs headless chromium with `args` on `url`; its stdout.
fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let dump = profile.with_extension("out");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    // A file, not a pipe: a dumped DOM with charts outgrows a pipe's buffer.
    .stdout(std::fs::File::create(&dump).expect("dump file"))
    .stderr(Stdio::null());
    let mut child = Proc::spawn("chromium", cmd);
    let status = child.wait(Duration::from_secs(90));
    assert!(status.success(), "chromium {args:?} failed: {status}");
    std::fs::read_to_string(&dump).expect("dumped DOM")
}

/// Serves `html` to every request on a port of its own (a wrapper page that
/// frames the dashboard: chromium ignores messages to a `data:` page).
fn serve_once_per_request(html: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("wrapper port");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/")
}

/// The rows of the sensor table in the dumped DOM: (sensor, state, temperature cell).
fn sensor_rows(dom: &str) -> Vec<(String, String, String)> {
    let attr = |s: &str, name: &str| {
        s.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_string)
    };
    dom.split("<tr ")
        .skip(1)
        .filter(|tr| tr.starts_with("data-sensor="))
        .filter_map(|tr| {
            let tr = tr.split("</tr>").next()?;
            let temp = tr
                .split("data-quantity=\"temperature\">")
                .nth(1)?
                .split('<')
                .next()?
                .to_string();
            Some((attr(tr, "data-sensor")?, attr(tr, "data-state")?, temp))
        })
        .collect()
}

/// `data-point-count` of every chart `<svg>` in the dumped DOM.
fn chart_point_counts(dom: &str) -> Vec<u64> {
    dom.split("<svg")
        .skip(1)
        .filter_map(|svg| {
            svg.split('>')
                .next()?
                .split("data-point-count=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// A page of the test's own showing `url` in a 390 × 844 frame (a phone).
fn phone_frame(url: &str) -> String {
    serve_once_per_request(format!(
        "<body style=\"margin:0\"><iframe src=\"{url}\" width=\"390\" height=\"844\" \
         style=\"border:0\"></iframe></body>"
    ))
}

/// Runs in the test's page: waits until the framed page shows `want` charts
/// with data, then writes the boxes (CSS px, the frame's own coordinates)
/// of what can be clipped or overlap into `#cg-layout`.
const MEASURE: &str = r#"
function boxOf(e) { const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; }
function measure() {
  const f = document.getElementById('f');
  const d = f.contentDocument, w = f.contentWindow;
  const svgs = d ? [...d.querySelectorAll('svg.cg-chart')].filter((s) => s.getBoundingClientRect().width > 0) : [];
  if (svgs.length < WANT || svgs.some((s) => s.querySelectorAll('polyline').length === 0)) { setTimeout(measure, 250); return; }
  const out = { viewport: w.innerWidth, page: d.documentElement.scrollWidth, links: [], charts: [] };
  for (const a of d.querySelectorAll('a[href*="/report"]')) {
    let clip = { x: 0, y: 0, w: w.innerWidth, h: 1e9 };
    for (let p = a.parentElement; p; p = p.parentElement) {
      const ox = w.getComputedStyle(p).overflowX;
      if (ox !== 'visible') { const b = boxOf(p); if (b.x > clip.x) { clip.w -= b.x - clip.x; clip.x = b.x; } clip.w = Math.min(clip.x + clip.w, b.x + b.w) - clip.x; }
    }
    out.links.push({ box: boxOf(a), clip });
  }
  for (const svg of svgs) {
    const box = boxOf(svg);
    const vb = svg.viewBox.baseVal;
    const scale = vb && vb.width ? box.w / vb.width : box.w / svg.width.baseVal.value;
    const c = { box, scale, plot: null, texts: [], lines: [] };
    const plot = svg.getAttribute('data-plot');
    if (plot) { const [x, y, pw, ph] = plot.split(' ').map(Number); c.plot = { x: box.x + x * scale, y: box.y + y * scale, w: pw * scale, h: ph * scale }; }
    for (const t of svg.querySelectorAll('text')) {
      const text = t.textContent.trim();
      const b = boxOf(t);
      if (!text || b.w === 0) continue;
      const g = t.closest('g[class]');
      const cls = g ? g.getAttribute('class') : '';
      const kind = cls.includes('cg-mark') ? 'mark' : cls.includes('cg-legend') ? 'legend' : cls.includes('cg-xticks') ? 'tick' : 'other';
      c.texts.push({ kind, text, box: b, font: parseFloat(w.getComputedStyle(t).fontSize) * scale });
    }
    for (const l of svg.querySelectorAll('g.cg-series polyline')) c.lines.push(boxOf(l));
    for (const r of svg.querySelectorAll('g.cg-limits rect')) c.band = boxOf(r);
    c.series_labels = [...svg.querySelectorAll('g.cg-series')].map((g) => g.getAttribute('data-label'));
    out.charts.push(c);
  }
  document.getElementById('cg-layout').textContent = JSON.stringify(out);
}
setTimeout(measure, 250);
"#;

/// The layout of the page at `url` framed `width` px wide, once it shows
/// `charts` charts with data, as [`MEASURE`] found it.
fn measure(
    chromium: &Path,
    profile: &Path,
    url: &str,
    width: u32,
    charts: usize,
) -> serde_json::Value {
    let page = serve_once_per_request(format!(
        "<body style=\"margin:0\"><iframe id=\"f\" src=\"{url}\" width=\"{width}\" height=\"3000\" \
         style=\"border:0\"></iframe><script type=\"application/json\" id=\"cg-layout\"></script>\
         <script>const WANT = {charts};{MEASURE}</script></body>"
    ));
    let dom = headless(
        chromium,
        profile,
        &[
            "--virtual-time-budget=20000",
            "--window-size=1400,900",
            "--disable-web-security",
            "--disable-site-isolation-trials",
            "--dump-dom",
        ],
        &page,
    );
    let json = dom
        .split("id=\"cg-layout\">")
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .unwrap_or("");
    serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{url} at {width} px: no layout measured ({e})\n{dom}"))
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn of(v: &serde_json::Value) -> Option<Rect> {
        let n = |k: &str| v[k].as_f64();
        Some(Rect {
            x: n("x")?,
            y: n("y")?,
            w: n("w")?,
            h: n("h")?,
        })
    }
    /// Overlap by more than half a pixel each way (anti-aliasing and
    /// rounding touch; text on text does not).
    fn overlaps(&self, o: &Rect) -> bool {
        let dx = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let dy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        dx > 0.5 && dy > 0.5
    }
    fn inside(&self, o: &Rect) -> bool {
        self.x >= o.x - 0.5
            && self.y >= o.y - 0.5
            && self.x + self.w <= o.x + o.w + 0.5
            && self.y + self.h <= o.y + o.h + 0.5
    }
}

/// Chart text smaller than this (CSS px, as shown) is unreadable on a phone.
const MIN_FONT_PX: f64 = 10.9;

/// What makes a measured page hard to read, in words; empty when nothing:
/// the page wider than its window; a report link outside the part of its
/// table that shows; chart text clipped by the chart, overlapping other
/// chart text, or smaller than [`MIN_FONT_PX`]; the legend over the data
/// area; the lines squeezed into less than 60 % of the data area's width
/// (a range not fitted to the data); time ticks at odd minutes, or without
/// a date where the axis passes midnight.
fn readability_problems(layout: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let (viewport, page) = (
        layout["viewport"].as_f64().unwrap_or(0.0),
        layout["page"].as_f64().unwrap_or(f64::MAX),
    );
    if page > viewport {
        problems.push(format!(
            "the page is {page} px wide in a {viewport} px window"
        ));
    }
    for link in layout["links"].as_array().into_iter().flatten() {
        let (Some(b), Some(clip)) = (Rect::of(&link["box"]), Rect::of(&link["clip"])) else {
            continue;
        };
        if !(b.x >= clip.x - 0.5 && b.x + b.w <= clip.x + clip.w + 0.5) {
            problems.push(format!(
                "the report link at x {:.0}..{:.0} is clipped to {:.0}..{:.0}",
                b.x,
                b.x + b.w,
                clip.x,
                clip.x + clip.w
            ));
        }
    }
    for (n, chart) in layout["charts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(svg) = Rect::of(&chart["box"]) else {
            problems.push(format!("chart {n}: not measured"));
            continue;
        };
        let texts: Vec<(String, String, Rect, f64)> = chart["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["kind"].as_str()?.to_string(),
                    t["text"].as_str()?.to_string(),
                    Rect::of(&t["box"])?,
                    t["font"].as_f64()?,
                ))
            })
            .collect();
        for (i, (kind, text, b, font)) in texts.iter().enumerate() {
            if !b.inside(&svg) {
                problems.push(format!(
                    "chart {n}: {kind} `{text}` is clipped by the chart"
                ));
            }
            if *font < MIN_FONT_PX {
                problems.push(format!("chart {n}: {kind} `{text}` is {font:.1} px"));
            }
            for (kind2, text2, b2, _) in &texts[i + 1..] {
                if b.overlaps(b2) {
                    problems.push(format!(
                        "chart {n}: {kind} `{text}` overlaps {kind2} `{text2}`"
                    ));
                }
            }
        }
        // The data area: as the chart marks it, or else the limits band
        // and the lines.
        let lines: Vec<Rect> = chart["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Rect::of)
            .collect();
        let data = Rect::of(&chart["plot"]).or_else(|| {
            let all: Vec<Rect> = lines
                .iter()
                .copied()
                .chain(Rect::of(&chart["band"]))
                .collect();
            let x = all.iter().map(|r| r.x).reduce(f64::min)?;
            let y = all.iter().map(|r| r.y).reduce(f64::min)?;
            let r = all.iter().map(|r| r.x + r.w).reduce(f64::max)?;
            let b = all.iter().map(|r| r.y + r.h).reduce(f64::max)?;
            Some(Rect {
                x,
                y,
                w: r - x,
                h: b - y,
            })
        });
        let Some(data) = data else {
            problems.push(format!("chart {n}: no data area"));
            continue;
        };
        for (kind, text, b, _) in &texts {
            if (kind == "legend" || kind == "mark") && b.overlaps(&data) {
                problems.push(format!("chart {n}: {kind} `{text}` is over the data"));
            }
        }
        let legend = texts.iter().filter(|t| t.0 == "legend").count();
        if legend == 0 {
            // An unmarked legend is found by its texts: the lines' labels.
            for (_, text, b, _) in &texts {
                if chart["series_labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|s| s == text.as_str()))
                    && b.overlaps(&data)
                {
                    problems.push(format!("chart {n}: legend `{text}` is over the data"));
                }
            }
        }
        let left = lines.iter().map(|r| r.x).reduce(f64::min).unwrap_or(data.x);
        let right = lines
            .iter()
            .map(|r| r.x + r.w)
            .reduce(f64::max)
            .unwrap_or(data.x);
        if right - left < 0.6 * data.w {
            problems.push(format!(
                "chart {n}: the lines fill {:.0} of {:.0} px of the data area",
                right - left,
                data.w
            ));
        }
        // Time ticks: `HH:MM`, `7 Dec 00:00` or `7 Dec`, at round minutes;
        // where one tick's time of day is before the last one's, the axis
        // passed midnight and that tick names its date.
        let ticks: Vec<&String> = texts
            .iter()
            .filter(|t| t.0 == "tick" || (t.0 == "other" && tick_time(&t.1).is_some()))
            .filter(|t| t.2.y > data.y + data.h - 1.0)
            .map(|t| &t.1)
            .collect();
        if ticks.len() < 2 {
            problems.push(format!("chart {n}: {} time ticks", ticks.len()));
        }
        let parsed: Vec<(&String, u32, bool)> = ticks
            .iter()
            .filter_map(|t| match tick_time(t) {
                Some((minute, dated)) => Some((*t, minute, dated)),
                None => {
                    problems.push(format!("chart {n}: tick `{t}` is not a time"));
                    None
                }
            })
            .collect();
        // Round: every tick on a multiple of one step of the clock (the
        // smallest distance between two ticks).
        let step = parsed
            .windows(2)
            .map(|w| (w[1].1 + 24 * 60 - w[0].1) % (24 * 60))
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(24 * 60);
        let clock_steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720];
        let dates_only = parsed.iter().all(|t| t.2) && parsed.iter().all(|t| t.1 == 0);
        if !dates_only && !clock_steps.contains(&step) {
            problems.push(format!("chart {n}: ticks {step} min apart"));
        }
        let mut last_minute = None;
        for (t, minute, dated) in parsed {
            if !dates_only && minute % step.max(1) != 0 {
                problems.push(format!("chart {n}: tick `{t}` is not at a round time"));
            }
            if last_minute.is_some_and(|l| minute <= l) && !dated {
                problems.push(format!(
                    "chart {n}: tick `{t}` passes midnight without a date"
                ));
            }
            last_minute = Some(minute);
        }
    }
    problems
}

/// Per chart: its smallest text, how much of the data area the lines span,
/// and its time labels; for the test's output.
fn summary(layout: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for chart in layout["charts"].as_array().into_iter().flatten() {
        let texts = chart["texts"].as_array().cloned().unwrap_or_default();
        let min_font = texts
            .iter()
            .filter_map(|t| t["font"].as_f64())
            .fold(f64::INFINITY, f64::min);
        let lines: Vec<Rect> = chart["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Rect::of)
            .collect();
        let fill = match (Rect::of(&chart["plot"]), lines.is_empty()) {
            (Some(p), false) => {
                let l = lines.iter().map(|r| r.x).fold(f64::INFINITY, f64::min);
                let r = lines
                    .iter()
                    .map(|r| r.x + r.w)
                    .fold(f64::NEG_INFINITY, f64::max);
                format!("{:.0} %", (r - l) / p.w * 100.0)
            }
            _ => "?".to_string(),
        };
        let ticks: Vec<&str> = texts
            .iter()
            .filter(|t| t["kind"] == "tick")
            .filter_map(|t| t["text"].as_str())
            .collect();
        let marks = texts.iter().filter(|t| t["kind"] == "mark").count();
        parts.push(format!(
            "chart: smallest text {min_font:.1} px, lines span {fill} of the data area, {marks} mark labels, ticks {ticks:?}"
        ));
    }
    parts.join("; ")
}

/// A tick label's minute of the day, and whether it names a date.
fn tick_time(label: &str) -> Option<(u32, bool)> {
    let hm = |s: &str| -> Option<u32> {
        let (h, m) = s.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let date = |d: &str, m: &str| {
        d.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d)) && MONTHS.contains(&m)
    };
    let parts: Vec<&str> = label.split_whitespace().collect();
    match parts.as_slice() {
        [t] => Some((hm(t)?, false)),
        [d, m] if date(d, m) => Some((0, true)),
        [d, m, t] if date(d, m) => Some((hm(t)?, true)),
        _ => None,
    }
}

#[test]
#[ignore = "needs chromium; run by .ci/run"]
fn the_dashboard_shows_live_sensors_and_zone_charts_in_a_real_browser() {
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http) = (free_port(), free_port());
    let mut cmd = Command::new(BIN);
    cmd.args([
        "demo",
        "--duration",
        "240s",
        "--mqtt-port",
        &mqtt.to_string(),
        "--http-port",
        &http.to_string(),
        "--data-dir",
    ])
    .arg(dir.path().join("data"))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _demo = Proc::spawn("coldgate demo", cmd);
    wait_for_port(http, Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{http}/");
    // Let the demo's rear zone go through its excursion first.
    wait_until(Duration::from_secs(60), "an excursion in the demo", || {
        let v = http_get(&format!("{url}api/events?kind=excursion"), None).json();
        (!v["events"].as_array()?.is_empty()).then_some(())
    });

    let profile = dir.path().join("chromium-profile");
    let started = Instant::now();
    let dom = loop {
        let dom = headless(
            &chromium,
            &profile,
            &[
                "--virtual-time-budget=15000",
                "--window-size=1366,768",
                "--dump-dom",
            ],
            &url,
        );
        let rows = sensor_rows(&dom);
        let charts = chart_point_counts(&dom);
        if rows.len() == 3 && charts.len() == 2 && charts.iter().all(|&n| n > 0) {
            break dom;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the dashboard never showed 3 sensors and 2 charts with data; rows {rows:?}, charts {charts:?}\n{dom}"
        );
        std::thread::sleep(Duration::from_secs(2));
    };

    let rows = sensor_rows(&dom);
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, ["front-1", "rear-1", "rear-2"]);
    for (id, state, temp) in &rows {
        assert_eq!(state, "ok", "{id}");
        let value: f64 = temp
            .trim_end_matches(" °C")
            .parse()
            .unwrap_or_else(|_| panic!("{id}: temperature cell `{temp}` is not a value"));
        assert!((-30.0..60.0).contains(&value), "{id}: {value}");
    }
    assert!(
        dom.contains("class=\"state state-ok\""),
        "state colour classes"
    );
    assert!(dom.contains("data-zone=\"front\"") && dom.contains("data-zone=\"rear\""));
    assert!(dom.contains("cg-limits"), "the profile's limits are shaded");
    assert!(dom.contains("cg-mark-excursion"), "the excursion is marked");
    assert!(
        dom.contains("data-sscc=\"106141412345678908\""),
        "the pallet on board"
    );
    assert!(
        dom.contains("/report?sscc=106141412345678908"),
        "its trip report link"
    );
    assert!(
        dom.contains("id=\"uplink\" class=\"up\">connected"),
        "the uplink state"
    );

    // The pallet's trip report, as its link opens it.
    let report = headless(
        &chromium,
        &profile,
        &["--virtual-time-budget=5000", "--dump-dom"],
        &format!("{url}report?sscc=106141412345678908"),
    );
    assert!(report.contains("class=\"verdict"), "{report}");
    assert!(report.contains("106141412345678908"), "{report}");

    // Usable and readable on a laptop and on a phone, the dashboard and the
    // trip report alike: see `readability_problems`. Headless chromium's
    // window is at least 500 px wide, so each page is framed at its width by
    // a page of the test's own, which measures inside the frame (allowed by
    // `--disable-web-security`) and writes what it found where --dump-dom
    // sees it.
    let report_url = format!("{url}report?sscc=106141412345678908");
    let mut problems = Vec::new();
    for (page, page_url, charts) in [("dashboard", &url, 2), ("report", &report_url, 1)] {
        for width in [1366, 390] {
            let layout = measure(&chromium, &profile, page_url, width, charts);
            let (viewport, page_width) = (
                layout["viewport"].as_f64().unwrap(),
                layout["page"].as_f64().unwrap(),
            );
            assert_eq!(
                viewport,
                f64::from(width),
                "the {page} laid out at {width} px"
            );
            println!(
                "{page} at {width} px: page {page_width} px; {}",
                summary(&layout)
            );
            problems.extend(
                readability_problems(&layout)
                    .into_iter()
                    .map(|p| format!("{page} at {width} px: {p}")),
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    let out = out_dir();
    // The phone shots are 390 px frames in chromium's narrowest window.
    for (name, size, page_url) in [
        ("dashboard-1366x768.png", "1366,768", url.clone()),
        ("dashboard-390x844.png", "500,844", phone_frame(&url)),
        ("report-390x844.png", "500,844", phone_frame(&report_url)),
    ] {
        let file = out.join(name);
        let _ = std::fs::remove_file(&file);
        headless(
            &chromium,
            &profile,
            &[
                "--virtual-time-budget=15000",
                &format!("--window-size={size}"),
                &format!("--screenshot={}", file.display()),
            ],
            &page_url,
        );
        let png = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: {} bytes",
            png.len()
        );
        println!("screenshot: {}", file.display());
    }
}

/// The check itself can fail: a layout with every fault it knows of is
/// found out on each, and the same layout mended passes.
#[test]
fn the_readability_check_finds_overlap_clipping_small_text_a_legend_on_the_data_and_bad_ticks() {
    use serde_json::json;
    let r = |x: f64, y: f64, w: f64, h: f64| json!({"x": x, "y": y, "w": w, "h": h});
    let text = |kind: &str, text: &str, b: serde_json::Value, font: f64| json!({"kind": kind, "text": text, "box": b, "font": font});
    let good = json!({
        "viewport": 390, "page": 390,
        "links": [{"box": r(300.0, 10.0, 60.0, 14.0), "clip": r(0.0, 0.0, 390.0, 1e9)}],
        "charts": [{
            "box": r(0.0, 0.0, 380.0, 260.0), "plot": r(50.0, 60.0, 320.0, 160.0),
            "lines": [r(52.0, 80.0, 316.0, 40.0)],
            "texts": [
                text("legend", "rear-1", r(60.0, 25.0, 40.0, 13.0), 12.0),
                text("mark", "2–8 °C, high", r(80.0, 42.0, 70.0, 13.0), 12.0),
                text("mark", "door", r(160.0, 42.0, 30.0, 13.0), 12.0),
                text("tick", "23:00", r(60.0, 225.0, 30.0, 13.0), 12.0),
                text("tick", "7 Dec 00:00", r(150.0, 225.0, 70.0, 13.0), 12.0),
                text("tick", "01:00", r(250.0, 225.0, 30.0, 13.0), 12.0),
            ],
        }],
    });
    assert_eq!(readability_problems(&good), Vec::<String>::new());

    let mut bad = good.clone();
    bad["page"] = json!(420);
    bad["links"][0]["clip"] = r(0.0, 0.0, 320.0, 1e9);
    let c = &mut bad["charts"][0];
    c["lines"] = json!([r(300.0, 80.0, 60.0, 40.0)]);
    c["texts"][0]["box"] = r(300.0, 70.0, 40.0, 13.0); // legend on the data
    c["texts"][2]["box"] = r(120.0, 42.0, 30.0, 13.0); // door over the excursion
    c["texts"][3]["font"] = json!(6.0);
    c["texts"][4]["text"] = json!("00:07"); // odd minute, no date past midnight
    c["texts"][5]["box"] = r(370.0, 225.0, 30.0, 13.0); // clipped
    let found = readability_problems(&bad);
    for expected in [
        "the page is 420 px wide",
        "report link",
        "legend `rear-1` is over the data",
        "mark `2–8 °C, high` overlaps mark `door`",
        "`23:00` is 6.0 px",
        "`00:07` is not at a round time",
        "`00:07` passes midnight without a date",
        "`01:00` is clipped",
        "the lines fill 60 of 320 px",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "`{expected}` not found in {found:#?}"
        );
    }
}
