//! The fleet's EPCIS export against a real PostgreSQL 15 (no NATS: the
//! batches go to the worker's own `apply_items`, as in tests/custody.rs).
//! A pallet moved from gateway A to gateway B, an excursion on A and a
//! silent sensor on B: the document of the pallet and of its lot must pass
//! GS1's EPCIS 2.0 JSON Schema (formats asserted) and name both legs, the
//! excursion's figures and the gap; the CLI and the HTTP endpoint give the
//! same document. Ignored in a plain `cargo test`; run by
//! scripts/interop-fleet.sh.

mod harness;

use std::sync::Arc;

use coldgate::event::payload::{
    to_bytes, Envelope, EventBody, Item as Line, Manifest, ManifestPallet,
};
use coldgate_fleet::epcis::{self, Subject};
use coldgate_fleet::ingest::{self, Item};
use coldgate_fleet::{migrate, worker};
use coldgate_tests::schema::check_epcis;
use harness::Postgres;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;

/// GS1's keys (valid check digits: the export refuses any other).
const SSCC: &str = "106141412345678908";
const GTIN: &str = "09520123456788";
const LOT: &str = "L1";

fn t(min: i64) -> OffsetDateTime {
    datetime!(2026-12-01 08:00 UTC) + time::Duration::minutes(min)
}

