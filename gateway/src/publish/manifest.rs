//! The retained `{prefix}/manifest`: what is on board now.
//!
//! Design: pure. Ingest hands over the pallet stays not yet unloaded (each
//! with its effective profile) after every committed change; the publisher
//! turns them into this payload at every (re)connect and after each change.

use serde_json::json;

use crate::event::rfc3339;
use crate::manifest::Pallet;

/// `{"schema": "coldgate.manifest/1", …, "pallets": [...]}` with the pallets
/// on board at `now_ms`, in load order.
pub fn manifest_payload(gateway_id: &str, stays: &[Pallet], now_ms: i64) -> Vec<u8> {
    let pallets: Vec<_> = stays
        .iter()
        .filter(|p| p.on_board_at(now_ms))
        .map(|p| {
            json!({
                "sscc": p.sscc,
                "zone": p.zone,
                "profile": p.profile,
                "loaded_at": rfc3339(p.loaded_at_ms),
                "items": p.items,
            })
        })
        .collect();
    let v = json!({
        "schema": "coldgate.manifest/1",
        "gateway_id": gateway_id,
        "at": rfc3339(now_ms),
        "pallets": pallets,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The manifest as retained messages of at most `max` bytes: (topic below
/// the prefix, payload). One message on `manifest` when it fits; else part
/// 1 there and part k on `manifest/part/{k}`, all with the same `at`, `part`
/// and `parts` (docs/mqtt.md, "Large events").
pub fn manifest_messages(
    gateway_id: &str,
    stays: &[Pallet],
    now_ms: i64,
    max: usize,
) -> Result<Vec<(String, Vec<u8>)>, crate::event::parts::SplitError> {
    let whole: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&manifest_payload(gateway_id, stays, now_ms)).unwrap_or_default();
    let parts = crate::event::parts::split(&whole, "pallets", max)?;
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let topic = match i {
                0 => "manifest".to_string(),
                k => part_topic(k + 1),
            };
            (topic, serde_json::to_vec(&m).unwrap_or_default())
        })
        .collect())
}

/// Where part `k` (from 2) of a split manifest is retained.
pub fn part_topic(k: usize) -> String {
    format!("manifest/part/{k}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Item;

    fn stay(sscc: &str, loaded: i64, unloaded: Option<i64>) -> Pallet {
        Pallet {
            sscc: sscc.into(),
            zone: "rear".into(),
            profile: Some("refrigerated".into()),
            loaded_at_ms: loaded,
            unloaded_at_ms: unloaded,
            items: vec![Item {
                gtin: "09520123456788".into(),
                lot: "L1".into(),
                expiry: Some("2027-12-31".into()),
                serials: vec![],
            }],
        }
    }

    #[test]
    fn only_pallets_on_board_now_are_listed_with_their_items() {
        let stays = [
            stay("a", 0, None),
            stay("b", 0, Some(500)),
            stay("c", 2_000, None),
        ];
        let v: serde_json::Value =
            serde_json::from_slice(&manifest_payload("g", &stays, 1_000)).unwrap();
        assert_eq!(v["schema"], "coldgate.manifest/1");
        let pallets = v["pallets"].as_array().unwrap();
        assert_eq!(pallets.len(), 1, "{v}");
        assert_eq!(pallets[0]["sscc"], "a");
        assert_eq!(pallets[0]["profile"], "refrigerated");
        assert_eq!(pallets[0]["loaded_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(pallets[0]["items"][0]["lot"], "L1");
    }
}
