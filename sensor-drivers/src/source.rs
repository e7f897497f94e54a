//! The contract between a source of readings and the gateway's ingest.
//!
//! Each source (one BLE adapter, one RS-485 bus, one Modbus TCP endpoint, the
//! simulator) is its own task, so a slow or dead one never blocks another.
//! It pushes into a *bounded* channel: when ingest falls behind, sources wait
//! rather than grow memory without limit.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, watch};

use crate::Reading;

/// Where a source sends its readings.
pub type ReadingSender = mpsc::Sender<Reading>;

/// Why a source stopped for good. Transient faults (a unit that does not
/// answer, an adapter that disappears) are retried inside the source and never
/// end up here.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The receiving side (ingest) is gone: the gateway is shutting down.
    #[error("ingest is no longer receiving readings")]
    IngestClosed,
    /// The source cannot run at all with its configuration.
    #[error("{source_name}: {reason}")]
    Fatal { source_name: String, reason: String },
}

/// A task that produces readings until `shutdown` becomes `true`.
pub trait Source: Send {
    /// A short name for logs, e.g. `modbus-rtu:/dev/ttyUSB0` or `sim`.
    fn name(&self) -> String;

    /// Runs the source. Returns `Ok(())` once `shutdown` is set.
    fn run(
        self: Box<Self>,
        readings: ReadingSender,
        shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;
}
