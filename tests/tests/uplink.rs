//! `coldgate uplink --test` against Debian's mosquitto, set up by the broker
//! recipe of docs/broker.md run as written (scripts/broker-recipe.sh): the
//! recipe itself must give a broker the gateway passes every step with, and
//! each broken set-up must fail at its step with the reason in words.
//!
//! mosquitto is a real dependency of these tests: without it they fail,
//! saying how to install it (`apt-get install mosquitto`), rather than pass
//! without having tested anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use coldgate_tests::{free_port, wait_for_port, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const GATEWAY_ID: &str = "truck-0042";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mosquitto() -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", "command -v mosquitto"])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        found.status.success() && !path.is_empty(),
        "mosquitto is not installed: these tests need the real broker (apt-get install mosquitto)"
    );
    PathBuf::from(path)
}

/// Runs the recipe as written in `dir` (made readable by the `mosquitto`
/// user, which mosquitto drops to when started as root).
fn recipe(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("bash")
        .arg(workspace().join("scripts/broker-recipe.sh"))
        .arg(dir)
        .env("MQTT_PORT", port.to_string())
        .env("GATEWAY_ID", GATEWAY_ID)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the recipe of docs/broker.md failed as written:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut p = dir.to_path_buf();
    while p.pop() && p.starts_with(std::env::temp_dir()) && p != std::env::temp_dir() {
        set_mode(&p, 0o755);
    }
    set_mode(dir, 0o755);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The recipe's broker, running with the configuration it wrote.
struct Broker {
    dir: PathBuf,
    port: u16,
    _proc: Proc,
}

fn broker(root: &Path) -> Broker {
    let bin = mosquitto();
    let port = free_port();
    let dir = root.join("broker");
    recipe(&dir, port);
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(root.join("mosquitto.log")).unwrap(),
        ));
    let proc = Proc::spawn("mosquitto", cmd);
    wait_for_port(port, Duration::from_secs(10));
    Broker {
        dir,
        port,
        _proc: proc,
    }
}

/// A gateway configuration for the broker; `tls` replaces the file names
/// the recipe made, `extra` goes into `[mqtt]`.
fn config(root: &Path, port: u16, ca: &Path, cert: &Path, key: &Path, extra: &str) -> PathBuf {
    let path = root.join("coldgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"gateway_id = "{GATEWAY_ID}"
[storage]
path = "{db}"
[mqtt]
host = "localhost"
port = {port}
{extra}
[mqtt.tls]
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0 }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
[sim]
"#,
            db = root.join("coldgate.redb").display(),
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    path
}

/// The configuration with the files the recipe made in `dir`.
fn good_config(root: &Path, dir: &Path, port: u16, extra: &str) -> PathBuf {
    config(
        root,
        port,
        &dir.join("ca.pem"),
        &dir.join(format!("{GATEWAY_ID}.pem")),
        &dir.join(format!("{GATEWAY_ID}.key")),
        extra,
    )
}

fn uplink(config: &Path) -> (Output, String) {
    let out = Command::new(BIN)
        .args(["uplink", "--test", "--timeout", "3s", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn the_broker_recipe_as_written_passes_every_step() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    let (out, text) = uplink(&good_config(root.path(), &b.dir, b.port, ""));
    assert_eq!(out.status.code(), Some(0), "{text}");
    for step in ["TLS files", "DNS", "TCP", "TLS", "MQTT", "own status"] {
        assert!(
            text.contains(&format!("  ok    {step}: ")),
            "{step}:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "own status: published to coldgate/v1/{GATEWAY_ID}/status and read back"
        )),
        "{text}"
    );
    assert!(text.contains("uplink: every step passed"), "{text}");
    assert!(
        !root.path().join("coldgate.redb").exists(),
        "the uplink test must not open the database"
    );
}

#[test]
fn a_broker_certificate_from_another_ca_fails_at_tls() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    let other = root.path().join("other");
    recipe(&other, 1);
    let cfg = config(
        root.path(),
        b.port,
        &other.join("ca.pem"),
        &b.dir.join(format!("{GATEWAY_ID}.pem")),
        &b.dir.join(format!("{GATEWAY_ID}.key")),
        "",
    );
    let (out, text) = uplink(&cfg);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "  FAIL  TLS: the broker's certificate is not signed by a CA in {} (mqtt.tls.ca_file)",
            other.join("ca.pem").display()
        )),
        "{text}"
    );
    assert!(text.contains("uplink: failed at TLS"), "{text}");
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_by_the_broker_and_said_so() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    let other = root.path().join("other");
    recipe(&other, 1);
    let cfg = config(
        root.path(),
        b.port,
        &b.dir.join("ca.pem"),
        &other.join(format!("{GATEWAY_ID}.pem")),
        &other.join(format!("{GATEWAY_ID}.key")),
        "",
    );
    let (out, text) = uplink(&cfg);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("  FAIL  TLS: the broker ended the TLS handshake (UnknownCA): it does not accept this gateway's certificate (mqtt.tls.cert_file)"),
        "{text}"
    );
}

