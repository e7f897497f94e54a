//! Everything one transaction writes, held by its caller until the commit
//! succeeds.
//!
//! The writer used to take half of a commit as arguments and half through
//! calls that staged it inside itself, so what a retry would write was split
//! between two owners (and a reopen had to carry the staged half across).
//! Now the caller owns the whole batch: it adds to it between commits, hands
//! it to [`super::Writer::commit`], and clears it only once that returned
//! `Ok`. A commit that fails writes nothing and leaves the batch as it was,
//! so the same batch is simply committed again.

use coldgate_sensor_drivers::Reading;

use super::StoredEvent;
use crate::audit::AuditRecord;

/// Trimming asked of one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// Readings before this time are deleted.
    pub before_ms: i64,
    /// When set, the oldest readings are deleted while stored data exceeds it.
    pub max_bytes: Option<u64>,
}

/// Rows of the engine's state to change with the next commit (see
/// `crate::snapshot`): written in the same transaction as the readings and
/// events that changed them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RowDelta {
    /// The table is emptied first: the rows put are all of it.
    pub clear: bool,
    /// (part, key, JSON).
    pub put: Vec<(String, String, Vec<u8>)>,
    pub delete: Vec<(String, String)>,
    /// Named state blobs removed (the engine's blob of schema 1).
    pub remove_named: Vec<String>,
}

impl RowDelta {
    /// Rows put or deleted.
    pub fn len(&self) -> usize {
        self.put.len() + self.delete.len()
    }

    pub fn is_empty(&self) -> bool {
        !self.clear && self.len() == 0 && self.remove_named.is_empty()
    }
}

/// An operator command's answer, stored so that a repeat of its request id
/// (after a restart too) gets the same answer instead of a second effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAnswer {
    pub request_id: String,
    pub at_ms: i64,
    /// The answer as published (JSON).
    pub answer: Vec<u8>,
}

/// A telemetry message for the telemetry outbox; its id is given by the
/// writer at the commit (telemetry takes no event seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    pub at_ms: i64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What one durable transaction writes.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Numbered per sensor by the writer, gap-free.
    pub readings: Vec<Reading>,
    /// Numbered by the caller from [`super::Writer::next_event_seq`], in
    /// order (events carry their seq in the payload); a commit refuses any
    /// other numbering.
    pub events: Vec<StoredEvent>,
    /// Event seqs the broker acknowledged: they leave the outbox.
    pub acked: Vec<u64>,
    /// Named values of the `state` table, put as given.
    pub state: Vec<(String, Vec<u8>)>,
    /// The engine state's rows.
    pub rows: RowDelta,
    pub trim: Option<Trim>,
    /// Appended to the hash chain (numbered and chained by the writer,
    /// from the head it holds).
    pub audit: Vec<AuditRecord>,
    /// Clock records (JSON, see `tables::CLOCK`).
    pub clock: Vec<Vec<u8>>,
    pub commands: Vec<CommandAnswer>,
    pub telemetry: Vec<Telemetry>,
    /// Telemetry ids sent (and acknowledged, at QoS 1): they leave the
    /// telemetry outbox.
    pub telemetry_sent: Vec<u64>,
    /// Outbox entries the broker cannot take (over `max_payload`): moved to
    /// `SET_ASIDE`, the event itself kept.
    pub set_aside: Vec<u64>,
}

