use std::sync::Arc;

use coldgate_sensor_drivers::{Quantity, Reading};

use super::*;
use crate::excursion::{Engine, Tracker};
use crate::manifest::{Item, LoadCommand, Manifest};
use crate::store::Batch;

const SSCC: &str = "106141412345678908";
const GTIN: &str = "09520123456788";

fn load(m: &mut Manifest, at: i64, unloaded: Option<i64>, lot: &str, serials: &[String]) {
    m.load(LoadCommand {
        sscc: SSCC.into(),
        zone: "rear".into(),
        profile: None,
        loaded_at_ms: at,
        unloaded_at_ms: unloaded,
        items: vec![Item {
            gtin: GTIN.into(),
            lot: lot.into(),
            expiry: Some("2027-12-31".into()),
            serials: serials.to_vec(),
        }],
    });
}

fn serials(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SN{i:07}")).collect()
}

/// Commits `delta` alone with the real writer.
fn commit(writer: &mut crate::store::Writer, delta: &Delta) {
    writer
        .commit(&Batch {
            rows: delta.rows.clone(),
            ..Batch::default()
        })
        .unwrap();
}

#[test]
fn an_old_format_state_blob_is_read_and_replaced_by_rows_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    // The blob as builds before schema 2 wrote it: the registry in two
    // sets, `serials_seen` and `serial_lots`.
    let old = serde_json::json!({
        "trackers": { "t1/temperature/cold/0": {} },
        "manifest": {
            "stays": [
                { "sscc": SSCC, "zone": "rear", "loaded_at_ms": 1000, "unloaded_at_ms": 5000,
                  "items": [{ "gtin": GTIN, "lot": "L1", "serials": ["A", "B"] }] },
                { "sscc": SSCC, "zone": "rear", "loaded_at_ms": 6000,
                  "items": [{ "gtin": GTIN, "lot": "L1", "serials": ["B"] }] }
            ],
            "serials_seen": [format!("{GTIN}/A"), format!("{GTIN}/B")],
            "serial_lots": { format!("{GTIN}/A"): "L1", format!("{GTIN}/B"): "L1" },
            "lot_expiries": { format!("{GTIN}/L1"): null }
        },
        "ledger": { "lots": {} }
    });
    let blob = serde_json::to_vec(&old).unwrap();
    writer
        .commit(&Batch {
            state: vec![(LEGACY_ENGINE_STATE.into(), blob.to_vec())],
            ..Batch::default()
        })
        .unwrap();

    let state = load_engine_state(&store).unwrap();
    assert_eq!(state.manifest.stays.len(), 2);
    assert_eq!(state.trackers.len(), 1);
    let a = &state.manifest.serials[&format!("{GTIN}/A")];
    let b = &state.manifest.serials[&format!("{GTIN}/B")];
    assert_eq!((a.lot.as_deref(), a.left_ms), (Some("L1"), Some(5000)));
    assert_eq!(
        (b.lot.as_deref(), b.left_ms),
        (Some("L1"), None),
        "B is on board again"
    );

    let delta = Snapshot::new().delta(&state).unwrap();
    commit(&mut writer, &delta);
    assert_eq!(store.state(LEGACY_ENGINE_STATE).unwrap(), None, "blob gone");
    assert_eq!(
        load_engine_state(&store).unwrap(),
        state,
        "rows hold it all"
    );
}

#[test]
fn a_commit_writes_only_the_rows_that_changed_whatever_the_serials_on_board() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let mut state = EngineState::default();
    load(&mut state.manifest, 1000, None, "L1", &serials(12_500));
    state.trackers.insert("a".into(), Tracker::default());
    let mut snap = Snapshot::new();
    let first = snap.delta(&state).unwrap();
    assert_eq!(
        first.rows.put.len(),
        12_500 + 1 + 1 + 1,
        "serials, stay, expiry, tracker"
    );
    commit(&mut writer, &first);
    snap.committed(&state, &first);

    assert!(snap.delta(&state).unwrap().is_empty(), "nothing changed");
    // What is not stored is no change.
    state.trackers.get_mut("a").unwrap().newest_ms = Some(5);
    assert!(
        snap.delta(&state).unwrap().is_empty(),
        "only memory changed"
    );
    state.trackers.insert("b".into(), Tracker::default());
    state.trackers.remove("a");
    let d = snap.delta(&state).unwrap();
    let puts: Vec<(&str, &str)> = d
        .rows
        .put
        .iter()
        .map(|(p, k, _)| (p.as_str(), k.as_str()))
        .collect();
    assert_eq!(puts, [("tracker", "b")]);
    assert_eq!(d.rows.delete, [("tracker".to_string(), "a".to_string())]);
    commit(&mut writer, &d);
    snap.committed(&state, &d);
    assert_eq!(load_engine_state(&store).unwrap(), state);

    // An unload changes the stay and every serial on it: those rows only.
    state.manifest.unload(SSCC, 9000).unwrap();
    let d = snap.delta(&state).unwrap();
    assert_eq!(d.rows.put.len(), 1 + 12_500);
    commit(&mut writer, &d);
    snap.committed(&state, &d);
    assert_eq!(load_engine_state(&store).unwrap(), state);
}

fn engine_config() -> crate::config::Config {
    let mut text = String::from(
        "gateway_id = \"t\"\n[[profiles]]\nid = \"cold\"\n\
         limits = [{ quantity = \"temperature\", low = 2.0, high = 8.0 }]\n\
         mkt = { limit = 8.0, window = \"24h\" }\n\
         [[zones]]\nid = \"rear\"\nprofile = \"cold\"\n[sim]\n\
         [[sensors]]\nid = \"t1\"\nzone = \"rear\"\nkind = \"sim\"\n",
    );
    let list: Vec<String> = serials(12_500).iter().map(|s| format!("\"{s}\"")).collect();
    text.push_str(&format!(
        "[[pallets]]\nsscc = \"{SSCC}\"\nzone = \"rear\"\nloaded_at = \"2027-01-01T00:00:00Z\"\n\
         items = [{{ gtin = \"{GTIN}\", lot = \"L1\", serials = [{}] }}]\n",
        list.join(", ")
    ));
    crate::config::parse(&text, "test").unwrap()
}

#[test]
fn the_engine_judging_readings_with_12500_serials_on_board_writes_no_serial_or_stay_row() {
    let mut engine = Engine::new(&engine_config(), EngineState::default());
    let t0 = 1_800_000_000_000;
    let reading = |i: i64| {
        Reading::new(
            Arc::from("t1"),
            Quantity::Temperature,
            5.0 + (i % 3) as f64 * 0.1,
            t0 + i * 10_000,
        )
    };
    engine.on_reading(&reading(0));
    let mut snap = Snapshot::new();
    let first = snap.delta(engine.state()).unwrap();
    assert!(first.rows.put.len() > 12_500);
    snap.committed(engine.state(), &first);
    for i in 1..30 {
        engine.on_reading(&reading(i));
        engine.tick(t0 + i * 10_000);
        let d = snap.delta(engine.state()).unwrap();
        let parts: std::collections::BTreeSet<&str> =
            d.rows.put.iter().map(|(p, _, _)| p.as_str()).collect();
        assert!(
            parts
                .iter()
                .all(|p| ["lot", "presence", "tracker"].contains(p)),
            "{parts:?}"
        );
        let bytes: usize = d.rows.put.iter().map(|(_, _, b)| b.len()).sum();
        assert!(bytes < 8_000, "{bytes} bytes of rows for one reading");
        snap.committed(engine.state(), &d);
    }
}
