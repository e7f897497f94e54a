//! MQTT over TLS with mutual authentication, against an in-process rumqttd
//! that requires a client certificate signed by its CA. Every certificate is
//! made fresh by the test (rcgen, ECDSA P-256), so nothing expires in the
//! repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use coldgate::daemon::Gateway;
use coldgate_tests::{free_port, start_gateway, wait_for_port, TestConfig};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

/// A CA and the key that signs with it.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for `names` (subject alternative names) with CN `cn`, valid
    /// from `from` to `until`, written as `{stem}.pem` and `{stem}.key`.
    fn issue(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        names: &[&str],
        until: Option<time::OffsetDateTime>,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(until) = until {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = until;
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let p = dir.join(format!("{stem}.pem"));
        std::fs::write(&p, self.cert.pem()).unwrap();
        p
    }
}

/// The files of one test: a CA, the broker's certificate for
/// `localhost`/`127.0.0.1`, and the gateway's certificate (CN = its id).
struct Pki {
    ca: Ca,
    ca_file: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new("coldgate test CA");
    let ca_file = ca.write(dir, "ca");
    let server = ca.issue(dir, "server", "broker", &["localhost", "127.0.0.1"], None);
    let client = ca.issue(dir, "client", "test-gw", &[], None);
    Pki {
        ca,
        ca_file,
        server,
        client,
    }
}

/// rumqttd on 127.0.0.1:`port` with TLS, requiring a client certificate
/// signed by `ca`. It lives until the test process exits.
fn start_tls_broker(port: u16, ca: &Path, cert: &Path, key: &Path) {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-tls"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.tls]
capath = "{ca}"
certpath = "{cert}"
keypath = "{key}"
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 262144
max_inflight_count = 100
dynamic_filters = true
"#,
        ca = ca.display(),
        cert = cert.display(),
        key = key.display(),
    );
    let config: rumqttd::Config = toml::from_str(&text).expect("broker config parses");
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    wait_for_port(port, Duration::from_secs(10));
}

/// The test configuration with `[mqtt.tls]` lines appended.
fn gateway_config(dir: &Path, port: u16, tls: &str) -> PathBuf {
    let mut cfg = TestConfig::new(dir);
    cfg.mqtt_port = Some(port);
    let path = cfg.write();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[mqtt.tls]\n");
    text.push_str(tls);
    std::fs::write(&path, text).unwrap();
    path
}

fn tls_lines(ca: &Path, client: &(PathBuf, PathBuf)) -> String {
    format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        ca.display(),
        client.0.display(),
        client.1.display()
    )
}