impl Batch {
    /// Whether a commit of it would write nothing but its trim.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
            && self.events.is_empty()
            && self.acked.is_empty()
            && self.state.is_empty()
            && self.rows.is_empty()
            && self.audit.is_empty()
            && self.clock.is_empty()
            && self.commands.is_empty()
            && self.telemetry.is_empty()
            && self.telemetry_sent.is_empty()
            && self.set_aside.is_empty()
    }

    /// Empties it for the next batch, keeping the vectors' room.
    pub fn clear(&mut self) {
        self.readings.clear();
        self.events.clear();
        self.acked.clear();
        self.state.clear();
        self.rows = RowDelta::default();
        self.trim = None;
        self.audit.clear();
        self.clock.clear();
        self.commands.clear();
        self.telemetry.clear();
        self.telemetry_sent.clear();
        self.set_aside.clear();
    }

    /// The newest answer in this batch for `request_id`: a command answered
    /// but not yet committed is still a command answered.
    pub fn command_answer(&self, request_id: &str) -> Option<&[u8]> {
        self.commands
            .iter()
            .rev()
            .find(|c| c.request_id == request_id)
            .map(|c| c.answer.as_slice())
    }

    /// Adds an answered command (stored with the command's effect).
    pub fn remember_command(&mut self, request_id: &str, at_ms: i64, answer: Vec<u8>) {
        self.commands.push(CommandAnswer {
            request_id: request_id.to_string(),
            at_ms,
            answer,
        });
    }

    /// Adds a telemetry message.
    pub fn push_telemetry(&mut self, at_ms: i64, topic: String, payload: Vec<u8>) {
        self.telemetry.push(Telemetry {
            at_ms,
            topic,
            payload,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn full() -> Batch {
        let mut b = Batch {
            readings: vec![Reading::new(
                Arc::from("a"),
                coldgate_sensor_drivers::Quantity::Temperature,
                1.0,
                1,
            )],
            events: vec![StoredEvent {
                seq: 1,
                at_ms: 1,
                topic: "events/x".into(),
                payload: b"{}".to_vec(),
            }],
            acked: vec![1],
            state: vec![("k".into(), b"v".to_vec())],
            rows: RowDelta {
                clear: true,
                ..RowDelta::default()
            },
            trim: Some(Trim {
                before_ms: 0,
                max_bytes: None,
            }),
            audit: vec![AuditRecord {
                at_ms: 1,
                kind: crate::audit::AuditKind::ReadingsCheckpoint,
                actor: "t".into(),
                details: serde_json::json!({}),
            }],
            clock: vec![b"{}".to_vec()],
            telemetry_sent: vec![1],
            set_aside: vec![1],
            ..Batch::default()
        };
        b.remember_command("r", 1, b"a".to_vec());
        b.push_telemetry(1, "telemetry/a".into(), b"t".to_vec());
        b
    }

    #[test]
    fn a_cleared_batch_is_empty_and_holds_no_trim() {
        let mut b = full();
        assert!(!b.is_empty());
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.trim, None);
        assert_eq!(b.command_answer("r"), None);
    }

    #[test]
    fn each_part_alone_makes_a_batch_not_empty() {
        let parts: [fn(&mut Batch); 12] = [
            |b| b.readings.clear(),
            |b| b.events.clear(),
            |b| b.acked.clear(),
            |b| b.state.clear(),
            |b| b.rows = RowDelta::default(),
            |b| b.audit.clear(),
            |b| b.clock.clear(),
            |b| b.commands.clear(),
            |b| b.telemetry.clear(),
            |b| b.telemetry_sent.clear(),
            |b| b.set_aside.clear(),
            |b| b.trim = None,
        ];
        // Every part but one cleared: the one left must count (trim, the
        // last, counts for nothing on its own).
        for keep in 0..parts.len() {
            let mut b = full();
            for (i, clear) in parts.iter().enumerate() {
                if i != keep {
                    clear(&mut b);
                }
            }
            assert_eq!(b.is_empty(), keep == parts.len() - 1, "part {keep} kept");
        }
    }

    #[test]
    fn the_newest_answer_to_a_request_id_is_the_one_found() {
        let mut b = Batch::default();
        b.remember_command("r", 1, b"first".to_vec());
        b.remember_command("s", 1, b"other".to_vec());
        b.remember_command("r", 2, b"second".to_vec());
        assert_eq!(b.command_answer("r"), Some(&b"second"[..]));
        assert_eq!(b.command_answer("t"), None);
    }
}
