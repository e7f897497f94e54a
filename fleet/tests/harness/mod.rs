//! Real servers for the fleet's end-to-end tests: a throwaway PostgreSQL 15
//! cluster (initdb in a temp dir, run as an unprivileged user when the test
//! runs as root) and nats-server with JetStream and its MQTT listener over
//! mutual TLS. A server that is missing fails the test with what to
//! install: these tests never skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldgate_tests::{free_port, wait_for_port, Proc, TestConfig};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub const FLEET: &str = env!("CARGO_BIN_EXE_coldgate-fleet");
pub const GATEWAY: &str = env!("CARGO_BIN_EXE_coldgate-gateway-under-test");

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin(name: &str) -> PathBuf {
    let dir = std::env::var("FLEET_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let p = Path::new(&dir).join(name);
    assert!(
        p.exists(),
        "FATAL: PostgreSQL 15's {name} is not at {} (apt-get install postgresql-15 postgresql-contrib, \
         or set FLEET_PG_BIN): scripts/interop-fleet.sh installs it",
        p.display()
    );
    p
}

/// A command run as the unprivileged `postgres` user when we are root
/// (PostgreSQL refuses root). setpriv execs in place, so a signal to the
/// child reaches the server itself.
fn as_pg_user(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    proc: Option<Proc>,
}

impl Postgres {
    pub fn start(root: &Path) -> Postgres {
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            // The temp dir is root's (0700): the server's user must reach it.
            Command::new("chmod")
                .arg("0755")
                .arg(root)
                .status()
                .unwrap();
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(
                ok,
                "FATAL: cannot chown the cluster dir to postgres (is the postgres user there?)"
            );
        }
        let out = as_pg_user(&pg_bin("initdb"))
            .args(["-D"])
            .arg(&dir)
            .args(["-A", "trust", "-U", "fleet", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            port: free_port(),
            proc: None,
        };
        pg.resume();
        pg
    }

    /// (Re)starts the server on the same data directory and port.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.parent().unwrap().join("pg.log")).unwrap();
        let mut cmd = as_pg_user(&pg_bin("postgres"));
        cmd.arg("-D")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ])
            // The tests are about the protocol, not the disk: no fsync.
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log);
        self.proc = Some(Proc::spawn("postgres", cmd));
        wait_for_port(self.port, Duration::from_secs(30));
        // Accepting TCP is not yet accepting queries: wait for one.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.psql("SELECT 1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not answer within 30 s");
    }

    /// A fast shutdown (SIGINT): clients are disconnected, nothing lost.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(2);
            p.wait(Duration::from_secs(30));
        }
    }

    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=fleet dbname=postgres",
            self.port
        )
    }

    /// One query through psql, tab-separated rows.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.psql_in("postgres", sql)
    }

    /// [`Postgres::psql`] in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(pg_bin("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "fleet",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn num(&self, sql: &str) -> i64 {
        let s = self.psql(sql).unwrap();
        s.parse().unwrap_or_else(|_| panic!("`{sql}` gave `{s}`"))
    }
}

