//! `coldgate export`: readings or events straight from a database file, for
//! a technician holding a dead gateway's SD card.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::event::{parse_rfc3339, rfc3339};
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
    /// Start time, RFC 3339 (inclusive). Default: the beginning.
    #[arg(long)]
    from: Option<String>,
    /// End time, RFC 3339 (exclusive). Default: the end.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value = "readings")]
    what: What,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Only this sensor's readings.
    #[arg(long)]
    sensor: Option<String>,
}

fn time_arg(name: &str, value: &Option<String>, default: i64) -> anyhow::Result<i64> {
    match value {
        None => Ok(default),
        Some(text) => match parse_rfc3339(text) {
            Some(ms) => Ok(ms),
            None => bail!("--{name} `{text}` is not an RFC 3339 time such as 2026-11-25T21:04:05Z"),
        },
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let from = time_arg("from", &args.from, i64::MIN)?;
    let to = time_arg("to", &args.to, i64::MAX)?;
    let store = Store::open_existing(&args.db)?;
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
