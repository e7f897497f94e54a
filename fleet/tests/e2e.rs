//! The fleet against real servers: nats-server (JetStream + MQTT over
//! mutual TLS), PostgreSQL 15 and real `coldgate run` gateways. Ignored in
//! a plain `cargo test` (no servers on a fresh machine); run by
//! scripts/interop-fleet.sh with `--ignored`, where a missing server fails.

mod harness;

use std::time::Duration;

use harness::*;

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn migrate_twice_changes_nothing_the_second_time() {
    let s = servers();
    let c = s.config("a", "");
    // Every migration the binary carries, whatever their number.
    let all: Vec<i32> = coldgate_fleet::migrate::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .collect();
    let first = run_fleet(&["migrate"], &c);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        String::from_utf8_lossy(&first.stdout).contains(&format!("applied migrations {all:?}")),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
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
    assert_eq!(
        s.pg.num("SELECT count(*) FROM fleet_migrations"),
        all.len() as i64
    );
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

/// Acked-up-to (stream seq) and unacked counts over every consumer.
fn consumer_totals(nats_url: &str, lanes: u32) -> (u64, u64, u64) {
    rt().block_on(async {
        let c = async_nats::connect(nats_url).await.unwrap();
        let js = async_nats::jetstream::new(c);
        let mut s = js.get_stream("COLDGATE").await.unwrap();
        let _ = s.info().await.unwrap();
        let (mut floor, mut ack_pending, mut pending) = (0, 0, 0);
        for p in 0..lanes {
            let mut cons: async_nats::jetstream::consumer::PullConsumer =
                s.get_consumer(&format!("fleet-p{p}")).await.unwrap();
            let info = cons.info().await.unwrap();
            floor += info.ack_floor.stream_sequence;
            ack_pending += info.num_ack_pending as u64;
            pending += info.num_pending;
        }
        (floor, ack_pending, pending)
    })
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn a_payload_that_does_not_parse_is_quarantined_with_its_reason_and_acked() {
    let s = servers();
    let c = s.config("a", "");
    s.migrate(&c);
    let mut worker = start_worker(&c, &s.dir.path().join("worker-a.log"));
    rt().block_on(async {
        let n = async_nats::connect(s.nats.url()).await.unwrap();
        n.publish("coldgate.v1.gw-q.events.door", "{not json".into())
            .await
            .unwrap();
        let good = coldgate_fleet::sim::door_event(
            "gw-q",
            1,
            "01JFLEETQUARANTINE00000000",
            time::OffsetDateTime::now_utc(),
        );
        n.publish("coldgate.v1.gw-q.events.door", good.into())
            .await
            .unwrap();
        n.flush().await.unwrap();
    });
    wait_until(
        Duration::from_secs(30),
        "the quarantine row and the good event",
        || {
            s.pg.num("SELECT count(*) FROM quarantine") == 1
                && s.pg
                    .psql("SELECT highest_seq FROM delivery WHERE gateway_id = 'gw-q'")
                    .map(|v| v == "1")
                    .unwrap_or(false)
        },
    );
    let reason =
        s.pg.psql("SELECT subject || ' | ' || reason FROM quarantine")
            .unwrap();
    assert!(reason.contains(".gw-q.events.door"), "{reason}");
    assert!(reason.contains("not a valid payload"), "{reason}");
    // Acked, not waiting for redelivery.
    wait_until(Duration::from_secs(10), "both messages acked", || {
        let (_, ack_pending, pending) = consumer_totals(&s.nats.url(), 10);
        ack_pending == 0 && pending == 0
    });
    std::thread::sleep(Duration::from_secs(4)); // past ack_wait: no redelivery
    assert_eq!(s.pg.num("SELECT count(*) FROM quarantine"), 1);
    worker.terminate(Duration::from_secs(20));
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn a_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let s = servers();
    let (ca, cb) = (s.config("a", ""), s.config("b", ""));
    s.migrate(&ca);
    let mut a = start_worker(&ca, &s.dir.path().join("worker-a.log"));
    let mut b = start_worker(&cb, &s.dir.path().join("worker-b.log"));
    let (gateways, events) = (20, 400);
    let mut load = start_loadgen(
        s.dir.path(),
        &s.ca,
        s.nats.mqtt_port,
        "k",
        gateways,
        events,
        2000,
    );
    wait_until(
        Duration::from_secs(60),
        "a quarter of the events committed",
        || count_events(&s.pg, "k") >= 2000,
    );
    a.sigkill();
    let at_kill = count_events(&s.pg, "k");
    assert!(
        at_kill < 8000,
        "the kill came mid-stream ({at_kill} of 8000)"
    );
    std::thread::sleep(Duration::from_secs(1));
    // Started again under another name, as a restarted process without a
    // configured name is (host-pid): the dead worker's leases must expire
    // and be taken over.
    a = start_worker(&s.config("a2", ""), &s.dir.path().join("worker-a2.log"));
    assert!(
        load.wait(Duration::from_secs(120)).success(),
        "the load generator failed"
    );
    wait_until(Duration::from_secs(60), "all 8000 events committed", || {
        count_events(&s.pg, "k") >= 8000
    });
    std::thread::sleep(Duration::from_secs(4)); // past ack_wait: any redelivery is in
    assert_complete(&s.pg, "k", gateways, events);
    a.terminate(Duration::from_secs(20));
    b.terminate(Duration::from_secs(20));
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn with_postgresql_away_for_30_s_nothing_is_acked_and_everything_is_applied_after() {
    let mut s = servers();
    let c = s.config("a", "");
    s.migrate(&c);
    let mut w = start_worker(&c, &s.dir.path().join("worker-a.log"));
    let (gateways, events) = (10, 200);
    std::thread::sleep(Duration::from_secs(2));
    s.pg.stop();
    let (floor_before, _, _) = consumer_totals(&s.nats.url(), 10);
    let mut load = start_loadgen(
        s.dir.path(),
        &s.ca,
        s.nats.mqtt_port,
        "p",
        gateways,
        events,
        0,
    );
    assert!(
        load.wait(Duration::from_secs(60)).success(),
        "the load generator failed"
    );
    std::thread::sleep(Duration::from_secs(30));
    let (floor_during, ack_pending, _) = consumer_totals(&s.nats.url(), 10);
    assert_eq!(
        floor_during, floor_before,
        "nothing acked while PostgreSQL is away"
    );
    assert!(
        ack_pending > 0,
        "the worker holds batches it could not apply"
    );
    s.pg.resume();
    wait_until(Duration::from_secs(60), "all events applied", || {
        count_events(&s.pg, "p") >= 2000
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_complete(&s.pg, "p", gateways, events);
    let (_, ack_pending, pending) = consumer_totals(&s.nats.url(), 10);
    assert_eq!((ack_pending, pending), (0, 0), "everything acked after");
    w.terminate(Duration::from_secs(20));
}

/// Stream seq of each event seq `gateway` has in the stream.
async fn stream_seqs(
    js: &async_nats::jetstream::Context,
    gateway: &str,
) -> std::collections::BTreeMap<u64, u64> {
    let mut s = js.get_stream("COLDGATE").await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let mut out = std::collections::BTreeMap::new();
    for n in 1..=last {
        let Ok(m) = s.get_raw_message(n).await else {
            continue;
        };
        if !m.subject.as_str().contains(&format!(".{gateway}.events.")) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        out.insert(v["seq"].as_u64().unwrap(), n);
    }
    out
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn a_gap_lost_downstream_raises_an_alert_and_the_gateway_s_replay_closes_it() {
    let s = servers();
    let c = s.config(
        "a",
        "[verify]\ngap_age = \"2s\"\ninterval = \"500ms\"\nreplay = true\n",
    );
    s.migrate(&c);
    let runtime = rt();
    let js = runtime.block_on(async {
        async_nats::jetstream::new(async_nats::connect(s.nats.url()).await.unwrap())
    });
    // A real gateway publishes with no worker running yet.
    let (mut gw, _) = start_gateway_with(
        s.dir.path(),
        "reefer-g",
        &s.ca,
        s.nats.mqtt_port,
        "status_interval = \"1s\"",
    );
    let mut held = Default::default();
    wait_until(Duration::from_secs(60), "seqs 1..=6 in the stream", || {
        held = runtime.block_on(stream_seqs(&js, "reefer-g"));
        (1..=6).all(|q| held.contains_key(&q))
    });
    // Lost downstream of the gateway, after its PUBACK: seqs 3 and 4.
    runtime.block_on(async {
        let s = js.get_stream("COLDGATE").await.unwrap();
        for q in [3, 4] {
            assert!(s.delete_message(held[&q]).await.unwrap());
        }
    });
    let alerts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = alerts.clone();
    let url = s.nats.url();
    runtime.spawn(async move {
        let n = async_nats::connect(url).await.unwrap();
        let mut sub = n.subscribe("fleet.alerts.delivery").await.unwrap();
        use futures::StreamExt;
        while let Some(m) = sub.next().await {
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut w = start_worker(&c, &s.dir.path().join("worker-a.log"));

    wait_until(Duration::from_secs(60), "the alert for 3..=4", || {
        s.pg.psql("SELECT from_seq || '-' || to_seq FROM alerts WHERE gateway_id = 'reefer-g'")
            .map(|v| v.lines().any(|l| l == "3-4"))
            .unwrap_or(false)
    });
    wait_until(Duration::from_secs(10), "the alert on NATS", || {
        alerts
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.contains("\"gateway_id\":\"reefer-g\"") && a.contains("\"from_seq\":3"))
    });
    // The replay request reached the gateway, which published 3 and 4 again.
    wait_until(
        Duration::from_secs(60),
        "the gap closed and the alert cleared",
        || {
            s.pg.num("SELECT count(*) FROM gaps WHERE gateway_id = 'reefer-g'") == 0
            && s.pg.num(
                "SELECT count(*) FROM alerts WHERE gateway_id = 'reefer-g' AND cleared_at IS NULL",
            ) == 0
        },
    );
    assert_eq!(
        s.pg.num("SELECT count(*) FROM events WHERE gateway_id = 'reefer-g' AND seq IN (3, 4)"),
        2
    );
    let out = std::process::Command::new(FLEET)
        .args(["gaps", "--config"])
        .arg(&c)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no open gaps");
    gw.terminate(Duration::from_secs(20));
    w.terminate(Duration::from_secs(20));
}

fn delivery_row(pg: &Postgres, id: &str) -> Option<(i64, i64, i64, i64)> {
    let row = pg
        .psql(&format!(
            "SELECT contiguous_seq, highest_seq, events, duplicates FROM delivery WHERE gateway_id = '{id}'"
        ))
        .ok()?;
    let v: Vec<i64> = row.split('\t').filter_map(|x| x.parse().ok()).collect();
    (v.len() == 4).then(|| (v[0], v[1], v[2], v[3]))
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn nats_restarted_and_gateways_killed_or_resending_lose_nothing_and_duplicates_are_counted() {
    let mut s = servers();
    let c = s.config("a", "");
    s.migrate(&c);
    let mut w = start_worker(&c, &s.dir.path().join("worker-a.log"));
    let ids = ["reefer-1", "reefer-2"];
    let mut gws: Vec<_> = ids
        .iter()
        .map(|id| {
            start_gateway_with(
                s.dir.path(),
                id,
                &s.ca,
                s.nats.mqtt_port,
                "status_interval = \"1s\"",
            )
        })
        .collect();
    let highest = |s: &Servers, id: &str| delivery_row(&s.pg, id).map_or(0, |r| r.1);
    wait_until(Duration::from_secs(60), "3 events of each gateway", || {
        ids.iter().all(|id| highest(&s, id) >= 3)
    });

    // NATS away for 3 s while the gateways go on recording.
    s.nats.stop();
    std::thread::sleep(Duration::from_secs(3));
    s.nats.resume();
    let back = s.pg.psql("SELECT now()").unwrap();

    // A gateway SIGKILLed and started again on the same database: it
    // sends what was not acknowledged, again.
    gws[1].0.sigkill();
    let log = s.dir.path().join("reefer-2").join("gateway-restarted.log");
    gws[1].0 = coldgate_tests::start_gateway(GATEWAY, &gws[1].1, &log);

    // A gateway's deliberate resend: the replay of 1..=3 changes nothing
    // but the duplicates count.
    // The request goes over core NATS: it reaches the gateway only while
    // connected (the fleet re-sends it every gap_age). Wait for a status
    // published after NATS came back.
    wait_until(Duration::from_secs(90), "reefer-1 connected again", || {
        s.pg.psql(&format!(
            "SELECT last_status_at > '{back}' FROM delivery WHERE gateway_id = 'reefer-1'"
        ))
        .map(|v| v == "t")
        .unwrap_or(false)
    });
    let dups_before = delivery_row(&s.pg, "reefer-1").unwrap().3;
    rt().block_on(async {
        let n = async_nats::connect(s.nats.url()).await.unwrap();
        n.publish(
            "coldgate.v1.reefer-1.cmd.replay",
            r#"{"request_id":"t-1","from_seq":1,"to_seq":3}"#.into(),
        )
        .await
        .unwrap();
        n.flush().await.unwrap();
    });
    let marks: Vec<i64> = ids.iter().map(|id| highest(&s, id)).collect();
    wait_until(
        Duration::from_secs(90),
        "3 more events of each gateway",
        || {
            ids.iter()
                .zip(&marks)
                .all(|(id, m)| highest(&s, id) >= m + 3)
        },
    );
    wait_until(
        Duration::from_secs(30),
        "the replayed 1..=3 absorbed",
        || delivery_row(&s.pg, "reefer-1").unwrap().3 >= dups_before + 3,
    );
    for (g, _) in &mut gws {
        g.terminate(Duration::from_secs(20));
    }
    std::thread::sleep(Duration::from_secs(4));
    for id in ids {
        let (contig, high, events, _) = delivery_row(&s.pg, id).unwrap();
        assert_eq!(contig, high, "{id}: no gap");
        assert_eq!(events, high, "{id}: one row per seq");
        assert_eq!(
            s.pg.num(&format!(
                "SELECT count(DISTINCT seq) FROM events WHERE gateway_id = '{id}'"
            )),
            high,
            "{id}"
        );
    }
    assert_eq!(s.pg.num("SELECT count(*) FROM gaps"), 0);
    w.terminate(Duration::from_secs(20));
}
