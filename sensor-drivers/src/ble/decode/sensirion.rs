//! Sensirion SHT4x gadget, manufacturer data 0x06D5, as documented by
//! Sensirion's BLE advertisement description and the open-source decoders.
//!
//! Layout after the company id: advertisement type (0), sample type, device
//! id (2 bytes), temperature uint16 LE, humidity uint16 LE. Conversion per the
//! SHT4x datasheet: T = -45 + 175 * raw / 65535; RH = -6 + 125 * raw / 65535,
//! cropped to 0..100 % as the datasheet instructs.

use super::{round, u16_le, DecodeError, Decoded, Format};

/// Sample types carrying temperature and humidity first: 4 (T, RH), 6 (T, RH
/// of the SHT4x gadget).
const SAMPLE_TYPES: [u8; 2] = [4, 6];

/// Decodes the manufacturer data after the company id.
pub fn decode(data: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::SensirionSht4x;
    if data.len() < 8 {
        return Err(DecodeError::Length {
            format: f,
            expected: "at least 8",
            got: data.len(),
        });
    }
    if data[0] != 0 || !SAMPLE_TYPES.contains(&data[1]) {
        return Err(DecodeError::Malformed {
            format: f,
            reason: "not a temperature and humidity sample",
        });
    }
    let mut d = Decoded::empty(f);
    d.temperature_c = u16_le(data, 4).map(|t| round(-45.0 + 175.0 * f64::from(t) / 65535.0, 2));
    d.humidity_pct = u16_le(data, 6)
        .map(|h| round((-6.0 + 125.0 * f64::from(h) / 65535.0).clamp(0.0, 100.0), 2));
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
    fn sht4x_gadget_vectors_including_negative_temperatures() {
        // theengs/decoder tests/BLE/test_ble.cpp, "Sensirion SHT4X" (company d506):
        // 0006e2e7036a1c65 -> 27.47 °C, 43.37 %; 0006e2e733339dc4 -> -10 °C, 90.00 %;
        // 0006e2e72b3e6891 -> -2.50 °C, 65.00 %.
        let d = decode(&hex("0006e2e7036a1c65")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct),
            (Some(27.47), Some(43.37))
        );
        let d = decode(&hex("0006e2e733339dc4")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(-10.0), Some(90.0)));
        let d = decode(&hex("0006e2e72b3e6891")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(-2.5), Some(65.0)));
        // A CO2 gadget sample (type 0x0A) is not this format.
        assert!(decode(&hex("000ae2e733339dc4e902")).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_leave_the_expressible_range(
            data in proptest::collection::vec(any::<u8>(), 0..12),
            t in any::<u16>(), h in any::<u16>(),
        ) {
            let _ = decode(&data);
            let mut frame = vec![0, 6, 0, 0];
            frame.extend(t.to_le_bytes());
            frame.extend(h.to_le_bytes());
            let d = decode(&frame).unwrap();
            prop_assert!((-45.0..=130.0).contains(&d.temperature_c.unwrap()));
            prop_assert!((0.0..=100.0).contains(&d.humidity_pct.unwrap()));
        }
    }
}
