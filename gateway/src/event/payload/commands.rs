//! What operators send (`cmd/manifest`, `cmd/replay`) and what the gateway
//! answers (`cmd/manifest/result`, `cmd/replay/result`).

use serde::{Deserialize, Serialize};

use super::messages::Item;

/// `{prefix}/cmd/manifest`: load or unload a pallet. `request_id` names the
/// command in its answer and makes a repeat harmless; `command_id` is its
/// earlier name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ManifestCommand {
    Load {
        #[serde(alias = "command_id")]
        request_id: String,
        sscc: String,
        zone: String,
        /// The pallet's product profile; the zone's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// RFC 3339; now if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loaded_at: Option<String>,
        items: Vec<Item>,
    },
    Unload {
        #[serde(alias = "command_id")]
        request_id: String,
        sscc: String,
        /// RFC 3339; now if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
}

/// `{prefix}/cmd/manifest/result`: the answer to one command, published
/// after the commit that stores its effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// `coldgate.command_result/1`.
    pub schema: String,
    pub gateway_id: String,
    pub at: String,
    /// `None` when the command was too broken to read one.
    pub request_id: Option<String>,
    /// The same as `request_id` (its earlier name).
    pub command_id: Option<String>,
    pub ok: bool,
    /// This answers a repeat of a request id already decided: the original
    /// answer, not applied again.
    pub duplicate: bool,
    /// Why it was refused, each naming its field.
    pub errors: Vec<String>,
    /// What the load raised (each also an `events/lot` warning): accepted,
    /// but worth a look. Empty on a refusal. Absent in answers stored by
    /// builds before it, read as empty.
    #[serde(default)]
    pub warnings: Vec<CommandWarning>,
}

/// One warning a command raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandWarning {
    /// The `reason` of its `events/lot` warning.
    pub reason: super::LotReason,
    /// What it is about, in a sentence.
    pub message: String,
}

/// `{prefix}/cmd/replay`: republish the events `from_seq..=to_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub request_id: String,
    /// First seq wanted (from 1).
    pub from_seq: u64,
    /// Last seq wanted, inclusive.
    pub to_seq: u64,
}

/// `{prefix}/cmd/replay/result`, after the replayed events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReplayResult {
    /// `coldgate.replay_result/1`.
    pub schema: String,
    pub gateway_id: String,
    pub at: String,
    pub request_id: Option<String>,
    pub ok: bool,
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    /// Events republished, in seq order before this answer.
    pub replayed: u64,
    /// Seqs in the range that the gateway does not hold (never raised yet).
    pub missing: Vec<u64>,
    /// Seqs held but not republished: larger than `mqtt.max_payload` (set
    /// aside when first sent; read them with `coldgate export`).
    pub set_aside: Vec<u64>,
    pub errors: Vec<String>,
}
