//! `fleet.toml`: read strictly (an unknown key is a typo that would
//! otherwise silently fall back to a default) and checked as a whole, so an
//! operator fixes every problem in one round, each named by its key path.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub nats: Nats,
    pub postgres: Postgres,
    #[serde(default)]
    pub worker: Worker,
    #[serde(default)]
    pub verify: Verify,
    #[serde(default)]
    pub http: Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nats {
    /// `nats://host:port` (comma-separated for a cluster).
    pub url: String,
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The gateways' MQTT topic prefix without the gateway id, as a NATS
    /// subject (`coldgate/v1/{gateway_id}` on MQTT is `coldgate.v1.*` here).
    #[serde(default = "default_mqtt_prefix")]
    pub mqtt_prefix: String,
    /// First token of the partitioned subjects `{subject_prefix}.{n}.{gateway}.…`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Must equal the `partition(N, …)` of the server's mapping
    /// (`coldgate-fleet nats-mapping` prints it).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// 3 in a cluster of three servers; 1 on a single server.
    #[serde(default = "one")]
    pub replicas: u32,
    /// How long JetStream keeps a message after it was acked by every
    /// consumer: the window in which a lost PostgreSQL can be rebuilt.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// A libpq connection string (`host=/run/postgresql dbname=coldgate_fleet`)
    /// or URL (`postgresql://user@host/db`).
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    /// This worker's name in leases and logs; host name and pid when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Messages applied in one PostgreSQL transaction at most.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// How long one fetch waits for a batch to fill.
    #[serde(default = "default_batch_wait", with = "humantime_serde")]
    pub batch_wait: Duration,
    /// JetStream redelivers a message not acked within this time (a worker
    /// that died). Kept alive while PostgreSQL is retried.
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Longest pause between attempts while PostgreSQL or NATS is away.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// A worker not seen for this long has its partitions taken over.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// A gap open this long while its gateway reports an empty outbox is
    /// loss downstream of the gateway: an alert.
    #[serde(default = "default_gap_age", with = "humantime_serde")]
    pub gap_age: Duration,
    #[serde(default = "default_verify_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Also ask the gateway (`{prefix}/cmd/replay`) for the missing range.
    #[serde(default)]
    pub replay: bool,
    #[serde(default = "default_alert_subject")]
    pub alert_subject: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_stream() -> String {
    "COLDGATE".into()
}
fn default_mqtt_prefix() -> String {
    "coldgate.v1".into()
}
fn default_subject_prefix() -> String {
    "cg".into()
}
fn default_partitions() -> u32 {
    64
}
fn one() -> u32 {
    1
}
fn default_max_age() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_batch() -> usize {
    500
}
fn default_batch_wait() -> Duration {
    Duration::from_millis(200)
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(10)
}
fn default_lease() -> Duration {
    Duration::from_secs(10)
}
fn default_gap_age() -> Duration {
    Duration::from_secs(600)
}
fn default_verify_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_alert_subject() -> String {
    "fleet.alerts.delivery".into()
}
fn default_listen() -> String {
    "127.0.0.1:9310".into()
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            name: None,
            batch: default_batch(),
            batch_wait: default_batch_wait(),
            ack_wait: default_ack_wait(),
            backoff_max: default_backoff_max(),
            lease: default_lease(),
        }
    }
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            gap_age: default_gap_age(),
            interval: default_verify_interval(),
            replay: false,
            alert_subject: default_alert_subject(),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: default_listen(),
        }
    }
}

