//! Custody across containers: where every SSCC and every GTIN + serial was,
//! and the alerts only the fleet can raise (docs/fleet.md, "Custody").
//!
//! Stays come from the gateways' manifests (a pallet listed with its
//! `loaded_at`, zone and items) and end at the first accepted unload (an
//! audit event) or the first later manifest that no longer lists the pallet.
//! Both are minimums over what was observed, and every alert is recomputed
//! from all the stays of the codes a batch touched (those that can have
//! one: on two gateways or under two labels), so the result is the same
//! whatever order the gateways' messages arrive in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::{Client, Transaction};

mod decide;
mod observe;

pub use decide::{loaded_after_expiry, wanted_alerts, Alert, Stay};
pub use observe::{observe, Observed, PalletLot};

/// Where custody alerts are published.
pub const ALERT_SUBJECT: &str = "fleet.alerts.custody";

/// The subject an alert kind is published on.
fn subject_of(kind: &str) -> &'static str {
    if kind == "budget_exhausted" {
        crate::exposure::ALERT_SUBJECT
    } else {
        ALERT_SUBJECT
    }
}

/// What custody did in one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub stays: u64,
    pub conflicting: u64,
    pub alerts: u64,
}

/// The table's unique key, `$1`..`$7`.
const SAME_STAY: &str = "kind = $1 AND code = $2 AND gateway_id = $3 AND loaded = $4 AND sscc = $5
    AND lot IS NOT DISTINCT FROM $6 AND expiry IS NOT DISTINCT FROM $7";

const STAY_COLUMNS: &str =
    "kind, code, gateway_id, zone, sscc, gtin, serial, lot, expiry, loaded, unloaded, source";

fn stay_of(r: &tokio_postgres::Row) -> Stay {
    Stay {
        kind: r.get(0),
        code: r.get(1),
        gateway_id: r.get(2),
        zone: r.get(3),
        sscc: r.get(4),
        gtin: r.get(5),
        serial: r.get(6),
        lot: r.get(7),
        expiry: r.get(8),
        loaded: r.get(9),
        unloaded: r.get(10),
        source: r.get(11),
    }
}

/// The end of a stay of `sscc` on `gateway` as far as the tables know: the
/// first accepted unload at or after it was loaded, or the first manifest
/// after the first one that listed it which no longer does.
const UNLOADED: &str = "least(
    (SELECT min(u.at) FROM unloads_seen u
      WHERE u.gateway_id = s_gateway AND u.sscc = s_sscc AND u.at >= s_loaded),
    (SELECT min(m.at) FROM manifest_seen m
      WHERE m.gateway_id = s_gateway AND m.at > s_first AND NOT (s_sscc = ANY (m.ssccs))))";

fn unloaded_of(gateway: &str, sscc: &str, loaded: &str, first: &str) -> String {
    UNLOADED
        .replace("s_gateway", gateway)
        .replace("s_sscc", sscc)
        .replace("s_loaded", loaded)
        .replace("s_first", first)
}

