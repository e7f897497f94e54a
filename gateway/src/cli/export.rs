//! `coldgate export`: readings or events straight from a database file, for
//! a technician holding a dead gateway's SD card.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::event::rfc3339;
use crate::store::Store;

#[derive(Clone, Copy, ValueEnum)]
pub enum What {
    Readings,
    Events,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The database file (not in use by a running daemon).
    #[arg(long)]
    db: PathBuf,
    /// Start (inclusive): RFC 3339, or a duration ago (`2h`, `90m`, `3d`).
    /// Default: the beginning.
    #[arg(long, value_parser = super::args::when)]
    from: Option<i64>,
    /// End (exclusive): RFC 3339, or a duration ago. Default: the end.
    #[arg(long, value_parser = super::args::when)]
    to: Option<i64>,
    /// What to export.
    #[arg(long, value_enum, default_value = "readings")]
    what: What,
    /// The output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Only this sensor's readings; it must have readings in the database.
    #[arg(long)]
    sensor: Option<String>,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let from = args.from.unwrap_or(i64::MIN);
    let to = args.to.unwrap_or(i64::MAX);
    let store = Store::open_existing(&args.db)?;
    // Readings a stopped gateway had journalled but not folded (issue 20
    // item 4); read-only.
    store.load_journal_tail()?;
    if let Some(sensor) = &args.sensor {
        let known = store.sensor_ids()?;
        super::args::must_exist("sensor", sensor, known.iter().map(|s| &**s))
            .with_context(|| format!("--sensor: in {}", args.db.display()))?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed: Option<std::io::Error> = None;
    match args.what {
        What::Readings => {
            if let Format::Csv = args.format {
                writeln!(out, "sensor_id,seq,quantity,value,unit,time")?;
            }
            store.for_each_reading(args.sensor.as_deref(), from, to, |r| {
                let res = match args.format {
                    Format::Csv => writeln!(
                        out,
                        "{},{},{},{},{},{}",
                        r.sensor,
                        r.seq,
                        r.quantity,
                        r.value,
                        r.quantity.unit(),
                        rfc3339(r.at_ms)
                    ),
                    Format::Jsonl => writeln!(
                        out,
                        "{}",
                        json!({"sensor_id": &*r.sensor, "seq": r.seq, "quantity": r.quantity.as_str(),
                               "value": r.value, "unit": r.quantity.unit(), "time": rfc3339(r.at_ms)})
                    ),
                };
                match res {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
        }
        What::Events => {
            if let Format::Csv = args.format {
                writeln!(out, "seq,time,topic,payload")?;
            }
            for ev in store.events_between(from, to)? {
                let payload = String::from_utf8_lossy(&ev.payload);
                match args.format {
                    Format::Csv => writeln!(
                        out,
                        "{},{},{},\"{}\"",
                        ev.seq,
                        rfc3339(ev.at_ms),
                        ev.topic,
                        payload.replace('"', "\"\"")
                    )?,
                    Format::Jsonl => writeln!(out, "{payload}")?,
                }
            }
        }
    }
    if let Some(e) = failed {
        return Err(e).context("writing the export");
    }
    out.flush()?;
    Ok(())
}