#[test]
fn an_x509_v1_client_certificate_is_named_as_such() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    // The quick way the recipe warns about: `openssl x509 -req` without
    // an extensions file.
    let d = &b.dir;
    let sh = format!(
        "cd {} && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -subj /CN={GATEWAY_ID} -keyout v1.key -out v1.csr && \
         openssl x509 -req -in v1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out v1.pem",
        d.display()
    );
    let made = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let cfg = config(
        root.path(),
        b.port,
        &d.join("ca.pem"),
        &d.join("v1.pem"),
        &d.join("v1.key"),
        "",
    );
    let (out, text) = uplink(&cfg);
    assert_eq!(out.status.code(), Some(78), "a bad configuration: {text}");
    assert!(
        text.contains(&format!(
            "mqtt.tls.cert_file: {}: X.509 v1 certificate; add extensions to make it v3",
            d.join("v1.pem").display()
        )),
        "{text}"
    );
    assert!(
        !text.contains("key_file"),
        "the key is not at fault: {text}"
    );
}

#[test]
fn a_prefix_the_acl_denies_shows_as_no_read_back() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    let cfg = good_config(
        root.path(),
        &b.dir,
        b.port,
        "prefix = \"coldgate/v1/someone-else\"",
    );
    let (out, text) = uplink(&cfg);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("  ok    MQTT: CONNACK Success"), "{text}");
    assert!(
        text.contains("  FAIL  own status: the broker acknowledged the status on coldgate/v1/someone-else/status but did not deliver it back within 3s: its ACL does not let this gateway write or read"),
        "{text}"
    );
}

#[test]
fn a_port_nobody_listens_on_fails_at_tcp() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    let unused = free_port();
    let cfg = config(
        root.path(),
        unused,
        &b.dir.join("ca.pem"),
        &b.dir.join(format!("{GATEWAY_ID}.pem")),
        &b.dir.join(format!("{GATEWAY_ID}.key")),
        "",
    );
    let (out, text) = uplink(&cfg);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("  ok    DNS: localhost is "), "{text}");
    assert!(
        text.contains(&format!(
            "  FAIL  TCP: 127.0.0.1:{unused}: connection refused: nothing listens there"
        )),
        "{text}"
    );
}

#[test]
fn an_x509_v1_broker_certificate_fails_at_tls_in_words() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let dir = root.path().join("broker");
    recipe(&dir, port);
    // The broker's certificate made the quick way: v1, no extensions.
    let sh = format!(
        "cd {} && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -days 30 -out server-v1.pem && chmod 644 server-v1.pem && \
         sed -i 's/server.pem/server-v1.pem/' mosquitto.conf",
        dir.display()
    );
    let made = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let mut cmd = Command::new(mosquitto());
    cmd.arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _broker = Proc::spawn("mosquitto", cmd);
    wait_for_port(port, Duration::from_secs(10));
    let (out, text) = uplink(&good_config(root.path(), &dir, port, ""));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("  FAIL  TLS: the broker's certificate is an X.509 v1 certificate; add extensions to make it v3"),
        "{text}"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_named() {
    let root = tempfile::tempdir().unwrap();
    let b = broker(root.path());
    let cfg = config(
        root.path(),
        b.port,
        &b.dir.join("ca.pem"),
        &b.dir.join(format!("{GATEWAY_ID}.pem")),
        &b.dir.join("backend.key"),
        "",
    );
    let (out, text) = uplink(&cfg);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains(&format!(
            "the private key in {} does not belong to the certificate in {}",
            b.dir.join("backend.key").display(),
            b.dir.join(format!("{GATEWAY_ID}.pem")).display()
        )),
        "{text}"
    );
}
