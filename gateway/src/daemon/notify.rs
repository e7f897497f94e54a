//! Talking to systemd (`Type=notify`): readiness, watchdog keep-alives,
//! reloading and stopping. Outside systemd there is no `NOTIFY_SOCKET` and
//! every call does nothing, so `coldgate run` behaves the same from a shell.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{info, warn};

/// The process's link to the service manager.
#[derive(Debug, Clone)]
pub struct Notifier {
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, when set) from the
    /// environment. The environment is left as it is: unsetting variables
    /// while runtime threads exist is a data race.
    pub fn from_env() -> Notifier {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let watchdog = watchdog_timeout(usec.as_deref(), pid.as_deref(), std::process::id());
        if let Some(timeout) = watchdog {
            info!(
                timeout_ms = timeout.as_millis() as u64,
                "systemd watchdog enabled."
            );
        }
        Notifier { watchdog }
    }

    /// How often to ping: half the watchdog timeout, as systemd advises, so
    /// one late ping is not yet fatal. `None` when no watchdog is asked for.
    pub fn ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| (t / 2).max(Duration::from_millis(1)))
    }

    /// The watchdog timeout systemd asked for, if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// READY=1, with a one-line status for `systemctl status`.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// RELOADING=1: a SIGHUP is being handled; READY=1 follows.
    pub fn reloading(&self) {
        send(&[
            NotifyState::Reloading,
            NotifyState::Status("Reloading the configuration."),
        ]);
    }

    /// STOPPING=1: shutdown has begun; systemd stops expecting pings.
    pub fn stopping(&self) {
        send(&[
            NotifyState::Stopping,
            NotifyState::Status("Stopping: committing what ingest holds."),
        ]);
    }

    /// STATUS=: the line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// WATCHDOG=1: the caller has checked that the gateway is alive.
    pub fn ping(&self) {
        send(&[NotifyState::Watchdog]);
    }
}

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(false, states) {
        warn!(%error, "Cannot notify systemd.");
    }
}

/// The watchdog timeout systemd asked for, if it is meant for this process:
/// `WATCHDOG_PID`, when present, must be ours (a child must not inherit the
/// duty); a missing or zero `WATCHDOG_USEC` means no watchdog.
fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(own_pid) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_timeout_is_read_from_usec_when_the_pid_is_ours_or_absent() {
        assert_eq!(
            watchdog_timeout(Some("400000"), None, 7),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            watchdog_timeout(Some("400000"), Some("7"), 7),
            Some(Duration::from_millis(400))
        );
    }

    #[test]
    fn no_watchdog_for_another_pid_a_zero_or_garbage() {
        assert_eq!(watchdog_timeout(Some("400000"), Some("8"), 7), None);
        assert_eq!(watchdog_timeout(Some("0"), None, 7), None);
        assert_eq!(watchdog_timeout(Some("soon"), None, 7), None);
        assert_eq!(watchdog_timeout(None, Some("7"), 7), None);
    }

    #[test]
    fn pings_at_half_the_timeout() {
        let n = Notifier {
            watchdog: Some(Duration::from_millis(400)),
        };
        assert_eq!(n.ping_interval(), Some(Duration::from_millis(200)));
        assert_eq!(Notifier { watchdog: None }.ping_interval(), None);
    }
}
