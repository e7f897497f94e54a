//! EPCIS 2.0 export: a pallet's or a lot's custody and monitoring record as
//! an `EPCISDocument` (JSON-LD) for trading partners, QA systems and
//! regulators' track-and-trace repositories.
//!
//! Three layers, so the fleet can reuse the middle one over many gateways:
//! - [`from_report`]: one gateway's database → [`Journey`] (plain facts,
//!   chosen by the trip report so the two documents agree);
//! - [`map`]: [`Journey`] → [`EpcisDocument`] (loads and unloads as
//!   `ObjectEvent`s, excursions as `ALARM_CONDITION` sensor reports,
//!   monitoring gaps as `ERROR_CONDITION` sensor reports);
//! - [`document`]: the wire format, every field typed.
//!
//! Identifiers are in [`uri`]. The choices are explained in docs/epcis.md.

pub mod document;
pub mod from_report;
pub mod map;
pub mod uri;

pub use document::EpcisDocument;
pub use map::{to_document, ExcursionRecord, GapKind, GapRecord, Journey, StayRecord};
pub use uri::UriError;

use crate::config::Config;
use crate::report::{ReportError, ReportSubject};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum EpcisError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot name the goods in EPCIS: {0}")]
    Uri(#[from] UriError),
    #[error("cannot write the EPCIS document: {0}")]
    Json(#[from] serde_json::Error),
}

/// The document of `subject` in one gateway's database, as of `now_ms`.
pub fn document(
    store: &Store,
    config: &Config,
    subject: &ReportSubject,
    now_ms: i64,
) -> Result<EpcisDocument, EpcisError> {
    let journey = from_report::journey(store, config, subject, now_ms)?;
    Ok(to_document(&journey, now_ms)?)
}

/// The same as pretty-printed JSON-LD, ending in a newline.
pub fn render_json(
    store: &Store,
    config: &Config,
    subject: &ReportSubject,
    now_ms: i64,
) -> Result<String, EpcisError> {
    let mut s = serde_json::to_string_pretty(&document(store, config, subject, now_ms)?)?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests;
