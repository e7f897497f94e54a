//! The JetStream stream and its per-partition durable consumers, created
//! when missing and checked when present (a stream whose subjects do not
//! cover the partitions would silently lose the gateways' messages).

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot reach NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error(
        "stream {stream} exists with subjects {found:?}, not {wanted:?}: change it or nats.stream"
    )]
    Subjects {
        stream: String,
        found: Vec<String>,
        wanted: Vec<String>,
    },
}

fn js_err(e: impl std::fmt::Display) -> StreamError {
    StreamError::JetStream(e.to_string())
}

pub async fn connect(config: &Config) -> Result<async_nats::Client, StreamError> {
    async_nats::ConnectOptions::new()
        .name(format!("coldgate-fleet {}", config.worker_name()))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(config.nats.url.as_str())
        .await
        .map_err(|source| StreamError::Connect {
            url: config.nats.url.clone(),
            source,
        })
}

/// Creates the stream if missing, else checks its subjects.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: &Config,
) -> Result<stream::Stream, StreamError> {
    let wanted = config.stream_subjects();
    let s = js
        .get_or_create_stream(stream::Config {
            name: config.nats.stream.clone(),
            subjects: wanted.clone(),
            storage: stream::StorageType::File,
            num_replicas: config.nats.replicas as usize,
            max_age: config.nats.max_age,
            // The gateway's own resends are absorbed by PostgreSQL
            // (event_id); this window only helps against a publisher's
            // retry after a lost PUBACK.
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let mut s = s;
    let info = s.info().await.map_err(js_err)?;
    let mut found = info.config.subjects.clone();
    found.sort();
    let mut want_sorted = wanted.clone();
    want_sorted.sort();
    if found != want_sorted {
        return Err(StreamError::Subjects {
            stream: config.nats.stream.clone(),
            found,
            wanted,
        });
    }
    Ok(s)
}

pub fn consumer_name(partition: u32) -> String {
    format!("fleet-p{partition}")
}

/// The durable pull consumer of one partition.
pub async fn ensure_consumer(
    s: &stream::Stream,
    config: &Config,
    partition: u32,
) -> Result<consumer::Consumer<consumer::pull::Config>, StreamError> {
    let name = consumer_name(partition);
    s.get_or_create_consumer(
        &name,
        consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: config.lane_subject(partition),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: config.worker.ack_wait,
            max_ack_pending: (config.worker.batch * 4) as i64,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        },
    )
    .await
    .map_err(js_err)
}
