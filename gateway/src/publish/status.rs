//! The retained `status` message and the link state diagnostics show.

use std::time::Duration;

use crate::event::payload::{self, ClockJumpSeen, Link, Status, StatusState};
use crate::event::{now_ms, rfc3339};

/// The publisher's view of its connection, for diagnostics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkState {
    pub connected: bool,
    /// Why the last connection failed or was lost, in words naming the
    /// configuration key to look at when TLS is the cause.
    pub last_error: Option<String>,
    /// When the next connection attempt is due (ms since the epoch).
    pub next_retry_ms: Option<i64>,
    /// Connection attempts that failed and connections lost since start.
    pub publish_errors: u64,
    /// `notAfter` of the gateway's client certificate (mutual TLS).
    pub client_cert_expires_ms: Option<i64>,
    /// Events may be published on this connection: always, or with
    /// `mqtt.verify_own_status` once the broker delivered our own status back.
    pub verified: bool,
}

/// `reason` of the status a stopping gateway publishes before DISCONNECT.
pub const REASON_STOPPED: &str = "stopped";
/// `reason` of the Last Will: the connection died without a DISCONNECT.
pub const REASON_LOST: &str = "connection lost";

/// What the status message says besides the state.
#[derive(Debug, Clone, Default)]
pub struct StatusFacts {
    pub uptime: Duration,
    pub outbox_depth: u64,
    pub oldest_unsent_ms: Option<i64>,
    pub client_cert_expires_ms: Option<i64>,
    /// The last wall-clock jump recorded (docs/time.md): when, and by how much.
    pub clock_last_jump: Option<(i64, i64)>,
    /// Telemetry messages dropped from the full outbox since the database
    /// was created.
    pub telemetry_dropped: u64,
    /// Events taken out of the outbox unsent, over `mqtt.max_payload`
    /// (each reported by a `gateway` event `entry_set_aside`).
    pub set_aside: u64,
    /// The link as the publisher sees it when the status is built.
    pub link: LinkState,
    /// When the current connection was accepted (ms since the epoch).
    pub connected_since_ms: Option<i64>,
    /// The audit chain's head: a subscriber keeping it can later prove the
    /// trail on the card was not cut back or wiped (`audit verify --anchor`).
    pub audit_head: Option<crate::audit::Head>,
}