/// A CA and the key that signs with it (rcgen, ECDSA P-256).
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
    pub file: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "coldgate fleet test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, cert.pem()).unwrap();
        Ca { cert, key, file }
    }

    /// A leaf with CN `cn` for `names`, as `{stem}.pem` and `{stem}.key`.
    pub fn issue(&self, dir: &Path, stem: &str, cn: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

pub struct Nats {
    pub dir: PathBuf,
    pub port: u16,
    pub mqtt_port: u16,
    config: PathBuf,
    proc: Option<Proc>,
}

fn nats_bin() -> String {
    let bin = std::env::var("FLEET_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "FATAL: `{bin}` does not run (apt-get install nats-server, or set FLEET_NATS_SERVER): \
         scripts/interop-fleet.sh installs it"
    );
    bin
}

impl Nats {
    /// JetStream, the MQTT listener with mutual TLS (certificates by `ca`),
    /// and the partitioning `mappings` exactly as `coldgate-fleet
    /// nats-mapping` prints them for `fleet_config`.
    pub fn start(root: &Path, ca: &Ca, fleet_config: &Path) -> Nats {
        let dir = root.join("nats");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = ca.issue(&dir, "nats", "nats", &["localhost", "127.0.0.1"]);
        let out = Command::new(FLEET)
            .args(["nats-mapping", "--config"])
            .arg(fleet_config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mappings = String::from_utf8(out.stdout).unwrap();
        let (port, mqtt_port) = (free_port(), free_port());
        let text = format!(
            r#"server_name: fleet_test
listen: "127.0.0.1:{port}"
jetstream {{
  store_dir: "{store}"
}}
mqtt {{
  listen: "127.0.0.1:{mqtt_port}"
  tls {{
    cert_file: "{cert}"
    key_file: "{key}"
    ca_file: "{ca}"
    verify: true
  }}
}}
{mappings}
"#,
            store = dir.join("js").display(),
            cert = cert.display(),
            key = key.display(),
            ca = ca.file.display(),
        );
        let config = dir.join("nats.conf");
        std::fs::write(&config, text).unwrap();
        let mut n = Nats {
            dir,
            port,
            mqtt_port,
            config,
            proc: None,
        };
        n.resume();
        n
    }

    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))
            .unwrap();
        let mut cmd = Command::new(nats_bin());
        cmd.arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log);
        self.proc = Some(Proc::spawn("nats-server", cmd));
        wait_for_port(self.port, Duration::from_secs(20));
        wait_for_port(self.mqtt_port, Duration::from_secs(20));
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// A fleet configuration for these servers.
pub fn fleet_config(dir: &Path, name: &str, nats: &str, pg: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"[nats]
url = "{nats}"
partitions = 8
[postgres]
url = "{pg}"
[worker]
name = "{name}"
batch = 200
batch_wait = "100ms"
ack_wait = "3s"
backoff_max = "1s"
lease = "3s"
[http]
listen = "127.0.0.1:{http}"
{extra}
"#,
        http = free_port()
    );
    let path = dir.join(format!("fleet-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The mapping needs the NATS URL before NATS exists: a placeholder URL,
/// the same partitions.
pub fn mapping_config(dir: &Path) -> PathBuf {
    fleet_config(dir, "mapping", "nats://127.0.0.1:1", "host=x", "")
}

pub fn run_fleet(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(FLEET)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

pub fn start_worker(config: &Path, log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(FLEET);
    cmd.args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,coldgate_fleet=debug,async_nats=warn")
        .stdout(Stdio::null())
        .stderr(log);
    Proc::spawn("coldgate-fleet run", cmd)
}

/// Polls `f` until it is true or `within` passes; then panics with `what`.
pub fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_coldgate-fleet-loadgen");

/// The load generator: `gateways` MQTT sessions over mutual TLS, each
/// publishing `events` door events with seqs 1..=events.
pub fn start_loadgen(
    dir: &Path,
    ca: &Ca,
    mqtt_port: u16,
    id_prefix: &str,
    gateways: u32,
    events: u64,
    rate: u64,
) -> Proc {
    let (cert, key) = ca.issue(dir, &format!("loadgen-{id_prefix}"), "loadgen", &[]);
    let mut cmd = Command::new(LOADGEN);
    cmd.args(["--port", &mqtt_port.to_string(), "--ca"])
        .arg(&ca.file)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--gateways", &gateways.to_string()])
        .args(["--events", &events.to_string()])
        .args(["--rate", &rate.to_string()])
        .args(["--id-prefix", id_prefix])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Proc::spawn("loadgen", cmd)
}

/// Asserts every gateway `{prefix}-0..n` holds exactly seqs 1..=events,
/// once, with no gap open.
pub fn assert_complete(pg: &Postgres, prefix: &str, gateways: u32, events: u64) {
    let total = i64::from(gateways) * events as i64;
    assert_eq!(
        pg.num(&format!(
            "SELECT count(*) FROM events WHERE gateway_id LIKE '{prefix}-%'"
        )),
        total,
        "one row per event"
    );
    assert_eq!(
        pg.num(&format!(
            "SELECT count(DISTINCT (gateway_id, seq)) FROM events WHERE gateway_id LIKE '{prefix}-%'"
        )),
        total,
        "every seq once"
    );
    assert_eq!(
        pg.num(&format!(
            "SELECT count(*) FROM delivery WHERE gateway_id LIKE '{prefix}-%' \
             AND contiguous_seq = {events} AND highest_seq = {events} AND events = {events}"
        )),
        i64::from(gateways),
        "every gateway contiguous to {events}"
    );
    assert_eq!(
        pg.num(&format!(
            "SELECT count(*) FROM gaps WHERE gateway_id LIKE '{prefix}-%'"
        )),
        0,
        "no gap left open"
    );
}

pub fn count_events(pg: &Postgres, prefix: &str) -> i64 {
    pg.psql(&format!(
        "SELECT count(*) FROM events WHERE gateway_id LIKE '{prefix}-%'"
    ))
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or(0)
}

mod servers;
// Not every test file starts servers (custody.rs needs PostgreSQL alone).
#[allow(unused_imports)]
pub use servers::*;
