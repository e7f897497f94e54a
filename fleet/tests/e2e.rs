//! The fleet against real servers: nats-server (JetStream + MQTT over
//! mutual TLS), PostgreSQL 15 and real `coldgate run` gateways. Ignored in
//! a plain `cargo test` (no servers on a fresh machine); run by
//! scripts/interop-fleet.sh with `--ignored`, where a missing server fails.

mod harness;

use std::time::Duration;

use harness::*;

struct Servers {
    dir: tempfile::TempDir,
    ca: Ca,
    pg: Postgres,
    nats: Nats,
}

fn servers() -> Servers {
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
    fn config(&self, name: &str, extra: &str) -> std::path::PathBuf {
        fleet_config(
            self.dir.path(),
            name,
            &self.nats.url(),
            &self.pg.url(),
            extra,
        )
    }

    fn migrate(&self, config: &std::path::Path) {
        let out = run_fleet(&["migrate"], config);
        assert!(
            out.status.success(),
            "migrate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn migrate_twice_changes_nothing_the_second_time() {
    let s = servers();
    let c = s.config("a", "");
    let first = run_fleet(&["migrate"], &c);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied migrations [1]"));
    let second = run_fleet(&["migrate"], &c);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("schema up to date"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(s.pg.num("SELECT count(*) FROM fleet_migrations"), 1);
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn real_gateways_over_mutual_tls_reach_postgresql_once_and_in_full() {
    let s = servers();
    let c = s.config("a", "");
    s.migrate(&c);
    let mut worker = start_worker(&c, &s.dir.path().join("worker-a.log"));
    let ids = ["reefer-1", "reefer-2"];
    let mut gateways: Vec<_> = ids
        .iter()
        .map(|id| start_gateway(s.dir.path(), id, &s.ca, s.nats.mqtt_port).0)
        .collect();

    // Each gateway's events arrive, with its status, and nothing is missing.
    wait_until(Duration::from_secs(90), "5 events of each gateway", || {
        ids.iter().all(|id| {
            s.pg
                .psql(&format!(
                    "SELECT highest_seq >= 5 AND last_status IS NOT NULL FROM delivery WHERE gateway_id = '{id}'"
                ))
                .map(|v| v == "t")
                .unwrap_or(false)
        })
    });
    for g in &mut gateways {
        g.terminate(Duration::from_secs(20));
    }
    // The gateways stopped: what they sent settles.
    std::thread::sleep(Duration::from_secs(2));
    for id in ids {
        let (contig, high, events) = {
            let row = s
                .pg
                .psql(&format!(
                    "SELECT contiguous_seq, highest_seq, events FROM delivery WHERE gateway_id = '{id}'"
                ))
                .unwrap();
            let v: Vec<i64> = row.split('\t').map(|x| x.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        };
        assert_eq!(contig, high, "{id}: no gap");
        assert_eq!(
            s.pg.num(&format!(
                "SELECT count(DISTINCT seq) FROM events WHERE gateway_id = '{id}'"
            )),
            high,
            "{id}: every seq 1..=highest once"
        );
        assert_eq!(events, high, "{id}: one row per seq");
    }
    assert_eq!(s.pg.num("SELECT count(*) FROM gaps"), 0);
    assert_eq!(s.pg.num("SELECT count(*) FROM quarantine"), 0);

    // The operator's view of the same.
    let out = std::process::Command::new(FLEET)
        .args(["gateway", "reefer-1", "--config"])
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gateway         reefer-1"), "{text}");
    worker.terminate(Duration::from_secs(20));
}
