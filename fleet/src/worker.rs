//! A worker: leases partitions in PostgreSQL, and for each one pulls
//! batches from its durable consumer, applies a batch (delivery, then
//! custody and exposure, each in its own transaction) and acks it only
//! after both commit.
//!
//! Partitions are shared out through the `leases` table: each live worker
//! takes its fair share (partitions / live workers), renews it, and a dead
//! worker's leases expire so the others take them over. Exclusivity is for
//! order and efficiency only: correctness does not depend on it, since
//! `event_id` is unique and the delivery rows are locked in the
//! transaction, so two workers briefly sharing a partition count nothing
//! twice.

use coldgate_sensor_drivers::Backoff;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::custody;
use crate::ingest::{self, Item};
use crate::stream;

/// A connection whose driver runs on its own task.
pub async fn pg_connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&config.postgres.url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// Doubling pauses from 100 ms up to `max`, for PostgreSQL or NATS being
/// away: the project's one backoff, as the gateway's sources and uplink use.
pub fn pauses(max: Duration) -> Backoff {
    Backoff::new(Duration::from_millis(100), max)
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Runs until `shutdown` turns true.
pub async fn run(config: Arc<Config>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let me = config.worker_name();
    let nats = stream::connect(&config).await?;
    let js = jetstream::new(nats);
    let s = stream::ensure_stream(&js, &config).await?;
    let mut consumers = BTreeMap::new();
    for p in 0..config.lanes() {
        consumers.insert(p, stream::ensure_consumer(&s, &config, p).await?);
    }
    info!(worker = %me, lanes = config.lanes(), "worker started");

    let lease_ms = i64::try_from(config.worker.lease.as_millis()).unwrap_or(i64::MAX);
    let tick = config.worker.lease / 3;
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut pg: Option<Client> = None;
    let mut backoff = pauses(config.worker.backoff_max);
    loop {
        if pg.as_ref().is_none_or(|c| c.is_closed()) {
            pg = match pg_connect(&config).await {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("postgres unavailable for leases: {e}");
                    None
                }
            };
        }
        let owned = match &pg {
            Some(c) => match lease_round(c, &config, &me, lease_ms).await {
                Ok(owned) => {
                    backoff.reset();
                    Some(owned)
                }
                Err(e) => {
                    warn!("lease round failed: {e}");
                    pg = None;
                    None
                }
            },
            None => None,
        };
        if let Some(owned) = owned {
            // Stop what was taken over or released, start what was won.
            let lost: Vec<u32> = running
                .keys()
                .filter(|p| !owned.contains(p))
                .copied()
                .collect();
            for p in lost {
                if let Some(r) = running.remove(&p) {
                    info!(partition = p, "partition handed over");
                    let _ = r.stop.send(true);
                    let _ = r.task.await;
                }
            }
            for p in owned {
                if let (false, Some(c)) = (running.contains_key(&p), consumers.get(&p)) {
                    info!(partition = p, "partition taken");
                    let (tx, rx) = watch::channel(false);
                    let task = tokio::spawn(partition_loop(config.clone(), p, c.clone(), rx));
                    running.insert(p, Running { stop: tx, task });
                }
            }
        }
        let pause = if pg.is_some() {
            tick
        } else {
            backoff.next_delay()
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
    for (_, r) in std::mem::take(&mut running) {
        let _ = r.stop.send(true);
        let _ = r.task.await;
    }
    // Hand the partitions over now rather than when the leases expire.
    if let Some(c) = &pg {
        let _ = c
            .execute("DELETE FROM leases WHERE worker = $1", &[&me])
            .await;
        let _ = c
            .execute("DELETE FROM workers WHERE worker = $1", &[&me])
            .await;
    }
    info!(worker = %me, "worker stopped");
    Ok(())
}

/// Heartbeat, renew, release the surplus over the fair share, claim free
/// partitions up to it. Returns the partitions this worker holds.
async fn lease_round(
    c: &Client,
    config: &Config,
    me: &str,
    lease_ms: i64,
) -> Result<Vec<u32>, tokio_postgres::Error> {
    let lease = "make_interval(secs => ($2::int8 / 1000.0)::float8)";
    c.execute(
        "INSERT INTO workers (worker, seen_at) VALUES ($1, now())
         ON CONFLICT (worker) DO UPDATE SET seen_at = now()",
        &[&me],
    )
    .await?;
    let live: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM workers WHERE seen_at > now() - {lease} AND $1 = $1"),
            &[&me, &lease_ms],
        )
        .await?
        .get(0);
    let partitions = i64::from(config.lanes());
    let share = usize::try_from((partitions + live.max(1) - 1) / live.max(1)).unwrap_or(1);
    let mut owned: Vec<i32> = c
        .query(
            &format!(
                "UPDATE leases SET expires_at = now() + {lease} WHERE worker = $1 RETURNING partition"
            ),
            &[&me, &lease_ms],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    owned.sort_unstable();
    if owned.len() > share {
        let surplus: Vec<i32> = owned.split_off(share);
        c.execute(
            "DELETE FROM leases WHERE worker = $1 AND partition = ANY($2)",
            &[&me, &surplus],
        )
        .await?;
    } else if owned.len() < share {
        let free: Vec<i32> = c
            .query(
                "SELECT p::int4 FROM generate_series(0, $1::int4 - 1) p
                 WHERE NOT EXISTS (SELECT 1 FROM leases l WHERE l.partition = p AND l.expires_at > now())
                 ORDER BY random() LIMIT $2",
                &[&(partitions as i32), &((share - owned.len()) as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !free.is_empty() {
            let won = c
                .query(
                    &format!(
                        "INSERT INTO leases (partition, worker, expires_at)
                         SELECT p, $1, now() + {lease} FROM unnest($3::int4[]) p
                         ON CONFLICT (partition) DO UPDATE
                           SET worker = EXCLUDED.worker, expires_at = EXCLUDED.expires_at
                           WHERE leases.expires_at <= now()
                         RETURNING partition"
                    ),
                    &[&me, &lease_ms, &free],
                )
                .await?;
            owned.extend(won.iter().map(|r| r.get::<_, i32>(0)));
        }
    }
    Ok(owned
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect())
}

async fn partition_loop(
    config: Arc<Config>,
    partition: u32,
    consumer: consumer::Consumer<consumer::pull::Config>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pg: Option<Client> = None;
    let mut backoff = pauses(config.worker.backoff_max);
    while !*stop.borrow() {
        let fetched = tokio::select! {
            r = fetch(&consumer, &config) => r,
            _ = stop.changed() => break,
        };
        let messages = match fetched {
            Ok(m) => {
                backoff.reset();
                m
            }
            Err(e) => {
                warn!(partition, "fetch failed: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let items: Vec<Item> = messages
            .iter()
            .map(|m| {
                let stream_seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                ingest::classify(&config.nats, m.subject.as_str(), &m.payload, stream_seq)
            })
            .collect();
        // The batch is held until it is committed: nothing is acked while
        // PostgreSQL is away, and the messages are kept from redelivery.
        let mut retry = pauses(config.worker.backoff_max.min(config.worker.ack_wait / 3));
        let mut delivered = None;
        let applied = loop {
            match apply_batch(&mut pg, &config, &items, &mut delivered).await {
                Ok(a) => break Some(a),
                Err(e) => {
                    warn!(partition, "batch of {} not applied: {e}", items.len());
                    pg = None;
                    for m in &messages {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                        _ = stop.changed() => {}
                    }
                    if *stop.borrow() {
                        // Unacked: JetStream redelivers to whoever holds the
                        // partition next.
                        break None;
                    }
                }
            }
        };
        let Some(applied) = applied else { break };
        debug!(partition, ?applied, "batch committed");
        for m in &messages {
            if let Err(e) = m.ack().await {
                // Redelivered later and absorbed by event_id.
                warn!(partition, "ack failed: {e}");
            }
        }
    }
}

/// What the partition holds now, up to a batch; waits `batch_wait` first
/// when it held nothing. A no-wait fetch, not a waiting pull: nats-server
/// 2.9 does not always end a waiting pull that got fewer messages than
/// asked, and the client then waits its own `expires + 5 s` (measured by
/// scripts/bench-fleet.sh: commits came in 5 s steps).
///
/// Bounded by [`FETCH_WITHIN`]: a fetch in flight while nats-server
/// restarts can wait for an answer that never comes; what it had received
/// stays unacked and is redelivered.
async fn fetch(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    config: &Config,
) -> Result<Vec<jetstream::Message>, async_nats::Error> {
    match tokio::time::timeout(FETCH_WITHIN, fetch_now(consumer, config)).await {
        Ok(fetched) => fetched,
        Err(_) => Err(format!(
            "no answer to a fetch within {} s (nats-server restarting?)",
            FETCH_WITHIN.as_secs()
        )
        .into()),
    }
}

/// A no-wait fetch answers at once; this long means the server is gone.
const FETCH_WITHIN: Duration = Duration::from_secs(5);

async fn fetch_now(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    config: &Config,
) -> Result<Vec<jetstream::Message>, async_nats::Error> {
    let mut batch = consumer
        .fetch()
        .max_messages(config.worker.batch)
        .messages()
        .await?;
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        out.push(m?);
    }
    if out.is_empty() {
        tokio::time::sleep(config.worker.batch_wait).await;
    }
    Ok(out)
}

async fn apply_batch(
    pg: &mut Option<Client>,
    config: &Config,
    items: &[Item],
    delivered: &mut Option<ingest::Applied>,
) -> Result<ingest::Applied, tokio_postgres::Error> {
    let client = match pg.take() {
        Some(c) if !c.is_closed() => c,
        _ => pg_connect(config).await?,
    };
    let client = pg.insert(client);
    let (applied, custody) =
        apply_items_resuming(client, items, OffsetDateTime::now_utc(), delivered).await?;
    if custody != custody::Applied::default() {
        debug!(?custody, "custody applied");
    }
    Ok(applied)
}

/// Everything a batch changes, in two transactions: delivery (every event
/// once, the `delivery` rows of its gateways locked), then custody (stays
/// and their alerts) and exposure across legs (its alerts counted with
/// custody's), the latter cut by [`STAYS_PER_TRANSACTION`]. The caller
/// acks only after all of them commit.
///
/// Custody has its own transaction so that the `delivery` rows are not
/// held while a batch of manifests (hundreds of thousands of stays) is
/// written: other partitions' batches of the same gateways waited on them
/// (docs/performance.md, "With custody and exposure"). A crash between the
/// two commits leaves the messages unacked; redelivered, delivery finds
/// its events stored and custody is redone from the items alone, which it
/// can be: every write of custody and exposure is idempotent.
pub async fn apply_items(
    client: &mut Client,
    items: &[Item],
    now: OffsetDateTime,
) -> Result<(ingest::Applied, custody::Applied), tokio_postgres::Error> {
    apply_items_resuming(client, items, now, &mut None).await
}

/// [`apply_items`], skipping the delivery transaction when `delivered`
/// says it committed already (a retry after custody failed), so that a
/// retry does not count the batch's events again as duplicates.
async fn apply_items_resuming(
    client: &mut Client,
    items: &[Item],
    now: OffsetDateTime,
    delivered: &mut Option<ingest::Applied>,
) -> Result<(ingest::Applied, custody::Applied), tokio_postgres::Error> {
    let applied = match delivered {
        Some(a) => a.clone(),
        None => {
            let tx = client.transaction().await?;
            let a = apply_delivery(&tx, items, now).await?;
            tx.commit().await?;
            delivered.insert(a).clone()
        }
    };
    let mut custody = custody::Applied::default();
    for part in by_stays(items, STAYS_PER_TRANSACTION) {
        let tx = client.transaction().await?;
        let c = apply_custody(&tx, part).await?;
        tx.commit().await?;
        custody.stays += c.stays;
        custody.conflicting += c.conflicting;
        custody.alerts += c.alerts;
    }
    Ok((applied, custody))
}

/// At most this many stays in one custody transaction (a batch is cut
/// between messages, so one manifest larger than this still goes whole).
/// A batch of the manifest consumer can be `worker.batch` manifests of
/// thousands of serials each: a million stays and more held in the
/// worker's memory and in one statement. Any batching gives the same
/// custody (`fleet/tests/custody.rs`), and a crash between two of these
/// transactions is redone by the redelivery as a crash after delivery is.
pub const STAYS_PER_TRANSACTION: usize = 20_000;

/// The stays a message can give: one per pallet and one per serial of a
/// manifest, none for anything else. Counted on the JSON, without reading
/// the manifest into stays (that is done once, by custody).
fn stays_in(item: &Item) -> usize {
    let Item::Manifest { payload, .. } = item else {
        return 0;
    };
    let pallets = payload.get("pallets").and_then(|p| p.as_array());
    pallets.map_or(0, |ps| {
        ps.iter()
            .map(|p| {
                let serials: usize = p
                    .get("items")
                    .and_then(|i| i.as_array())
                    .map_or(0, |items| {
                        items
                            .iter()
                            .filter_map(|i| i.get("serials").and_then(|s| s.as_array()))
                            .map(Vec::len)
                            .sum()
                    });
                1 + serials
            })
            .sum()
    })
}

/// `items` cut, in order, into runs of at most `max` stays (a message of
/// more goes alone); a batch without manifests is one run.
fn by_stays(items: &[Item], max: usize) -> Vec<&[Item]> {
    let mut out = Vec::new();
    let (mut start, mut held) = (0, 0);
    for (n, item) in items.iter().enumerate() {
        let s = stays_in(item);
        if n > start && held + s > max {
            out.push(&items[start..n]);
            start = n;
            held = 0;
        }
        held += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The delivery part of a batch (ingest), inside the caller's transaction.
pub async fn apply_delivery(
    tx: &tokio_postgres::Transaction<'_>,
    items: &[Item],
    now: OffsetDateTime,
) -> Result<ingest::Applied, tokio_postgres::Error> {
    ingest::apply(tx, items, now).await
}

/// The custody and exposure part of a batch, inside the caller's
/// transaction: a function of the items alone, never of what delivery
/// found new, so a redelivered batch redoes it in full.
pub async fn apply_custody(
    tx: &tokio_postgres::Transaction<'_>,
    items: &[Item],
) -> Result<custody::Applied, tokio_postgres::Error> {
    let observed = custody::observe(items);
    for p in &observed.problems {
        warn!("custody: {p}");
    }
    let mut custody = custody::apply(tx, &observed).await?;
    custody.alerts += crate::exposure::apply(tx, items).await?;
    Ok(custody)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(gw: &str, pallets: usize, serials: usize) -> Item {
        let pallets: Vec<serde_json::Value> = (0..pallets)
            .map(|p| {
                let serials: Vec<String> = (0..serials).map(|s| format!("S{p}-{s}")).collect();
                serde_json::json!({"sscc": format!("P{p}"), "zone": "chilled",
                    "loaded_at": "2026-12-01T08:00:00Z",
                    "items": [{"gtin": "09506000134352", "lot": "L1", "serials": serials}]})
            })
            .collect();
        Item::Manifest {
            gateway: gw.into(),
            at: OffsetDateTime::UNIX_EPOCH,
            payload: serde_json::json!({"schema": "coldgate.manifest/1", "gateway_id": gw,
                "at": "2026-12-01T08:00:00Z", "pallets": pallets}),
        }
    }

    #[test]
    fn a_manifest_gives_a_stay_per_pallet_and_per_serial() {
        assert_eq!(stays_in(&manifest("gw", 50, 100)), 50 * 101);
        assert_eq!(stays_in(&manifest("gw", 0, 100)), 0);
    }

    #[test]
    fn a_batch_of_manifests_is_cut_between_messages_by_stays_and_keeps_its_order() {
        // 1,010 + 1,010 + 505 + 1,010 stays, at most 2,100 per run.
        let items = vec![
            manifest("a", 10, 100),
            manifest("b", 10, 100),
            manifest("c", 5, 100),
            manifest("d", 10, 100),
        ];
        let runs: Vec<Vec<&str>> = by_stays(&items, 2_100)
            .iter()
            .map(|run| {
                run.iter()
                    .map(|i| match i {
                        Item::Manifest { gateway, .. } => gateway.as_str(),
                        _ => "",
                    })
                    .collect()
            })
            .collect();
        assert_eq!(runs, [vec!["a", "b"], vec!["c", "d"]]);
        // A message larger than the cap goes alone, never split or dropped.
        assert_eq!(by_stays(&items, 100).len(), 4);
        assert_eq!(by_stays(&items[..0], 100).len(), 0);
    }
}
