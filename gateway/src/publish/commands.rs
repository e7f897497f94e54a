//! Operator commands over MQTT: `{prefix}/cmd/manifest` in, answers on
//! `{prefix}/cmd/manifest/result`.
//!
//! Design: the publisher only parses and answers. The engine's state is
//! owned by ingest (the single writer), so a parsed command travels to
//! ingest over a channel with a one-shot reply; ingest applies it and
//! answers after the commit that stores it, so `"ok": true` means the load
//! survives a power cut.

use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::event::{now_ms, parse_rfc3339, rfc3339};
use crate::manifest::{Item, LoadCommand};

/// A command for the engine, as ingest receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestCommand {
    Load(LoadCommand),
    Unload { sscc: String, at_ms: i64 },
}

/// `Ok` once committed, or every reason the command was refused.
pub type Outcome = Result<(), Vec<String>>;

/// A command and where ingest sends its outcome: `Ok` once committed, or
/// every reason it was refused.
#[derive(Debug)]
pub struct ManifestRequest {
    pub command: ManifestCommand,
    pub reply: oneshot::Sender<Outcome>,
}

/// The JSON an operator sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Load {
        command_id: String,
        sscc: String,
        zone: String,
        #[serde(default)]
        profile: Option<String>,
        /// RFC 3339; now if absent.
        #[serde(default)]
        loaded_at: Option<String>,
        items: Vec<Item>,
    },
    Unload {
        command_id: String,
        sscc: String,
        /// RFC 3339; now if absent.
        #[serde(default)]
        at: Option<String>,
    },
}

/// A parsed command with the id its answer carries.
pub struct Parsed {
    pub command_id: String,
    pub command: ManifestCommand,
}

/// Parses a command; on failure returns the command id when it could be
/// read (so the answer can name it) and why.
pub fn parse(payload: &[u8]) -> Result<Parsed, (Option<String>, String)> {
    let id = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("command_id")?.as_str().map(str::to_string));
    let wire: Wire = serde_json::from_slice(payload)
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
        Wire::Load {
            command_id,
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
            command_id,
        }),
        Wire::Unload {
            command_id,
            sscc,
            at,
        } => Ok(Parsed {
            command: ManifestCommand::Unload {
                sscc,
                at_ms: time(at, "at")?,
            },
            command_id,
        }),
    }
}

/// The answer on `{prefix}/cmd/manifest/result`.
pub fn result_payload(gateway_id: &str, command_id: Option<&str>, outcome: &Outcome) -> Vec<u8> {
    let errors: &[String] = match outcome {
        Ok(()) => &[],
        Err(e) => e,
    };
    let v = json!({
        "schema": "coldgate.command_result/1",
        "gateway_id": gateway_id,
        "at": rfc3339(now_ms()),
        "command_id": command_id,
        "ok": outcome.is_ok(),
        "errors": errors,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_with_its_time_and_items_is_parsed() {
        let p = parse(br#"{"action":"load","command_id":"c1","sscc":"106141412345678908","zone":"rear","loaded_at":"2026-11-25T18:00:00Z","items":[{"gtin":"09520123456788","lot":"A1"}]}"#)
            .map_err(|e| e.1)
            .unwrap();
        assert_eq!(p.command_id, "c1");
        let ManifestCommand::Load(cmd) = p.command else {
            panic!("a load")
        };
        assert_eq!(cmd.loaded_at_ms, 1_795_629_600_000);
        assert_eq!(cmd.items[0].lot, "A1");
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
}
