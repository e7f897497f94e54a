//! Excursion detection: pure logic, no IO, clock injected through the
//! readings' times and `Engine::tick`. Ingest feeds it readings and stores its
//! state in the same transaction as those readings, so after a power cut it
//! resumes exactly. One job per module: `profile` (rules from config),
//! `detector` (one rule's state machine), `budget` (cumulative time),
//! `door` (light), `silence` (monitoring gaps), `physical` (possible values), `ledger` (per-lot exposure),
//! `engine` (wiring and payloads). Rules and sources: `docs/excursions.md`.

mod budget;
mod detector;
mod door;
mod engine;
mod ledger;
pub mod mkt;
pub mod physical;
mod profile;
mod silence;

pub use budget::Accrued;
pub use detector::{Direction, Limits, Out, Stats, Step, Tracker, Transition};
pub use engine::{Engine, EngineState};
pub use ledger::{rule_key, Ledger, LotExposure, RuleTerms};
pub use profile::{Profile, Rule};
