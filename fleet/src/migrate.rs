//! The schema as numbered migrations, each applied once in its own
//! transaction and recorded in `fleet_migrations`. Running `migrate` again
//! (or two workers starting at once) changes nothing: an advisory lock
//! serialises them and applied versions are skipped.

use tokio_postgres::Client;

/// (version, name, SQL). Append only: an applied migration is never edited.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "events, delivery, quarantine, alerts", V1),
    (2, "custody: stays, pallet lots, recalls", V2),
    (3, "exposure: lot excursions, monitoring gaps, lot MKT", V3),
    (
        4,
        "custody: the one-place constraint keyed by code first",
        V4,
    ),
];

const V1: &str = r#"
CREATE TABLE events (
    event_id     text        NOT NULL,
    -- 0 for an unsplit event; a split event's parts share the event_id.
    part         integer     NOT NULL,
    gateway_id   text        NOT NULL,
    seq          bigint      NOT NULL CHECK (seq > 0),
    kind         text        NOT NULL,
    at           timestamptz NOT NULL,
    payload      jsonb       NOT NULL,
    stream_seq   bigint      NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (event_id, part)
);
CREATE INDEX events_gateway_seq ON events (gateway_id, seq);

CREATE TABLE delivery (
    gateway_id       text        PRIMARY KEY,
    contiguous_seq   bigint      NOT NULL DEFAULT 0,
    highest_seq      bigint      NOT NULL DEFAULT 0,
    events           bigint      NOT NULL DEFAULT 0,
    duplicates       bigint      NOT NULL DEFAULT 0,
    seq_conflicts    bigint      NOT NULL DEFAULT 0,
    last_event_at    timestamptz,
    last_status      jsonb,
    last_status_at   timestamptz,
    last_manifest    jsonb,
    last_manifest_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gaps (
    gateway_id  text        NOT NULL REFERENCES delivery ON DELETE CASCADE,
    from_seq    bigint      NOT NULL,
    to_seq      bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    alerted_at  timestamptz,
    replay_at   timestamptz,
    PRIMARY KEY (gateway_id, from_seq),
    CHECK (from_seq <= to_seq)
);

CREATE TABLE quarantine (
    id          bigserial   PRIMARY KEY,
    subject     text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    payload     bytea       NOT NULL,
    reason      text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL,
    gateway_id  text        NOT NULL,
    from_seq    bigint,
    to_seq      bigint,
    detail      jsonb       NOT NULL DEFAULT '{}',
    raised_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz
);
CREATE INDEX alerts_open ON alerts (gateway_id) WHERE cleared_at IS NULL;

-- Which worker holds which partition: a lease renewed while it lives.
CREATE TABLE leases (
    partition   integer     PRIMARY KEY,
    worker      text        NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE TABLE workers (
    worker      text        PRIMARY KEY,
    seen_at     timestamptz NOT NULL
);
"#;

/// Custody (docs/fleet.md, "Custody"). A stay is one time a code (an SSCC,
/// or a GTIN + serial as `GTIN/SERIAL`) was on board one gateway. The
/// exclusion constraint keeps the clean record free of a code in two places
/// at once even when two workers insert at the same moment (the second waits
/// for the first's commit, then is refused); the refused stay is kept with
/// `conflict = true`, outside the constraint, so nothing observed is lost.
const V2: &str = r#"
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Every manifest a gateway published: what was on board at `at`. A pallet
-- missing from a manifest later than the first one that listed it was
-- unloaded by then, whatever order the manifests arrive in.
CREATE TABLE manifest_seen (
    gateway_id  text        NOT NULL,
    at          timestamptz NOT NULL,
    ssccs       text[]      NOT NULL,
    PRIMARY KEY (gateway_id, at)
);

-- Accepted unload commands, from the gateway's audit events.
CREATE TABLE unloads_seen (
    gateway_id  text        NOT NULL,
    sscc        text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (gateway_id, sscc, at)
);

CREATE TABLE stays (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('sscc', 'sgtin')),
    code        text        NOT NULL,
    gateway_id  text        NOT NULL,
    zone        text        NOT NULL,
    sscc        text        NOT NULL,
    gtin        text,
    serial      text,
    lot         text,
    expiry      date,
    loaded      timestamptz NOT NULL,
    unloaded    timestamptz,
    first_seen  timestamptz NOT NULL,
    source      text        NOT NULL,
    conflict    boolean     NOT NULL DEFAULT false,
    during      tstzrange   GENERATED ALWAYS AS (tstzrange(loaded, unloaded, '[)')) STORED,
    UNIQUE NULLS NOT DISTINCT (kind, code, gateway_id, loaded, sscc, lot, expiry),
    CONSTRAINT stays_one_place EXCLUDE USING gist
        (kind WITH =, code WITH =, gateway_id WITH <>, during WITH &&) WHERE (NOT conflict)
);
CREATE INDEX stays_gateway ON stays (gateway_id, sscc);
CREATE INDEX stays_lot ON stays (lot) WHERE kind = 'sgtin';

-- The lots on each pallet stay (serialised or not): what expiry and recall
-- checks, and a lot's journey, are about.
CREATE TABLE pallet_lots (
    gateway_id  text        NOT NULL,
    sscc        text        NOT NULL,
    loaded      timestamptz NOT NULL,
    zone        text        NOT NULL,
    gtin        text        NOT NULL,
    lot         text        NOT NULL,
    expiry      date,
    serials     text[]      NOT NULL,
    PRIMARY KEY (gateway_id, sscc, loaded, gtin, lot)
);
CREATE INDEX pallet_lots_lot ON pallet_lots (lot, gtin);

-- Lots an operator flagged (`coldgate-fleet recall`); gtin '' is any GTIN.
CREATE TABLE recalls (
    gtin        text        NOT NULL DEFAULT '',
    lot         text        NOT NULL,
    reason      text        NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lot, gtin)
);

