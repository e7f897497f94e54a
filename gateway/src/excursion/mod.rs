//! Excursion detection: pure logic, no IO, clock injected through the
//! readings' times. Ingest feeds it readings and stores its state in the same
//! transaction as those readings, so after a power cut it resumes exactly.

mod detector;
mod engine;
pub mod mkt;

pub use detector::{Direction, Limits, Stats, Tracker, Transition};
pub use engine::{Engine, EngineState};
