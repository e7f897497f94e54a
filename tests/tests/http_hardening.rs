//! The local HTTP API of a real `coldgate run` against what a hostile web
//! page or a careless client can send: a cross-site form POST, a foreign
//! `Host` (DNS rebinding), 2,000 idle connections, and a flood of requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use coldgate_tests::{
    free_port, http_get, http_post, start_gateway, wait_for_port, Proc, TestConfig,
};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const SSCC: &str = "106141412345678908";

struct Running {
    proc: Proc,
    port: u16,
    base: String,
}

/// A gateway with MQTT off and `http` lines added to its `[http]` table.
fn start(dir: &Path, http: &str) -> Running {
    let mut cfg = TestConfig::new(dir);
    cfg.sensors = 2;
    let port = free_port();
    cfg.http_port = Some(port);
    let path = cfg.write();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("[http]\n", &format!("[http]\n{http}\n"), 1),
    )
    .unwrap();
    let proc = start_gateway(BIN, &path, &dir.join("gateway.log"));
    wait_for_port(port, Duration::from_secs(20));
    Running {
        proc,
        port,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Sends `head` (request line and headers, without the blank line) and a
/// body on a fresh connection that closes after it; the status and body.
fn raw(port: u16, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"));
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

fn on_board(base: &str) -> usize {
    http_get(&format!("{base}/api/manifest"), None).json()["pallets"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_cross_site_post_cannot_change_the_manifest_but_the_apis_own_origin_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path(), "");
    let (b, port) = (gw.base.clone(), gw.port);
    let load = format!(
        r#"{{"sscc":"{SSCC}","zone":"rear","loaded_at":"2020-01-01T00:00:00Z","items":[{{"gtin":"09520123456788","lot":"L1","expiry":"2030-12-31","serials":["S1"]}}]}}"#
    );
    let loaded = http_post(&format!("{b}/api/manifest/load"), &load, None);
    assert_eq!(loaded.status, 200, "{}", loaded.body);
    assert_eq!(on_board(&b), 1);
    let unload = format!(r#"{{"sscc":"{SSCC}"}}"#);
    let host = format!("Host: 127.0.0.1:{port}");

    // What an HTML form or a CORS "simple request" can send from any site.
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body) = raw(
            port,
            &format!("POST /api/manifest/unload HTTP/1.1\r\n{host}\r\nOrigin: http://evil.example\r\nContent-Type: {ctype}"),
            &unload,
        );
        assert!(status == 403 || status == 415, "{ctype}: {status} {body}");
    }
    // No Origin (curl, not a browser), still not JSON.
    let (status, body) = raw(
        port,
        &format!("POST /api/manifest/unload HTTP/1.1\r\n{host}\r\nContent-Type: text/plain"),
        &unload,
    );
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("application/json"), "{body}");
    // JSON, but from another site (or an opaque origin).
    for origin in ["http://evil.example", "null", "https://127.0.0.1:1"] {
        let (status, body) = raw(
            port,
            &format!("POST /api/manifest/unload HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\nContent-Type: application/json"),
            &unload,
        );
        assert_eq!(status, 403, "{origin}: {body}");
    }
    assert_eq!(on_board(&b), 1, "a refused request changed the manifest");

    // The dashboard's own origin is allowed.
    let (status, body) = raw(
        port,
        &format!("POST /api/manifest/unload HTTP/1.1\r\n{host}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8"),
        &unload,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(on_board(&b), 0);
    gw.proc.terminate(Duration::from_secs(20));
}

#[test]
fn a_foreign_host_is_refused_and_a_configured_name_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path(), r#"allowed_hosts = ["reefer-7.local"]"#);
    let port = gw.port;
    let get = |host: &str| {
        raw(
            port,
            &format!("GET /api/status HTTP/1.1\r\nHost: {host}"),
            "",
        )
    };

    let (status, body) = get(&format!("evil.example:{port}"));
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("allowed_hosts"), "{body}");
    assert_eq!(get("rebound.attacker.test").0, 421);
    assert_eq!(get(&format!("127.0.0.1:{port}")).0, 200);
    assert_eq!(get(&format!("localhost:{port}")).0, 200);
    assert_eq!(get(&format!("reefer-7.local:{port}")).0, 200);
    // Even the open endpoints: a rebound page must not read the dashboard.
    let (status, _) = raw(
        port,
        &format!("GET / HTTP/1.1\r\nHost: evil.example:{port}"),
        "",
    );
    assert_eq!(status, 421);
    gw.proc.terminate(Duration::from_secs(20));
}

#[test]
fn two_thousand_idle_connections_neither_exhaust_descriptors_nor_silence_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path(), "max_connections = 256\nheader_timeout = \"3s\"");
    let (b, port, pid) = (gw.base.clone(), gw.port, gw.proc.pid());
    let before = open_fds(pid);

    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    }
    // Half a header on some: the slow-loris kind of idle.
    for s in idle.iter_mut().step_by(3) {
        let _ = s.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    }
    let t = Instant::now();
    let h = http_get(&format!("{b}/healthz"), None);
    assert_eq!(h.status, 200);
    let m = http_get(&format!("{b}/metrics"), None);
    assert_eq!(m.status, 200, "{}", m.body);
    let answered = t.elapsed();
    assert!(answered < Duration::from_secs(5), "{answered:?}");
    let during = open_fds(pid);
    assert!(
        during <= before + 256 + 8,
        "{during} descriptors open (before: {before})"
    );

    // The header timeout closes what stays idle, also between keep-alive
    // requests.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    let idle_since = Instant::now();
    let closed = kept.read(&mut buf).unwrap_or(0);
    assert_eq!(closed, 0, "an idle keep-alive connection was not closed");
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        open_fds(pid) <= before + 8,
        "{} descriptors left",
        open_fds(pid)
    );
    assert_eq!(http_get(&format!("{b}/api/status"), None).status, 200);
    gw.proc.terminate(Duration::from_secs(20));
}

#[test]
fn healthz_and_metrics_answer_during_a_flood_of_api_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path(), "");
    let b = gw.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..32)
        .map(|i| {
            let (b, stop) = (b.clone(), stop.clone());
            std::thread::spawn(move || {
                let path = if i % 2 == 0 {
                    "/api/zones/rear/chart.svg"
                } else {
                    "/api/sensors/rear-0/readings"
                };
                let mut busy = 0u32;
                let mut served = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match http_get(&format!("{b}{path}"), None).status {
                        503 => busy += 1,
                        200 => served += 1,
                        s => panic!("{path}: {s}"),
                    }
                }
                (busy, served)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let m = http_get(&format!("{b}/metrics"), None);
        assert_eq!(m.status, 200, "/metrics during the flood: {}", m.body);
        assert_eq!(http_get(&format!("{b}/healthz"), None).status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (busy, served) = flood
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
    // The flood did fill the API (else this test proves nothing).
    assert!(
        busy > 0,
        "the flood was never turned away ({served} served)"
    );
    assert!(served > 0);
    gw.proc.terminate(Duration::from_secs(20));
}
