//! Table definitions. Keys are chosen for the SD card: readings are keyed
//! time first, so a batch appends to the rightmost leaves of one B-tree
//! instead of touching a page per sensor.

use redb::TableDefinition;

/// `"schema_version"` → layout version.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const SCHEMA_KEY: &str = "schema_version";

/// Sensor id → small index used in reading keys.
pub const SENSORS: TableDefinition<&str, u32> = TableDefinition::new("sensors");

/// Sensor index → last per-sensor sequence number handed out.
pub const SENSOR_SEQ: TableDefinition<u32, u64> = TableDefinition::new("sensor_seq");

/// (time ms, sensor index, per-sensor seq) → (quantity code, value).
pub const READINGS: TableDefinition<(i64, u32, u64), (u8, f64)> = TableDefinition::new("readings");

/// Event seq → (time ms, topic below the prefix, payload).
pub const EVENTS: TableDefinition<u64, (i64, &str, &[u8])> = TableDefinition::new("events");

/// Event seqs not yet acknowledged by the broker. Never trimmed.
pub const OUTBOX: TableDefinition<u64, ()> = TableDefinition::new("outbox");

/// Event seqs taken out of the outbox unsent because no broker would take
/// them (over `mqtt.max_payload`); the events stay in [`EVENTS`]. Counted
/// in the status. Never trimmed.
pub const SET_ASIDE: TableDefinition<u64, ()> = TableDefinition::new("set_aside");

/// Named state blobs: the audit chain's head, the lifecycle mark, small
/// counters (and the excursion engine's whole state in files of schema 1).
pub const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// The excursion engine's state, one row per thing that changes: (part,
/// key) → the value as JSON (see `crate::snapshot`). A commit writes only
/// the rows that changed, so what it costs the card does not grow with
/// what the engine knows (the serials on board, the lots, the stays).
/// Here: the parts bounded by the configuration (trackers, doors,
/// presence), which change nearly every commit.
pub const ENGINE_ROWS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("engine_state");

/// The lots' ledger rows: a lot on board changes with every temperature,
/// the others never again; apart, so that their number does not deepen the
/// tree whose path every commit rewrites.
pub const ENGINE_LOTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("engine_lots");

/// The stays, the serial registry and the lots' expiries: large (12,500
/// serials on a full container) and changed only by loads, unloads and the
/// retention, so kept out of the trees routine commits rewrite.
pub const ENGINE_REGISTRY: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("engine_registry");

/// Parts of the engine state kept in [`ENGINE_LOTS`] and [`ENGINE_REGISTRY`];
/// every other part is in [`ENGINE_ROWS`].
pub const LOT_PARTS: [&str; 1] = ["lot"];
pub const REGISTRY_PARTS: [&str; 3] = ["stay", "serial", "lot_expiry"];

/// Every table of the engine state.
pub const ENGINE_TABLES: [TableDefinition<(&str, &str), &[u8]>; 3] =
    [ENGINE_ROWS, ENGINE_LOTS, ENGINE_REGISTRY];

/// The table an engine state part is kept in, as its index in
/// [`ENGINE_TABLES`].
pub fn engine_table(part: &str) -> usize {
    if LOT_PARTS.contains(&part) {
        1
    } else if REGISTRY_PARTS.contains(&part) {
        2
    } else {
        0
    }
}

/// Audit entry seq → the entry as JSON (see `crate::audit`). Never trimmed.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// The audit chain's head (seq and hash of the last entry) in [`STATE`]:
/// written with every append, so removing the last entry shows.
pub const AUDIT_HEAD_KEY: &str = "audit_head";

/// In [`STATE`]: a time (i64, big endian, ms) at or before every reading
/// committed since the last readings checkpoint (`crate::audit::readings`),
/// `i64::MAX` when there are none, so a checkpoint scans only from there.
/// Written when it changes: with the first commit after a checkpoint, not
/// with every commit.
pub const READINGS_SPAN_FROM_KEY: &str = "readings_span_from";

/// Record number (from 1, in the order written: the wall clock may go
/// back) → a clock record as JSON with its time in `at`: the clock's
/// synchronisation state whenever it changes, and every jump with the range
/// of reading times it affects (docs/time.md). Never trimmed.
pub const CLOCK: TableDefinition<u64, &[u8]> = TableDefinition::new("clock");
/// Operator commands answered, in answer order: n → (request id, time ms,
/// the answer as JSON). Bounded to [`COMMANDS_KEPT`], oldest dropped first.
pub const COMMAND_LOG: TableDefinition<u64, (&str, i64, &[u8])> =
    TableDefinition::new("command_log");

/// Request id → its entry in [`COMMAND_LOG`], to answer a repeat.
pub const COMMAND_IDS: TableDefinition<&str, u64> = TableDefinition::new("command_ids");

/// How many answered request ids are remembered. An operator resending a
/// command after a lost answer does so within minutes; 1,000 covers weeks
/// of loading and unloading on one container.
pub const COMMANDS_KEPT: u64 = 1_000;

/// Telemetry waiting to be sent: id (its own counter, not an event seq) →
/// (time ms, topic below the prefix, payload). Dropped oldest first when the
/// outbox is over its cap; the count of drops is kept in [`STATE`].
pub const TELEMETRY: TableDefinition<u64, (i64, &str, &[u8])> = TableDefinition::new("telemetry");

/// Telemetry messages dropped from the full outbox (u64, little endian) in
/// [`STATE`].
pub const TELEMETRY_DROPPED_KEY: &str = "telemetry_dropped";