/// Applies what `obs` tells inside the batch's transaction.
pub async fn apply(tx: &Transaction<'_>, obs: &Observed) -> Result<Applied, tokio_postgres::Error> {
    let mut out = Applied::default();
    if obs.manifests.is_empty() && obs.unloads.is_empty() {
        return Ok(out);
    }
    for (gw, at, ssccs) in &obs.manifests {
        tx.execute(
            "INSERT INTO manifest_seen (gateway_id, at, ssccs) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[gw, at, ssccs],
        )
        .await?;
    }
    for (gw, sscc, at) in &obs.unloads {
        tx.execute(
            "INSERT INTO unloads_seen (gateway_id, sscc, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[gw, sscc, at],
        )
        .await?;
    }
    let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
    // Each stay alone: the constraint decides, and a refused one is kept
    // flagged. One statement per stay keeps the decision per stay.
    let mut first_seen: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
    let mut stays: Vec<&Stay> = Vec::new();
    for (s, seen) in &obs.stays {
        let k = format!("{}|{}", s.kind, s.id());
        match first_seen.get_mut(&k) {
            Some(f) => *f = (*f).min(*seen),
            None => {
                first_seen.insert(k, *seen);
                stays.push(s);
            }
        }
    }
    let seen: Vec<OffsetDateTime> = stays
        .iter()
        .map(|s| {
            first_seen
                .get(&format!("{}|{}", s.kind, s.id()))
                .copied()
                .unwrap_or(s.loaded)
        })
        .collect();
    // All of the batch's stays in one statement, in the order observed: a
    // manifest is thousands of stays, and a statement each made custody the
    // fleet's bottleneck (docs/performance.md, "With custody and exposure").
    // The constraint still decides per row (ON CONFLICT DO NOTHING skips a
    // row that collides with a stay stored before or earlier in the same
    // statement); the rows it skipped are decided one by one below, as
    // before.
    let inserted = insert_clean(tx, &stays, &seen).await?;
    let insert = format!(
        "INSERT INTO stays (kind, code, gateway_id, zone, sscc, gtin, serial, lot, expiry, loaded,
                            first_seen, source, conflict, unloaded)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {}
         ON CONFLICT DO NOTHING RETURNING id",
        unloaded_of("$3", "$5", "$10", "$11")
    );
    let mut insert_one = None;
    for (n, s) in stays.into_iter().enumerate() {
        if inserted.contains(&n) {
            out.stays += 1;
            touched.insert((s.kind.clone(), s.code.clone()));
            continue;
        }
        let seen = seen[n];
        let known = tx
            .query_opt(
                &format!("SELECT 1 FROM stays WHERE {SAME_STAY}"),
                &[
                    &s.kind,
                    &s.code,
                    &s.gateway_id,
                    &s.loaded,
                    &s.sscc,
                    &s.lot,
                    &s.expiry,
                ],
            )
            .await?
            .is_some();
        if known {
            tx.execute(
                &format!("UPDATE stays SET first_seen = $8 WHERE {SAME_STAY} AND first_seen > $8"),
                &[
                    &s.kind,
                    &s.code,
                    &s.gateway_id,
                    &s.loaded,
                    &s.sscc,
                    &s.lot,
                    &s.expiry,
                    &seen,
                ],
            )
            .await?;
            continue;
        }
        let statement = match &insert_one {
            Some(st) => st,
            None => insert_one.insert(tx.prepare(&insert).await?),
        };
        let flagged = tx
            .query_opt(
                statement,
                &[
                    &s.kind,
                    &s.code,
                    &s.gateway_id,
                    &s.zone,
                    &s.sscc,
                    &s.gtin,
                    &s.serial,
                    &s.lot,
                    &s.expiry,
                    &s.loaded,
                    &seen,
                    &s.source,
                    &true,
                ],
            )
            .await?;
        if flagged.is_some() {
            out.stays += 1;
            out.conflicting += 1;
            touched.insert((s.kind.clone(), s.code.clone()));
        }
    }
    // Ends learnt in this batch. An end only ever moves earlier (a minimum
    // over more observations), so the constraint is never violated by it.
    // Only stays an observation of this batch can end earlier: open ones,
    // and closed ones whose end is later than the batch's earliest
    // observation of their gateway (a stay's history is never rescanned).
    let mut since: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
    for (gw, at) in obs
        .manifests
        .iter()
        .map(|m| (m.0.as_str(), m.1))
        .chain(obs.unloads.iter().map(|u| (u.0.as_str(), u.2)))
    {
        let slot = since.entry(gw).or_insert(at);
        *slot = (*slot).min(at);
    }
    let gateways: Vec<&str> = since.keys().copied().collect();
    let earliest: Vec<OffsetDateTime> = since.values().copied().collect();
    let rows = tx
        .query(
            &format!(
                "WITH e AS (SELECT s.id, {} AS unloaded
                            FROM stays s JOIN unnest($1::text[], $2::timestamptz[]) AS b(g, since)
                              ON s.gateway_id = b.g
                            WHERE s.unloaded IS NULL OR s.unloaded > b.since)
                 UPDATE stays s SET unloaded = e.unloaded FROM e
                 WHERE s.id = e.id AND s.unloaded IS DISTINCT FROM e.unloaded
                 RETURNING s.kind, s.code",
                unloaded_of("s.gateway_id", "s.sscc", "s.loaded", "s.first_seen")
            ),
            &[&gateways, &earliest],
        )
        .await?;
    for r in rows {
        touched.insert((r.get(0), r.get(1)));
    }
    // Only codes whose alerts can change are read back and recomputed: a
    // code whose stays are all on one gateway under one label can raise no
    // `custody_overlap` (two gateways) nor `relabelled` (two labels), had
    // none before (stays are never deleted, so neither count ever goes
    // down) and has no stay flagged (only a stay on another gateway can
    // refuse one). A manifest's serials are nearly all such codes.
    let touched = codes_that_can_alert(tx, &touched).await?;
    let codes: Vec<&str> = touched.iter().map(|t| t.1.as_str()).collect();
    let kinds: Vec<&str> = touched.iter().map(|t| t.0.as_str()).collect();
    // By (kind, code), the leading columns of the stays' unique index: by
    // code alone PostgreSQL scanned all of it (EXPLAIN in docs/performance.md).
    let of_touched = "(kind, code) IN (SELECT * FROM unnest($1::text[], $2::text[]))";
    if !codes.is_empty() {
        // A stay refused while another was open may be alone now that ends
        // are known: back into the clean record, one at a time so two of
        // them never enter together.
        let flagged = tx
            .query(
                &format!(
                    "SELECT id FROM stays WHERE conflict AND {of_touched} ORDER BY loaded, gateway_id"
                ),
                &[&kinds, &codes],
            )
            .await?;
        for r in flagged {
            let id: i64 = r.get(0);
            tx.execute(
                "UPDATE stays s SET conflict = false WHERE s.id = $1 AND NOT EXISTS (
                   SELECT 1 FROM stays o WHERE NOT o.conflict AND o.kind = s.kind
                     AND o.code = s.code AND o.gateway_id <> s.gateway_id AND o.during && s.during)",
                &[&id],
            )
            .await?;
        }
        let rows = tx
            .query(
                &format!("SELECT {STAY_COLUMNS} FROM stays WHERE {of_touched} ORDER BY id"),
                &[&kinds, &codes],
            )
            .await?;
        let all: Vec<Stay> = rows.iter().map(stay_of).collect();
        let wanted = wanted_alerts(&all);
        let keys: Vec<&str> = wanted.iter().map(|a| a.key.as_str()).collect();
        for a in &wanted {
            out.alerts += upsert(tx, a).await?;
        }
        // Alerts of these codes that the stays no longer call for (an end
        // learnt late shows two stays did not overlap after all).
        tx.execute(
            "UPDATE alerts SET cleared_at = now()
             WHERE cleared_at IS NULL AND kind IN ('custody_overlap', 'relabelled')
               AND detail->>'code' = ANY($1) AND NOT (key = ANY($2))",
            &[&codes, &keys],
        )
        .await?;
    }
    for l in &obs.lots {
        let new = tx
            .execute(
                "INSERT INTO pallet_lots (gateway_id, sscc, loaded, zone, gtin, lot, expiry, serials)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[&l.gateway_id, &l.sscc, &l.loaded, &l.zone, &l.gtin, &l.lot, &l.expiry, &l.serials],
            )
            .await?;
        if new == 0 {
            continue;
        }
        if loaded_after_expiry(l.loaded, l.expiry) {
            out.alerts += upsert(tx, &lot_alert(l, "lot_expired", None)).await?;
        }
        let recall = tx
            .query_opt(
                "SELECT reason FROM recalls WHERE lot = $1 AND gtin IN ('', $2) ORDER BY gtin DESC LIMIT 1",
                &[&l.lot, &l.gtin],
            )
            .await?;
        if let Some(r) = recall {
            out.alerts += upsert(tx, &lot_alert(l, "recalled", Some(r.get(0)))).await?;
        }
    }
    Ok(out)
}

