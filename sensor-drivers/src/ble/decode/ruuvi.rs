//! Ruuvi data format 5 (RAWv2), manufacturer data 0x0499
//! (<https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2>).
//!
//! 24 bytes, big-endian. Each field has a documented "not available" value,
//! which becomes `None` here.

use super::{i16_be, round, u16_be, DecodeError, Decoded, Format};

const FORMAT: Format = Format::RuuviV5;
/// First byte of the payload.
pub const DATA_FORMAT: u8 = 5;
const LEN: usize = 24;

/// Decodes the manufacturer data after the company id.
pub fn decode(data: &[u8]) -> Result<Decoded, DecodeError> {
    if data.len() != LEN {
        return Err(DecodeError::Length {
            format: FORMAT,
            expected: "24",
            got: data.len(),
        });
    }
    if data[0] != DATA_FORMAT {
        return Err(DecodeError::Malformed {
            format: FORMAT,
            reason: "first byte is not data format 5",
        });
    }
    let mut d = Decoded::empty(FORMAT);
    // Temperature: int16 in 0.005 °C; 0x8000 = not available.
    d.temperature_c = i16_be(data, 1)
        .filter(|t| *t != i16::MIN)
        .map(|t| round(f64::from(t) * 0.005, 3));
    // Humidity: uint16 in 0.0025 %; 0xFFFF = not available.
    d.humidity_pct = u16_be(data, 3)
        .filter(|h| *h != u16::MAX)
        .map(|h| round(f64::from(h) * 0.0025, 4));
    // Power info: 11 bits battery (mV above 1600; 2047 = n/a), 5 bits TX power.
    d.battery_mv = u16_be(data, 13)
        .map(|p| p >> 5)
        .filter(|v| *v != 0x7FF)
        .map(|v| f64::from(v) + 1600.0);
    // Measurement sequence number: uint16; 0xFFFF = not available.
    d.packet_id = u16_be(data, 16).filter(|s| *s != u16::MAX).map(u32::from);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn the_valid_data_vector() {
        // docs.ruuvi.com data format 5, test vector "valid data":
        // 24.3 °C, 53.49 %, 2977 mV, sequence 205.
        let d = decode(&hex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")).unwrap();
        assert_eq!(d.temperature_c, Some(24.3));
        assert_eq!(d.humidity_pct, Some(53.49));
        assert_eq!(d.battery_mv, Some(2977.0));
        assert_eq!(d.packet_id, Some(205));
        assert_eq!(d.battery_pct, None);
    }

    #[test]
    fn the_maximum_values_vector() {
        // docs.ruuvi.com data format 5, "maximum values":
        // 163.835 °C, 163.835 %, 3646 mV, sequence 65534.
        let d = decode(&hex("057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F")).unwrap();
        assert_eq!(d.temperature_c, Some(163.835));
        assert_eq!(d.humidity_pct, Some(163.835));
        assert_eq!(d.battery_mv, Some(3646.0));
        assert_eq!(d.packet_id, Some(65534));
    }

    #[test]
    fn the_minimum_values_vector_with_a_negative_temperature() {
        // docs.ruuvi.com data format 5, "minimum values":
        // -163.835 °C, 0 %, 1600 mV, sequence 0.
        let d = decode(&hex("058001000000008001800180010000000000CBB8334C884F")).unwrap();
        assert_eq!(d.temperature_c, Some(-163.835));
        assert_eq!(d.humidity_pct, Some(0.0));
        assert_eq!(d.battery_mv, Some(1600.0));
        assert_eq!(d.packet_id, Some(0));
    }

    #[test]
    fn the_invalid_values_vector_yields_nothing() {
        // docs.ruuvi.com data format 5, "invalid values": every field not available.
        let d = decode(&hex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF")).unwrap();
        assert_eq!(d, Decoded::empty(FORMAT));
    }

    #[test]
    fn other_lengths_and_formats_are_refused() {
        assert!(matches!(
            decode(&hex("0512FC")),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            decode(&hex("0312FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")),
            Err(DecodeError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_leave_the_expressible_range(
            data in proptest::collection::vec(any::<u8>(), 0..30),
            body in proptest::collection::vec(any::<u8>(), 23),
        ) {
            let _ = decode(&data);
            let mut frame = vec![DATA_FORMAT];
            frame.extend(body);
            let d = decode(&frame).unwrap();
            if let Some(t) = d.temperature_c { prop_assert!((-163.835..=163.835).contains(&t)); }
            if let Some(h) = d.humidity_pct { prop_assert!((0.0..=163.835).contains(&h)); }
            if let Some(v) = d.battery_mv { prop_assert!((1600.0..=3646.0).contains(&v)); }
            if let Some(p) = d.packet_id { prop_assert!(p <= 65534); }
        }
    }
}