/// Runs the gateway in this process until `done` says so or 30 s pass;
/// returns the link state seen last and the seqs acknowledged.
async fn run_gateway(
    config: &Path,
    done: impl Fn(&coldgate::publish::LinkState, usize) -> bool,
) -> (coldgate::publish::LinkState, Vec<u64>) {
    let config = coldgate::config::load(config).expect("config loads");
    let mut gw = Gateway::start(&config, Vec::new()).expect("gateway starts");
    let mut delivered = gw.take_delivered().expect("delivered");
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Ok(d) = delivered.try_recv() {
            acked.push(d.seq);
        }
        let link = gw.link.borrow().clone();
        if done(&link, acked.len()) || Instant::now() > deadline {
            gw.stop().await.expect("stops");
            return (link, acked);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_the_gateway_connects_and_its_events_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    start_tls_broker(port, &pki.ca_file, &pki.server.0, &pki.server.1);
    let config = gateway_config(dir.path(), port, &tls_lines(&pki.ca_file, &pki.client));

    let (link, acked) = run_gateway(&config, |_, n| n >= 3).await;
    assert!(acked.len() >= 3, "PUBACKed seqs {acked:?}, link {link:?}");
    assert_eq!(&acked[..3], &[1, 2, 3], "acknowledged in seq order");
    assert!(link.client_cert_expires_ms.is_some(), "{link:?}");
    let days = (link.client_cert_expires_ms.unwrap() - coldgate::event::now_ms()) / 86_400_000;
    assert!(
        days > 300,
        "rcgen's default validity is years, got {days} days"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_is_refused_and_the_ca_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    start_tls_broker(port, &pki.ca_file, &pki.server.0, &pki.server.1);
    let other = Ca::new("someone else's CA").write(dir.path(), "other-ca");
    let config = gateway_config(dir.path(), port, &tls_lines(&other, &pki.client));

    let (link, acked) = run_gateway(&config, |l, _| l.last_error.is_some()).await;
    let error = link.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("not signed by a CA in")
            && error.contains("other-ca.pem")
            && error.contains("mqtt.tls.ca_file"),
        "{error}"
    );
    assert!(acked.is_empty(), "nothing may be delivered: {acked:?}");
    assert!(!link.connected && link.publish_errors >= 1, "{link:?}");
    assert!(
        link.next_retry_ms.is_some(),
        "the next attempt is scheduled: {link:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_for_another_name_is_refused_and_the_name_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    start_tls_broker(port, &pki.ca_file, &pki.server.0, &pki.server.1);
    let tls = format!(
        "{}server_name = \"broker.example\"\n",
        tls_lines(&pki.ca_file, &pki.client)
    );
    let config = gateway_config(dir.path(), port, &tls);

    let (link, acked) = run_gateway(&config, |l, _| l.last_error.is_some()).await;
    let error = link.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("not valid for the name `broker.example`")
            && error.contains("mqtt.tls.server_name"),
        "{error}"
    );
    assert!(acked.is_empty(), "{acked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_the_broker_does_not_trust_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    start_tls_broker(port, &pki.ca_file, &pki.server.0, &pki.server.1);
    let rogue = Ca::new("rogue CA").issue(dir.path(), "rogue", "test-gw", &[], None);
    let config = gateway_config(dir.path(), port, &tls_lines(&pki.ca_file, &rogue));

    let (link, acked) = run_gateway(&config, |l, _| l.last_error.is_some()).await;
    assert!(acked.is_empty(), "{acked:?}");
    assert!(!link.connected, "{link:?}");
    let error = link.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("broker ended the TLS handshake") && error.contains("mqtt.tls.cert_file"),
        "{error}"
    );
}

fn coldgate(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_expired_client_certificate_is_refused_by_check_config_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let expired = pki.ca.issue(
        dir.path(),
        "expired",
        "test-gw",
        &[],
        Some(rcgen::date_time_ymd(2021, 1, 1)),
    );
    // No broker is needed: the gateway must refuse before connecting.
    let config = gateway_config(dir.path(), free_port(), &tls_lines(&pki.ca_file, &expired));
    for args in [&["check-config"][..], &["run"][..]] {
        let (code, stderr) = coldgate(args, &config);
        assert_eq!(code, Some(78), "{args:?}: {stderr}");
        assert!(
            stderr.contains("mqtt.tls.cert_file")
                && stderr.contains("expired.pem")
                && stderr.contains("expired at 2021-01-01"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn missing_mismatched_and_half_configured_files_are_named_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let other = pki.ca.issue(dir.path(), "other", "test-gw", &[], None);
    let problems = |tls: String| {
        let config = gateway_config(dir.path(), 8883, &tls);
        match coldgate::daemon::preflight::load(&config) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems(),
        }
    };
    let has = |p: &[coldgate::config::Problem], path: &str, needle: &str| {
        p.iter()
            .any(|p| p.path == path && p.message.contains(needle))
    };

    let p = problems(format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.ca_file.display(),
        pki.client.0.display(),
        other.1.display()
    ));
    assert!(has(&p, "mqtt.tls.key_file", "does not belong"), "{p:?}");

    let p = problems(format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        dir.path().join("nope.pem").display(),
        pki.client.1.display(),
        pki.client.0.display()
    ));
    assert!(has(&p, "mqtt.tls.ca_file", "cannot read"), "{p:?}");
    assert!(has(&p, "mqtt.tls.cert_file", "no PEM certificate"), "{p:?}");
    assert!(has(&p, "mqtt.tls.key_file", "no PEM private key"), "{p:?}");

    let p = problems(format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\n",
        pki.ca_file.display(),
        pki.client.0.display()
    ));
    assert!(has(&p, "mqtt.tls.key_file", "go together"), "{p:?}");

    let p = problems(format!(
        "ca_file = \"{}\"\nserver_name = \"not a name\"\n",
        pki.ca_file.display()
    ));
    assert!(
        has(&p, "mqtt.tls.server_name", "not a valid TLS server name"),
        "{p:?}"
    );
}

#[test]
fn a_client_certificate_expiring_within_30_days_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    start_tls_broker(port, &pki.ca_file, &pki.server.0, &pki.server.1);
    let soon = pki.ca.issue(
        dir.path(),
        "soon",
        "test-gw",
        &[],
        Some(time::OffsetDateTime::now_utc() + time::Duration::days(10)),
    );
    let config = gateway_config(dir.path(), port, &tls_lines(&pki.ca_file, &soon));
    let log = dir.path().join("gw.log");
    let mut gw = start_gateway(BIN, &config, &log);
    // The warning is about the certificate file, given at start whether or
    // not the broker is reachable; wait for it, then a little longer to see
    // that it is not repeated.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("expires soon")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("expires soon"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("days_left=9") || warnings[0].contains("days_left=10"),
        "{}",
        warnings[0]
    );
}

/// Without `ca_file` the broker is verified against the system's roots.
/// `SSL_CERT_FILE` (honoured by rustls-native-certs) makes the test's CA the
/// system store, so the test does not depend on the machine's bundle.
#[test]
fn without_ca_file_the_system_roots_are_used_and_check_config_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    start_tls_broker(port, &pki.ca_file, &pki.server.0, &pki.server.1);
    let tls = format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.client.0.display(),
        pki.client.1.display()
    );
    let config = gateway_config(dir.path(), port, &tls);
    let none = dir.path().join("no-such-dir");

    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .env("SSL_CERT_FILE", &pki.ca_file)
        .env("SSL_CERT_DIR", &none)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verified against the system's root certificates (1 found; mqtt.tls.ca_file is not set)"),
        "{stdout}"
    );

    // An empty system store is a configuration error naming ca_file.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", &none)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("mqtt.tls.ca_file") && stderr.contains("no usable system root certificate"),
        "{stderr}"
    );

    // And the gateway connects to the broker its system store trusts.
    let log = dir.path().join("gw.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("SSL_CERT_FILE", &pki.ca_file)
        .env("SSL_CERT_DIR", &none)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut gw = coldgate_tests::Proc::spawn("coldgate run", cmd);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("Connected to the MQTT broker.") {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(&log).unwrap_or_default();
    }
    gw.sigkill();
    assert!(text.contains("Connected to the MQTT broker."), "{text}");
}
