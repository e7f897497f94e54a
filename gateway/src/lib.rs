//! coldgate: the trustworthy witness of a pharmaceutical cold chain.
//!
//! Data flows one way: sources → [`ingest`] → [`store`] + [`excursion`]
//! engine → outbox → [`publish`]. [`daemon`] wires it; [`cli`] is the edge.

pub mod access;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod daemon;
pub mod epcis;
pub mod event;
pub mod excursion;
pub mod http;
pub mod ingest;
pub mod live;
pub mod manifest;
pub mod publish;
pub mod report;
pub mod sim;
pub mod snapshot;
pub mod store;
pub mod telemetry;

#[cfg(feature = "demo")]
pub mod broker;
