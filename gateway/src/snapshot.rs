//! The excursion engine's state in the store, one row per thing that
//! changes, and the one way to read it back.
//!
//! Why rows: the state holds every pallet stay with its serials, the serial
//! registry, every lot's ledger. Written as one blob it was rewritten whole
//! whenever anything in it changed, which in steady state (an MKT or a
//! last-seen time moving) is nearly every commit: with 12,500 serials on
//! board the gateway wrote 134 MB/h instead of 6 MB/h. Now each tracker,
//! door, presence, stay, serial, lot expiry and lot is its own row in
//! `engine_state` keyed by (part, key), and a commit writes only the rows
//! whose value differs from what the last successful commit wrote, in the
//! same transaction as the readings and events that changed them: after a
//! crash all of a commit's consequences exist or none do.
//!
//! What was committed is known only after a commit succeeded, so ingest's
//! first commit of a run rewrites every row (and drops the blob of builds
//! before schema 2, migrating such a file); a failed commit leaves the
//! baseline as it was, so its changes are in the next attempt.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Serialize};

use crate::excursion::EngineState;
use crate::store::{RowDelta, StateRows, Store, StoreError};

/// In the named-state table: the whole engine state as one JSON blob, as
/// builds before schema 2 wrote it. Read only to migrate it; the first commit
/// of a newer build removes it with the rows that replace it.
pub const LEGACY_ENGINE_STATE: &str = "engine";

/// The parts of the state, each a row per key.
const TRACKER: &str = "tracker";
const DOOR: &str = "door";
const PRESENCE: &str = "presence";
const STAY: &str = "stay";
const SERIAL: &str = "serial";
const LOT_EXPIRY: &str = "lot_expiry";
const LOT: &str = "lot";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine state in {path} cannot be decoded ({part} `{key}`): {source}")]
    Decode {
        path: String,
        part: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The engine state as last committed: the rows, or the blob of an earlier
/// build not yet migrated; empty for a new file. The daemon, the HTTP API,
/// the trip report and the CLI all read it here.
pub fn load_engine_state(store: &Store) -> Result<EngineState, SnapshotError> {
    let stored = store.state_rows(LEGACY_ENGINE_STATE)?;
    let path = store.path().display().to_string();
    let bad = |part: &str, key: &str, source| SnapshotError::Decode {
        path: path.clone(),
        part: part.to_string(),
        key: key.to_string(),
        source,
    };
    // Only a build before schema 2 writes the blob, and the rows replace it
    // in one commit: when it is there, it is what was committed last.
    if let Some(blob) = stored.legacy {
        let mut state: EngineState =
            serde_json::from_slice(&blob).map_err(|e| bad("blob", LEGACY_ENGINE_STATE, e))?;
        state.manifest.upgrade();
        return Ok(state);
    }
    from_rows(stored, bad)
}

fn from_rows(
    stored: StateRows,
    bad: impl Fn(&str, &str, serde_json::Error) -> SnapshotError,
) -> Result<EngineState, SnapshotError> {
    fn put<V: DeserializeOwned>(
        map: &mut BTreeMap<String, V>,
        key: String,
        bytes: &[u8],
    ) -> Result<(), serde_json::Error> {
        map.insert(key, serde_json::from_slice(bytes)?);
        Ok(())
    }
    let mut st = EngineState::default();
    // Keys are zero-padded indexes, so the rows come in load order.
    let mut stays = Vec::new();
    for (part, key, bytes) in stored.rows {
        let done = match part.as_str() {
            TRACKER => put(&mut st.trackers, key.clone(), &bytes),
            DOOR => put(&mut st.doors, key.clone(), &bytes),
            PRESENCE => put(&mut st.presence, key.clone(), &bytes),
            SERIAL => put(&mut st.manifest.serials, key.clone(), &bytes),
            LOT_EXPIRY => put(&mut st.manifest.lot_expiries, key.clone(), &bytes),
            LOT => put(&mut st.ledger.lots, key.clone(), &bytes),
            STAY => serde_json::from_slice(&bytes).map(|s| stays.push(s)),
            // A part a later build added: not this build's to judge.
            _ => Ok(()),
        };
        done.map_err(|e| bad(&part, &key, e))?;
    }
    st.manifest.stays = stays;
    Ok(st)
}

/// Which parts one delta changed, so that only those are copied into the
/// baseline once it is committed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    trackers: bool,
    doors: bool,
    presence: bool,
    stays: bool,
    serials: bool,
    lot_expiries: bool,
    lots: bool,
}

impl Changed {
    fn any(&self) -> bool {
        self.trackers
            || self.doors
            || self.presence
            || self.stays
            || self.serials
            || self.lot_expiries
            || self.lots
    }
}

/// The rows to write for the state as it is now, and which parts changed.
#[derive(Debug, Default)]
pub struct Delta {
    pub rows: RowDelta,
    pub changed: Changed,
    /// Everything is written (the first commit of a run).
    full: bool,
}

