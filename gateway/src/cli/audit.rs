//! `coldgate audit show|verify`: the audit trail of a database file no
//! daemon is using (a copy of the card, or with the service stopped).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::AuditEntry;
use crate::store::Store;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print every entry as one JSON line, oldest first.
    Show {
        #[arg(long)]
        db: PathBuf,
    },
    /// Check the hash chain; exits 1 naming the first bad entry.
    Verify {
        #[arg(long)]
        db: PathBuf,
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
                                "prev_hash": entry.prev_hash,
                                "hash": entry.hash,
                            })
                        );
                    }
                    None => println!("{}", serde_json::json!({ "seq": seq, "undecodable": true })),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { db } => {
            let store = Store::open_existing(&db)?;
            match store.verify_audit()? {
                Ok(v) => {
                    println!(
                        "{}: audit trail OK ({} entries, head {})",
                        db.display(),
                        v.entries,
                        hex::encode(v.head.hash)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!(
                        "coldgate: {}: audit trail BROKEN at entry {}: {error}",
                        db.display(),
                        error.entry()
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
