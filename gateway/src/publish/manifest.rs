//! The retained `{prefix}/manifest`: what is on board now.
//!
//! Design: pure. Ingest hands over the pallet stays not yet unloaded (each
//! with its effective profile) after every committed change; the publisher
//! turns them into this payload at every (re)connect and after each change.

use crate::event::payload::{self, Manifest, ManifestPallet};
use crate::event::rfc3339;
use crate::manifest::Pallet;

/// The manifest with the pallets on board at `now_ms`, in load order.
pub fn manifest(gateway_id: &str, stays: &[Pallet], now_ms: i64) -> Manifest {
    let pallets = stays
        .iter()
        .filter(|p| p.on_board_at(now_ms))
        .map(|p| ManifestPallet {
            sscc: p.sscc.clone(),
            zone: p.zone.clone(),
            profile: p.profile.clone(),
            loaded_at: rfc3339(p.loaded_at_ms),
            items: p.items.clone(),
        })
        .collect();
    Manifest {
        schema: "coldgate.manifest/1".into(),
        gateway_id: gateway_id.into(),
        at: rfc3339(now_ms),
        pallets,
        part: None,
        parts: None,
    }
}

/// The manifest as retained messages of at most `max` bytes: (topic below
/// the prefix, payload). One message on `manifest` when it fits; else part
/// 1 there and part k on `manifest/part/{k}`, all with the same `at`, `part`
/// and `parts` (docs/mqtt.md, "Large events"). The split works on the
/// serialised message; each part reads back as a [`Manifest`].
pub fn manifest_messages(
    gateway_id: &str,
    stays: &[Pallet],
    now_ms: i64,
    max: usize,
) -> Result<Vec<(String, Vec<u8>)>, crate::event::parts::SplitError> {
    let whole = manifest(gateway_id, stays, now_ms);
    let map = match serde_json::to_value(&whole) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let parts = crate::event::parts::split(&map, "pallets", max)?;
    if parts.len() == 1 {
        return Ok(vec![("manifest".to_string(), payload::to_bytes(&whole))]);
    }
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let topic = match i {
                0 => "manifest".to_string(),
                k => part_topic(k + 1),
            };
            (topic, payload::to_bytes(&m))
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
        let v = serde_json::to_value(manifest("g", &stays, 1_000)).unwrap();
        assert_eq!(v["schema"], "coldgate.manifest/1");
        let pallets = v["pallets"].as_array().unwrap();
        assert_eq!(pallets.len(), 1, "{v}");
        assert_eq!(pallets[0]["sscc"], "a");
        assert_eq!(pallets[0]["profile"], "refrigerated");
        assert_eq!(pallets[0]["loaded_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(pallets[0]["items"][0]["lot"], "L1");
    }
}
