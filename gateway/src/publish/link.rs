//! Reconnection pacing, apart from the connection loop so it can be tested
//! without a broker and on tokio's paused clock.
//!
//! Design: the full attempts (a TCP connect, a TLS handshake, CONNECT) are
//! what costs a broker, so they keep an exponential backoff. The first wait
//! is `min`, each failure doubles it up to `max`, and every wait is
//! multiplied by a factor in [0.5, 1) drawn by the caller, so a fleet that
//! lost its broker together does not come back together. A connection that
//! lasted longer than `max` was a working one: the next failure starts from
//! `min` again.
//!
//! A doubled wait alone makes recovery slow: after a long outage the broker
//! may be back for most of a minute before the next attempt. So while it
//! waits, the publisher probes with a bare TCP connect (no TLS, nothing the
//! broker has to compute: a refused one is answered by its kernel), about
//! once per `probe`. When the broker has been seen away and a probe then
//! gets through, the wait is cut to a random delay in [0, `spread`), which
//! is what spreads a fleet's handshakes after the outage. Failures that a
//! broker coming back cannot mend (a refused certificate, CONNACK not
//! authorised, unreadable files) are not probed and keep the full wait.

use std::future::Future;
use std::time::Duration;

use coldgate_sensor_drivers::Backoff;
use rumqttc::{ConnectReturnCode, ConnectionError, StateError};
use tokio::time::Instant;

/// The wait before the next connection attempt, after one that ended
/// after `lasted`: the shared backoff, started again from its first delay
/// when the connection had lasted longer than the longest wait (it was a
/// working link, not a failing one), shortened by `jitter` (clamped to
/// [0.5, 1]) so a fleet that lost the broker together does not come back
/// together.
pub fn reconnect_wait(backoff: &mut Backoff, lasted: Duration, jitter: f64) -> Duration {
    if lasted > backoff.cap() {
        backoff.reset();
    }
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.5, 1.0)
    } else {
        1.0
    };
    backoff.next_delay().mul_f64(jitter)
}

/// Why the last attempt or connection ended, as far as the next wait cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing took the TCP connection (refused, no route): the broker is
    /// away, so a probe that gets through means it is back.
    Unreachable,
    /// Anything else a reconnect may mend (a connection dropped, a
    /// timeout, an overloaded broker): probed, but the wait is cut only if
    /// a probe first finds the broker away. One that answers all along
    /// keeps the full wait, so a broker that is up and failing is not
    /// hammered.
    Lost,
    /// The broker or this gateway refused the connection for a reason only
    /// a change on one side fixes (TLS, credentials, authorisation, a file
    /// that cannot be read): the full wait, no probes.
    Refused,
}

impl Failure {
    /// Sorts an error of rumqttc's event loop.
    pub fn of(error: &ConnectionError) -> Failure {
        if super::tls::rustls_cause(error).is_some() {
            return Failure::Refused;
        }
        match error {
            ConnectionError::Io(e) if unreachable(e.kind()) => Failure::Unreachable,
            ConnectionError::MqttState(StateError::Io(e)) if unreachable(e.kind()) => {
                Failure::Unreachable
            }
            ConnectionError::Tls(rumqttc::TlsError::Io(e)) if unreachable(e.kind()) => {
                Failure::Unreachable
            }
            // Refusals that name something the broker has decided about
            // this gateway; `ServiceUnavailable` is the broker's own state.
            ConnectionError::ConnectionRefused(code) => match code {
                ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::Success => Failure::Lost,
                ConnectReturnCode::RefusedProtocolVersion
                | ConnectReturnCode::BadClientId
                | ConnectReturnCode::BadUserNamePassword
                | ConnectReturnCode::NotAuthorized => Failure::Refused,
            },
            // Certificates, keys and names rustls refused before a byte
            // was sent: nothing on the broker's side will change them.
            ConnectionError::Tls(rumqttc::TlsError::Io(_)) => Failure::Lost,
            ConnectionError::Tls(_) => Failure::Refused,
            _ => Failure::Lost,
        }
    }
}

