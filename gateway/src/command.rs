//! Operator commands over MQTT: `{prefix}/cmd/manifest` in, answers on
//! `{prefix}/cmd/manifest/result`.
//!
//! Design: the publisher only parses and answers. The engine's state is
//! owned by ingest (the single writer), so a parsed command travels to
//! ingest over a channel with a one-shot reply; ingest applies it and
//! answers after the commit that stores it, so `"ok": true` means the load
//! survives a power cut. An accepted load's answer lists the warnings it
//! raised (each also an `events/lot` warning), so the operator who sent it
//! sees them without subscribing to events.
//!
//! Each command carries a `request_id` (`command_id`, its first name, is
//! still accepted). Ingest remembers the answer to every request id it
//! decided, in the same commit as the command's effect; a repeat is not
//! applied again but answered with the original answer plus
//! `"duplicate": true`, also after a restart.

use serde::Deserialize;
use tokio::sync::oneshot;

use crate::event::payload::{self, CommandResult, CommandWarning, ManifestCommand as WireCommand};
use crate::event::{now_ms, parse_rfc3339, rfc3339};
use crate::manifest::LoadCommand;

/// A command for the engine, as ingest receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestCommand {
    Load(LoadCommand),
    Unload { sscc: String, at_ms: i64 },
}

/// `Ok` with the warnings it raised once committed, or every reason the
/// command was refused.
pub type Outcome = Result<Vec<CommandWarning>, Vec<String>>;

/// The load warnings among the events a command produced, for its answer.
pub fn warnings_of(events: &[crate::event::Event]) -> Vec<CommandWarning> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            payload::EventBody::Lot(l) if l.phase == payload::LotPhase::Warning => {
                Some(CommandWarning {
                    reason: l.reason,
                    message: crate::manifest::describe(l),
                })
            }
            _ => None,
        })
        .collect()
}

/// A command and where ingest sends its answer.
#[derive(Debug)]
pub struct ManifestRequest {
    pub request_id: String,
    /// Who sent it, for the audit trail: `mqtt:cmd/manifest`, `http:<address>`.
    pub actor: String,
    pub command: ManifestCommand,
    pub reply: oneshot::Sender<Answer>,
}

/// The answer to publish on `cmd/manifest/result`, as ingest decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub ok: bool,
    pub duplicate: bool,
    /// The JSON published (see [`result_payload`]).
    pub payload: Vec<u8>,
}

impl Answer {
    /// A fresh answer.
    pub fn new(gateway_id: &str, request_id: Option<&str>, outcome: &Outcome) -> Answer {
        Answer {
            ok: outcome.is_ok(),
            duplicate: false,
            payload: result_payload(gateway_id, request_id, outcome),
        }
    }

    /// The answer to a repeated request id: the stored original, marked
    /// `"duplicate": true`.
    pub fn repeat(stored: &[u8]) -> Answer {
        match serde_json::from_slice::<CommandResult>(stored) {
            Ok(mut original) => {
                original.duplicate = true;
                Answer {
                    ok: original.ok,
                    duplicate: true,
                    payload: payload::to_bytes(&original),
                }
            }
            // Written by this build or an earlier one with the same fields;
            // a stored answer that does not read back is repeated as it is.
            Err(_) => Answer {
                ok: false,
                duplicate: true,
                payload: stored.to_vec(),
            },
        }
    }
}

/// The largest command taken, in bytes (`cmd/manifest` payload). A load of
/// one pallet with 10,000 serials is about 250 KB; anything larger is
/// refused with an answer (the connection stays up: the publisher accepts
/// packets up to 16 MiB from the broker, see `INCOMING_MAX_PACKET`).
pub const COMMAND_MAX_BYTES: usize = 1024 * 1024;

/// The longest `request_id` taken; an id is a name, not data.
pub const REQUEST_ID_MAX_BYTES: usize = 256;

/// Only the id of a command, read from a payload too large or too broken to
/// parse as a command, so the refusal can still name it.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    command_id: Option<String>,
}

/// The request id of a payload, cut to a bound; `command_id` counts too.
pub(crate) fn request_id_of(payload: &[u8]) -> Option<String> {
    let ids: IdOnly = serde_json::from_slice(payload).ok()?;
    ids.request_id
        .or(ids.command_id)
        .map(|id| crate::event::parts::bounded_str(&id))
}