fn rfc(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn line() -> Line {
    Line {
        gtin: GTIN.into(),
        lot: LOT.into(),
        expiry: Some("2027-06-30".into()),
        serials: vec!["1001".into(), "1002".into()],
    }
}

fn manifest(gw: &str, at: i64, loaded: Option<i64>) -> Item {
    let pallets = loaded
        .map(|l| ManifestPallet {
            sscc: SSCC.into(),
            zone: "chilled".into(),
            profile: None,
            loaded_at: rfc(t(l)),
            items: vec![line()],
        })
        .into_iter()
        .collect();
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

/// An event of `gw` as a worker receives it from JetStream.
fn event(gw: &str, seq: u64, at: i64, body: EventBody) -> Item {
    let kind = body.kind_name();
    let e = Envelope {
        schema: format!("coldgate.{kind}/1"),
        event_id: format!("01J{gw}{seq:020}"),
        seq,
        gateway_id: gw.into(),
        at: rfc(t(at)),
        body,
        part: None,
        parts: None,
    };
    let nats = coldgate_fleet::config::Config::parse(
        "[nats]\nurl = \"nats://h:4222\"\n[postgres]\nurl = \"host=h\"\n",
        "t",
    )
    .unwrap()
    .nats;
    ingest::classify(
        &nats,
        &format!("cg.0.{gw}.events.{kind}"),
        &to_bytes(&e),
        seq,
    )
}

/// Gateway A's excursion on the pallet: 9 min beyond 8 °C, from 10 to 21.
fn excursion(phase: &str, at: i64) -> EventBody {
    EventBody::Excursion(
        serde_json::from_value(json!({
            "phase": phase,
            "excursion_id": "01JEXA",
            "sensor_id": "rear-1",
            "zone": "chilled",
            "quantity": "temperature",
            "unit": "CEL",
            "direction": "high",
            "limit": 8.0,
            "profile": "cold",
            "rule": "cold/temperature/0",
            "allowance_s": 1800,
            "started_at": rfc(t(10)),
            "ended_at": (phase == "ended").then(|| rfc(t(at))),
            "duration_s": if phase == "ended" { 540 } else { 120 },
            "min": 8.4,
            "max": 9.6,
            "mean": 9.1,
            "affected": [{"sscc": SSCC, "zone": "chilled", "items": [line()]}],
        }))
        .unwrap(),
    )
}

/// Gateway B's sensor silent from 40 to 46.
fn silent(phase: &str) -> EventBody {
    EventBody::Sensor(
        serde_json::from_value(json!({
            "phase": phase,
            "sensor_id": "front-1",
            "zone": "chilled",
            "last_seen_at": rfc(t(40)),
            "gap_s": if phase == "back" { 360 } else { 60 },
            "silence_limit_s": 60,
        }))
        .unwrap(),
    )
}

/// P on A from 1 to 30 (an excursion there), on B from 35 (a gap there).
fn journey() -> Vec<Item> {
    vec![
        manifest("gw-a", 0, None),
        manifest("gw-a", 1, Some(1)),
        event("gw-a", 1, 12, excursion("started", 12)),
        event("gw-a", 2, 21, excursion("ended", 21)),
        manifest("gw-a", 30, None),
        manifest("gw-b", 35, Some(35)),
        event("gw-b", 1, 41, silent("silent")),
        event("gw-b", 2, 46, silent("back")),
    ]
}

fn events(doc: &Value) -> Vec<&Value> {
    doc["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

fn report(e: &Value) -> &Value {
    &e["sensorElementList"][0]["sensorReport"][0]
}

/// What every export of this journey must say, whichever subject.
fn assert_both_legs(doc: &Value) {
    check_epcis(doc).unwrap_or_else(|e| panic!("{e}\n{doc:#}"));
    let sscc_uri = format!("https://id.gs1.org/00/{SSCC}");
    let sgtin = format!("https://id.gs1.org/01/{GTIN}/21/1001");
    let evs = events(doc);
    let steps: Vec<(&str, &str)> = evs
        .iter()
        .map(|e| {
            (
                e["bizStep"].as_str().unwrap(),
                e["readPoint"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("loading", "urn:coldgate:location:gw-a:chilled"),
            ("sensor_reporting", "urn:coldgate:location:gw-a:chilled"),
            ("unloading", "urn:coldgate:location:gw-a:chilled"),
            ("loading", "urn:coldgate:location:gw-b:chilled"),
            ("sensor_reporting", "urn:coldgate:location:gw-b:chilled"),
        ],
        "{doc:#}"
    );
    for e in &evs {
        let epcs = e["epcList"].as_array().unwrap();
        assert!(epcs.contains(&json!(sscc_uri)), "{e:#}");
        assert!(epcs.contains(&json!(sgtin)), "{e:#}");
    }
    assert_eq!(evs[0]["eventTime"], "2026-12-01T08:01:00.000Z");
    assert_eq!(
        evs[0]["bizLocation"]["id"],
        "urn:coldgate:location:gw-a:chilled"
    );
    assert_eq!(
        evs[0]["cg:lots"],
        json!([format!("https://id.gs1.org/01/{GTIN}/10/{LOT}")])
    );
    assert_eq!(evs[2]["eventTime"], "2026-12-01T08:30:00.000Z");
    assert!(evs[2].get("bizLocation").is_none());
    assert_eq!(evs[3]["eventTime"], "2026-12-01T08:35:00.000Z");

    // The excursion: the ended event's figures, once.
    let alarm = report(evs[1]);
    assert_eq!(alarm["exception"], "ALARM_CONDITION");
    assert_eq!(
        (&alarm["type"], &alarm["uom"]),
        (&json!("Temperature"), &json!("CEL"))
    );
    assert_eq!(
        (&alarm["minValue"], &alarm["maxValue"], &alarm["meanValue"]),
        (&json!(8.4), &json!(9.6), &json!(9.1))
    );
    assert_eq!(alarm["cg:rule"], "high 8 °C");
    assert_eq!(alarm["cg:ruleId"], "cold/temperature/0");
    assert_eq!(alarm["cg:durationSeconds"], 540);
    assert_eq!(alarm["cg:allowanceSeconds"], 1800);
    assert_eq!(alarm["cg:ongoing"], false);
    let meta = &evs[1]["sensorElementList"][0]["sensorMetadata"];
    assert_eq!(meta["startTime"], "2026-12-01T08:10:00.000Z");
    assert_eq!(meta["endTime"], "2026-12-01T08:21:00.000Z");
    assert_eq!(meta["deviceID"], "urn:coldgate:sensor:gw-a:rear-1");

    // The gap on B: no values, its span and cause.
    let gap = report(evs[4]);
    assert_eq!(gap["exception"], "ERROR_CONDITION");
    assert_eq!(gap["cg:gapCause"], "sensor_silent");
    assert_eq!(gap["cg:gapSeconds"], 360);
    assert!(gap.get("minValue").is_none());
    assert_eq!(
        evs[4]["sensorElementList"][0]["sensorMetadata"]["deviceID"],
        "urn:coldgate:sensor:gw-b:front-1"
    );
    // A record with a gap is never shown as clean.
    assert_eq!(doc["cg:verdict"], "Record incomplete", "{doc:#}");
    assert_eq!(doc["sender"], "coldgate-fleet");
}

#[test]
#[ignore = "needs PostgreSQL 15: scripts/interop-fleet.sh"]
fn a_pallet_moved_across_two_gateways_exports_both_legs_as_valid_epcis() {
    let dir = tempfile::Builder::new()
        .prefix("fleet-epcis")
        .tempdir()
        .unwrap();
    let pg = Postgres::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config_path =
        harness::fleet_config(dir.path(), "epcis", "nats://127.0.0.1:1", &pg.url(), "");
    let config = coldgate_fleet::config::Config::load(&config_path).unwrap();
    rt.block_on(async {
        let mut c = worker::pg_connect(&config).await.unwrap();
        migrate::migrate(&mut c).await.unwrap();
        // One batch per message, B's before A's (arrival order is the
        // fleet's, not the journey's).
        let mut items = journey();
        items.rotate_left(5);
        for i in &items {
            worker::apply_items(&mut c, std::slice::from_ref(i), OffsetDateTime::now_utc())
                .await
                .unwrap();
        }
        let now = t(60);
        let by_sscc = epcis::document(&c, &Subject::Sscc(SSCC.into()), now)
            .await
            .unwrap();
        let by_sscc = serde_json::to_value(&by_sscc).unwrap();
        assert_both_legs(&by_sscc);
        assert_eq!(by_sscc["cg:subject"], format!("pallet SSCC {SSCC}"));
        let by_lot = serde_json::to_value(
            epcis::document(&c, &Subject::Lot(LOT.into()), now)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_both_legs(&by_lot);
        // The same stays are the same events, whichever subject asked (a
        // sensor report's id names its subject: it says what concerned it).
        let ids =
            |d: &Value| -> Vec<Value> { events(d).iter().map(|e| e["eventID"].clone()).collect() };
        let (s, l) = (ids(&by_sscc), ids(&by_lot));
        assert_eq!([&s[0], &s[2], &s[3]], [&l[0], &l[2], &l[3]]);
        assert_ne!(s[1], l[1]);
        let unknown = epcis::document(&c, &Subject::Lot("NOPE".into()), now).await;
        assert!(
            matches!(unknown, Err(epcis::EpcisError::Unknown(_))),
            "{unknown:?}"
        );

        // The HTTP endpoint, served by the fleet's own router.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = coldgate_fleet::api::router(Arc::new(config.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (status, ctype, body) = tokio::task::spawn_blocking(move || {
            let mut r = ureq::get(&format!("http://{addr}/v1/epcis/sscc/{SSCC}"))
                .call()
                .unwrap();
            let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
            let status = r.status().as_u16();
            (status, ctype, r.body_mut().read_to_string().unwrap())
        })
        .await
        .unwrap();
        assert_eq!((status, ctype.as_str()), (200, "application/ld+json"));
        let over_http: Value = serde_json::from_str(&body).unwrap();
        assert_both_legs(&over_http);
        assert_eq!(ids(&over_http), ids(&by_sscc));
        let missing = tokio::task::spawn_blocking(move || {
            ureq::get(&format!("http://{addr}/v1/epcis/lot/NOPE")).call()
        })
        .await
        .unwrap();
        assert!(
            matches!(missing, Err(ureq::Error::StatusCode(404))),
            "{missing:?}"
        );
    });

    // The CLI: the same document on stdout.
    let out = harness::run_fleet(&["epcis", "--lot", LOT], &config_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_both_legs(&printed);
    assert_eq!(printed["cg:subject"], format!("lot {LOT}"));
}
