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

impl GapAlert {
    /// The one place the alert's fixed fields are spelled, so what the
    /// schema test checks is what `round` publishes.
    pub fn new(
        gateway_id: &str,
        (from_seq, to_seq): (i64, i64),
        first_seen: OffsetDateTime,
        age_s: i64,
        replay_requested: bool,
    ) -> Self {
        GapAlert {
            schema: "coldgate.fleet_alert/1",
            kind: "delivery_gap",
            gateway_id: gateway_id.into(),
            from_seq,
            to_seq,
            first_seen,
            age_s,
            replay_requested,
        }
    }
}

/// A range to ask a gateway for again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub gateway_id: String,
    pub from_seq: i64,
    pub to_seq: i64,
}

/// One round, in one transaction so that of several workers only one
/// raises each alert: alerts for the gaps newly due, and (when configured)
/// replay requests for every gap due whose last request is older than
/// `gap_age` (a request or its answer can be lost too).
pub async fn round(
    client: &mut Client,
    config: &Config,
) -> Result<(Vec<GapAlert>, Vec<Replay>), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let age = config.verify.gap_age.as_secs_f64();
    let rows = tx
        .query(
            "SELECT g.gateway_id, g.from_seq, g.to_seq, g.first_seen,
                    extract(epoch FROM now() - g.first_seen)::int8,
                    g.alerted_at IS NULL,
                    g.replay_at IS NULL OR g.replay_at < now() - make_interval(secs => $1)
             FROM gaps g JOIN delivery d USING (gateway_id)
             WHERE g.first_seen < now() - make_interval(secs => $1)
               AND (d.last_status->>'outbox_depth')::int8 = 0
             ORDER BY g.first_seen
             FOR UPDATE OF g SKIP LOCKED",
            &[&age],
        )
        .await?;
    let mut alerts = Vec::new();
    let mut replays = Vec::new();
    for r in rows {
        let (gateway_id, from_seq, to_seq): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        let (new_alert, replay_due): (bool, bool) = (r.get(5), r.get(6));
        if new_alert {
            let alert = GapAlert::new(
                &gateway_id,
                (from_seq, to_seq),
                r.get(3),
                r.get(4),
                config.verify.replay,
            );
            tx.execute(
                "INSERT INTO alerts (kind, gateway_id, from_seq, to_seq, detail)
                 VALUES ('delivery_gap', $1, $2, $3, $4)",
                &[
                    &gateway_id,
                    &from_seq,
                    &to_seq,
                    &serde_json::to_value(&alert).unwrap_or_default(),
                ],
            )
            .await?;
            tx.execute(
                "UPDATE gaps SET alerted_at = now() WHERE gateway_id = $1 AND from_seq = $2",
                &[&gateway_id, &from_seq],
            )
            .await?;
            alerts.push(alert);
        }
        if config.verify.replay && replay_due {
            tx.execute(
                "UPDATE gaps SET replay_at = now() WHERE gateway_id = $1 AND from_seq = $2",
                &[&gateway_id, &from_seq],
            )
            .await?;
            replays.push(Replay {
                gateway_id,
                from_seq,
                to_seq,
            });
        }
    }
    tx.commit().await?;
    Ok((alerts, replays))
}

/// Publishes the alerts and replay requests of a committed round.
pub async fn announce(
    nats: &async_nats::Client,
    config: &Config,
    alerts: &[GapAlert],
    replays: &[Replay],
) -> Result<(), async_nats::Error> {
    for a in alerts {
        let body = serde_json::to_vec(a)?;
        nats.publish(config.verify.alert_subject.clone(), body.into())
            .await?;
    }
    for r in replays {
        let req = ReplayRequest {
            request_id: format!("fleet-{}", ulid::Ulid::new()),
            from_seq: u64::try_from(r.from_seq).unwrap_or(1),
            to_seq: u64::try_from(r.to_seq).unwrap_or(1),
        };
        nats.publish(
            config.replay_subject(&r.gateway_id),
            serde_json::to_vec(&req)?.into(),
        )
        .await?;
    }
    nats.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alert as published against docs/schema/fleet_delivery_alert.json
    /// (issue 18 item 6: every alert has a schema), formats asserted.
    #[test]
    fn the_delivery_gap_alert_matches_its_published_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/schema/fleet_delivery_alert.json"))
                .unwrap();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let first_seen = OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap();
        let alert = GapAlert::new("reefer-7", (41, 57), first_seen, 360, true);
        let published = serde_json::to_value(&alert).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&published)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{published:#}");
        assert_eq!(published["first_seen"], "2026-11-30T00:53:20Z");
    }

    /// The schema is strict enough to catch a renamed field: otherwise the
    /// test above could not fail.
    #[test]
    fn the_delivery_gap_schema_refuses_an_alert_missing_its_range() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/schema/fleet_delivery_alert.json"))
                .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let first_seen = OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap();
        let mut published =
            serde_json::to_value(GapAlert::new("reefer-7", (41, 57), first_seen, 360, false))
                .unwrap();
        published.as_object_mut().unwrap().remove("to_seq");
        assert!(!validator.is_valid(&published));
    }
}