/// A parsed command with the id its answer carries.
pub struct Parsed {
    pub request_id: String,
    pub command: ManifestCommand,
}

/// Parses a command; on failure returns the request id when it could be
/// read (so the answer can name it) and why.
pub fn parse(payload: &[u8]) -> Result<Parsed, (Option<String>, String)> {
    let id = request_id_of(payload);
    if payload.len() > COMMAND_MAX_BYTES {
        return Err((
            id,
            format!(
                "the command is {} bytes; at most {COMMAND_MAX_BYTES} are taken (split a large load into several pallets' commands)",
                payload.len()
            ),
        ));
    }
    if let Some(long) = id.as_ref().filter(|id| id.len() > REQUEST_ID_MAX_BYTES) {
        return Err((
            Some(long.clone()),
            format!("request_id is longer than {REQUEST_ID_MAX_BYTES} bytes"),
        ));
    }
    let wire: WireCommand = serde_json::from_slice(payload)
        .map_err(|e| (id.clone(), format!("not a manifest command: {e}")))?;
    let time = |t: Option<String>, field: &str| match t {
        None => Ok(now_ms()),
        Some(t) => parse_rfc3339(&t).ok_or_else(|| {
            (
                id.clone(),
                format!("{field}: `{t}` is not an RFC 3339 time"),
            )
        }),
    };
    match wire {
        WireCommand::Load {
            request_id,
            sscc,
            zone,
            profile,
            loaded_at,
            items,
        } => Ok(Parsed {
            command: ManifestCommand::Load(LoadCommand {
                sscc,
                zone,
                profile,
                loaded_at_ms: time(loaded_at, "loaded_at")?,
                unloaded_at_ms: None,
                items,
            }),
            request_id,
        }),
        WireCommand::Unload {
            request_id,
            sscc,
            at,
        } => Ok(Parsed {
            command: ManifestCommand::Unload {
                sscc,
                at_ms: time(at, "at")?,
            },
            request_id,
        }),
    }
}

