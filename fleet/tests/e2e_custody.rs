//! Custody end to end: two real `coldgate run` gateways, nats-server and
//! PostgreSQL 15 (docs/fleet.md, "Custody"). Ignored in a plain `cargo
//! test`; run by scripts/interop-fleet.sh with `--ignored`.

mod harness;

use std::time::Duration;

use harness::*;

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn pallets_moved_doubled_and_relabelled_between_two_real_gateways_raise_exactly_their_custody_alerts_in_any_delivery_order(
) {
    let s = servers();
    let c = s.config("a", "[verify]\ninterval = \"500ms\"\n");
    s.migrate(&c);
    let runtime = rt();
    let nats = runtime.block_on(async { async_nats::connect(s.nats.url()).await.unwrap() });
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let seen = published.clone();
    let mut sub = runtime.block_on(async { nats.subscribe("fleet.alerts.custody").await.unwrap() });
    runtime.spawn(async move {
        use futures::StreamExt;
        while let Some(m) = sub.next().await {
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&m.payload).unwrap());
        }
    });
    let mut w = start_worker(&c, &s.dir.path().join("worker-a.log"));
    let (a, b) = ("reefer-a", "reefer-b");
    let mut gateways: Vec<_> = [a, b]
        .iter()
        .map(|id| start_gateway(s.dir.path(), id, &s.ca, s.nats.mqtt_port).0)
        .collect();
    wait_until(Duration::from_secs(60), "both gateways online", || {
        s.pg.num("SELECT count(*) FROM delivery WHERE last_status IS NOT NULL") == 2
    });
    let gtin = gs1_key("0950600013435");
    let (p, q, r) = (
        gs1_key("03761234500000001"),
        gs1_key("03761234500000002"),
        gs1_key("03761234500000003"),
    );
    let load = |id: &str, sscc: &str, lot: &str, serial: Option<&str>| {
        serde_json::json!({"action": "load", "request_id": id, "sscc": sscc, "zone": "rear",
            "items": [{"gtin": gtin, "lot": lot, "expiry": "2027-06-30",
                       "serials": serial.into_iter().collect::<Vec<_>>()}]})
    };
    let unload = |id: &str, sscc: &str| serde_json::json!({"action": "unload", "request_id": id, "sscc": sscc});
    let stays = |gw: &str, sscc: &str, closed: bool| {
        s.pg.num(&format!(
            "SELECT count(*) FROM stays WHERE kind = 'sscc' AND gateway_id = '{gw}' AND code = '{sscc}'
               AND (unloaded IS NOT NULL) = {closed}"
        ))
    };

    // P (serial S1, lot L1) moves from A to B: unloaded from A, then loaded on B.
    command_until(
        &runtime,
        &nats,
        a,
        load("p-on-a", &p, "L1", Some("S1")),
        "P on A",
        || stays(a, &p, false) == 1,
    );
    command_until(&runtime, &nats, a, unload("p-off-a", &p), "P off A", || {
        stays(a, &p, true) == 1
    });
    command_until(
        &runtime,
        &nats,
        b,
        load("p-on-b", &p, "L1", Some("S1")),
        "P on B",
        || stays(b, &p, false) == 1,
    );
    // Q on A and on B at once.
    command_until(
        &runtime,
        &nats,
        a,
        load("q-on-a", &q, "L9", None),
        "Q on A",
        || stays(a, &q, false) == 1,
    );
    command_until(
        &runtime,
        &nats,
        b,
        load("q-on-b", &q, "L9", None),
        "Q on B",
        || stays(b, &q, false) == 1,
    );
    // P leaves B; S1 comes back on A in pallet R under another lot.
    command_until(&runtime, &nats, b, unload("p-off-b", &p), "P off B", || {
        stays(b, &p, true) == 1
    });
    command_until(
        &runtime,
        &nats,
        a,
        load("r-on-a", &r, "L2", Some("S1")),
        "R on A",
        || stays(a, &r, false) == 1,
    );

    let open = || {
        s.pg.psql("SELECT kind || ' ' || (detail->>'code') FROM alerts WHERE cleared_at IS NULL ORDER BY 1")
            .unwrap()
    };
    let want = format!("custody_overlap {q}\nrelabelled {gtin}/S1");
    wait_until(Duration::from_secs(30), "the two alerts published", || {
        published.lock().unwrap().len() >= 2
    });
    assert_eq!(open(), want, "exactly these alerts, none for P's move");
    let published = published.lock().unwrap().clone();
    assert_eq!(published.len(), 2, "{published:#?}");
    let overlap = published
        .iter()
        .find(|a| a["kind"] == "custody_overlap")
        .unwrap();
    let places: Vec<&str> = overlap["places"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["gateway_id"].as_str().unwrap())
        .collect();
    assert_eq!(places, [a, b], "{overlap}");
    let relabel = published
        .iter()
        .find(|a| a["kind"] == "relabelled")
        .unwrap();
    assert_eq!(
        (
            &relabel["first"]["lot"],
            &relabel["then"]["lot"],
            &relabel["then"]["sscc"]
        ),
        (
            &serde_json::json!("L1"),
            &serde_json::json!("L2"),
            &serde_json::json!(r)
        ),
        "{relabel}"
    );
    for g in &mut gateways {
        g.terminate(Duration::from_secs(20));
    }
    w.terminate(Duration::from_secs(20));

    // What the gateways really sent, delivered again to a fresh database
    // out of order (newest first) and then all again in one batch: the
    // same stays and the same open alerts.
    let config = coldgate_fleet::config::Config::load(&c).unwrap();
    let sql = |q: &str| s.pg.psql(q).unwrap();
    let live = (
        sql("SELECT kind, key FROM alerts WHERE cleared_at IS NULL AND key IS NOT NULL ORDER BY key"),
        sql("SELECT kind, code, gateway_id, loaded, unloaded FROM stays ORDER BY 1, 2, 3, 4"),
    );
    sql("CREATE DATABASE replay");
    let replayed = runtime.block_on(async {
        let js = async_nats::jetstream::new(nats.clone());
        let mut stream = js.get_stream("COLDGATE").await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut items = Vec::new();
        for n in 1..=last {
            if let Ok(m) = stream.get_raw_message(n).await {
                items.push(coldgate_fleet::ingest::classify(
                    &config.nats,
                    m.subject.as_str(),
                    &m.payload,
                    n,
                ));
            }
        }
        let url = s.pg.url().replace("dbname=postgres", "dbname=replay");
        let (mut pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        coldgate_fleet::migrate::migrate(&mut pg).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        for batch in items
            .iter()
            .rev()
            .map(std::slice::from_ref)
            .chain([&items[..]])
        {
            coldgate_fleet::worker::apply_items(&mut pg, batch, now)
                .await
                .unwrap();
        }
        items.len()
    });
    assert!(replayed > 20, "{replayed} messages in the stream");
    let in_replay = |q: &str| s.pg.psql_in("replay", q).unwrap();
    assert_eq!(
        (
            in_replay("SELECT kind, key FROM alerts WHERE cleared_at IS NULL AND key IS NOT NULL ORDER BY key"),
            in_replay("SELECT kind, code, gateway_id, loaded, unloaded FROM stays ORDER BY 1, 2, 3, 4"),
        ),
        live,
        "delivered newest first and twice"
    );
}
