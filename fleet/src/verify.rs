//! Delivery verification: a gap that stays open while its gateway says its
//! outbox is empty was lost downstream of the gateway (a broker, a bridge).
//! It raises an alert, kept in PostgreSQL and published on NATS, and when
//! configured asks the gateway to publish the range again (`cmd/replay`).
//! The alert clears when the events arrive (ingest::apply).

use coldgate::event::payload::ReplayRequest;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::config::Config;

/// What is published on `verify.alert_subject`.
#[derive(Debug, Clone, Serialize)]
pub struct GapAlert {
    pub schema: &'static str,
    pub kind: &'static str,
    pub gateway_id: String,
    pub from_seq: i64,
    pub to_seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    pub age_s: i64,
    pub replay_requested: bool,
}

/// One round: finds the gaps due, records their alerts and marks them in
/// one transaction, so of several workers only one raises each alert.
pub async fn round(
    client: &mut Client,
    config: &Config,
) -> Result<Vec<GapAlert>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let age = config.verify.gap_age.as_secs_f64();
    let rows = tx
        .query(
            "SELECT g.gateway_id, g.from_seq, g.to_seq, g.first_seen,
                    extract(epoch FROM now() - g.first_seen)::int8
             FROM gaps g JOIN delivery d USING (gateway_id)
             WHERE g.alerted_at IS NULL
               AND g.first_seen < now() - make_interval(secs => $1)
               AND (d.last_status->>'outbox_depth')::int8 = 0
             ORDER BY g.first_seen
             FOR UPDATE OF g SKIP LOCKED",
            &[&age],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let alert = GapAlert {
            schema: "coldgate.fleet_alert/1",
            kind: "delivery_gap",
            gateway_id: r.get(0),
            from_seq: r.get(1),
            to_seq: r.get(2),
            first_seen: r.get(3),
            age_s: r.get(4),
            replay_requested: config.verify.replay,
        };
        tx.execute(
            "INSERT INTO alerts (kind, gateway_id, from_seq, to_seq, detail)
             VALUES ('delivery_gap', $1, $2, $3, $4)",
            &[
                &alert.gateway_id,
                &alert.from_seq,
                &alert.to_seq,
                &serde_json::to_value(&alert).unwrap_or_default(),
            ],
        )
        .await?;
        tx.execute(
            "UPDATE gaps SET alerted_at = now() WHERE gateway_id = $1 AND from_seq = $2",
            &[&alert.gateway_id, &alert.from_seq],
        )
        .await?;
        out.push(alert);
    }
    tx.commit().await?;
    Ok(out)
}

/// Publishes the alerts of a committed round, and the replay requests.
pub async fn announce(
    nats: &async_nats::Client,
    config: &Config,
    alerts: &[GapAlert],
) -> Result<(), async_nats::Error> {
    for a in alerts {
        let body = serde_json::to_vec(a)?;
        nats.publish(config.verify.alert_subject.clone(), body.into())
            .await?;
        if config.verify.replay {
            let req = ReplayRequest {
                request_id: format!("fleet-{}", ulid::Ulid::new()),
                from_seq: u64::try_from(a.from_seq).unwrap_or(1),
                to_seq: u64::try_from(a.to_seq).unwrap_or(1),
            };
            nats.publish(
                config.replay_subject(&a.gateway_id),
                serde_json::to_vec(&req)?.into(),
            )
            .await?;
        }
    }
    nats.flush().await?;
    Ok(())
}
