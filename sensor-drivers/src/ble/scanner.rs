//! The seam between Bluetooth and the rest: a source of advertisement streams.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use super::advertisement::Advertisement;

/// Advertisements from one adapter session. The stream ending means the
/// adapter went away (unplugged, BlueZ restarted); the caller reopens.
pub type AdvertisementStream = BoxStream<'static, Advertisement>;

/// Why a scan could not start or continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// No Bluetooth adapter (or no BlueZ / system D-Bus to find one through).
    #[error("no Bluetooth adapter: {reason}")]
    NoAdapter { reason: String },
    /// The configured adapter is not among those present.
    #[error("Bluetooth adapter `{name}` not found (present: {present:?})")]
    AdapterNotFound { name: String, present: Vec<String> },
    /// The Bluetooth stack refused an operation.
    #[error("Bluetooth error: {0}")]
    Bluetooth(String),
    /// The stack did not answer in time.
    #[error("the Bluetooth stack did not answer within {seconds} s")]
    Timeout { seconds: u64 },
}

/// Something that can start scanning and hand back advertisements.
///
/// `open` is called again after the stream ends or after an error, with
/// backoff in between, so an implementation needs no retry logic of its own.
pub trait Scanner: Send {
    /// A short description for logs, e.g. `btleplug:hci0`.
    fn describe(&self) -> String;

    /// Starts a scan session.
    fn open(&mut self) -> BoxFuture<'_, Result<AdvertisementStream, ScanError>>;
}

/// One scripted session of a [`ScriptedScanner`].
#[derive(Debug, Clone)]
pub enum Session {
    /// `open` fails with this error.
    Fail(ScanError),
    /// `open` succeeds; the stream yields these, then ends (adapter lost).
    Deliver(Vec<Advertisement>),
}

/// A scanner that plays back a script: for tests and for the simulator.
/// After the script is exhausted, `open` succeeds with a stream that never
/// yields, like a quiet radio.
#[derive(Debug, Default)]
pub struct ScriptedScanner {
    script: VecDeque<Session>,
    opened: std::sync::Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
}

impl ScriptedScanner {
    /// A scanner that plays `sessions` in order.
    pub fn new(sessions: impl IntoIterator<Item = Session>) -> Self {
        ScriptedScanner {
            script: sessions.into_iter().collect(),
            opened: Default::default(),
        }
    }

    /// Shared record of when `open` was called, to check backoff timing.
    pub fn open_times(&self) -> std::sync::Arc<std::sync::Mutex<Vec<tokio::time::Instant>>> {
        self.opened.clone()
    }
}

impl Scanner for ScriptedScanner {
    fn describe(&self) -> String {
        "scripted".to_string()
    }

    fn open(&mut self) -> BoxFuture<'_, Result<AdvertisementStream, ScanError>> {
        if let Ok(mut times) = self.opened.lock() {
            times.push(tokio::time::Instant::now());
        }
        let next = self.script.pop_front();
        async move {
            match next {
                Some(Session::Fail(e)) => Err(e),
                Some(Session::Deliver(advs)) => Ok(futures::stream::iter(advs).boxed()),
                None => Ok(futures::stream::pending().boxed()),
            }
        }
        .boxed()
    }
}
