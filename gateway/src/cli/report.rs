//! `coldgate report`: the printable trip report of a pallet or a lot.
//!
//! Offline mode reads a database file no daemon is using (like `coldgate
//! export --db`), with the configuration that describes its zones, sensors
//! and profiles. A mode over the running daemon's HTTP API can sit beside
//! [`render_offline`] as `fetch_from_api`; both return the same document.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, ValueEnum};

use crate::config::{self, Config};
use crate::event::now_ms;
use crate::manifest::{gtin_problem, sscc_problem};
use crate::report::{render_html, ReportSubject};
use crate::store::Store;

#[derive(Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["sscc", "lot"])))]
pub struct ReportArgs {
    /// The pallet, by its 18-digit SSCC.
    #[arg(long)]
    sscc: Option<String>,
    /// The lot (batch) number.
    #[arg(long)]
    lot: Option<String>,
    /// The lot's GTIN-14, needed when two GTINs share a lot number.
    #[arg(long, requires = "lot")]
    gtin: Option<String>,
    /// Where to write the document; standard output if absent.
    #[arg(long)]
    out: Option<PathBuf>,
    /// `html`: the printable trip report; `epcis`: the same record as an
    /// EPCIS 2.0 document (JSON-LD) for trading partners (docs/epcis.md).
    #[arg(long, value_enum, default_value_t = Format::Html)]
    format: Format,
    /// The database file (not in use by a running daemon). Default: the
    /// configuration's `storage.path`.
    #[arg(long)]
    db: Option<PathBuf>,
    /// The configuration the database was written with (zones, sensors,
    /// profiles).
    #[arg(long, default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Html,
    Epcis,
}

impl ReportArgs {
    fn subject(&self) -> anyhow::Result<ReportSubject> {
        match (&self.sscc, &self.lot) {
            (Some(sscc), _) => {
                if let Some(problem) = sscc_problem(sscc) {
                    bail!("--sscc: {problem}");
                }
                Ok(ReportSubject::Sscc(sscc.clone()))
            }
            (None, Some(lot)) => {
                if let Some(problem) = self.gtin.as_deref().and_then(gtin_problem) {
                    bail!("--gtin: {problem}");
                }
                Ok(ReportSubject::Lot {
                    gtin: self.gtin.clone(),
                    lot: lot.clone(),
                })
            }
            // clap's group makes one of them required.
            (None, None) => bail!("give --sscc or --lot"),
        }
    }
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let subject = args.subject()?;
    let config = config::load(&args.config)?;
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| config.storage.path.clone());
    let html = match args.format {
        Format::Html => render_offline(&db, &config, &subject)?,
        Format::Epcis => {
            let store = Store::open_existing(&db)?;
            store.load_journal_tail()?;
            crate::epcis::render_json(&store, &config, &subject, now_ms())?
        }
    };
    match &args.out {
        Some(path) => write_file(path, &html)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(html.as_bytes())
                .and_then(|()| out.flush())
                .context("writing the report to standard output")?;
        }
    }
    Ok(())
}

/// The report from a database file, now.
pub fn render_offline(
    db: &Path,
    config: &Config,
    subject: &ReportSubject,
) -> anyhow::Result<String> {
    let store = Store::open_existing(db)?;
    // Readings journalled but not folded when the gateway stopped; read-only.
    store.load_journal_tail()?;
    Ok(render_html(&store, config, subject, now_ms())?)
}

/// Writes beside the target and renames, so a reader never sees half a report.
fn write_file(path: &Path, html: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("--out {} names no file", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, html).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
