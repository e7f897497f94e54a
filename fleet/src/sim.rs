//! Events as a gateway builds them, from the gateway's own types, for the
//! load generator and the tests: what they send is the contract by
//! construction, not a hand-written imitation of it.
//!
//! The custody workload (issue 18, item 5) goes through the gateway's own
//! publishing code as well: the manifest through
//! `publish::manifest::manifest_messages` and excursions through
//! `Event::payloads`, so a load large enough to be split is split exactly
//! where a real gateway would split it.

use coldgate::audit::AuditKind;
use coldgate::event::parts::SplitError;
use coldgate::event::payload::{
    to_bytes, Affected, Audit, Direction, Door, DoorPhase, Envelope, EventBody, Excursion,
    ExcursionEnd, ExcursionPhase, Item,
};
use coldgate::event::{rfc3339, Event};
use coldgate::manifest::gs1::check_digit;
use coldgate::manifest::Pallet;
use coldgate_sensor_drivers::Quantity;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A `door opened` event of `gateway` with `seq`, stamped `at`.
pub fn door_event(gateway: &str, seq: u64, event_id: &str, at: OffsetDateTime) -> Vec<u8> {
    let at = at.format(&Rfc3339).unwrap_or_default();
    let e = Envelope {
        schema: "coldgate.door/1".into(),
        event_id: event_id.into(),
        seq,
        gateway_id: gateway.into(),
        at: at.clone(),
        body: EventBody::Door(Door {
            phase: DoorPhase::Opened,
            door_id: "rear".into(),
            sensor_id: "lux-1".into(),
            zone: "front".into(),
            lux: 120.0,
            max_lux: None,
            threshold_lux: 50.0,
            opened_at: at,
            closed_at: None,
            duration_s: 0,
        }),
        part: None,
        parts: None,
    };
    to_bytes(&e)
}

/// `digits` with its GS1 check digit appended.
fn with_check(digits: String) -> String {
    let c = check_digit(&digits).unwrap_or(0);
    format!("{digits}{c}")
}

/// Zones the simulated cargo is spread over, alternating per pallet.
pub const ZONES: [&str; 2] = ["front", "rear"];

/// What simulated gateway number `n` carries: `pallets` pallets (valid SSCCs,
/// unique in the fleet), each one item line of a GTIN with `serials`
/// serials (unique per gateway, so a clean fleet raises no custody alert)
/// and a lot shared with other gateways, as one lot ships in many
/// containers: exposure then sums over legs.
pub fn cargo(n: u32, pallets: u32, serials: u32, loaded_at_ms: i64) -> Vec<Pallet> {
    (0..pallets)
        .map(|p| {
            let reference = u64::from(n) * 1_000 + u64::from(p);
            Pallet {
                sscc: with_check(format!("1952012{reference:010}")),
                zone: ZONES[p as usize % ZONES.len()].into(),
                profile: None,
                loaded_at_ms: loaded_at_ms + i64::from(p) * 1_000,
                unloaded_at_ms: None,
                items: vec![Item {
                    gtin: with_check(format!("0952012345{:03}", p % 10)),
                    lot: format!("L{:03}-{}", n % 100, p % 5),
                    expiry: Some("2028-06-30".into()),
                    serials: (0..serials)
                        .map(|s| format!("S{n:06}{p:03}{s:04}"))
                        .collect(),
                }],
            }
        })
        .collect()
}

/// The manifest of `cargo` as a gateway publishes it at `at_ms`, at most
/// `max_payload` bytes a message: (topic below the gateway's prefix, body).
pub fn manifest_messages(
    gateway: &str,
    cargo: &[Pallet],
    at_ms: i64,
    max_payload: usize,
) -> Result<Vec<(String, Vec<u8>)>, SplitError> {
    coldgate::publish::manifest::manifest_messages(gateway, cargo, at_ms, max_payload)
}

/// The `events/audit` a gateway commits when it accepts the load of `sscc`
/// (`ingest/commands.rs`): what the fleet reads a load from.
pub fn load_event(gateway: &str, seq: u64, sscc: &str, at_ms: i64) -> Vec<u8> {
    let audit = Audit {
        phase: AuditKind::ManifestCommand,
        audit_seq: seq,
        actor: "operator".into(),
        details: serde_json::json!({
            "request_id": format!("load-{sscc}"),
            "action": "load",
            "sscc": sscc,
            "accepted": true,
            "problems": null,
        }),
        audit_head: None,
        lot_mkt: Vec::new(),
    };
    Event::new(at_ms, EventBody::Audit(audit)).payload(seq, gateway)
}

