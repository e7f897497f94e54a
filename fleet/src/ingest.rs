//! What one JetStream message is (an event, a status, a manifest or
//! something to quarantine), and applying a batch of them in one
//! PostgreSQL transaction. Reading is pure so it is tested without servers;
//! the gateway's own payload types decide what is valid.

use std::collections::{BTreeMap, HashSet};

use coldgate::event::payload::{EventBody, Manifest, Status};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_postgres::Transaction;

use crate::delivery::{Delivery, Gap, Seen};

/// One message, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(Event),
    Status {
        gateway: String,
        at: OffsetDateTime,
        payload: serde_json::Value,
    },
    Manifest {
        gateway: String,
        at: OffsetDateTime,
        payload: serde_json::Value,
    },
    Quarantine {
        subject: String,
        stream_seq: u64,
        payload: Vec<u8>,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub gateway: String,
    pub event_id: String,
    pub part: i32,
    pub seq: u64,
    pub kind: String,
    pub at: OffsetDateTime,
    pub payload: serde_json::Value,
    pub stream_seq: u64,
}

/// Reads a message on `{subject_prefix}.{partition}.{gateway}.events.{kind}`
/// (an event, partitioned by the server's mapping) or on
/// `{mqtt_prefix}.{gateway}.status|manifest` (as the gateway published it).
/// Anything that is not exactly what the gateway's contract says becomes
/// a quarantine item with the reason: kept, acked, never retried forever.
pub fn classify(
    nats: &crate::config::Nats,
    subject: &str,
    payload: &[u8],
    stream_seq: u64,
) -> Item {
    match read(nats, subject, payload, stream_seq) {
        Ok(item) => item,
        Err(reason) => Item::Quarantine {
            subject: subject.to_string(),
            stream_seq,
            payload: payload.to_vec(),
            reason,
        },
    }
}

fn parse_at(at: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(at, &Rfc3339).map_err(|e| format!("`at` is not RFC 3339: {e}"))
}