/// Of the `(kind, code)` pairs in `touched`, those whose stored stays are
/// on more than one gateway or under more than one label (lot, expiry):
/// the only codes an overlap or relabelling alert can be raised, updated
/// or withdrawn for. Decided in SQL so that the stays of the others are
/// never sent to the worker.
pub async fn codes_that_can_alert(
    tx: &Transaction<'_>,
    touched: &BTreeSet<(String, String)>,
) -> Result<BTreeSet<(String, String)>, tokio_postgres::Error> {
    if touched.is_empty() {
        return Ok(BTreeSet::new());
    }
    let kinds: Vec<&str> = touched.iter().map(|t| t.0.as_str()).collect();
    let codes: Vec<&str> = touched.iter().map(|t| t.1.as_str()).collect();
    // The label as JSON text, so that a missing lot and an empty one stay
    // two labels, as `Stay::label` tells them apart.
    let rows = tx
        .query(
            "SELECT kind, code FROM stays
             WHERE (kind, code) IN (SELECT * FROM unnest($1::text[], $2::text[]))
             GROUP BY kind, code
             HAVING count(DISTINCT gateway_id) > 1
                 OR count(DISTINCT json_build_array(lot, expiry)::text) > 1",
            &[&kinds, &codes],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(crate) fn lot_alert(l: &PalletLot, kind: &'static str, reason: Option<String>) -> Alert {
    let loaded = l.loaded.format(&Rfc3339).unwrap_or_default();
    Alert {
        key: format!(
            "{kind}|{}|{}|{}|{}|{}",
            l.gateway_id,
            l.sscc,
            l.loaded.unix_timestamp_nanos(),
            l.gtin,
            l.lot
        ),
        kind,
        code: l.sscc.clone(),
        gateway_id: l.gateway_id.clone(),
        detail: serde_json::json!({
            "schema": "coldgate.fleet_alert/1",
            "kind": kind,
            "gtin": l.gtin,
            "lot": l.lot,
            "expiry": l.expiry.map(|e| e.to_string()),
            "serials": l.serials,
            "reason": reason,
            "place": {"gateway_id": l.gateway_id, "zone": l.zone, "sscc": l.sscc, "loaded": loaded},
        }),
    }
}

/// Inserts `stays` (not in conflict) in one statement; returns the places
/// in `stays` of those the constraints let in.
async fn insert_clean(
    tx: &Transaction<'_>,
    stays: &[&Stay],
    seen: &[OffsetDateTime],
) -> Result<BTreeSet<usize>, tokio_postgres::Error> {
    if stays.is_empty() {
        return Ok(BTreeSet::new());
    }
    let col = |f: &dyn Fn(&Stay) -> String| stays.iter().map(|s| f(s)).collect::<Vec<String>>();
    let opt = |f: &dyn Fn(&Stay) -> Option<String>| {
        stays.iter().map(|s| f(s)).collect::<Vec<Option<String>>>()
    };
    let kinds = col(&|s| s.kind.clone());
    let codes = col(&|s| s.code.clone());
    let gateways = col(&|s| s.gateway_id.clone());
    let zones = col(&|s| s.zone.clone());
    let ssccs = col(&|s| s.sscc.clone());
    let sources = col(&|s| s.source.clone());
    let gtins = opt(&|s| s.gtin.clone());
    let serials = opt(&|s| s.serial.clone());
    let lots = opt(&|s| s.lot.clone());
    let expiries: Vec<Option<time::Date>> = stays.iter().map(|s| s.expiry).collect();
    let loaded: Vec<OffsetDateTime> = stays.iter().map(|s| s.loaded).collect();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO stays (kind, code, gateway_id, zone, sscc, gtin, serial, lot, expiry,
                                    loaded, first_seen, source, conflict, unloaded)
                 SELECT kind, code, gateway_id, zone, sscc, gtin, serial, lot, expiry, loaded,
                        first_seen, source, false, {}
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::date[],
                             $10::timestamptz[], $11::timestamptz[], $12::text[])
                   WITH ORDINALITY AS b(kind, code, gateway_id, zone, sscc, gtin, serial, lot,
                                        expiry, loaded, first_seen, source, n)
                 ORDER BY n
                 ON CONFLICT DO NOTHING
                 RETURNING kind, code, gateway_id, loaded, sscc, lot, expiry",
                unloaded_of("b.gateway_id", "b.sscc", "b.loaded", "b.first_seen")
            ),
            &[
                &kinds, &codes, &gateways, &zones, &ssccs, &gtins, &serials, &lots, &expiries,
                &loaded, &seen, &sources,
            ],
        )
        .await?;
    // Matched back to the input by the unique key, in Rust: a join in SQL
    // against the RETURNING rows was planned as a nested loop (28 s for a
    // batch of 30,000 stays).
    let mut place: HashMap<StayKey, Vec<usize>> = HashMap::new();
    for (n, s) in stays.iter().enumerate().rev() {
        place.entry(StayKey::of(s)).or_default().push(n);
    }
    let mut inserted = BTreeSet::new();
    for r in &rows {
        let key = StayKey {
            kind: r.get(0),
            code: r.get(1),
            gateway_id: r.get(2),
            loaded_us: micros(r.get(3)),
            sscc: r.get(4),
            lot: r.get(5),
            expiry: r.get(6),
        };
        if let Some(n) = place.get_mut(&key).and_then(|v| v.pop()) {
            inserted.insert(n);
        }
    }
    Ok(inserted)
}