/// One phase of a temperature excursion in `zone`, naming every pallet of
/// `cargo` in that zone with its serials (as the engine's `affected`
/// does), as the messages a gateway publishes for it from `seq`: more than
/// one when the gateway's payload bound splits it. `started` is open;
/// `ended` carries `duration_s` of time beyond the limit. `at_ms` stamps
/// the event (the load generator stamps the moment of publishing).
#[allow(clippy::too_many_arguments)]
pub fn excursion_messages(
    gateway: &str,
    seq: u64,
    excursion_id: &str,
    zone: &str,
    cargo: &[Pallet],
    started_at_ms: i64,
    ended: Option<i64>,
    at_ms: i64,
    max_payload: usize,
) -> Vec<Vec<u8>> {
    let duration_s = ended.map_or(0, |e| (e - started_at_ms) / 1_000);
    let x = Excursion {
        phase: if ended.is_some() {
            ExcursionPhase::Ended
        } else {
            ExcursionPhase::Started
        },
        excursion_id: excursion_id.into(),
        sensor_id: format!("t-{zone}"),
        zone: zone.into(),
        quantity: Quantity::Temperature,
        unit: "°C".into(),
        direction: Direction::High,
        limit: 8.0,
        exclusive: false,
        profile: "refrigerated".into(),
        rule: "refrigerated/temperature/0".into(),
        allowance_s: Some(24 * 3600),
        freeze: false,
        started_at: rfc3339(started_at_ms),
        ended_at: ended.map(rfc3339),
        duration_s,
        unknown_s: 0,
        min: 8.2,
        max: 9.1,
        mean: 8.6,
        end: ended.map(|_| ExcursionEnd {
            back_in_range_at: ended.map(rfc3339).unwrap_or_default(),
            degree_minutes: 0.6 * duration_s as f64 / 60.0,
            mkt: Some(8.6),
        }),
        affected: cargo
            .iter()
            .filter(|p| p.zone == zone)
            .map(|p| Affected {
                sscc: p.sscc.clone(),
                zone: p.zone.clone(),
                items: p.items.clone(),
            })
            .collect(),
    };
    Event::new(at_ms, EventBody::Excursion(x)).payloads(seq, gateway, max_payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{classify, Item as Read};

    fn nats() -> crate::config::Nats {
        crate::config::Config::parse(
            "[nats]\nurl = \"nats://h:4222\"\n[postgres]\nurl = \"host=h\"\n",
            "t",
        )
        .unwrap()
        .nats
    }

    /// What the server's mapping makes of `{mqtt_prefix}/{gw}/{topic}`.
    fn read(n: &crate::config::Nats, gw: &str, topic: &str, body: &[u8], seq: u64) -> Read {
        let subject = match topic.strip_prefix("events/") {
            Some(kind) => format!("{}.3.{gw}.events.{kind}", n.subject_prefix),
            None => format!("{}.{gw}.{}", n.mqtt_prefix, topic.replace('/', ".")),
        };
        classify(n, &subject, body, seq)
    }

    #[test]
    fn the_custody_workload_reads_back_as_the_fleet_reads_a_gateway() {
        let n = nats();
        let gw = "lg-7";
        let cargo = cargo(7, 50, 100, 1_796_000_000_000);
        let manifest = manifest_messages(gw, &cargo, 1_796_000_100_000, 128 * 1024).unwrap();
        // The default payload bound holds the whole manifest: the fleet
        // does not read manifest parts yet (docs/fleet.md).
        assert_eq!(manifest.len(), 1);
        let mut items = Vec::new();
        for (topic, body) in &manifest {
            items.push(read(&n, gw, topic, body, 1));
        }
        for (i, p) in cargo.iter().enumerate() {
            let body = load_event(gw, i as u64 + 1, &p.sscc, p.loaded_at_ms);
            items.push(read(&n, gw, "events/audit", &body, 2));
        }
        let x = excursion_messages(
            gw,
            51,
            "x-1",
            "rear",
            &cargo,
            1_796_000_200_000,
            Some(1_796_000_800_000),
            1_796_000_800_000,
            128 * 1024,
        );
        for body in &x {
            items.push(read(&n, gw, "events/excursion", body, 3));
        }
        for item in &items {
            assert!(!matches!(item, Read::Quarantine { .. }), "{item:?}");
        }

        let custody = crate::custody::observe(&items);
        assert!(custody.problems.is_empty(), "{:?}", custody.problems);
        assert_eq!(custody.manifests.len(), 1);
        // 50 pallets and 50 × 100 serials, every one a stay of its own.
        assert_eq!(custody.stays.len(), 50 + 50 * 100);
        let serials: std::collections::BTreeSet<_> =
            custody.stays.iter().map(|(s, _)| s.code.clone()).collect();
        assert_eq!(serials.len(), 50 + 50 * 100, "codes are unique");
        assert!(crate::custody::wanted_alerts(
            &custody.stays.into_iter().map(|s| s.0).collect::<Vec<_>>()
        )
        .is_empty());

        let (lots, _) = crate::exposure::observe(&items);
        // The rear zone's 25 pallets carry 5 lots of this gateway.
        assert_eq!(lots.len(), 5, "{lots:?}");
        assert!(lots
            .iter()
            .all(|l| l.duration_s == 600 && l.ended_at.is_some()));
    }

    #[test]
    fn a_payload_bound_splits_the_workload_where_the_gateway_would() {
        let cargo = cargo(1, 50, 100, 1_796_000_000_000);
        let manifest = manifest_messages("lg-1", &cargo, 1_796_000_100_000, 32 * 1024).unwrap();
        assert!(manifest.len() > 1);
        assert_eq!(manifest[1].0, "manifest/part/2");
        let x = excursion_messages("lg-1", 9, "x", "front", &cargo, 0, None, 0, 16 * 1024);
        let n = nats();
        let seqs: Vec<u64> = x
            .iter()
            .map(|b| match read(&n, "lg-1", "events/excursion", b, 1) {
                Read::Event(e) => e.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, (9..9 + x.len() as u64).collect::<Vec<_>>());
        assert!(seqs.len() > 1);
    }
}
