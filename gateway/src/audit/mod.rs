//! The audit trail: who started, stopped or reconfigured the gateway, and
//! when — the record a GDP inspector asks for beside the temperature data.
//!
//! Entries are hash-chained: each stores the hash of the one before, and its
//! own hash is SHA-256 over that previous hash and the entry's canonical
//! bytes. Changing, removing or reordering an entry breaks the chain, which
//! [`verify`] reports naming the first bad entry. The chain head (last seq
//! and hash) is also kept beside the entries, so removing the *last* entry
//! shows too. This makes tampering evident, not impossible: someone who can
//! rewrite the file can rebuild the whole chain; publishing the head
//! elsewhere (MQTT, a trip report) is what anchors it outside the device.
//!
//! Entries are written only by ingest, in the same transaction as the batch
//! they arrive with (see `store::Batch::audit`).

mod error;
pub mod readings;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kinds are a wire format (the `kind` of `events/audit`), so they live
/// with the payloads; the trail names them from there.
pub use crate::event::payload::AuditKind;
pub use error::{AnchorError, VerifyError};
pub use readings::{Checkpoint, ReadingsError, ReadingsVerified};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// What a caller asks to record; ingest numbers and chains it when it
/// commits.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub kind: AuditKind,
    /// Who caused it: `service manager`, `signal:SIGHUP`, a technician's name.
    pub actor: String,
    pub details: serde_json::Value,
}

/// An entry as stored (JSON). `details` is kept as the exact JSON text that
/// was hashed, so verification never depends on how a map is re-serialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub actor: String,
    pub details: String,
    /// The readings committed since the previous checkpoint. Entries
    /// written by earlier builds, and all but the first of one commit, have
    /// none; absent, it is not hashed, so their hashes are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readings: Option<Checkpoint>,
    /// Hex SHA-256 of the previous entry (zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over the previous hash's 32 bytes and [`AuditEntry::canonical`].
    pub hash: String,
}

/// The last entry of a chain: its seq and hash (seq 0 and [`GENESIS`] for an
/// empty chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Default for Head {
    fn default() -> Self {
        Head {
            seq: 0,
            hash: GENESIS,
        }
    }
}

impl Head {
    /// 8 bytes of seq (big-endian) then the 32-byte hash.
    pub fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Head> {
        let seq = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let hash: [u8; 32] = bytes.get(8..)?.try_into().ok()?;
        Some(Head { seq, hash })
    }
}

/// `SEQ:HASH` (hash in hex): the form an operator copies from the status
/// or `audit show` and hands to `audit verify --anchor`.
impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(s: &str) -> Result<Head, String> {
        let (seq, hash) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not SEQ:HASH"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("`{seq}` is not an entry number"))?;
        let hash = decode_hash(hash)
            .ok_or_else(|| format!("`{hash}` is not a SHA-256 in hex (64 digits)"))?;
        Ok(Head { seq, hash })
    }
}

/// The fields that are hashed, in a fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    at_ms: i64,
    kind: &'a str,
    actor: &'a str,
    details: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    readings: Option<&'a Checkpoint>,
}

impl AuditEntry {
    /// The entry that follows `head` for `record`.
    pub fn chained(head: &Head, record: &AuditRecord) -> AuditEntry {
        AuditEntry::chained_with(head, record, None)
    }

    /// [`AuditEntry::chained`], also covering the readings of `checkpoint`.
    pub fn chained_with(
        head: &Head,
        record: &AuditRecord,
        checkpoint: Option<Checkpoint>,
    ) -> AuditEntry {
        let mut entry = AuditEntry {
            seq: head.seq + 1,
            at_ms: record.at_ms,
            kind: record.kind.as_str().to_string(),
            actor: record.actor.clone(),
            details: record.details.to_string(),
            readings: checkpoint,
            prev_hash: hex::encode(head.hash),
            hash: String::new(),
        };
        entry.hash = hex::encode(entry.compute_hash(&head.hash));
        entry
    }

    /// The bytes the hash covers besides the previous hash: a JSON object
    /// with the fields in a fixed order.
    pub fn canonical(&self) -> Vec<u8> {
        // Serialising strings and integers into a struct cannot fail.
        serde_json::to_vec(&Canonical {
            seq: self.seq,
            at_ms: self.at_ms,
            kind: &self.kind,
            actor: &self.actor,
            details: &self.details,
            readings: self.readings.as_ref(),
        })
        .unwrap_or_default()
    }

    /// SHA-256 over `prev` and the canonical bytes.
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prev);
        h.update(self.canonical());
        h.finalize().into()
    }

    pub fn head(&self) -> Option<Head> {
        Some(Head {
            seq: self.seq,
            hash: decode_hash(&self.hash)?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<AuditEntry> {
        serde_json::from_slice(bytes).ok()
    }
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// What a successful verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub head: Head,
}

/// Checks the chain: `rows` are (key, stored bytes) in key order, `anchor`
/// the head kept beside them. Stops at the first bad entry.
pub fn verify<I, B>(rows: I, anchor: Option<Head>) -> Result<Verified, VerifyError>
where
    I: IntoIterator<Item = (u64, B)>,
    B: AsRef<[u8]>,
{
    let mut prev = Head::default();
    for (key, bytes) in rows {
        let expected = prev.seq + 1;
        if key != expected {
            return Err(VerifyError::Missing {
                expected,
                found: key,
            });
        }
        let entry =
            AuditEntry::decode(bytes.as_ref()).ok_or(VerifyError::Undecodable { seq: key })?;
        if entry.seq != key {
            return Err(VerifyError::Moved {
                seq: key,
                claims: entry.seq,
            });
        }
        if decode_hash(&entry.prev_hash) != Some(prev.hash) {
            return Err(if key == 1 {
                VerifyError::BadGenesis
            } else {
                VerifyError::Relinked { seq: prev.seq }
            });
        }
        let hash = entry.compute_hash(&prev.hash);
        if decode_hash(&entry.hash) != Some(hash) {
            return Err(VerifyError::Altered { seq: key });
        }
        prev = Head { seq: key, hash };
    }
    match anchor {
        None if prev.seq == 0 => {}
        None => return Err(VerifyError::NoAnchor { last: prev.seq }),
        Some(a) if a == prev => {}
        Some(a) if a.seq > prev.seq => {
            return Err(VerifyError::Truncated {
                last: prev.seq,
                anchored: a.seq,
            })
        }
        Some(a) => {
            return Err(VerifyError::HeadMismatch {
                last: prev.seq,
                anchored: a.seq,
            })
        }
    }
    Ok(Verified {
        entries: prev.seq,
        head: prev,
    })
}

/// Checks a verified chain against a head held outside the device: the
/// trail must reach `anchor.seq` and that entry must have its hash. This is
/// what catches the newest entries removed (or the whole trail wiped) with
/// the recorded head rewritten to match.
pub fn check_anchor<I, B>(rows: I, anchor: Head) -> Result<(), AnchorError>
where
    I: IntoIterator<Item = (u64, B)>,
    B: AsRef<[u8]>,
{
    if anchor.seq == 0 {
        return Ok(());
    }
    let mut last = 0;
    for (seq, bytes) in rows {
        last = seq;
        if seq == anchor.seq {
            let head = AuditEntry::decode(bytes.as_ref()).and_then(|e| e.head());
            return match head {
                Some(h) if h == anchor => Ok(()),
                _ => Err(AnchorError::Differs { seq }),
            };
        }
    }
    Err(AnchorError::Short {
        last,
        anchored: anchor.seq,
    })
}