/// The stays table's unique key, with `loaded` as PostgreSQL keeps it
/// (whole microseconds).
#[derive(PartialEq, Eq, Hash)]
struct StayKey {
    kind: String,
    code: String,
    gateway_id: String,
    loaded_us: i128,
    sscc: String,
    lot: Option<String>,
    expiry: Option<time::Date>,
}

impl StayKey {
    fn of(s: &Stay) -> Self {
        StayKey {
            kind: s.kind.clone(),
            code: s.code.clone(),
            gateway_id: s.gateway_id.clone(),
            loaded_us: micros(s.loaded),
            sscc: s.sscc.clone(),
            lot: s.lot.clone(),
            expiry: s.expiry,
        }
    }
}

/// Whole microseconds since PostgreSQL's epoch, truncated as the driver
/// truncates a time it sends.
fn micros(t: OffsetDateTime) -> i128 {
    let base = time::macros::datetime!(2000-01-01 00:00 UTC);
    (t - base).whole_microseconds()
}

/// Stores an alert once (its key); returns 1 when it is new. An alert seen
/// again with other details (a first stay learnt late) keeps its row and
/// takes the newer details; one cleared and called for again is reopened.
async fn upsert(tx: &Transaction<'_>, a: &Alert) -> Result<u64, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "INSERT INTO alerts (kind, gateway_id, detail, key) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) WHERE key IS NOT NULL
             DO UPDATE SET detail = excluded.detail, cleared_at = NULL
             RETURNING (xmax = 0)",
            &[&a.kind, &a.gateway_id, &a.detail, &a.key],
        )
        .await?;
    Ok(u64::from(row.get::<_, bool>(0)))
}

