//! `{prefix}/cmd/replay`: a subscriber that found a gap the outbox no longer
//! holds (the broker PUBACKed it, then it was lost downstream: a subscriber
//! offline without a persistent session, a bridge that dropped it) asks for
//! the events again, by seq. They are republished from the events table with
//! their original bytes (same `event_id`, `seq`, payload), so a replay is
//! indistinguishable from a duplicate and deduplicates the same way. The
//! answer goes to `{prefix}/cmd/replay/result` after the events.
//!
//! Authorisation is the broker's ACL on `{prefix}/cmd/#`, as for manifest
//! commands. A request is bounded ([`REPLAY_MAX_EVENTS`]) so no request can
//! make the gateway read or send without limit.

use crate::event::{now_ms, rfc3339};

/// Most events one request may ask for; ask again for the rest.
pub const REPLAY_MAX_EVENTS: u64 = 1_000;

/// The largest replay request taken, in bytes.
pub const REPLAY_MAX_BYTES: usize = 4 * 1024;

pub use crate::event::payload::{ReplayRequest, ReplayResult};

impl ReplayResult {
    pub fn refused(gateway_id: &str, request_id: Option<String>, why: String) -> ReplayResult {
        ReplayResult {
            schema: "coldgate.replay_result/1".into(),
            gateway_id: gateway_id.into(),
            at: rfc3339(now_ms()),
            request_id,
            ok: false,
            from_seq: None,
            to_seq: None,
            replayed: 0,
            missing: Vec::new(),
            set_aside: Vec::new(),
            errors: vec![why],
        }
    }

    /// The answer to a request taken, before the events are counted.
    pub fn accepted(gateway_id: &str, request: &ReplayRequest) -> ReplayResult {
        ReplayResult {
            schema: "coldgate.replay_result/1".into(),
            gateway_id: gateway_id.into(),
            at: rfc3339(now_ms()),
            request_id: Some(request.request_id.clone()),
            ok: true,
            from_seq: Some(request.from_seq),
            to_seq: Some(request.to_seq),
            replayed: 0,
            missing: Vec::new(),
            set_aside: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        // A struct of strings, integers and lists always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Parses and checks a request; on refusal the request id when it could be
/// read, and why.
pub fn parse(payload: &[u8]) -> Result<ReplayRequest, (Option<String>, String)> {
    let id = crate::command::request_id_of(payload);
    if payload.len() > REPLAY_MAX_BYTES {
        return Err((
            id,
            format!(
                "the request is {} bytes; at most {REPLAY_MAX_BYTES}",
                payload.len()
            ),
        ));
    }
    let r: ReplayRequest = serde_json::from_slice(payload)
        .map_err(|e| (id.clone(), format!("not a replay request: {e}")))?;
    let mut problems = Vec::new();
    if r.request_id.len() > crate::command::REQUEST_ID_MAX_BYTES {
        problems.push(format!(
            "request_id is longer than {} bytes",
            crate::command::REQUEST_ID_MAX_BYTES
        ));
    }
    if r.from_seq == 0 {
        problems.push("from_seq: seqs start at 1".to_string());
    }
    if r.to_seq < r.from_seq {
        problems.push(format!(
            "to_seq ({}) is before from_seq ({})",
            r.to_seq, r.from_seq
        ));
    } else if r.to_seq - r.from_seq >= REPLAY_MAX_EVENTS {
        problems.push(format!(
            "at most {REPLAY_MAX_EVENTS} events per request ({} asked); ask again for the rest",
            r.to_seq - r.from_seq + 1
        ));
    }
    if problems.is_empty() {
        Ok(r)
    } else {
        Err((id, problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_within_the_bound_is_taken() {
        let r = parse(br#"{"request_id":"r1","from_seq":10,"to_seq":1009}"#).unwrap();
        assert_eq!((r.from_seq, r.to_seq), (10, 1009));
    }

    #[test]
    fn a_range_over_the_bound_reversed_or_from_zero_is_refused_with_its_id() {
        let (id, why) = parse(br#"{"request_id":"r2","from_seq":1,"to_seq":1001}"#)
            .err()
            .unwrap();
        assert_eq!(id.as_deref(), Some("r2"));
        assert!(why.contains("at most 1000 events"), "{why}");
        let (_, why) = parse(br#"{"request_id":"r3","from_seq":9,"to_seq":3}"#)
            .err()
            .unwrap();
        assert!(why.contains("before from_seq"), "{why}");
        let (_, why) = parse(br#"{"request_id":"r4","from_seq":0,"to_seq":3}"#)
            .err()
            .unwrap();
        assert!(why.contains("start at 1"), "{why}");
    }

    #[test]
    fn unreadable_or_oversized_requests_are_refused_naming_the_id_when_readable() {
        let (id, why) = parse(b"{nope").err().unwrap();
        assert_eq!(id, None);
        assert!(why.contains("not a replay request"), "{why}");
        let (_, why) = parse(br#"{"request_id":"r5","from_seq":1,"to_seq":2,"extra":1}"#)
            .err()
            .unwrap();
        assert!(why.contains("extra"), "{why}");
        let big = format!(r#"{{"request_id":"r6","pad":"{}"}}"#, "x".repeat(5000));
        let (id, why) = parse(big.as_bytes()).err().unwrap();
        assert_eq!(id.as_deref(), Some("r6"));
        assert!(why.contains("at most 4096"), "{why}");
    }
}
