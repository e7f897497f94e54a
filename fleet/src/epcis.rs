//! A lot's or a pallet's history over every gateway as an EPCIS 2.0
//! document (docs/epcis.md). The fleet only fills the gateway's
//! [`Journey`] from its tables; the mapping to events, their ids and the
//! wire format are the gateway's (`coldgate::epcis::map`), so the same stay
//! exported by a gateway and by the fleet has the same event id.
//!
//! Where each fact comes from: stays from `stays` (the pallet's SSCC stays,
//! conflicting observations included: a label seen in two places is what
//! the partner must see) with their lots from `pallet_lots`; excursions
//! from the stored `excursion` events themselves (zone, sensor, min, max,
//! limit and the pallets named are not in `lot_excursions`); unmonitored
//! time from `monitoring_gaps`.

use std::collections::BTreeMap;

use coldgate::epcis::{
    to_document, EpcisDocument, ExcursionRecord, GapKind, GapRecord, Journey, StayRecord, UriError,
};
use coldgate::event::payload::{Excursion, ExcursionPhase, Item};
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::exposure::{self, LotExcursion};

/// Who the document is made by (`sender`): the fleet, not one gateway.
pub const SENDER: &str = "coldgate-fleet";

/// What the document is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Every pallet stay that carried the lot (of any GTIN).
    Lot(String),
    Sscc(String),
}

