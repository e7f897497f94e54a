//! coldgate-fleet: every event of every gateway, once. Gateways publish
//! MQTT into nats-server's MQTT listener; JetStream keeps the stream,
//! partitioned by gateway; workers apply each batch in one PostgreSQL
//! transaction and ack only after the commit (docs/fleet.md).

pub mod api;
pub mod cli;
pub mod config;
pub mod custody;
pub mod delivery;
pub mod epcis;
pub mod exposure;
pub mod ingest;
pub mod migrate;
pub mod sim;
pub mod stream;
pub mod verify;
pub mod worker;