/// The kinds of a failed TCP connect that mean nobody listens or no route
/// leads there. A timeout is not among them: it may be a slow broker.
fn unreachable(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable
    )
}

/// How a wait watches for the broker's return.
#[derive(Debug, Clone, Copy)]
pub struct Probing {
    /// Mean time between two probes (each one drawn in [0.5, 1.5) of it, so
    /// a fleet's probes do not arrive in step); zero: never probe.
    pub every: Duration,
    /// A wait cut short still lasts a random time below this, so a fleet
    /// that sees the broker return in the same second spreads its
    /// handshakes over `spread`.
    pub spread: Duration,
}

/// What a probe's result means for the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Keep probing.
    Probe,
    /// The broker answers and has been answering: the full wait stands and
    /// no more probes are needed.
    Stop,
    /// The broker was away and is back: cut the wait.
    Back,
}

/// The decision behind the probes: pure, fed with their results.
#[derive(Debug, Clone)]
struct Watch {
    probing: bool,
    /// The broker has been found away since the failure (or the failure
    /// itself said so).
    away_seen: bool,
}

impl Watch {
    fn after(failure: Failure, probing: &Probing) -> Watch {
        Watch {
            probing: !probing.every.is_zero() && failure != Failure::Refused,
            away_seen: failure == Failure::Unreachable,
        }
    }

    fn probed(&mut self, reachable: bool) -> Step {
        match (reachable, self.away_seen) {
            (false, _) => {
                self.away_seen = true;
                Step::Probe
            }
            (true, true) => Step::Back,
            (true, false) => {
                self.probing = false;
                Step::Stop
            }
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The whole backoff.
    Full,
    /// Cut short: a probe found the broker back after `away` of the wait.
    Back { away: Duration },
}

/// Waits `wait` after a `failure`, or less when the broker is seen coming
/// back. `probe(limit)` says whether a TCP connect to the broker succeeds
/// within `limit`; `unit()` draws uniformly in [0, 1).
pub async fn wait<P, F>(
    wait: Duration,
    failure: Failure,
    probing: Probing,
    mut probe: P,
    mut unit: impl FnMut() -> f64,
) -> Waited
where
    P: FnMut(Duration) -> F,
    F: Future<Output = bool>,
{
    let start = Instant::now();
    let deadline = start + wait;
    let mut watch = Watch::after(failure, &probing);
    while watch.probing {
        let at = Instant::now() + probing.every.mul_f64(0.5 + unit());
        if at >= deadline {
            break;
        }
        tokio::time::sleep_until(at).await;
        let limit = probing.every.min(deadline - Instant::now());
        match watch.probed(probe(limit).await) {
            Step::Probe | Step::Stop => {}
            Step::Back => {
                let away = start.elapsed();
                let spread = probing.spread.mul_f64(unit().clamp(0.0, 1.0));
                tokio::time::sleep_until((Instant::now() + spread).min(deadline)).await;
                return Waited::Back { away };
            }
        }
    }
    tokio::time::sleep_until(deadline).await;
    Waited::Full
}

/// Whether a TCP connection to `host:port` is accepted within `limit`. It is
/// closed at once: the broker sees a connection that sends nothing.
pub async fn tcp_probe(host: String, port: u16, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, tokio::net::TcpStream::connect((host.as_str(), port))).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    use std::cell::Cell;
    use std::rc::Rc;

    use rand::{Rng, SeedableRng};

    const S: Duration = Duration::from_secs(1);
    const PROBING: Probing = Probing {
        every: S,
        spread: Duration::from_secs(3),
    };

    /// A broker reachable from `back` on (never when `None`), counting the
    /// probes it receives; times are measured from the test's start.
    #[derive(Clone)]
    struct Broker {
        start: Instant,
        back: Option<Duration>,
        probes: Rc<Cell<u32>>,
    }

    impl Broker {
        fn new(back: Option<Duration>) -> Broker {
            Broker {
                start: Instant::now(),
                back,
                probes: Rc::new(Cell::new(0)),
            }
        }

        fn probe(&self) -> impl FnMut(Duration) -> std::future::Ready<bool> + '_ {
            move |_limit| {
                self.probes.set(self.probes.get() + 1);
                let up = self.back.is_some_and(|b| self.start.elapsed() >= b);
                std::future::ready(up)
            }
        }
    }

