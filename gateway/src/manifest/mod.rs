//! What is on board: pallets, their items and lots. GS1 parsing lives here
//! because labels are how pallets enter the manifest.

pub mod gs1;
