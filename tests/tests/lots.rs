//! Lot and serial linkage end to end: pallets loaded through the config, the
//! simulated rear zone driven into an excursion, and a subscriber on a real
//! broker sees exactly the pallets, lots and serials that were in that zone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use coldgate_tests::{free_port, start_broker, start_gateway, Subscriber};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let text = format!(
        r#"gateway_id = "lots-gw"
[storage]
path = "{db}"
[ingest]
batch_interval = "200ms"
[mqtt]
port = {port}
reconnect_min = "100ms"
reconnect_max = "1s"
[http]
listen = "127.0.0.1:0"
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m" }}]
[[zones]]
id = "front"
profile = "refrigerated"
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "front-1"
zone = "front"
kind = "sim"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2020-01-01T00:00:00Z"
items = [{{ gtin = "09520123456788", lot = "ABC123", expiry = "2030-12-31", serials = ["1001"] }}]
[[pallets]]
sscc = "106141412345678915"
zone = "rear"
loaded_at = "2020-01-01T00:00:00Z"
items = [{{ gtin = "09520123456795", lot = "ABC124", expiry = "2030-12-31", serials = ["1002"] }}]
[[pallets]]
sscc = "106141412345678922"
zone = "front"
loaded_at = "2020-01-01T00:00:00Z"
items = [{{ gtin = "09520123456788", lot = "XYZ999", expiry = "2030-12-31", serials = ["2001"] }}]
[sim]
speed = 600.0
reading_interval = "30s"
failures = [{{ zone = "rear", after = "5m", lasts = "30m" }}]
"#,
        db = dir.join("coldgate.redb").display()
    );
    let path = dir.join("coldgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn affected(ev: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for pallet in ev["affected"].as_array().expect("affected is a list") {
        for item in pallet["items"].as_array().expect("items") {
            for serial in item["serials"].as_array().expect("serials") {
                out.insert((
                    pallet["sscc"].as_str().unwrap_or("").to_string(),
                    item["gtin"].as_str().unwrap_or("").to_string(),
                    item["lot"].as_str().unwrap_or("").to_string(),
                    serial.as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excursion_names_exactly_the_pallets_lots_and_serials_in_its_zone() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut sub = Subscriber::connect(port, "coldgate/v1/lots-gw/events/excursion").await;
    let cfg = config(dir.path(), port);
    let mut gw = start_gateway(BIN, &cfg, &dir.path().join("gw.log"));

    let mut started = None;
    let mut ended = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && ended.is_none() {
        let Some((_, v)) = sub.next(Duration::from_secs(2)).await else {
            continue;
        };
        assert_eq!(v["zone"], "rear", "only the rear zone warms: {v}");
        match v["phase"].as_str() {
            Some("started") if started.is_none() => started = Some(v),
            Some("ended") => ended = Some(v),
            _ => {}
        }
    }
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let started = started.expect("an excursion started");
    let ended = ended.expect("an excursion ended");
    let expected: BTreeSet<_> = [
        ("106141412345678908", "09520123456788", "ABC123", "1001"),
        ("106141412345678915", "09520123456795", "ABC124", "1002"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(affected(&started), expected, "{started}");
    assert_eq!(affected(&ended), expected, "{ended}");
    for ev in [&started, &ended] {
        for pallet in ev["affected"].as_array().unwrap() {
            assert_eq!(pallet["zone"], "rear");
            assert!(
                pallet["items"][0]["expiry"]
                    .as_str()
                    .is_some_and(|e| e == "2030-12-31"),
                "{pallet}"
            );
        }
    }
    assert!(
        ended["mkt"].as_f64().is_some(),
        "an ended temperature excursion carries its MKT: {ended}"
    );
}