    fn unit(seed: u64) -> impl FnMut() -> f64 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        move || rng.random::<f64>()
    }

    #[test]
    fn a_refused_tcp_connect_is_unreachable_and_a_refused_connack_is_not() {
        use std::io::{Error, ErrorKind};
        let io = |k: ErrorKind| ConnectionError::Io(Error::from(k));
        assert_eq!(
            Failure::of(&io(ErrorKind::ConnectionRefused)),
            Failure::Unreachable
        );
        assert_eq!(
            Failure::of(&io(ErrorKind::HostUnreachable)),
            Failure::Unreachable
        );
        assert_eq!(Failure::of(&io(ErrorKind::TimedOut)), Failure::Lost);
        assert_eq!(Failure::of(&ConnectionError::NetworkTimeout), Failure::Lost);
        assert_eq!(
            Failure::of(&ConnectionError::MqttState(StateError::ConnectionAborted)),
            Failure::Lost
        );
        assert_eq!(
            Failure::of(&ConnectionError::ConnectionRefused(
                ConnectReturnCode::NotAuthorized
            )),
            Failure::Refused
        );
        assert_eq!(
            Failure::of(&ConnectionError::ConnectionRefused(
                ConnectReturnCode::ServiceUnavailable
            )),
            Failure::Lost
        );
        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            Failure::of(&ConnectionError::Tls(rumqttc::TlsError::TLS(
                bad_cert.clone()
            ))),
            Failure::Refused
        );
        // How a handshake failure really arrives: rustls's error in an I/O error.
        assert_eq!(
            Failure::of(&ConnectionError::Tls(rumqttc::TlsError::Io(Error::new(
                ErrorKind::InvalidData,
                bad_cert
            )))),
            Failure::Refused
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_back_during_a_long_wait_is_tried_within_a_probe_interval_and_the_spread() {
        for seed in 0..200 {
            let broker = Broker::new(Some(20 * S));
            let waited = wait(
                60 * S,
                Failure::Unreachable,
                PROBING,
                broker.probe(),
                unit(seed),
            )
            .await;
            let took = broker.start.elapsed();
            assert!(
                matches!(waited, Waited::Back { away } if away >= 20 * S),
                "seed {seed}: {waited:?}"
            );
            assert!(
                took >= 20 * S && took < 20 * S + S.mul_f64(1.5) + PROBING.spread,
                "seed {seed}: the attempt came {took:?} into a 60 s wait, the broker back at 20 s"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_certificate_keeps_the_full_wait_and_is_never_probed() {
        let broker = Broker::new(Some(Duration::ZERO));
        let waited = wait(60 * S, Failure::Refused, PROBING, broker.probe(), unit(1)).await;
        assert_eq!(waited, Waited::Full);
        assert_eq!(broker.start.elapsed(), 60 * S);
        assert_eq!(broker.probes.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_that_answers_all_along_keeps_the_full_wait_after_a_single_probe() {
        let broker = Broker::new(Some(Duration::ZERO));
        let waited = wait(60 * S, Failure::Lost, PROBING, broker.probe(), unit(2)).await;
        assert_eq!(waited, Waited::Full);
        assert_eq!(broker.start.elapsed(), 60 * S);
        assert_eq!(broker.probes.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_is_cut_short_once_the_broker_was_found_away_and_is_back() {
        for seed in 0..50 {
            let broker = Broker::new(Some(10 * S));
            let waited = wait(60 * S, Failure::Lost, PROBING, broker.probe(), unit(seed)).await;
            let took = broker.start.elapsed();
            assert!(matches!(waited, Waited::Back { .. }), "seed {seed}");
            assert!(
                took >= 10 * S && took < 14 * S + S / 2,
                "seed {seed}: {took:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probing_off_keeps_the_plain_backoff() {
        let broker = Broker::new(Some(Duration::ZERO));
        let off = Probing {
            every: Duration::ZERO,
            ..PROBING
        };
        let waited = wait(30 * S, Failure::Unreachable, off, broker.probe(), unit(3)).await;
        assert_eq!(waited, Waited::Full);
        assert_eq!(broker.start.elapsed(), 30 * S);
        assert_eq!(broker.probes.get(), 0);
    }

    /// 10,000 gateways on one clock, their broker away for 60 s: the probes
    /// while it is away and the attempts after it returns, per second. The
    /// figures docs/mqtt.md quotes are printed (`--nocapture`).
    #[tokio::test(start_paused = true)]
    async fn a_fleet_probes_about_once_a_second_each_and_spreads_its_return_over_the_spread() {
        const FLEET: u64 = 10_000;
        let back = 60 * S;
        let brokers: Vec<Broker> = (0..FLEET).map(|_| Broker::new(Some(back))).collect();
        let start = brokers[0].start;
        // Each gateway is somewhere in its backoff when the broker returns:
        // waits of 30 to 60 s (reconnect_max 60 s, jitter [0.5, 1)).
        let mut draw = unit(99);
        let waits: Vec<Duration> = (0..FLEET).map(|_| (30 * S).mul_f64(1.0 + draw())).collect();
        let done = futures::future::join_all(brokers.iter().zip(&waits).enumerate().map(
            |(i, (b, w))| async move {
                wait(
                    *w + back,
                    Failure::Unreachable,
                    PROBING,
                    b.probe(),
                    unit(i as u64),
                )
                .await;
                start.elapsed()
            },
        ))
        .await;
        let probes: u32 = brokers.iter().map(|b| b.probes.get()).sum();
        let per_s = f64::from(probes) / back.as_secs_f64();
        let mut per_second = [0u64; 8];
        for t in &done {
            let after = t.saturating_sub(back).as_secs();
            assert!(after < 5, "an attempt {after} s after the broker's return");
            per_second[after as usize] += 1;
        }
        let busiest = per_second.iter().copied().max().unwrap_or(0);
        eprintln!(
            "fleet of {FLEET}: {per_s:.0} probes/s while away; attempts per second after the return: {:?}",
            &per_second[..5]
        );
        assert!(
            (0.9 * FLEET as f64..1.1 * FLEET as f64).contains(&per_s),
            "about one probe per gateway per second: {per_s}"
        );
        assert!(
            busiest < FLEET * 4 / 10,
            "no second takes more than 40 % of the fleet: {per_second:?}"
        );
    }

    #[test]
    fn waits_double_from_min_up_to_max() {
        let mut b = Backoff::new(500 * MS, 4000 * MS);
        let waits: Vec<_> = (0..6).map(|_| reconnect_wait(&mut b, MS, 1.0)).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 4000, 4000].map(|m| m * MS).to_vec()
        );
    }

    #[test]
    fn jitter_shortens_a_wait_by_at_most_half() {
        let mut b = Backoff::new(1000 * MS, 60_000 * MS);
        assert_eq!(reconnect_wait(&mut b, MS, 0.5), 500 * MS);
        assert_eq!(reconnect_wait(&mut b, MS, 0.0), 1000 * MS, "clamped to 0.5");
        assert_eq!(
            reconnect_wait(&mut b, MS, f64::NAN),
            4000 * MS,
            "NaN is no jitter"
        );
    }

    #[test]
    fn a_connection_that_lasted_longer_than_max_starts_again_from_min() {
        let mut b = Backoff::new(500 * MS, 4000 * MS);
        for _ in 0..5 {
            reconnect_wait(&mut b, MS, 1.0);
        }
        assert_eq!(reconnect_wait(&mut b, 5000 * MS, 1.0), 500 * MS);
        assert_eq!(reconnect_wait(&mut b, MS, 1.0), 1000 * MS);
    }
}
