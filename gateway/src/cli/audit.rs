//! `coldgate audit show|verify`: the audit trail of a database file no
//! daemon is using (a copy of the card, or with the service stopped).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::{AuditEntry, Head, ReadingsVerified};
use crate::event::rfc3339;
use crate::store::Store;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print every entry as one JSON line, oldest first; `anchor` is the
    /// chain's head at that entry (SEQ:HASH), the last one the head.
    Show {
        /// The database file (not in use by a running daemon).
        #[arg(long)]
        db: PathBuf,
    },
    /// Check the hash chain and the readings its checkpoints cover; exits 1
    /// naming the first bad entry or reading.
    Verify {
        /// The database file (not in use by a running daemon).
        #[arg(long)]
        db: PathBuf,
        /// A head held outside the device (from the status, an `audit`
        /// event or an earlier `audit show`): the trail must reach it.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Option<Head>,
    },
}

pub fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Show { db } => {
            let store = Store::open_existing(&db)?;
            for (seq, bytes) in store.audit_rows()? {
                match AuditEntry::decode(&bytes) {
                    Some(entry) => {
                        // details back as JSON for reading; the stored text
                        // is what the hash covers.
                        let details: serde_json::Value = serde_json::from_str(&entry.details)
                            .unwrap_or(serde_json::Value::String(entry.details.clone()));
                        let at = time::OffsetDateTime::from_unix_timestamp_nanos(
                            i128::from(entry.at_ms) * 1_000_000,
                        )
                        .ok()
                        .and_then(|t| {
                            t.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        });
                        println!(
                            "{}",
                            serde_json::json!({
                                "seq": entry.seq,
                                "at": at,
                                "kind": entry.kind,
                                "actor": entry.actor,
                                "details": details,
                                "readings": entry.readings,
                                "prev_hash": entry.prev_hash,
                                "hash": entry.hash,
                                "anchor": entry.head().map(|h| h.to_string()),
                            })
                        );
                    }
                    None => println!("{}", serde_json::json!({ "seq": seq, "undecodable": true })),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { db, anchor } => verify(&db, anchor),
    }
}

fn verify(db: &std::path::Path, anchor: Option<Head>) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing(db)?;
    let v = match store.verify_audit()? {
        Ok(v) => v,
        Err(error) => {
            eprintln!(
                "coldgate: {}: audit trail BROKEN at entry {}: {error}",
                db.display(),
                error.entry()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let rows = store.audit_rows()?;
    match anchor {
        Some(anchor) => {
            if let Err(error) =
                crate::audit::check_anchor(rows.iter().map(|(k, b)| (*k, b)), anchor)
            {
                eprintln!(
                    "coldgate: {}: audit trail does NOT reach the anchor {anchor}: {error}",
                    db.display()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        None => eprintln!(
            "coldgate: note: without --anchor SEQ:HASH (a head held outside the device) \
             the removal of the newest entries, or of the whole trail, with the recorded \
             head rewritten cannot be detected; checking what the file holds."
        ),
    }
    println!(
        "{}: audit trail OK ({} entries, head {}{})",
        db.display(),
        v.entries,
        v.head,
        match anchor {
            Some(a) => format!(", reaches the anchor {a}"),
            None => String::new(),
        }
    );
    let entries: Vec<AuditEntry> = rows
        .iter()
        .filter_map(|(_, b)| AuditEntry::decode(b))
        .collect();
    match store.verify_readings(&entries)? {
        Ok(r) => {
            println!("{}: readings OK: {}", db.display(), readings_summary(&r));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("coldgate: {}: readings BROKEN: {error}", db.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What was checked, from where, and what could not be.
fn readings_summary(r: &ReadingsVerified) -> String {
    let mut out = match (r.from_entry, r.from_ms) {
        (Some(entry), Some(from)) => format!(
            "{} readings match the {} checkpoint{} from audit entry {entry} on (readings from {})",
            r.verified,
            r.spans,
            if r.spans == 1 { "" } else { "s" },
            rfc3339(from)
        ),
        _ => "no reading is covered by a checkpoint".to_string(),
    };
    if r.unverifiable > 0 || r.trimmed_spans > 0 {
        out.push_str(&format!(
            "; {} older readings in {} partly trimmed checkpoints (retention, size cap) cannot be checked",
            r.unverifiable, r.trimmed_spans
        ));
    }
    if r.before_checkpoints > 0 {
        out.push_str(&format!(
            "; {} readings written before this file had checkpoints (an earlier build) cannot be checked",
            r.before_checkpoints
        ));
    }
    if r.uncovered > 0 {
        out.push_str(&format!(
            "; {} readings from {} on were committed after the last checkpoint{} and are not covered yet",
            r.uncovered,
            r.uncovered_from_ms.map(rfc3339).unwrap_or_default(),
            match r.last_checkpoint {
                0 => " (the trail has none: wiped, or written before checkpoints existed)".to_string(),
                n => format!(" (entry {n})"),
            }
        ));
    }
    out
}