-- An alert's identity (what it is about, not when it was seen), so that
-- seeing it again raises nothing; published_at: handed to NATS.
ALTER TABLE alerts ADD COLUMN key text, ADD COLUMN published_at timestamptz;
CREATE UNIQUE INDEX alerts_key ON alerts (key) WHERE key IS NOT NULL;
CREATE INDEX alerts_unpublished ON alerts (id) WHERE published_at IS NULL AND key IS NOT NULL;
"#;

/// Exposure across legs (docs/fleet.md). One row per lot and excursion:
/// a resend or a late `started` keeps the largest duration, so sums over
/// rows are the same in any arrival order.
const V3: &str = r#"
CREATE TABLE lot_excursions (
    gtin         text        NOT NULL,
    lot          text        NOT NULL,
    gateway_id   text        NOT NULL,
    excursion_id text        NOT NULL,
    rule         text        NOT NULL,
    direction    text        NOT NULL,
    allowance_s  bigint,
    is_freeze    boolean     NOT NULL,
    duration_s   bigint      NOT NULL,
    unknown_s    bigint      NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    mean         double precision NOT NULL,
    PRIMARY KEY (gtin, lot, gateway_id, excursion_id)
);
CREATE INDEX lot_excursions_lot ON lot_excursions (lot);

-- Unmonitored time per gateway and zone ('*': the gateway was down).
CREATE TABLE monitoring_gaps (
    gateway_id  text        NOT NULL,
    zone        text        NOT NULL,
    source      text        NOT NULL,
    from_at     timestamptz NOT NULL,
    to_at       timestamptz,
    PRIMARY KEY (gateway_id, zone, source, from_at)
);

-- Each lot's MKT as a gateway told it at an unload (its audit event's
-- lot_mkt): over all the lot's stays on that gateway so far.
CREATE TABLE lot_mkt (
    gtin              text             NOT NULL,
    lot               text             NOT NULL,
    gateway_id        text             NOT NULL,
    sscc              text             NOT NULL,
    at                timestamptz      NOT NULL,
    mkt               double precision NOT NULL,
    monitored_s       bigint           NOT NULL,
    activation_energy double precision NOT NULL,
    PRIMARY KEY (gtin, lot, gateway_id, sscc, at)
);
CREATE INDEX lot_mkt_lot ON lot_mkt (lot);
"#;

/// The exclusion constraint of V2 led with `kind`, which has two values: a
/// GiST index is organised by its first column, so every stay's check
/// searched most of the index and a manifest of 5,000 stays took minutes
/// (docs/performance.md, "With custody and exposure"). `code` first makes
/// each check a search among the stays of one code. Same rule, same rows.
const V4: &str = r#"
ALTER TABLE stays DROP CONSTRAINT stays_one_place;
ALTER TABLE stays ADD CONSTRAINT stays_one_place EXCLUDE USING gist
    (code WITH =, kind WITH =, gateway_id WITH <>, during WITH &&) WHERE (NOT conflict);
"#;

/// Applies what is missing; returns the versions it applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS fleet_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        // Held to the end of this transaction: a second `migrate` waits,
        // then finds the version recorded.
        tx.execute("SELECT pg_advisory_xact_lock(7301017)", &[])
            .await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM fleet_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO fleet_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
            applied.push(*version);
        }
        tx.commit().await?;
    }
    Ok(applied)
}

/// The newest version applied, 0 for an empty database.
pub async fn current(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT coalesce(max(version), 0) FROM fleet_migrations WHERE to_regclass('fleet_migrations') IS NOT NULL",
            &[],
        )
        .await;
    match row {
        Ok(Some(r)) => Ok(r.get(0)),
        Ok(None) => Ok(0),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(e),
    }
}
