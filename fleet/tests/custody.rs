//! Custody against a real PostgreSQL 15 (no NATS: the batches are handed
//! to the worker's own `apply_items`, as a worker would after a fetch).
//! What only the database can show: the result of any arrival order and
//! batching is the same, and the exclusion constraint catches two workers
//! inserting the same SSCC for two gateways at the same moment. Ignored in
//! a plain `cargo test`; run by scripts/interop-fleet.sh.

mod harness;

use coldgate::event::payload::{
    to_bytes, Audit, AuditKind, Envelope, EventBody, Item as Line, Manifest, ManifestPallet,
};
use coldgate_fleet::ingest::{self, Item};
use coldgate_fleet::{custody, migrate, worker};
use harness::Postgres;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;
use tokio_postgres::{Client, NoTls};

const GTIN: &str = "09506000134352";

fn t(min: i64) -> OffsetDateTime {
    datetime!(2026-12-01 08:00 UTC) + time::Duration::minutes(min)
}

fn rfc(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

/// A pallet `sscc` loaded at `loaded` carrying `lot` (serial S1 when
/// `serial`), expiring on `expiry`.
fn pallet(sscc: &str, loaded: i64, lot: &str, expiry: &str, serial: bool) -> ManifestPallet {
    ManifestPallet {
        sscc: sscc.into(),
        zone: "chilled".into(),
        profile: None,
        loaded_at: rfc(t(loaded)),
        items: vec![Line {
            gtin: GTIN.into(),
            lot: lot.into(),
            expiry: Some(expiry.into()),
            serials: if serial { vec!["S1".into()] } else { vec![] },
        }],
    }
}

fn manifest(gw: &str, at: i64, pallets: Vec<ManifestPallet>) -> Item {
    let m = Manifest {
        schema: "coldgate.manifest/1".into(),
        gateway_id: gw.into(),
        at: rfc(t(at)),
        pallets,
        part: None,
        parts: None,
    };
    Item::Manifest {
        gateway: gw.into(),
        at: t(at),
        payload: serde_json::to_value(&m).unwrap(),
    }
}

fn unload(gw: &str, seq: u64, at: i64, sscc: &str) -> Item {
    let e = Envelope {
        schema: "coldgate.audit/1".into(),
        event_id: format!("01J{gw}{seq:020}"),
        seq,
        gateway_id: gw.into(),
        at: rfc(t(at)),
        body: EventBody::Audit(Audit {
            phase: AuditKind::ManifestCommand,
            audit_seq: seq,
            actor: "mqtt".into(),
            details: serde_json::json!({"request_id": format!("u{seq}"), "action": "unload",
                "sscc": sscc, "accepted": true, "problems": null}),
            audit_head: None,
            lot_mkt: vec![],
        }),
        part: None,
        parts: None,
    };
    let payload = to_bytes(&e);
    let subject = format!("cg.0.{gw}.events.audit");
    let nats = coldgate_fleet::config::Config::parse(
        "[nats]\nurl = \"nats://h:4222\"\n[postgres]\nurl = \"host=h\"\n",
        "t",
    )
    .unwrap()
    .nats;
    ingest::classify(&nats, &subject, &payload, seq)
}

/// A journey with every kind of custody fact, as two gateways report it:
/// P moves from A to B (no alert); Q is on A and B at once (one overlap);
/// serial S1 comes back on B under lot L2 (relabelled); lot LX is loaded
/// after its expiry; lot LR is recalled.
fn journey() -> Vec<Item> {
    vec![
        manifest("gw-a", 0, vec![]),
        manifest("gw-a", 1, vec![pallet("P", 1, "L1", "2027-06-30", true)]),
        manifest("gw-a", 5, vec![]),
        manifest("gw-b", 6, vec![pallet("P", 6, "L1", "2027-06-30", true)]),
        manifest("gw-a", 10, vec![pallet("Q", 10, "L9", "2027-06-30", false)]),
        manifest(
            "gw-b",
            12,
            vec![
                pallet("P", 6, "L1", "2027-06-30", true),
                pallet("Q", 12, "L9", "2027-06-30", false),
            ],
        ),
        unload("gw-a", 1, 15, "Q"),
        manifest("gw-a", 15, vec![]),
        manifest(
            "gw-b",
            20,
            vec![
                pallet("Q", 12, "L9", "2027-06-30", false),
                pallet("R", 20, "L2", "2027-06-30", true),
                pallet("X", 20, "LX", "2026-11-01", false),
                pallet("Y", 20, "LR", "2027-06-30", false),
            ],
        ),
    ]
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// A fresh database `name` in the cluster, migrated.
async fn database(pg: &Postgres, name: &str) -> Client {
    pg.psql(&format!("CREATE DATABASE {name}")).unwrap();
    let mut c = connect(
        &pg.url()
            .replace("dbname=postgres", &format!("dbname={name}")),
    )
    .await;
    migrate::migrate(&mut c).await.unwrap();
    c
}

async fn apply(c: &mut Client, batch: &[Item]) {
    worker::apply_items(c, batch, OffsetDateTime::now_utc())
        .await
        .unwrap();
}

/// What must not depend on arrival: the open alerts and every stay's
/// interval.
async fn outcome(c: &Client) -> (Vec<(String, String)>, Vec<String>) {
    let alerts = c
        .query(
            "SELECT kind, key FROM alerts WHERE cleared_at IS NULL ORDER BY key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let stays = c
        .query(
            "SELECT concat_ws(' ', kind, code, gateway_id, lot, loaded, unloaded) FROM stays ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (alerts, stays)
}

fn start_pg() -> (tempfile::TempDir, Postgres) {
    let dir = tempfile::Builder::new()
        .prefix("fleet-custody")
        .tempdir()
        .unwrap();
    let pg = Postgres::start(dir.path());
    (dir, pg)
}

#[test]
#[ignore = "needs PostgreSQL 15: scripts/interop-fleet.sh"]
fn any_arrival_order_and_batching_gives_the_same_custody_and_alerts() {
    let (_dir, pg) = start_pg();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let items = journey();
        // In order, one message per batch; the recall before the lot arrives.
        let mut forward = database(&pg, "forward").await;
        custody::recall(&mut forward, None, "LR", "supplier recall")
            .await
            .unwrap();
        for i in &items {
            apply(&mut forward, std::slice::from_ref(i)).await;
        }
        let want = outcome(&forward).await;
        let kinds: Vec<&str> = want.0.iter().map(|a| a.0.as_str()).collect();
        let mut sorted = kinds.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ["custody_overlap", "lot_expired", "recalled", "relabelled"],
            "{want:#?}"
        );
        let overlap = forward
            .query_one(
                "SELECT detail FROM alerts WHERE kind = 'custody_overlap'",
                &[],
            )
            .await
            .unwrap();
        let detail: serde_json::Value = overlap.get(0);
        assert_eq!(detail["code"], "Q", "{detail}");
        assert_eq!(detail["places"][0]["gateway_id"], "gw-a", "{detail}");
        assert_eq!(detail["places"][1]["gateway_id"], "gw-b", "{detail}");

        // Reversed, one per batch, every message twice; the recall last.
        let mut reverse = database(&pg, "reverse").await;
        for i in items.iter().rev() {
            apply(&mut reverse, std::slice::from_ref(i)).await;
            apply(&mut reverse, std::slice::from_ref(i)).await;
        }
        custody::recall(&mut reverse, None, "LR", "supplier recall")
            .await
            .unwrap();
        assert_eq!(outcome(&reverse).await, want, "reversed");

        // Interleaved as two partitions would deliver them: each gateway in
        // its own order, B's entirely before A's, in batches of three.
        let mut split = database(&pg, "split").await;
        custody::recall(&mut split, None, "LR", "supplier recall")
            .await
            .unwrap();
        let (b, a): (Vec<Item>, Vec<Item>) = items.iter().cloned().partition(|i| match i {
            Item::Manifest { gateway, .. } => gateway == "gw-b",
            _ => false,
        });
        for batch in b.chunks(3).chain(a.chunks(3)) {
            apply(&mut split, batch).await;
        }
        assert_eq!(outcome(&split).await, want, "gateway B first");

        // All in one batch.
        let mut once = database(&pg, "once").await;
        custody::recall(&mut once, None, "LR", "supplier recall")
            .await
            .unwrap();
        apply(&mut once, &items).await;
        assert_eq!(outcome(&once).await, want, "one batch");
    });
}

/// A pallet `sscc` loaded at `loaded` carrying `serial` under `lot`.
fn serialised(sscc: &str, loaded: i64, lot: &str, serial: &str) -> ManifestPallet {
    let mut p = pallet(sscc, loaded, lot, "2027-06-30", true);
    p.items[0].serials = vec![serial.into()];
    p
}

async fn open_alerts(c: &Client) -> Vec<String> {
    c.query(
        "SELECT kind || ' ' || (detail->>'code') FROM alerts WHERE cleared_at IS NULL ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
#[ignore = "needs PostgreSQL 15: scripts/interop-fleet.sh"]
fn only_codes_on_two_gateways_or_under_two_labels_are_recomputed_and_their_alerts_still_follow() {
    let (_dir, pg) = start_pg();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = database(&pg, "few").await;
        // P on gw-a from minute 1 (no end known yet), then on gw-b from 6:
        // one overlap. S2 relabelled on gw-a itself (L1, then L2 on Z).
        // S3 and pallet Z stay on one gateway under one label.
        apply(
            &mut c,
            &[manifest(
                "gw-a",
                1,
                vec![
                    serialised("P", 1, "L1", "S1"),
                    serialised("W", 1, "L1", "S2"),
                ],
            )],
        )
        .await;
        apply(
            &mut c,
            &[manifest("gw-b", 6, vec![serialised("P", 6, "L1", "S1")])],
        )
        .await;
        apply(
            &mut c,
            &[manifest(
                "gw-a",
                8,
                vec![
                    serialised("P", 1, "L1", "S1"),
                    serialised("W", 1, "L1", "S2"),
                    {
                        let mut z = serialised("Z", 8, "L2", "S2");
                        z.items[0].serials.push("S3".into());
                        z
                    },
                ],
            )],
        )
        .await;
        let serial = |s: &str| format!("{GTIN}/{s}");
        let mut want = vec![
            "custody_overlap P".to_string(),
            format!("custody_overlap {}", serial("S1")),
            format!("relabelled {}", serial("S2")),
        ];
        want.sort();
        assert_eq!(open_alerts(&c).await, want);
        let touched: std::collections::BTreeSet<(String, String)> = [
            ("sscc", "P"),
            ("sscc", "W"),
            ("sscc", "Z"),
            ("sgtin", serial("S1").as_str()),
            ("sgtin", serial("S2").as_str()),
            ("sgtin", serial("S3").as_str()),
        ]
        .iter()
        .map(|(k, c)| (k.to_string(), c.to_string()))
        .collect();
        let tx = c.transaction().await.unwrap();
        let recomputed = custody::codes_that_can_alert(&tx, &touched).await.unwrap();
        tx.commit().await.unwrap();
        let recomputed: Vec<(&str, &str)> = recomputed
            .iter()
            .map(|(k, c)| (k.as_str(), c.as_str()))
            .collect();
        assert_eq!(
            recomputed,
            [
                ("sgtin", serial("S1").as_str()),
                ("sgtin", serial("S2").as_str()),
                ("sscc", "P"),
            ]
        );
        // gw-a's manifest at 5 (learnt late) no longer lists P: P left
        // gw-a before gw-b loaded it, and both overlaps are withdrawn.
        apply(
            &mut c,
            &[manifest("gw-a", 5, vec![serialised("W", 1, "L1", "S2")])],
        )
        .await;
        assert_eq!(
            open_alerts(&c).await,
            [format!("relabelled {}", serial("S2"))]
        );
    });
}

/// A worker that dies after delivery committed and before custody did
/// leaves the batch unacked; its redelivery must redo custody in full.
#[test]
#[ignore = "needs PostgreSQL 15: scripts/interop-fleet.sh"]
fn a_crash_between_the_delivery_and_the_custody_commit_loses_no_custody_on_redelivery() {
    let (_dir, pg) = start_pg();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let items = journey();
        let mut whole = database(&pg, "whole").await;
        for batch in items.chunks(2) {
            apply(&mut whole, batch).await;
        }
        let want = outcome(&whole).await;
        assert!(!want.0.is_empty() && !want.1.is_empty(), "{want:?}");

        let mut crashed = database(&pg, "crashed").await;
        for batch in items.chunks(2) {
            let tx = crashed.transaction().await.unwrap();
            worker::apply_delivery(&tx, batch, OffsetDateTime::now_utc())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(
            outcome(&crashed).await,
            (vec![], vec![]),
            "nothing of custody yet"
        );
        for batch in items.chunks(2) {
            apply(&mut crashed, batch).await;
        }
        assert_eq!(outcome(&crashed).await, want, "redelivered");
        let counted: (i64, i64) = {
            let r = crashed
                .query_one(
                    "SELECT events, duplicates FROM delivery WHERE gateway_id = 'gw-a'",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(
            counted,
            (1, 1),
            "the unload stored once, its redelivery counted"
        );
    });
}

#[test]
#[ignore = "needs PostgreSQL 15: scripts/interop-fleet.sh"]
fn two_workers_storing_one_sscc_for_two_gateways_at_once_raise_one_alert() {
    let (_dir, pg) = start_pg();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut one = database(&pg, "race").await;
        let url = pg.url().replace("dbname=postgres", "dbname=race");
        let mut two = connect(&url).await;
        // Worker one holds its transaction open with gw-a's stay in it;
        // worker two stores gw-b's stay of the same SSCC meanwhile. Neither
        // sees the other's row by query: only the constraint can tell.
        // Custody's own transaction (delivery commits before it, apart).
        let tx1 = one.transaction().await.unwrap();
        worker::apply_custody(
            &tx1,
            &[manifest(
                "gw-a",
                1,
                vec![pallet("P", 1, "L1", "2027-06-30", false)],
            )],
        )
        .await
        .unwrap();
        let second = tokio::spawn(async move {
            let tx2 = two.transaction().await.unwrap();
            worker::apply_custody(
                &tx2,
                &[manifest(
                    "gw-b",
                    2,
                    vec![pallet("P", 2, "L1", "2027-06-30", false)],
                )],
            )
            .await
            .unwrap();
            tx2.commit().await.unwrap();
        });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        tx1.commit().await.unwrap();
        second.await.unwrap();
        let c = connect(&url).await;
        let (alerts, stays) = outcome(&c).await;
        assert_eq!(stays.len(), 2, "both observations kept: {stays:?}");
        assert_eq!(
            alerts.iter().filter(|a| a.0 == "custody_overlap").count(),
            1,
            "{alerts:?}"
        );
        let flagged = c
            .query_one("SELECT count(*) FROM stays WHERE conflict", &[])
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(
            flagged, 1,
            "the second stay is kept outside the clean record"
        );
    });
}