impl Delta {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// What ingest last committed of the engine state, to write only what
/// changed since.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `None` until a commit succeeded in this run.
    committed: Option<EngineState>,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// The rows that make the stored state `now`. A value that cannot be
    /// serialised fails the whole delta: a state is never stored in part.
    pub fn delta(&self, now: &EngineState) -> Result<Delta, StoreError> {
        let Some(then) = &self.committed else {
            return full(now);
        };
        let mut d = Delta::default();
        let r = &mut d.rows;
        d.changed = Changed {
            trackers: diff(TRACKER, &now.trackers, &then.trackers, r)?,
            doors: diff(DOOR, &now.doors, &then.doors, r)?,
            presence: diff(PRESENCE, &now.presence, &then.presence, r)?,
            stays: diff_stays(&now.manifest.stays, &then.manifest.stays, r)?,
            serials: diff(SERIAL, &now.manifest.serials, &then.manifest.serials, r)?,
            lot_expiries: diff(
                LOT_EXPIRY,
                &now.manifest.lot_expiries,
                &then.manifest.lot_expiries,
                r,
            )?,
            lots: diff(LOT, &now.ledger.lots, &then.ledger.lots, r)?,
        };
        Ok(d)
    }

    /// The commit that wrote `delta` (computed from `now`) succeeded.
    pub fn committed(&mut self, now: &EngineState, delta: &Delta) {
        let c = delta.changed;
        match &mut self.committed {
            Some(then) if !delta.full => {
                if !c.any() {
                    return;
                }
                if c.trackers {
                    then.trackers.clone_from(&now.trackers);
                }
                if c.doors {
                    then.doors.clone_from(&now.doors);
                }
                if c.presence {
                    then.presence.clone_from(&now.presence);
                }
                if c.stays {
                    then.manifest.stays.clone_from(&now.manifest.stays);
                }
                if c.serials {
                    then.manifest.serials.clone_from(&now.manifest.serials);
                }
                if c.lot_expiries {
                    then.manifest
                        .lot_expiries
                        .clone_from(&now.manifest.lot_expiries);
                }
                if c.lots {
                    then.ledger.lots.clone_from(&now.ledger.lots);
                }
            }
            _ => self.committed = Some(now.clone()),
        }
    }
}

/// Every row of `now`, replacing whatever the table holds, and the blob of
/// an earlier build removed.
fn full(now: &EngineState) -> Result<Delta, StoreError> {
    let empty = EngineState::default();
    let mut d = Delta {
        full: true,
        ..Delta::default()
    };
    d.rows.clear = true;
    d.rows.remove_named.push(LEGACY_ENGINE_STATE.to_string());
    let r = &mut d.rows;
    diff(TRACKER, &now.trackers, &empty.trackers, r)?;
    diff(DOOR, &now.doors, &empty.doors, r)?;
    diff(PRESENCE, &now.presence, &empty.presence, r)?;
    diff_stays(&now.manifest.stays, &[], r)?;
    diff(SERIAL, &now.manifest.serials, &empty.manifest.serials, r)?;
    diff(
        LOT_EXPIRY,
        &now.manifest.lot_expiries,
        &empty.manifest.lot_expiries,
        r,
    )?;
    diff(LOT, &now.ledger.lots, &empty.ledger.lots, r)?;
    Ok(d)
}

/// Puts the rows of `now` that differ from `then` and deletes those gone;
/// whether any did. One walk over both (keys sorted): a commit compares the
/// 12,500 serials of a full container in well under a millisecond.
fn diff<V: PartialEq + Serialize>(
    part: &'static str,
    now: &BTreeMap<String, V>,
    then: &BTreeMap<String, V>,
    out: &mut RowDelta,
) -> Result<bool, StoreError> {
    let before = out.len();
    let mut old = then.iter().peekable();
    for (key, value) in now {
        while let Some((gone, _)) = old.next_if(|(k, _)| *k < key) {
            out.delete.push((part.to_string(), gone.clone()));
        }
        let was = old.next_if(|(k, _)| *k == key).map(|(_, v)| v);
        if was == Some(value) {
            continue;
        }
        let bytes = StoreError::encode("engine state", value)?;
        // Values can differ in what is not stored (a tracker's newest time,
        // a presence's exact time): the row changed only if its bytes did.
        if let Some(was) = was {
            if StoreError::encode("engine state", was)? == bytes {
                continue;
            }
        }
        out.put.push((part.to_string(), key.clone(), bytes));
    }
    for (gone, _) in old {
        out.delete.push((part.to_string(), gone.clone()));
    }
    Ok(out.len() != before)
}

/// Stays are kept in load order, keyed by their index.
fn diff_stays<V: PartialEq + Serialize>(
    now: &[V],
    then: &[V],
    out: &mut RowDelta,
) -> Result<bool, StoreError> {
    let before = out.len();
    for (i, stay) in now.iter().enumerate() {
        let was = then.get(i);
        if was == Some(stay) {
            continue;
        }
        let bytes = StoreError::encode("engine state", stay)?;
        if let Some(was) = was {
            if StoreError::encode("engine state", was)? == bytes {
                continue;
            }
        }
        out.put.push((STAY.to_string(), stay_key(i), bytes));
    }
    for i in now.len()..then.len() {
        out.delete.push((STAY.to_string(), stay_key(i)));
    }
    Ok(out.len() != before)
}

fn stay_key(index: usize) -> String {
    format!("{index:010}")
}

#[cfg(test)]
mod tests;