/// `{prefix}/status`: online or offline (the Last Will), with what an
/// operator needs to judge a silent gateway, including when its client
/// certificate expires (an expired one silences it for good).
///
/// `reason` says why a status is `offline`: [`REASON_STOPPED`] for a clean
/// stop (published by the gateway itself, with the stop time and the real
/// uptime), [`REASON_LOST`] for the Last Will, which the broker publishes
/// when the link dies without a DISCONNECT; its `at` and `uptime_s` are
/// those of the connect, the last moment the gateway could speak for it.
pub fn status_payload(
    gateway_id: &str,
    state: &str,
    reason: Option<&str>,
    facts: StatusFacts,
) -> Vec<u8> {
    let now = now_ms();
    let online = state == "online";
    let link = facts.link;
    let status = Status {
        schema: "coldgate.status/1".into(),
        gateway_id: gateway_id.into(),
        at: rfc3339(now),
        state: if online {
            StatusState::Online
        } else {
            StatusState::Offline
        },
        reason: reason.map(str::to_string),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: facts.uptime.as_secs(),
        outbox_depth: facts.outbox_depth,
        oldest_unsent_at: facts.oldest_unsent_ms.map(rfc3339),
        oldest_unsent_age_s: facts.oldest_unsent_ms.map(|t| (now - t).max(0) / 1000),
        telemetry_dropped: facts.telemetry_dropped,
        set_aside: facts.set_aside,
        clock_synced: crate::clock::is_synchronised(),
        clock_state: Some(crate::clock::sync_state().as_str().into()),
        clock_last_jump: facts.clock_last_jump.map(|(at, offset_ms)| ClockJumpSeen {
            at: rfc3339(at),
            offset_ms,
        }),
        client_cert_expires_at: facts.client_cert_expires_ms.map(rfc3339),
        audit_head: facts.audit_head.map(|h| h.to_string()),
        link: Link {
            state: if online {
                payload::LinkState::Connected
            } else {
                payload::LinkState::Disconnected
            },
            connected_since: facts.connected_since_ms.map(rfc3339),
            failures: link.publish_errors,
            last_error: link.last_error,
            verified: link.verified,
        },
    };
    payload::to_bytes(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_says_when_the_client_certificate_expires() {
        let v: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "online",
            None,
            StatusFacts {
                client_cert_expires_ms: Some(1_800_000_000_000),
                ..StatusFacts::default()
            },
        ))
        .unwrap();
        assert_eq!(v["client_cert_expires_at"], "2027-01-15T08:00:00.000Z");
        let v: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "online",
            None,
            StatusFacts::default(),
        ))
        .unwrap();
        assert!(v["client_cert_expires_at"].is_null());
        assert!(v["clock_last_jump"].is_null());
    }

    #[test]
    fn the_status_carries_the_audit_head_as_an_anchor_to_copy() {
        let head = crate::audit::Head {
            seq: 12,
            hash: [0xab; 32],
        };
        let v: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "online",
            None,
            StatusFacts {
                audit_head: Some(head),
                ..StatusFacts::default()
            },
        ))
        .unwrap();
        let text = v["audit_head"].as_str().unwrap();
        assert_eq!(text, format!("12:{}", "ab".repeat(32)));
        assert_eq!(text.parse::<crate::audit::Head>(), Ok(head));
        let empty: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "online",
            None,
            StatusFacts::default(),
        ))
        .unwrap();
        assert!(empty["audit_head"].is_null());
    }

    #[test]
    fn the_status_shows_the_clock_state_and_its_last_jump() {
        let v: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "online",
            None,
            StatusFacts {
                clock_last_jump: Some((1_800_000_000_000, -3_600_000)),
                ..StatusFacts::default()
            },
        ))
        .unwrap();
        assert_eq!(v["clock_last_jump"]["at"], "2027-01-15T08:00:00.000Z");
        assert_eq!(v["clock_last_jump"]["offset_ms"], -3_600_000);
        let state = v["clock_state"].as_str().unwrap();
        assert!(
            ["synchronised", "unsynchronised", "unknown"].contains(&state),
            "{state}"
        );
        assert_eq!(
            v["clock_synced"],
            serde_json::json!(crate::clock::is_synchronised())
        );
    }

    #[test]
    fn the_status_carries_the_outbox_age_the_drop_count_and_the_link() {
        let v: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "online",
            None,
            StatusFacts {
                outbox_depth: 5,
                oldest_unsent_ms: Some(now_ms() - 90_000),
                telemetry_dropped: 7,
                link: LinkState {
                    publish_errors: 2,
                    last_error: Some("refused".into()),
                    ..LinkState::default()
                },
                ..StatusFacts::default()
            },
        ))
        .unwrap();
        assert_eq!(v["outbox_depth"], 5);
        let age = v["oldest_unsent_age_s"].as_i64().unwrap();
        assert!((89..=91).contains(&age), "{v}");
        assert_eq!(v["telemetry_dropped"], 7);
        assert_eq!(v["link"]["state"], "connected");
        assert_eq!(v["link"]["failures"], 2);
        assert_eq!(v["link"]["last_error"], "refused");
        let offline: serde_json::Value = serde_json::from_slice(&status_payload(
            "g1",
            "offline",
            None,
            StatusFacts::default(),
        ))
        .unwrap();
        assert_eq!(offline["link"]["state"], "disconnected");
        assert_eq!(offline["version"], env!("CARGO_PKG_VERSION"));
    }
}