/// An `events/excursion` of `gw` as the gateway publishes it, on the lot
/// L1 carried by pallet P: `duration_s` beyond the high limit so far.
fn excursion(gw: &str, seq: u64, id: &str, duration_s: i64, ended: bool) -> Item {
    let phase = if ended { "ended" } else { "started" };
    let end = if ended {
        serde_json::json!({"ended_at": rfc(t(60)), "back_in_range_at": rfc(t(60)),
                           "degree_minutes": 40.0, "mkt": 9.5})
    } else {
        serde_json::json!({"ended_at": null})
    };
    let mut e = serde_json::json!({
        "schema": "coldgate.excursion/1", "event_id": format!("01J{gw}X{seq:019}"), "seq": seq,
        "gateway_id": gw, "at": rfc(t(if ended { 60 } else { 10 })),
        "phase": phase, "excursion_id": id, "sensor_id": "rear-0", "zone": "chilled",
        "quantity": "temperature", "unit": "°C", "direction": "high", "limit": 8.0,
        "profile": "refrigerated", "rule": "refrigerated/temperature/0", "allowance_s": 3600,
        "started_at": rfc(t(5)), "duration_s": duration_s, "unknown_s": 0,
        "min": 8.5, "max": 10.0, "mean": 9.2,
        "affected": [{"sscc": "P", "zone": "chilled",
                      "items": [{"gtin": GTIN, "lot": "L1", "expiry": "2027-06-30", "serials": []}]}]
    });
    for (k, v) in end.as_object().unwrap() {
        e[k] = v.clone();
    }
    let nats = coldgate_fleet::config::Config::parse(
        "[nats]\nurl = \"nats://h:4222\"\n[postgres]\nurl = \"host=h\"\n",
        "t",
    )
    .unwrap()
    .nats;
    let item = ingest::classify(
        &nats,
        &format!("cg.0.{gw}.events.excursion"),
        &serde_json::to_vec(&e).unwrap(),
        seq,
    );
    assert!(matches!(item, Item::Event(_)), "{item:?}");
    item
}

