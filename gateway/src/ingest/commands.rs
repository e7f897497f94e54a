//! Operator commands (load, unload) from MQTT and HTTP, applied by the one
//! writer and answered after their commit, and the audit records that go
//! with them.

use crate::audit::{AuditKind, AuditRecord};
use crate::command::{Answer, ManifestCommand, ManifestRequest};
use crate::event::{payload, Event};
use crate::manifest::Pallet;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{blocking, Ingest};

impl Ingest {
    pub(super) fn pallets_not_unloaded(&self) -> Vec<Pallet> {
        let now = self.clock.wall_ms();
        self.engine
            .state()
            .manifest
            .stays
            .iter()
            .filter(|p| p.unloaded_at_ms.is_none_or(|u| u > now))
            .map(|p| {
                let mut p = p.clone();
                if p.profile.is_none() {
                    p.profile = self.zone_profiles.get(&p.zone).cloned();
                }
                p
            })
            .collect()
    }

    /// Applies one command and answers after the commit that stores it, so
    /// an `ok` survives a power cut. The answer is stored in the same
    /// commit; a request id answered before is not applied again but
    /// answered with its first answer, marked duplicate.
    pub(super) fn apply(&mut self, req: ManifestRequest, committed: &watch::Sender<u64>) {
        let id = req.request_id;
        let gw = self.opts.gateway_id.clone();
        // Answered but not yet committed is answered too.
        let known = match self.batch.command_answer(&id) {
            Some(answer) => Ok(Some(answer.to_vec())),
            None => self.writer.store().command_answer(&id),
        };
        match known {
            Ok(Some(stored)) => {
                info!(request_id = %id, "A repeated manifest command is answered with its first answer and not applied again.");
                let _ = req.reply.send(Answer::repeat(&stored));
                return;
            }
            Ok(None) => {}
            Err(error) => {
                warn!(request_id = %id, %error, "Cannot tell whether a manifest command was applied before; it is refused.");
                let why = format!("cannot check whether this request_id was applied before ({error}); send it again");
                let _ = req.reply.send(Answer::new(&gw, Some(&id), &Err(vec![why])));
                return;
            }
        }
        let (action, sscc) = match &req.command {
            ManifestCommand::Load(cmd) => ("load", cmd.sscc.clone()),
            ManifestCommand::Unload { sscc, .. } => ("unload", sscc.clone()),
        };
        // An unload's event carries its lots' MKT (docs/mqtt.md).
        let mut lot_mkt = Vec::new();
        let outcome: Result<Vec<Event>, Vec<String>> = match req.command {
            ManifestCommand::Load(cmd) => {
                // What the command raises on its own (a serial twice in it,
                // a load time the clock cannot believe), only if it loads.
                let now = self.clock.wall_ms();
                let own: Vec<Event> =
                    crate::manifest::command_warnings(&cmd, now, self.load_time_limits)
                        .into_iter()
                        .map(|lot| Event::new(now, lot))
                        .collect();
                self.engine
                    .load_pallet(cmd)
                    .map(|mut events| {
                        events.extend(own);
                        events
                    })
                    .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
            }
            ManifestCommand::Unload { sscc, at_ms } => {
                let unloaded = self.engine.unload_pallet(&sscc, at_ms);
                if unloaded.is_ok() {
                    lot_mkt = self.engine.lot_mkt_at_unload(&sscc, at_ms);
                }
                unloaded.map_err(|e| vec![e.to_string()])
            }
        };
        // Every command received is in the audit trail, refused ones too,
        // once, in the commit that applies it, whichever way it came.
        self.push_audit_with(
            AuditRecord {
                at_ms: self.clock.wall_ms(),
                kind: AuditKind::ManifestCommand,
                actor: req.actor,
                details: json!({
                    "request_id": id,
                    "action": action,
                    "sscc": sscc,
                    "accepted": outcome.is_ok(),
                    "problems": outcome.as_ref().err(),
                }),
            },
            lot_mkt,
        );
        let answer = match outcome {
            Ok(events) => {
                let warnings = crate::command::warnings_of(&events);
                self.push_events(events);
                let answer = Answer::new(&gw, Some(&id), &Ok(warnings));
                self.batch
                    .remember_command(&id, self.clock.wall_ms(), answer.payload.clone());
                match self.try_commit(committed) {
                    Ok(()) => {
                        self.manifest.send_replace(self.pallets_not_unloaded());
                        answer
                    }
                    Err(error) => {
                        warn!(%error, "A manifest command was applied but its commit failed; it is retried with the next batch.");
                        let why = format!("applied but not yet stored ({error}); it will be stored with the next commit");
                        Answer::new(&gw, Some(&id), &Err(vec![why]))
                    }
                }
            }
            Err(errors) => {
                let answer = Answer::new(&gw, Some(&id), &Err(errors));
                self.batch
                    .remember_command(&id, self.clock.wall_ms(), answer.payload.clone());
                // While the disk fails, only the timer retries.
                if self.outage.is_none() {
                    self.commit(committed);
                }
                answer
            }
        };
        let _ = req.reply.send(answer);
    }

    /// Commits the readings waiting, so that the audit entry about to be
    /// queued checkpoints them too: a clean stop's entry then covers every
    /// reading, and so does the head its event publishes. One commit more
    /// per start, stop or reload.
    pub(super) fn commit_readings_before_audit(&mut self, committed: &watch::Sender<u64>) {
        if !self.batch.readings.is_empty() && self.batch.audit.is_empty() && self.outage.is_none() {
            self.commit(committed);
        }
    }

    /// Queues an audit record and its `audit` event (and, for a rejected
    /// configuration, a `gateway` event), committed together.
    pub(super) fn push_audit(&mut self, record: AuditRecord) {
        self.push_audit_with(record, Vec::new());
    }

    /// [`push_audit`](Self::push_audit), the event carrying the unloaded
    /// lots' MKT beside the entry (not in it: the trail records who did
    /// what, the engine's figures are not the operator's act).
    fn push_audit_with(&mut self, mut record: AuditRecord, lot_mkt: Vec<payload::LotMktAtUnload>) {
        // A refused command echoes what it was sent: stored and published
        // cut down, so no input can make an entry too large to send.
        record.details = crate::event::parts::bounded(&record.details);
        record.actor = crate::event::parts::bounded_str(&record.actor);
        let audit_seq = self.writer.next_audit_seq() + self.batch.audit.len() as u64;
        // The head once this entry is in (SEQ:HASH): a subscriber keeping
        // the last one holds an anchor `audit verify --anchor` checks.
        let mut pending = self.batch.audit.clone();
        pending.push(record.clone());
        let head = blocking(|| self.writer.audit_head_after(&pending));
        let mut events = vec![Event::new(
            record.at_ms,
            payload::Audit {
                phase: record.kind,
                audit_seq,
                actor: record.actor.clone(),
                details: record.details.clone(),
                audit_head: head.ok().map(|h| h.to_string()),
                lot_mkt,
            },
        )];
        if record.kind == AuditKind::ConfigRejected {
            let text = |key: &str| record.details[key].as_str().unwrap_or_default().to_string();
            let problems = record.details["problems"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .map(|p| p.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            events.push(Event::new(
                record.at_ms,
                payload::Gateway::ConfigRejected {
                    phase: Default::default(),
                    actor: record.actor.clone(),
                    path: text("path"),
                    problems,
                },
            ));
        }
        self.push_events(events);
        self.batch.audit.push(record);
    }
}