/// One thing wrong: its key path (`nats.partitions`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin} has {} problem(s):\n{}", .problems.len(), list(.problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A NATS subject token: no wildcards, separators or white space, which
/// would change what a filter or mapping matches.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        };
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            invalid(vec![Problem {
                path,
                message: e.into_inner().message().trim_end().to_string(),
            }])
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(invalid(problems))
        }
    }

    /// Every problem of the content, not only the first.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |path: &str, message: String| {
            out.push(Problem {
                path: path.into(),
                message,
            })
        };
        let n = &self.nats;
        if n.url.split(',').any(|u| {
            let u = u.trim();
            !(u.starts_with("nats://") || u.starts_with("tls://")) || u.len() < 8
        }) {
            bad(
                "nats.url",
                format!(
                    "`{}` is not nats://host:port (or tls://, comma-separated)",
                    n.url
                ),
            );
        }
        if !is_token(&n.stream) {
            bad(
                "nats.stream",
                "letters, digits, `-` and `_` only".to_string(),
            );
        }
        if !is_token(&n.subject_prefix) {
            bad(
                "nats.subject_prefix",
                "one subject token: letters, digits, `-` and `_` only".to_string(),
            );
        }
        if n.mqtt_prefix.is_empty() || !n.mqtt_prefix.split('.').all(is_token) {
            bad(
                "nats.mqtt_prefix",
                format!(
                    "`{}` is not dot-separated tokens without wildcards",
                    n.mqtt_prefix
                ),
            );
        }
        if !(1..=1024).contains(&n.partitions) {
            bad(
                "nats.partitions",
                format!("{} is not from 1 to 1024", n.partitions),
            );
        }
        if !(1..=5).contains(&n.replicas) {
            bad(
                "nats.replicas",
                format!("{} is not from 1 to 5 (JetStream's limit)", n.replicas),
            );
        }
        if n.max_age < Duration::from_secs(60) {
            bad("nats.max_age", "shorter than 1 minute".to_string());
        }
        if self.postgres.url.trim().is_empty() {
            bad("postgres.url", "empty".to_string());
        } else if let Err(e) = self.postgres.url.parse::<tokio_postgres::Config>() {
            bad("postgres.url", format!("not a connection string: {e}"));
        }
        let w = &self.worker;
        if let Some(name) = &w.name {
            if !is_token(name) {
                bad(
                    "worker.name",
                    "letters, digits, `-` and `_` only".to_string(),
                );
            }
        }
        if !(1..=10_000).contains(&w.batch) {
            bad(
                "worker.batch",
                format!("{} is not from 1 to 10000", w.batch),
            );
        }
        if w.batch_wait < Duration::from_millis(10) {
            bad("worker.batch_wait", "shorter than 10 ms".to_string());
        }
        if w.ack_wait < Duration::from_secs(1) || w.ack_wait <= w.batch_wait * 2 {
            bad(
                "worker.ack_wait",
                "at least 1 s and more than twice worker.batch_wait".to_string(),
            );
        }
        if w.backoff_max < Duration::from_millis(100) {
            bad("worker.backoff_max", "shorter than 100 ms".to_string());
        }
        if w.lease < Duration::from_secs(2) {
            bad("worker.lease", "shorter than 2 s".to_string());
        }
        let v = &self.verify;
        if v.gap_age < Duration::from_secs(1) {
            bad("verify.gap_age", "shorter than 1 s".to_string());
        }
        if v.interval < Duration::from_millis(100) {
            bad("verify.interval", "shorter than 100 ms".to_string());
        }
        if v.alert_subject.is_empty() || !v.alert_subject.split('.').all(is_token) {
            bad(
                "verify.alert_subject",
                format!(
                    "`{}` is not dot-separated tokens without wildcards",
                    v.alert_subject
                ),
            );
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            bad(
                "http.listen",
                format!("`{}` is not address:port", self.http.listen),
            );
        }
        out
    }

    /// The server-side mapping that partitions the gateways' events, for
    /// the `mappings` block of nats-server's configuration. One gateway is
    /// always in the same partition, so its events stay in order. Status
    /// and manifest are not mapped: a server mapping renames the subject
    /// for every subscriber, and the gateway reads its own status back.
    pub fn nats_mappings(&self) -> Vec<(String, String)> {
        let n = &self.nats;
        // `partition(N, 1)` hashes the first wildcard of the source: the
        // gateway id.
        vec![(
            format!("{}.*.events.>", n.mqtt_prefix),
            format!(
                "{}.{{{{partition({},1)}}}}.{{{{wildcard(1)}}}}.events.>",
                n.subject_prefix, n.partitions
            ),
        )]
    }

    /// The stream's subjects: everything under the partitioned prefix, so
    /// a partition's consumer filter (`cg.N.>`) is a subset of them (2.9
    /// takes one filter per consumer; what lands there unmapped is
    /// quarantined, not lost), and the gateways' status and manifest.
    pub fn stream_subjects(&self) -> Vec<String> {
        let m = &self.nats.mqtt_prefix;
        vec![
            format!("{}.>", self.nats.subject_prefix),
            format!("{m}.*.status"),
            format!("{m}.*.manifest"),
        ]
    }

    /// Lanes are what workers lease, one consumer each: the event
    /// partitions, then status, then manifest.
    pub fn lanes(&self) -> u32 {
        self.nats.partitions + 2
    }

    pub fn lane_subject(&self, lane: u32) -> String {
        let p = self.nats.partitions;
        match lane {
            l if l < p => format!("{}.{l}.>", self.nats.subject_prefix),
            l if l == p => format!("{}.*.status", self.nats.mqtt_prefix),
            _ => format!("{}.*.manifest", self.nats.mqtt_prefix),
        }
    }

    /// The subject of `gateway`'s `cmd/replay` (its MQTT topic seen from NATS).
    pub fn replay_subject(&self, gateway: &str) -> String {
        format!("{}.{gateway}.cmd.replay", self.nats.mqtt_prefix)
    }

    pub fn worker_name(&self) -> String {
        self.worker.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [nats]
        url = "nats://127.0.0.1:4222"
        [postgres]
        url = "host=/run/postgresql dbname=coldgate_fleet"
    "#;

    fn problems(text: &str) -> Vec<Problem> {
        match Config::parse(text, "t") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_minimal_config_takes_the_documented_defaults() {
        let c = Config::parse(MINIMAL, "t").unwrap();
        assert_eq!(c.nats.partitions, 64);
        assert_eq!(c.worker.batch, 500);
        assert_eq!(c.verify.alert_subject, "fleet.alerts.delivery");
        assert_eq!(c.http.listen, "127.0.0.1:9310");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../config/fleet.example.toml");
        Config::parse(text, "example").unwrap();
    }

    #[test]
    fn an_unknown_key_is_named_with_its_path() {
        let p = problems(&format!("{MINIMAL}\n[worker]\nbatchsize = 3\n"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "worker.batchsize");
        assert!(p[0].message.contains("batchsize"), "{}", p[0].message);
    }

    #[test]
    fn every_content_problem_is_reported_at_once_with_its_key_path() {
        let text = r#"
            [nats]
            url = "http://x"
            partitions = 0
            mqtt_prefix = "coldgate.*"
            [postgres]
            url = ""
            [worker]
            batch = 0
            ack_wait = "100ms"
            [verify]
            alert_subject = "fleet.>"
            [http]
            listen = "localhost"
        "#;
        let paths: Vec<String> = problems(text).into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "nats.url",
                "nats.mqtt_prefix",
                "nats.partitions",
                "postgres.url",
                "worker.batch",
                "worker.ack_wait",
                "verify.alert_subject",
                "http.listen",
            ]
        );
    }

    #[test]
    fn the_mapping_partitions_on_the_gateway_token() {
        let c = Config::parse(MINIMAL, "t").unwrap();
        let m = c.nats_mappings();
        assert_eq!(m.len(), 1, "status and manifest keep their subjects");
        assert_eq!(m[0].0, "coldgate.v1.*.events.>");
        assert_eq!(m[0].1, "cg.{{partition(64,1)}}.{{wildcard(1)}}.events.>");
    }
}
