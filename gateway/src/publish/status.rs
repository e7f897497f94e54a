//! The retained `status` message and the link state diagnostics show.

use std::time::Duration;

use serde_json::json;

use crate::event::{now_ms, rfc3339};

/// The publisher's view of its connection, for diagnostics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkState {
    pub connected: bool,
    pub last_error: Option<String>,
    pub next_retry_ms: Option<i64>,
}

/// `{prefix}/status`: online or offline (the Last Will), with what an
/// operator needs to judge a silent gateway.
pub fn status_payload(
    gateway_id: &str,
    state: &str,
    uptime: Duration,
    outbox_depth: u64,
    oldest_unsent_ms: Option<i64>,
) -> Vec<u8> {
    let now = now_ms();
    let v = json!({
        "schema": "coldgate.status/1",
        "gateway_id": gateway_id,
        "at": rfc3339(now),
        "state": state,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime.as_secs(),
        "outbox_depth": outbox_depth,
        "oldest_unsent_at": oldest_unsent_ms.map(rfc3339),
        "clock_synced": crate::clock::is_synchronised(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}
