//! Registers to values: pure functions, no IO, so that every type, word order
//! and sentinel is tested without a device.

use super::config::{RegisterConfig, RegisterType, Sentinel, WordOrder};

/// A raw value as the device meant it, before scale and offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    /// An integer type; `bits` is the register content (16 or 32 bits).
    Int { value: i64, bits: u32 },
    /// A float32.
    Float(f32),
}

impl Raw {
    /// The raw value as a number.
    pub fn as_f64(self) -> f64 {
        match self {
            // Every i32/u32 fits an f64 exactly.
            Raw::Int { value, .. } => value as f64,
            Raw::Float(v) => f64::from(v),
        }
    }

    fn matches(self, sentinel: Sentinel) -> bool {
        match (self, sentinel) {
            (Raw::Int { value, bits }, Sentinel::Int(s)) => value == s || i64::from(bits) == s,
            (Raw::Int { value, .. }, Sentinel::Float(s)) => value as f64 == s,
            (Raw::Float(v), Sentinel::Float(s)) => (s.is_nan() && v.is_nan()) || f64::from(v) == s,
            (Raw::Float(v), Sentinel::Int(s)) => {
                i64::from(v.to_bits()) == s || f64::from(v) == s as f64
            }
        }
    }
}

/// The outcome of decoding one register entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoded {
    /// A value, scaled and offset.
    Value(f64),
    /// The device said "not available" with one of the configured sentinels.
    Sentinel,
    /// The value is NaN or infinite although no sentinel names it: never a reading.
    NotFinite,
    /// Fewer words than the type needs (a bug in the caller, reported not panicked).
    Short,
}

/// Combines the words of one value. `words` must start at the value; extra
/// words are ignored. `word_order` is ignored for 16-bit types and defaults to
/// big for 32-bit ones (validation insists that it is set).
pub fn decode_raw(kind: RegisterType, word_order: Option<WordOrder>, words: &[u16]) -> Option<Raw> {
    let bits32 = || -> Option<u32> {
        let (a, b) = (*words.first()?, *words.get(1)?);
        let (hi, lo) = match word_order.unwrap_or(WordOrder::Big) {
            WordOrder::Big => (a, b),
            WordOrder::Little => (b, a),
        };
        Some((u32::from(hi) << 16) | u32::from(lo))
    };
    Some(match kind {
        RegisterType::U16 => {
            let w = *words.first()?;
            Raw::Int {
                value: i64::from(w),
                bits: u32::from(w),
            }
        }
        RegisterType::I16 => {
            let w = *words.first()?;
            Raw::Int {
                value: i64::from(w as i16),
                bits: u32::from(w),
            }
        }
        RegisterType::U32 => {
            let b = bits32()?;
            Raw::Int {
                value: i64::from(b),
                bits: b,
            }
        }
        RegisterType::I32 => {
            let b = bits32()?;
            Raw::Int {
                value: i64::from(b as i32),
                bits: b,
            }
        }
        RegisterType::F32 => Raw::Float(f32::from_bits(bits32()?)),
    })
}

/// Decodes one configured register from the words at its address.
pub fn decode_register(reg: &RegisterConfig, words: &[u16]) -> Decoded {
    let Some(raw) = decode_raw(reg.kind, reg.word_order, words) else {
        return Decoded::Short;
    };
    if reg.sentinels.iter().any(|s| raw.matches(*s)) {
        return Decoded::Sentinel;
    }
    let value = apply_scale(raw.as_f64(), reg.scale) + reg.offset;
    if value.is_finite() {
        Decoded::Value(value)
    } else {
        Decoded::NotFinite
    }
}

/// `raw * scale`, but a scale of 1/n (0.1, 0.01) divides by n instead:
/// 41 / 10 is the double nearest 4.1, whereas 41 * 0.1 is 4.1000000000000005,
/// which would show in payloads and reports.
fn apply_scale(raw: f64, scale: f64) -> f64 {
    let inverse = 1.0 / scale;
    let rounded = inverse.round();
    if rounded.abs() >= 2.0 && (inverse - rounded).abs() < 1e-9 * rounded.abs() {
        raw / rounded
    } else {
        raw * scale
    }
}

/// Decodes a block of words as consecutive values of one type, for the
/// probe. A trailing half of a 32-bit value is left out.
pub fn decode_words(words: &[u16], kind: RegisterType, word_order: Option<WordOrder>) -> Vec<f64> {
    words
        .chunks_exact(usize::from(kind.words()))
        .filter_map(|chunk| decode_raw(kind, word_order, chunk))
        .map(Raw::as_f64)
        .collect()
}
