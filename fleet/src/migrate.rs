//! The schema as numbered migrations, each applied once in its own
//! transaction and recorded in `fleet_migrations`. Running `migrate` again
//! (or two workers starting at once) changes nothing: an advisory lock
//! serialises them and applied versions are skipped.

use tokio_postgres::Client;

/// (version, name, SQL). Append only: an applied migration is never edited.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "events, delivery, quarantine, alerts", V1)];

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