/// The answer on `{prefix}/cmd/manifest/result`. The id is given as
/// `request_id` and, for clients written against the first version, as
/// `command_id`.
pub fn result_payload(gateway_id: &str, request_id: Option<&str>, outcome: &Outcome) -> Vec<u8> {
    let (errors, warnings) = match outcome {
        Ok(w) => (Vec::new(), w.clone()),
        Err(e) => (crate::event::parts::bounded_list(e), Vec::new()),
    };
    let request_id = request_id.map(crate::event::parts::bounded_str);
    payload::to_bytes(&CommandResult {
        schema: "coldgate.command_result/1".into(),
        gateway_id: gateway_id.into(),
        at: rfc3339(now_ms()),
        command_id: request_id.clone(),
        request_id,
        ok: outcome.is_ok(),
        duplicate: false,
        errors,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_with_its_time_and_items_is_parsed() {
        let p = parse(br#"{"action":"load","command_id":"c1","sscc":"106141412345678908","zone":"rear","loaded_at":"2026-11-25T18:00:00Z","items":[{"gtin":"09520123456788","lot":"A1"}]}"#)
            .map_err(|e| e.1)
            .unwrap();
        assert_eq!(p.request_id, "c1");
        let ManifestCommand::Load(cmd) = p.command else {
            panic!("a load")
        };
        assert_eq!(cmd.loaded_at_ms, 1_795_629_600_000);
        assert_eq!(cmd.items[0].lot, "A1");
    }

    #[test]
    fn request_id_is_the_name_and_command_id_still_works() {
        let p = parse(br#"{"action":"unload","request_id":"r1","sscc":"106141412345678908"}"#)
            .map_err(|e| e.1)
            .unwrap();
        assert_eq!(p.request_id, "r1");
        let (id, _) = parse(br#"{"action":"unload","request_id":"r2","sscc":"x","at":"no"}"#)
            .err()
            .unwrap();
        assert_eq!(id.as_deref(), Some("r2"));
    }

    #[test]
    fn an_accepted_answer_carries_the_load_warnings_and_a_repeat_keeps_them() {
        let mut dup = payload::Lot::new(
            payload::LotPhase::Warning,
            payload::LotReason::SerialDuplicate,
        );
        dup.gtin = Some("09520123456788".into());
        dup.serial = Some("S1".into());
        let events = vec![crate::event::Event::new(1, dup)];
        let warnings = warnings_of(&events);
        assert_eq!(warnings.len(), 1);
        let first = Answer::new("g", Some("r1"), &Ok(warnings));
        assert!(first.ok);
        let v: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(v["warnings"][0]["reason"], "serial_duplicate");
        assert!(
            v["warnings"][0]["message"].as_str().unwrap().contains("S1"),
            "{v}"
        );
        let again: serde_json::Value =
            serde_json::from_slice(&Answer::repeat(&first.payload).payload).unwrap();
        assert_eq!(again["warnings"], v["warnings"]);
        let clean: serde_json::Value =
            serde_json::from_slice(&Answer::new("g", Some("r2"), &Ok(Vec::new())).payload).unwrap();
        assert_eq!(clean["warnings"], serde_json::json!([]));
    }

    #[test]
    fn a_repeat_is_the_original_answer_marked_duplicate() {
        let first = Answer::new("g", Some("r1"), &Err(vec!["zone: unknown".into()]));
        let again = Answer::repeat(&first.payload);
        assert!(again.duplicate && !again.ok);
        let a: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&again.payload).unwrap();
        assert_eq!(a["duplicate"], false);
        assert_eq!(b["duplicate"], true);
        assert_eq!(a["at"], b["at"], "the original answer, not a new one");
        assert_eq!(b["errors"], a["errors"]);
        assert_eq!(b["request_id"], "r1");
    }

    #[test]
    fn refusals_keep_the_command_id_when_it_can_be_read() {
        let (id, why) =
            parse(br#"{"action":"unload","command_id":"c2","sscc":"x","at":"yesterday"}"#)
                .err()
                .unwrap();
        assert_eq!(id.as_deref(), Some("c2"));
        assert!(why.contains("at: `yesterday`"), "{why}");
        let (id, why) = parse(b"{not json").err().unwrap();
        assert_eq!(id, None);
        assert!(why.contains("not a manifest command"), "{why}");
        let (_, why) = parse(br#"{"action":"sell","command_id":"c3"}"#)
            .err()
            .unwrap();
        assert!(why.contains("sell"), "{why}");
    }

    #[test]
    fn a_command_over_the_size_limit_is_refused_naming_its_id_and_size() {
        let serials: Vec<String> = (0..70_000).map(|i| format!("SN{i:012}")).collect();
        let body = serde_json::json!({
            "action": "load", "request_id": "big-1", "sscc": "106141412345678908",
            "zone": "rear", "items": [{"gtin": "09520123456788", "lot": "A1", "serials": serials}],
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(bytes.len() > COMMAND_MAX_BYTES);
        let (id, why) = parse(&bytes).err().unwrap();
        assert_eq!(id.as_deref(), Some("big-1"));
        assert!(why.contains(&format!("{} bytes", bytes.len())), "{why}");
        // Just under the limit it is a command like any other.
        let fits: Vec<String> = (0..30_000).map(|i| format!("SN{i:012}")).collect();
        let mut small = body.clone();
        small["items"][0]["serials"] = serde_json::json!(fits);
        assert!(parse(&serde_json::to_vec(&small).unwrap()).is_ok());
    }

    #[test]
    fn a_request_id_longer_than_a_name_is_refused_and_echoed_cut() {
        let long = "r".repeat(200_000);
        let body =
            format!(r#"{{"action":"unload","request_id":"{long}","sscc":"106141412345678908"}}"#);
        let (id, why) = parse(body.as_bytes()).err().unwrap();
        assert!(why.contains("request_id is longer than 256 bytes"), "{why}");
        let answer = Answer::new("g", id.as_deref(), &Err(vec![why]));
        assert!(answer.payload.len() < 2048, "{}", answer.payload.len());
    }

    #[test]
    fn an_answer_echoing_huge_problems_stays_small() {
        let problems: Vec<String> = (0..5000)
            .map(|i| format!("{i}: {}", "x".repeat(4000)))
            .collect();
        let answer = Answer::new("g", Some("r1"), &Err(problems));
        assert!(answer.payload.len() < 32 * 1024, "{}", answer.payload.len());
        let v: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(
            v["errors"].as_array().unwrap().len(),
            crate::event::parts::ECHO_MAX_ITEMS + 1
        );
    }
}