impl Subject {
    /// As the trip report names a subject.
    fn words(&self) -> String {
        match self {
            Subject::Lot(l) => format!("lot {l}"),
            Subject::Sscc(s) => format!("pallet SSCC {s}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EpcisError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cannot name the goods in EPCIS: {0}")]
    Uri(#[from] UriError),
    #[error("{0} was never seen by the fleet")]
    Unknown(String),
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The stays of the subject, each with the subject's items on it (for a
/// lot: that lot's lines only).
async fn stays(client: &Client, subject: &Subject) -> Result<Vec<StayRecord>, EpcisError> {
    // One row per stay and lot line; a stay without lines (a pallet the
    // manifest listed empty) still has its row.
    let sql = "SELECT s.gateway_id, s.zone, s.code, s.loaded, s.unloaded,
                      pl.gtin, pl.lot, pl.expiry, pl.serials
               FROM stays s
               LEFT JOIN pallet_lots pl ON pl.gateway_id = s.gateway_id AND pl.sscc = s.code
                    AND pl.loaded = s.loaded
               WHERE s.kind = 'sscc' AND (
                     ($1::text IS NOT NULL AND s.code = $1)
                  OR ($2::text IS NOT NULL AND EXISTS (SELECT 1 FROM pallet_lots l
                        WHERE l.gateway_id = s.gateway_id AND l.sscc = s.code
                          AND l.loaded = s.loaded AND l.lot = $2)))
               ORDER BY s.loaded, s.gateway_id, s.code, pl.gtin, pl.lot";
    let (sscc, lot) = match subject {
        Subject::Sscc(s) => (Some(s.as_str()), None),
        Subject::Lot(l) => (None, Some(l.as_str())),
    };
    let mut out: Vec<StayRecord> = Vec::new();
    for r in client.query(sql, &[&sscc, &lot]).await? {
        let gateway_id: String = r.get(0);
        let zone: String = r.get(1);
        let code: String = r.get(2);
        let loaded = ms(r.get(3));
        let unloaded = r.get::<_, Option<OffsetDateTime>>(4).map(ms);
        let item = match (r.get::<_, Option<String>>(5), r.get::<_, Option<String>>(6)) {
            (Some(gtin), Some(l)) if lot.is_none_or(|want| want == l) => Some(Item {
                gtin,
                lot: l,
                expiry: r.get::<_, Option<time::Date>>(7).map(|d| d.to_string()),
                serials: r.get::<_, Option<Vec<String>>>(8).unwrap_or_default(),
            }),
            _ => None,
        };
        let same = out
            .last_mut()
            .filter(|s| s.gateway_id == gateway_id && s.sscc == code && s.loaded_at_ms == loaded);
        match same {
            Some(s) => s.items.extend(item),
            None => out.push(StayRecord {
                gateway_id,
                zone,
                sscc: code,
                items: item.into_iter().collect(),
                loaded_at_ms: loaded,
                unloaded_at_ms: unloaded,
            }),
        }
    }
    Ok(out)
}

/// The excursions on the subject's gateways that named one of its pallets
/// (for a lot: one of its pallets carrying the lot). Per excursion the
/// latest event gives the figures (an `ended` over a `started`, then the
/// longest duration); the pallets named are gathered over every event and
/// part, since a split event names some pallets in each part.
async fn excursions(
    client: &Client,
    stays: &[StayRecord],
) -> Result<Vec<ExcursionRecord>, EpcisError> {
    let mut gateways: Vec<&str> = stays.iter().map(|s| s.gateway_id.as_str()).collect();
    gateways.sort_unstable();
    gateways.dedup();
    let rows = client
        .query(
            "SELECT gateway_id, at, payload FROM events
             WHERE kind = 'excursion' AND gateway_id = ANY($1) ORDER BY at, seq, part",
            &[&gateways],
        )
        .await?;
    let mut best: BTreeMap<(String, String), (ExcursionRecord, bool)> = BTreeMap::new();
    let mut named: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in rows {
        let gateway: String = r.get(0);
        let at: OffsetDateTime = r.get(1);
        let Ok(x) = serde_json::from_value::<Excursion>(r.get(2)) else {
            continue;
        };
        let Some(rec) = ExcursionRecord::from_event(&gateway, &x, ms(at)) else {
            continue;
        };
        let key = (gateway, x.excursion_id.clone());
        let list = named.entry(key.clone()).or_default();
        for s in &rec.ssccs {
            if !list.contains(s) {
                list.push(s.clone());
            }
        }
        let ended = x.phase == ExcursionPhase::Ended;
        let better = best.get(&key).is_none_or(|(b, b_ended)| {
            (ended, rec.duration_ms, rec.until_ms) >= (*b_ended, b.duration_ms, b.until_ms)
        });
        if better {
            best.insert(key, (rec, ended));
        }
    }
    let mut out = Vec::new();
    for (key, (mut rec, _)) in best {
        rec.ssccs = named.remove(&key).unwrap_or_default();
        // Only pallets of the subject: a stay of it on that gateway whose
        // time meets the excursion's.
        rec.ssccs.retain(|sscc| {
            stays.iter().any(|s| {
                s.gateway_id == rec.gateway_id
                    && s.sscc == *sscc
                    && s.loaded_at_ms <= rec.until_ms
                    && s.unloaded_at_ms.is_none_or(|u| u >= rec.started_ms)
            })
        });
        if !rec.ssccs.is_empty() {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Unmonitored time on the subject's gateways and zones during its stays.
async fn gaps(
    client: &Client,
    stays: &[StayRecord],
    now_ms: i64,
) -> Result<Vec<GapRecord>, EpcisError> {
    let mut gateways: Vec<&str> = stays.iter().map(|s| s.gateway_id.as_str()).collect();
    gateways.sort_unstable();
    gateways.dedup();
    let rows = client
        .query(
            "SELECT gateway_id, zone, source, from_at, to_at FROM monitoring_gaps
             WHERE gateway_id = ANY($1) ORDER BY from_at, gateway_id, zone, source",
            &[&gateways],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let gateway_id: String = r.get(0);
        let zone: String = r.get(1);
        let source: String = r.get(2);
        let start_ms = ms(r.get(3));
        let end_ms = r.get::<_, Option<OffsetDateTime>>(4).map(ms);
        let until_ms = end_ms.unwrap_or(now_ms).max(start_ms);
        let zone = (zone != "*").then_some(zone);
        let during_a_stay = stays.iter().any(|s| {
            s.gateway_id == gateway_id
                && zone.as_ref().is_none_or(|z| *z == s.zone)
                && s.loaded_at_ms <= until_ms
                && s.unloaded_at_ms.is_none_or(|u| u >= start_ms)
        });
        if !during_a_stay {
            continue;
        }
        // `sensor ID` (exposure::observe) or `gateway down`.
        let (kind, sensor) = match source.strip_prefix("sensor ") {
            Some(id) => (GapKind::SensorSilent, Some(id.to_string())),
            None => (GapKind::GatewayDown, None),
        };
        out.push(GapRecord {
            gateway_id,
            kind,
            zone,
            sensor,
            quantity: None,
            start_ms,
            end_ms,
            until_ms,
        });
    }
    Ok(out)
}

/// The journey of `subject` over every gateway, as of `now`, with the
/// verdict the fleet gives it (`coldgate-fleet lot`'s for a lot).
pub async fn journey(
    client: &Client,
    subject: &Subject,
    now: OffsetDateTime,
) -> Result<Journey, EpcisError> {
    let now_ms = ms(now);
    let stays = stays(client, subject).await?;
    if stays.is_empty() {
        return Err(EpcisError::Unknown(subject.words()));
    }
    let excursions = excursions(client, &stays).await?;
    let gaps = gaps(client, &stays, now_ms).await?;
    let (verdict, reasons) = match subject {
        Subject::Lot(lot) => {
            let view = exposure::lot_view(client, lot).await?;
            (view.verdict.to_string(), lot_reasons(&view))
        }
        Subject::Sscc(_) => pallet_verdict(client, &stays, &excursions, &gaps).await?,
    };
    Ok(Journey {
        subject: subject.words(),
        sender: SENDER.to_string(),
        stays,
        excursions,
        gaps,
        verdict: Some(verdict),
        reasons,
    })
}

fn lot_reasons(view: &exposure::LotView) -> Vec<String> {
    let mut out: Vec<String> = view
        .budgets
        .iter()
        .map(|b| {
            format!(
                "{} {}: {} s beyond the limit over all legs{}",
                b.rule,
                b.direction,
                b.total_s,
                b.allowance_s
                    .map_or_else(|| ", no allowance".to_string(), |a| format!(" of {a} s"))
            )
        })
        .collect();
    if view.unmonitored_s > 0 {
        out.push(format!(
            "{} s unmonitored: nothing is known of this time",
            view.unmonitored_s
        ));
    }
    out
}

/// A pallet's verdict in the gateway's words: its excursions' rows of the
/// lot ledger judged as a lot's are, and its gaps.
async fn pallet_verdict(
    client: &Client,
    stays: &[StayRecord],
    excursions: &[ExcursionRecord],
    gaps: &[GapRecord],
) -> Result<(String, Vec<String>), EpcisError> {
    let on_pallet = |r: &LotExcursion| {
        stays
            .iter()
            .flat_map(|s| &s.items)
            .any(|i| i.gtin == r.gtin && i.lot == r.lot)
    };
    let mut rows: Vec<LotExcursion> = Vec::new();
    for x in excursions {
        rows.extend(
            excursion_rows(client, &x.gateway_id, &x.excursion_id)
                .await?
                .into_iter()
                .filter(|r| on_pallet(r)),
        );
    }
    let unmonitored_s: i64 = gaps
        .iter()
        .map(|g| (g.until_ms - g.start_ms).max(0) / 1000)
        .sum();
    let budgets = exposure::budgets(&rows);
    let mut reasons: Vec<String> = excursions
        .iter()
        .map(|x| {
            format!(
                "excursion {} on {}: {}, {} s beyond the limit",
                x.excursion_id,
                x.gateway_id,
                x.rule_name,
                x.duration_ms / 1000
            )
        })
        .collect();
    if unmonitored_s > 0 {
        reasons.push(format!(
            "{unmonitored_s} s unmonitored: nothing is known of this time"
        ));
    }
    let verdict = exposure::verdict(&budgets, &rows, unmonitored_s);
    Ok((verdict.as_str().to_string(), reasons))
}

/// Every lot's ledger row of one excursion of one gateway.
async fn excursion_rows(
    client: &Client,
    gateway_id: &str,
    excursion_id: &str,
) -> Result<Vec<LotExcursion>, tokio_postgres::Error> {
    Ok(client
        .query(
            &format!(
                "SELECT {} FROM lot_excursions WHERE gateway_id = $1 AND excursion_id = $2",
                exposure::EXCURSION_COLUMNS
            ),
            &[&gateway_id, &excursion_id],
        )
        .await?
        .iter()
        .map(exposure::excursion_of)
        .collect())
}

/// The EPCISDocument of `subject`, made at `now`.
pub async fn document(
    client: &Client,
    subject: &Subject,
    now: OffsetDateTime,
) -> Result<EpcisDocument, EpcisError> {
    let j = journey(client, subject, now).await?;
    Ok(to_document(&j, ms(now))?)
}
