//! What the end-to-end tests share above the servers themselves: the set
//! of servers one test runs against, and driving real gateways with
//! manifest commands through NATS.

use std::time::Duration;

use super::*;

pub struct Servers {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub pg: Postgres,
    pub nats: Nats,
}

/// A test directory, a CA, PostgreSQL and nats-server with the
/// partitioning mapping.
pub fn servers() -> Servers {
    // FLEET_TEST_KEEP=1 keeps the servers' and gateways' logs.
    let dir = tempfile::Builder::new()
        .prefix("fleet-e2e")
        .disable_cleanup(std::env::var_os("FLEET_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    eprintln!("test directory {}", dir.path().display());
    let ca = Ca::new(dir.path());
    let pg = Postgres::start(dir.path());
    let nats = Nats::start(dir.path(), &ca, &mapping_config(dir.path()));
    Servers { dir, ca, pg, nats }
}

impl Servers {
    pub fn config(&self, name: &str, extra: &str) -> std::path::PathBuf {
        fleet_config(
            self.dir.path(),
            name,
            &self.nats.url(),
            &self.pg.url(),
            extra,
        )
    }

    pub fn migrate(&self, config: &std::path::Path) {
        let out = run_fleet(&["migrate"], config);
        assert!(
            out.status.success(),
            "migrate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A GS1 key of `len` digits (check digit included) from `body`.
pub fn gs1_key(body: &str) -> String {
    let d = coldgate::manifest::gs1::check_digit(body).unwrap();
    format!("{body}{d}")
}

/// Publishes a manifest command to a gateway through NATS (its MQTT
/// listener hands it to the gateway's subscription) every second until
/// `done`: a command sent before the gateway subscribed is not lost for the
/// test, and a repeat of a request_id is answered, not applied again.
pub fn command_until(
    runtime: &tokio::runtime::Runtime,
    nats: &async_nats::Client,
    gateway: &str,
    command: serde_json::Value,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let subject = format!("coldgate.v1.{gateway}.cmd.manifest");
    let body = serde_json::to_vec(&command).unwrap();
    let mut last = std::time::Instant::now() - Duration::from_secs(2);
    wait_until(Duration::from_secs(60), what, || {
        if last.elapsed() >= Duration::from_secs(1) {
            runtime.block_on(async {
                nats.publish(subject.clone(), body.clone().into())
                    .await
                    .unwrap();
                nats.flush().await.unwrap();
            });
            last = std::time::Instant::now();
        }
        done()
    });
}

/// A real `coldgate run` gateway, `id`, publishing to NATS's MQTT
/// listener with its own client certificate (CN = its id).
pub fn start_gateway(dir: &Path, id: &str, ca: &Ca, mqtt_port: u16) -> (Proc, PathBuf) {
    start_gateway_with(dir, id, ca, mqtt_port, "")
}

/// [`start_gateway`] with `mqtt_lines` added to its `[mqtt]` table.
pub fn start_gateway_with(
    dir: &Path,
    id: &str,
    ca: &Ca,
    mqtt_port: u16,
    mqtt_lines: &str,
) -> (Proc, PathBuf) {
    start_gateway_tuned(
        dir,
        id,
        ca,
        mqtt_port,
        |_| {},
        |text| text.replace("[mqtt]\n", &format!("[mqtt]\n{mqtt_lines}\n")),
    )
}

/// [`start_gateway`] with its test configuration changed by `tune` (speed,
/// failures …) and its file's text by `edit` (a profile's limits …).
pub fn start_gateway_tuned(
    dir: &Path,
    id: &str,
    ca: &Ca,
    mqtt_port: u16,
    tune: impl FnOnce(&mut TestConfig),
    edit: impl FnOnce(String) -> String,
) -> (Proc, PathBuf) {
    let gdir = dir.join(id);
    std::fs::create_dir_all(&gdir).unwrap();
    let (cert, key) = ca.issue(&gdir, "client", id, &[]);
    let mut cfg = TestConfig::new(&gdir);
    cfg.mqtt_port = Some(mqtt_port);
    cfg.telemetry = None;
    tune(&mut cfg);
    let path = cfg.write();
    let text = edit(std::fs::read_to_string(&path).unwrap().replace(
        "gateway_id = \"test-gw\"",
        &format!("gateway_id = \"{id}\""),
    ));
    let text = format!(
        "{text}\n[mqtt.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        ca.file.display(),
        cert.display(),
        key.display()
    );
    std::fs::write(&path, text).unwrap();
    // A restarted gateway logs to a new file: gateway-1.log, gateway-2.log …
    let n = std::fs::read_dir(&gdir).unwrap().count();
    let log = gdir.join(format!("gateway-{n}.log"));
    let p = coldgate_tests::start_gateway(GATEWAY, &path, &log);
    (p, path)
}
