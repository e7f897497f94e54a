//! Events as a gateway builds them, from the gateway's own types, for the
//! load generator and the tests: what they send is the contract by
//! construction, not a hand-written imitation of it.

use coldgate::event::payload::{to_bytes, Door, DoorPhase, Envelope, EventBody};
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