#[test]
#[ignore = "needs PostgreSQL 15: scripts/interop-fleet.sh"]
fn two_legs_within_budget_that_together_exceed_it_raise_one_fleet_alert_in_any_order() {
    let (_dir, pg) = start_pg();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // 40 min beyond the limit on A, 30 min on B (each reported growing,
        // then ended); the allowance is 60 min.
        let items = vec![
            manifest("gw-a", 0, vec![pallet("P", 0, "L1", "2027-06-30", false)]),
            excursion("gw-a", 1, "ex-1", 600, false),
            excursion("gw-a", 2, "ex-1", 2400, true),
            manifest("gw-a", 70, vec![]),
            manifest("gw-b", 80, vec![pallet("P", 80, "L1", "2027-06-30", false)]),
            excursion("gw-b", 1, "ex-1", 1800, true),
        ];
        let mut results = Vec::new();
        for (name, order) in [
            ("inorder", items.clone()),
            (
                "reversed_twice",
                items.iter().rev().chain(items.iter()).cloned().collect(),
            ),
        ] {
            let mut c = database(&pg, name).await;
            for i in &order {
                apply(&mut c, std::slice::from_ref(i)).await;
            }
            let alerts = c
                .query(
                    "SELECT detail FROM alerts WHERE kind = 'budget_exhausted'",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(alerts.len(), 1, "{name}: one fleet alert");
            let d: serde_json::Value = alerts[0].get(0);
            assert_eq!(d["out_of_range_s"], 4200, "{name}: {d}");
            assert_eq!(d["per_gateway"]["gw-a"], 2400, "{name}: {d}");
            let view = coldgate_fleet::exposure::lot_view(&c, "L1").await.unwrap();
            assert_eq!(view.legs.len(), 2, "{name}: {view:?}");
            assert_eq!(view.verdict, "Allowance exceeded", "{name}");
            results.push(serde_json::to_value(&view.budgets).unwrap());
        }
        assert_eq!(results[0], results[1]);

        // The operator's view of the same journey.
        let config = harness::fleet_config(
            _dir.path(),
            "lot",
            "nats://127.0.0.1:1",
            &pg.url().replace("dbname=postgres", "dbname=inorder"),
            "",
        );
        let out = harness::run_fleet(&["lot", "L1"], &config);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.matches("  leg  ").count(), 2, "{text}");
        assert!(
            text.contains(
                "refrigerated/temperature/0 high  70 min of 60 min  (gw-a 40 min, gw-b 30 min)"
            ),
            "{text}"
        );
        assert!(text.contains("verdict: Allowance exceeded"), "{text}");
        assert!(
            text.contains("MKT over all legs unknown ("),
            "no unload told an MKT: {text}"
        );
    });
}
