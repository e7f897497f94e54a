//! Exposure across legs end to end: two real `coldgate run` gateways,
//! nats-server and PostgreSQL 15 (docs/fleet.md, "Exposure across legs").
//! Ignored in a plain `cargo test`; run by scripts/interop-fleet.sh with
//! `--ignored`.

mod harness;

use std::time::Duration;

use harness::*;

/// The gateways' refrigeration fails every 40 simulated minutes for 20, at
/// 300 simulated seconds per real second: one excursion of about 27 minutes
/// beyond 8 °C every 8 real seconds. The profile allows 40 minutes, so one
/// excursion per leg stays within it and two legs together pass it.
const ALLOWANCE_S: i64 = 40 * 60;

fn start(s: &Servers, id: &str) -> coldgate_tests::Proc {
    let limits = r#"limits = [{ quantity = "temperature", low = 2.0, high = 8.0, delay = "0s" }]"#;
    start_gateway_tuned(
        s.dir.path(),
        id,
        &s.ca,
        s.nats.mqtt_port,
        |c| c.speed = 300.0,
        |text| {
            assert!(text.contains(limits), "{text}");
            text.replace(
                limits,
                r#"limits = [{ quantity = "temperature", low = 2.0, high = 8.0, delay = "0s", high_budget = "40m" }]
mkt = { limit = 30.0 }"#,
            )
        },
    )
    .0
}

#[test]
#[ignore = "needs nats-server and PostgreSQL 15: scripts/interop-fleet.sh"]
fn two_legs_each_within_the_allowance_that_together_pass_it_raise_exactly_one_published_fleet_alert(
) {
    let s = servers();
    let c = s.config("a", "[verify]\ninterval = \"500ms\"\n");
    s.migrate(&c);
    let runtime = rt();
    let nats = runtime.block_on(async { async_nats::connect(s.nats.url()).await.unwrap() });
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let seen = published.clone();
    let mut sub =
        runtime.block_on(async { nats.subscribe("fleet.alerts.exposure").await.unwrap() });
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
    let mut gateways = [start(&s, a), start(&s, b)];
    wait_until(Duration::from_secs(60), "both gateways online", || {
        s.pg.num("SELECT count(*) FROM delivery WHERE last_status IS NOT NULL") == 2
    });
    let gtin = gs1_key("0950600013435");
    let p = gs1_key("03761234500000001");
    let sql = |q: &str| s.pg.psql(q).unwrap();

    // One leg: P loaded on `gw`, kept there until an excursion it was on
    // board for has ended, then unloaded just after that end (the
    // gateway's readings run in simulated time, ahead of the wall clock),
    // so that no later excursion is its.
    let leg = |gw: &str| {
        let on = serde_json::json!({"action": "load", "request_id": format!("p-on-{gw}"),
            "sscc": p, "zone": "rear",
            "items": [{"gtin": gtin, "lot": "L1", "expiry": "2027-06-30", "serials": []}]});
        let stays = |closed: bool| {
            s.pg.num(&format!(
                "SELECT count(*) FROM stays WHERE kind = 'sscc' AND gateway_id = '{gw}'
                   AND code = '{p}' AND (unloaded IS NOT NULL) = {closed}"
            ))
        };
        command_until(&runtime, &nats, gw, on, "P on board", || stays(false) == 1);
        let ended = || {
            sql(&format!(
                "SELECT to_char(max(ended_at) AT TIME ZONE 'UTC' + interval '1 second',
                                'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM lot_excursions WHERE lot = 'L1' AND gateway_id = '{gw}'"
            ))
        };
        wait_until(Duration::from_secs(30), "an excursion of P's ended", || {
            !ended().is_empty()
        });
        let off = serde_json::json!({"action": "unload", "request_id": format!("p-off-{gw}"),
            "sscc": p, "at": ended()});
        command_until(&runtime, &nats, gw, off, "P unloaded", || stays(true) == 1);
    };
    leg(a);
    leg(b);

    wait_until(Duration::from_secs(30), "the fleet alert published", || {
        !published.lock().unwrap().is_empty()
    });
    // Some more verification rounds: nothing else is published.
    std::thread::sleep(Duration::from_secs(2));
    let alerts = sql("SELECT kind, key FROM alerts ORDER BY id");
    assert_eq!(
        alerts,
        format!("budget_exhausted\tbudget_exhausted|{gtin}|L1|refrigerated/temperature/0|high"),
        "exactly one alert"
    );
    let published = published.lock().unwrap().clone();
    assert_eq!(published.len(), 1, "{published:#?}");
    let alert = &published[0];
    let share = |gw: &str| alert["per_gateway"][gw].as_i64().unwrap();
    let total = alert["out_of_range_s"].as_i64().unwrap();
    assert_eq!(alert["allowance_s"], ALLOWANCE_S, "{alert}");
    assert!(total >= ALLOWANCE_S, "{alert}");
    assert_eq!(share(a) + share(b), total, "{alert}");
    assert!(share(a) < ALLOWANCE_S && share(b) < ALLOWANCE_S, "{alert}");
    // The premise, from what the gateways themselves said: each saw the
    // lot's excursions and neither used up its allowance alone.
    assert_eq!(
        sql("SELECT gateway_id, count(*) > 0 FROM lot_excursions GROUP BY 1 ORDER BY 1"),
        format!("{a}\tt\n{b}\tt")
    );
    assert_eq!(
        sql("SELECT count(*) FROM events WHERE kind = 'lot' AND payload->>'phase' = 'exhausted'"),
        "0",
        "a gateway's own budget alert: a leg used the allowance up alone"
    );

    // The journey's MKT, from what each unload told.
    let out = run_fleet(&["lot", "L1", "--json"], &c);
    assert!(out.status.success(), "{out:?}");
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        sql("SELECT count(*) FROM lot_mkt"),
        "2",
        "one figure per unload"
    );
    let told = sql("SELECT min(mkt), max(mkt), sum(monitored_s) FROM lot_mkt");
    let told: Vec<f64> = told.split('\t').map(|v| v.parse().unwrap()).collect();
    let mkt = view["mkt"]["mkt"]
        .as_f64()
        .unwrap_or_else(|| panic!("{view:#}"));
    assert!(
        told[0] - 1e-9 <= mkt && mkt <= told[1] + 1e-9,
        "{mkt} {told:?}"
    );
    assert!(
        told[0] > 5.0,
        "warmer than the set point, excursions in it: {told:?}"
    );
    assert_eq!(
        view["mkt"]["monitored_s"].as_f64(),
        Some(told[2]),
        "{view:#}"
    );
    assert_eq!(view["verdict"], "Allowance exceeded", "{view:#}");

    for g in &mut gateways {
        g.terminate(Duration::from_secs(20));
    }
    w.terminate(Duration::from_secs(20));
}
