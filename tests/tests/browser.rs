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

    // Usable on a laptop and on a phone: with data and charts loaded, the
    // page is never wider than its window (tables scroll inside
    // themselves). Headless chromium's window is at least 500 px wide, so
    // the phone is a 375 px frame; the dashboard reports its layout to the
    // frame's parent, which writes it where --dump-dom sees it.
    let frame = serve_once_per_request(format!(
        "<body style=\"margin:0\"><iframe src=\"{url}\" width=\"375\" height=\"812\" \
         style=\"border:0\"></iframe><script>addEventListener('message',e=>{{\
         document.body.dataset.viewportWidth=e.data.viewport;\
         document.body.dataset.pageWidth=e.data.page;}})</script></body>"
    ));
    let layouts = [(1366, url.clone()), (375, frame.clone())];
    for (width, page_url) in layouts {
        let dom = headless(
            &chromium,
            &profile,
            &[
                "--virtual-time-budget=15000",
                "--window-size=1366,768",
                "--dump-dom",
            ],
            &page_url,
        );
        let attr = |name: &str| -> u32 {
            let key = format!("{name}=\"");
            let at = dom
                .find(&key)
                .unwrap_or_else(|| panic!("{width} px: no {name} on the page\n{dom}"));
            dom[at + key.len()..]
                .split('"')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{width} px: {name} is not a number"))
        };
        let (viewport, page) = (attr("data-viewport-width"), attr("data-page-width"));
        assert_eq!(viewport, width, "the dashboard laid out at {width} px");
        assert!(page <= viewport, "at {width} px the page is {page} px wide");
        println!("layout at {width} px: page {page} px");
    }

    let out = out_dir();
    // The phone shot is the 375 px frame in chromium's narrowest window.
    for (name, size, page_url) in [
        ("dashboard-1366x768.png", "1366,768", &url),
        ("dashboard-375x812.png", "500,812", &frame),
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
            page_url,
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