/// Flags a lot (`coldgate-fleet recall`): stored, and every pallet already
/// known to carry it raises its alert now, as later ones will on arrival.
pub async fn recall(
    client: &mut Client,
    gtin: Option<&str>,
    lot: &str,
    reason: &str,
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let gtin = gtin.unwrap_or("");
    tx.execute(
        "INSERT INTO recalls (gtin, lot, reason) VALUES ($1, $2, $3)
         ON CONFLICT (lot, gtin) DO UPDATE SET reason = excluded.reason",
        &[&gtin, &lot, &reason],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT gateway_id, sscc, loaded, zone, gtin, lot, expiry, serials FROM pallet_lots
             WHERE lot = $1 AND ($2 = '' OR gtin = $2)",
            &[&lot, &gtin],
        )
        .await?;
    let mut raised = 0;
    for r in rows {
        let l = PalletLot {
            gateway_id: r.get(0),
            sscc: r.get(1),
            loaded: r.get(2),
            zone: r.get(3),
            gtin: r.get(4),
            lot: r.get(5),
            expiry: r.get(6),
            serials: r.get(7),
        };
        raised += upsert(&tx, &lot_alert(&l, "recalled", Some(reason.to_string()))).await?;
    }
    tx.commit().await?;
    Ok(raised)
}

/// The stored detail with its key: what subscribers receive.
pub(crate) fn published_form(mut detail: serde_json::Value, key: &str) -> serde_json::Value {
    if let Some(o) = detail.as_object_mut() {
        o.insert("key".into(), serde_json::Value::String(key.to_string()));
    }
    detail
}

/// Publishes the custody and exposure alerts not yet published, then
/// marks them. A
/// crash between the two publishes them again (at least once), which a
/// subscriber tells by the alert's `key`.
pub async fn publish_pending(
    client: &mut Client,
    nats: &async_nats::Client,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, key, detail, kind FROM alerts
             WHERE published_at IS NULL AND key IS NOT NULL
             ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    let mut ids = Vec::new();
    for r in &rows {
        let detail = published_form(r.get(2), r.get(1));
        let kind: String = r.get(3);
        nats.publish(subject_of(&kind), serde_json::to_vec(&detail)?.into())
            .await?;
        ids.push(r.get::<_, i64>(0));
    }
    nats.flush().await?;
    tx.execute(
        "UPDATE alerts SET published_at = now() WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}
