//! Bluetooth Low Energy sensors: a scanner behind a trait, pure decoders, and
//! the source that joins them.

mod advertisement;
pub mod decode;
mod mac;

pub use advertisement::Advertisement;
pub use decode::{decode, decode_hex, detect, DecodeError, Decoded, Format, UnknownFormat};
pub use mac::{BadMac, MacAddr};