fn read(
    nats: &crate::config::Nats,
    subject: &str,
    payload: &[u8],
    stream_seq: u64,
) -> Result<Item, String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let prefix = nats.subject_prefix.as_str();
    let mqtt: Vec<&str> = nats.mqtt_prefix.split('.').collect();
    let (gateway, rest) = match tokens.as_slice() {
        [p, _partition, gateway, rest @ ..] if *p == prefix && !rest.is_empty() => {
            (gateway.to_string(), rest)
        }
        t if t.len() == mqtt.len() + 2 && t[..mqtt.len()] == mqtt[..] => {
            (t[mqtt.len()].to_string(), &t[mqtt.len() + 1..])
        }
        _ => {
            return Err(format!(
                "subject `{subject}` is neither {prefix}.N.GATEWAY.events.KIND nor {}.GATEWAY.status|manifest",
                nats.mqtt_prefix
            ))
        }
    };
    let partitioned = tokens[0] == prefix;
    let same_gateway = |inner: &str| {
        if inner == gateway {
            Ok(())
        } else {
            Err(format!(
                "gateway_id `{inner}` is not the topic's gateway `{gateway}`"
            ))
        }
    };
    match rest {
        ["events", kind] if partitioned => {
            let e = EventBody::parse(kind, payload).map_err(|e| e.to_string())?;
            same_gateway(&e.gateway_id)?;
            if e.seq == 0 {
                return Err("seq 0: seqs start at 1".into());
            }
            let at = parse_at(&e.at)?;
            let part = match e.part {
                None => 0,
                Some(p) => i32::try_from(p).map_err(|_| format!("part {p} too large"))?,
            };
            let payload = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            Ok(Item::Event(Event {
                gateway,
                event_id: e.event_id,
                part,
                seq: e.seq,
                kind: kind.to_string(),
                at,
                payload,
                stream_seq,
            }))
        }
        ["status"] if !partitioned => {
            let s: Status = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            same_gateway(&s.gateway_id)?;
            Ok(Item::Status {
                at: parse_at(&s.at)?,
                gateway,
                payload: serde_json::from_slice(payload).map_err(|e| e.to_string())?,
            })
        }
        ["manifest"] if !partitioned => {
            let m: Manifest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            same_gateway(&m.gateway_id)?;
            Ok(Item::Manifest {
                at: parse_at(&m.at)?,
                gateway,
                payload: serde_json::from_slice(payload).map_err(|e| e.to_string())?,
            })
        }
        _ => Err(format!("no message kind at `{}`", rest.join("."))),
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub quarantined: u64,
    pub gaps_opened: u64,
    pub gaps_filled: u64,
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Applies `items` inside `tx` (the caller commits, then acks). Rows of
/// `delivery` are locked in gateway order, so two workers that share a
/// gateway (a partition changing hands) serialise instead of deadlocking.
pub async fn apply(
    tx: &Transaction<'_>,
    items: &[Item],
    now: OffsetDateTime,
) -> Result<Applied, tokio_postgres::Error> {
    let mut out = Applied::default();
    let mut events: Vec<&Event> = Vec::new();
    let mut seen = HashSet::new();
    let mut offered: BTreeMap<&str, u64> = BTreeMap::new();
    let mut statuses: BTreeMap<&str, (&OffsetDateTime, &serde_json::Value)> = BTreeMap::new();
    let mut manifests: BTreeMap<&str, (&OffsetDateTime, &serde_json::Value)> = BTreeMap::new();
    for item in items {
        match item {
            Item::Event(e) => {
                *offered.entry(&e.gateway).or_default() += 1;
                if seen.insert((&e.event_id, e.part)) {
                    events.push(e);
                }
            }
            Item::Status {
                gateway,
                at,
                payload,
            } => {
                let slot = statuses.entry(gateway).or_insert((at, payload));
                if at >= slot.0 {
                    *slot = (at, payload);
                }
            }
            Item::Manifest {
                gateway,
                at,
                payload,
            } => {
                let slot = manifests.entry(gateway).or_insert((at, payload));
                if at >= slot.0 {
                    *slot = (at, payload);
                }
            }
            Item::Quarantine {
                subject,
                stream_seq,
                payload,
                reason,
            } => {
                tx.execute(
                    "INSERT INTO quarantine (subject, stream_seq, payload, reason) VALUES ($1, $2, $3, $4)",
                    &[subject, &i64_of(*stream_seq), payload, reason],
                )
                .await?;
                out.quarantined += 1;
            }
        }
    }

    // Every gateway this batch names, locked in one order.
    let mut gateways: Vec<&str> = offered.keys().copied().collect();
    gateways.extend(statuses.keys());
    gateways.extend(manifests.keys());
    gateways.sort_unstable();
    gateways.dedup();
    if gateways.is_empty() {
        return Ok(out);
    }
    tx.execute(
        "INSERT INTO delivery (gateway_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&gateways],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT gateway_id, highest_seq FROM delivery WHERE gateway_id = ANY($1) ORDER BY gateway_id FOR UPDATE",
            &[&gateways],
        )
        .await?;
    let mut state: BTreeMap<String, Delivery> = rows
        .iter()
        .map(|r| {
            let highest: i64 = r.get(1);
            (
                r.get::<_, String>(0),
                Delivery {
                    highest: u64::try_from(highest).unwrap_or(0),
                    gaps: Vec::new(),
                },
            )
        })
        .collect();

    // Events: the ones not already stored come back.
    let mut new: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    if !events.is_empty() {
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let parts: Vec<i32> = events.iter().map(|e| e.part).collect();
        let gws: Vec<&str> = events.iter().map(|e| e.gateway.as_str()).collect();
        let seqs: Vec<i64> = events.iter().map(|e| i64_of(e.seq)).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let ats: Vec<OffsetDateTime> = events.iter().map(|e| e.at).collect();
        let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
        let sseqs: Vec<i64> = events.iter().map(|e| i64_of(e.stream_seq)).collect();
        let rows = tx
            .query(
                "INSERT INTO events (event_id, part, gateway_id, seq, kind, at, payload, stream_seq)
                 SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::text[],
                                      $6::timestamptz[], $7::jsonb[], $8::int8[])
                 ON CONFLICT DO NOTHING
                 RETURNING event_id, part",
                &[&ids, &parts, &gws, &seqs, &kinds, &ats, &payloads, &sseqs],
            )
            .await?;
        let inserted: HashSet<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for e in &events {
            if inserted.contains(&(e.event_id.clone(), e.part)) {
                new.entry(&e.gateway).or_default().push(e);
            }
        }
    }
    let changed: Vec<&str> = new.keys().copied().collect();
    if !changed.is_empty() {
        let rows = tx
            .query(
                "SELECT gateway_id, from_seq, to_seq, first_seen, alerted_at, replay_at FROM gaps
                 WHERE gateway_id = ANY($1) ORDER BY gateway_id, from_seq",
                &[&changed],
            )
            .await?;
        for r in rows {
            let g: String = r.get(0);
            let (from, to): (i64, i64) = (r.get(1), r.get(2));
            if let Some(d) = state.get_mut(&g) {
                d.gaps.push(Gap {
                    from: u64::try_from(from).unwrap_or(0),
                    to: u64::try_from(to).unwrap_or(0),
                    first_seen: r.get(3),
                    alerted_at: r.get(4),
                    replay_at: r.get(5),
                });
            }
        }
    }

    let mut u_gw = Vec::new();
    let (mut u_contig, mut u_high, mut u_n, mut u_dup, mut u_conf, mut u_last) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut g_gw, mut g_from, mut g_to, mut g_first, mut g_alerted, mut g_replay) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (gw, offered_n) in &offered {
        let Some(d) = state.get_mut(*gw) else {
            continue;
        };
        let mut fresh = new.get(gw).cloned().unwrap_or_default();
        fresh.sort_by_key(|e| e.seq);
        let mut conflicts = 0i64;
        for e in &fresh {
            match d.record(e.seq, now) {
                Seen::Ahead => out.gaps_opened += 1,
                Seen::Filled => out.gaps_filled += 1,
                Seen::Conflict => conflicts += 1,
                Seen::Next => {}
            }
        }
        let n = fresh.len() as u64;
        out.inserted += n;
        out.duplicates += offered_n - n;
        out.conflicts += conflicts as u64;
        u_gw.push(*gw);
        u_contig.push(i64_of(d.contiguous()));
        u_high.push(i64_of(d.highest));
        u_n.push(i64_of(n));
        u_dup.push(i64_of(offered_n - n));
        u_conf.push(conflicts);
        u_last.push(fresh.iter().map(|e| e.at).max());
        if !fresh.is_empty() {
            for g in &d.gaps {
                g_gw.push(*gw);
                g_from.push(i64_of(g.from));
                g_to.push(i64_of(g.to));
                g_first.push(g.first_seen);
                g_alerted.push(g.alerted_at);
                g_replay.push(g.replay_at);
            }
        }
    }
    if !u_gw.is_empty() {
        tx.execute(
            "UPDATE delivery d SET contiguous_seq = u.c, highest_seq = u.h,
                    events = d.events + u.n, duplicates = d.duplicates + u.dup,
                    seq_conflicts = d.seq_conflicts + u.conf,
                    last_event_at = greatest(d.last_event_at, u.last), updated_at = now()
             FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                         $7::timestamptz[]) AS u(g, c, h, n, dup, conf, last)
             WHERE d.gateway_id = u.g",
            &[&u_gw, &u_contig, &u_high, &u_n, &u_dup, &u_conf, &u_last],
        )
        .await?;
    }
    if !changed.is_empty() {
        tx.execute("DELETE FROM gaps WHERE gateway_id = ANY($1)", &[&changed])
            .await?;
        if !g_gw.is_empty() {
            tx.execute(
                "INSERT INTO gaps (gateway_id, from_seq, to_seq, first_seen, alerted_at, replay_at)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::timestamptz[],
                                      $5::timestamptz[], $6::timestamptz[])",
                &[&g_gw, &g_from, &g_to, &g_first, &g_alerted, &g_replay],
            )
            .await?;
        }
        // An alert is cleared once no open gap overlaps its range.
        tx.execute(
            "UPDATE alerts a SET cleared_at = now()
             WHERE a.cleared_at IS NULL AND a.kind = 'delivery_gap' AND a.gateway_id = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM gaps g WHERE g.gateway_id = a.gateway_id
                               AND g.from_seq <= a.to_seq AND g.to_seq >= a.from_seq)",
            &[&changed],
        )
        .await?;
    }
    for (gw, (at, payload)) in &statuses {
        tx.execute(
            "UPDATE delivery SET last_status = $2, last_status_at = $3, updated_at = now()
             WHERE gateway_id = $1 AND (last_status_at IS NULL OR last_status_at <= $3)",
            &[gw, payload, at],
        )
        .await?;
    }
    for (gw, (at, payload)) in &manifests {
        tx.execute(
            "UPDATE delivery SET last_manifest = $2, last_manifest_at = $3, updated_at = now()
             WHERE gateway_id = $1 AND (last_manifest_at IS NULL OR last_manifest_at <= $3)",
            &[gw, payload, at],
        )
        .await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(gw: &str, seq: u64) -> Vec<u8> {
        crate::sim::door_event(
            gw,
            seq,
            "01J00000000000000000000000",
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_gateway_s_event_is_read_with_its_gateway_seq_and_kind() {
        match classify("cg", "cg.3.gw-1.events.door", &event("gw-1", 7), 5) {
            Item::Event(e) => {
                assert_eq!(
                    (e.gateway.as_str(), e.seq, e.kind.as_str()),
                    ("gw-1", 7, "door")
                );
                assert_eq!((e.part, e.stream_seq), (0, 5));
            }
            other => panic!("{other:?}"),
        }
    }

    fn nats() -> crate::config::Nats {
        crate::config::Config::parse(
            "[nats]\nurl = \"nats://h:4222\"\n[postgres]\nurl = \"host=h\"\n",
            "t",
        )
        .unwrap()
        .nats
    }

    fn classify(_: &str, subject: &str, payload: &[u8], seq: u64) -> Item {
        super::classify(&nats(), subject, payload, seq)
    }

    #[test]
    fn a_status_is_read_on_the_gateway_s_own_subject() {
        let status = br#"{"schema":"coldgate.status/1","gateway_id":"gw-1","at":"2026-12-01T10:00:00.000Z",
            "state":"online","reason":null,"version":"0.1.0","uptime_s":3,"outbox_depth":0,
            "oldest_unsent_at":null,"oldest_unsent_age_s":null,"telemetry_dropped":0,
            "clock_synced":null,"client_cert_expires_at":null,
            "link":{"state":"connected","connected_since":null,"failures":0,"last_error":null,"verified":false}}"#;
        match classify("cg", "coldgate.v1.gw-1.status", status, 9) {
            Item::Status { gateway, .. } => assert_eq!(gateway, "gw-1"),
            other => panic!("{other:?}"),
        }
        let r = reason(classify("cg", "coldgate.v1.gw-2.status", status, 9));
        assert!(r.contains("gw-1"), "{r}");
    }

    fn reason(item: Item) -> String {
        match item {
            Item::Quarantine { reason, .. } => reason,
            other => panic!("not quarantined: {other:?}"),
        }
    }

    #[test]
    fn a_subject_outside_the_partitioned_layout_is_quarantined() {
        let r = reason(classify("cg", "other.1.gw.events.door", b"{}", 5));
        assert!(r.contains("is neither cg.N.GATEWAY"), "{r}");
    }

    #[test]
    fn a_payload_that_is_not_json_is_quarantined_with_the_parser_s_reason() {
        let r = reason(classify("cg", "cg.3.gw-1.events.door", b"{not json", 5));
        assert!(r.contains("not a valid payload"), "{r}");
    }

    #[test]
    fn an_unknown_event_kind_is_quarantined() {
        let r = reason(classify(
            "cg",
            "cg.3.gw-1.events.teleport",
            &event("gw-1", 1),
            5,
        ));
        assert!(r.contains("teleport"), "{r}");
    }

    #[test]
    fn an_event_naming_another_gateway_than_its_topic_is_quarantined() {
        let r = reason(classify(
            "cg",
            "cg.3.gw-1.events.door",
            &event("gw-2", 1),
            5,
        ));
        assert!(r.contains("gw-2"), "{r}");
    }

    #[test]
    fn seq_zero_is_quarantined() {
        let r = reason(classify(
            "cg",
            "cg.3.gw-1.events.door",
            &event("gw-1", 0),
            5,
        ));
        assert!(r.contains("seq 0"), "{r}");
    }
}
