//! Govee thermo-hygrometers, as documented by the open-source decoders
//! (Theengs decoder, Bluetooth-Devices govee-ble).
//!
//! H5072/H5075 and the H5100 family pack temperature and humidity into one
//! 24-bit big-endian number: `temperature_tenths * 1000 + humidity_tenths`,
//! bit 23 set for a negative temperature. H5074 sends little-endian int16
//! hundredths. None of them sends a packet id, so repeats cannot be told
//! apart from new measurements.

use super::{i16_le, round, u16_le, DecodeError, Decoded, Format};

/// H5072/H5075 manufacturer data length (after company id 0xEC88).
pub const H5075_LEN: usize = 6;
/// H5074 manufacturer data length (after company id 0xEC88).
pub const H5074_LEN: usize = 7;

/// Unpacks the 24-bit temperature/humidity number.
fn unpack(b: &[u8]) -> Option<(f64, f64)> {
    let raw = u32::from_be_bytes([0, *b.first()?, *b.get(1)?, *b.get(2)?]);
    let negative = raw & 0x80_0000 != 0;
    let value = raw & 0x7F_FFFF;
    let tenths = f64::from(value / 1000) / 10.0;
    let humidity = f64::from(value % 1000) / 10.0;
    Some((if negative { -tenths } else { tenths }, humidity))
}

/// H5072 / H5075: `00, packed[3], battery %, 00`.
pub fn decode_h5075(data: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::GoveeH5075;
    if data.len() != H5075_LEN {
        return Err(DecodeError::Length {
            format: f,
            expected: "6",
            got: data.len(),
        });
    }
    let mut d = Decoded::empty(f);
    if let Some((t, h)) = data.get(1..4).and_then(unpack) {
        d.temperature_c = Some(t);
        d.humidity_pct = Some(h);
    }
    d.battery_pct = data.get(4).map(|b| f64::from(b & 0x7F));
    Ok(d)
}

/// H5074: `00, temperature int16 LE 0.01 °C, humidity uint16 LE 0.01 %, battery %, 02`.
pub fn decode_h5074(data: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::GoveeH5074;
    if data.len() != H5074_LEN {
        return Err(DecodeError::Length {
            format: f,
            expected: "7",
            got: data.len(),
        });
    }
    let mut d = Decoded::empty(f);
    d.temperature_c = i16_le(data, 1).map(|t| round(f64::from(t) * 0.01, 2));
    d.humidity_pct = u16_le(data, 3).map(|h| round(f64::from(h) * 0.01, 2));
    d.battery_pct = data.get(5).map(|b| f64::from(*b));
    Ok(d)
}

/// H5100 family on company id 0x0001: `01 01, packed[3], battery %`, some
/// models with two more bytes.
pub fn decode_h5100(data: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::GoveeH5100;
    if !(data.len() == 6 || data.len() == 8) {
        return Err(DecodeError::Length {
            format: f,
            expected: "6 or 8",
            got: data.len(),
        });
    }
    if data.get(..2) != Some(&[0x01, 0x01]) {
        return Err(DecodeError::Malformed {
            format: f,
            reason: "does not start with 01 01",
        });
    }
    let mut d = Decoded::empty(f);
    if let Some((t, h)) = data.get(2..5).and_then(unpack) {
        d.temperature_c = Some(t);
        d.humidity_pct = Some(h);
    }
    d.battery_pct = data.get(5).map(|b| f64::from(b & 0x7F));
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn h5075_and_h5072_vectors() {
        // theengs/decoder tests/BLE/test_ble.cpp, "GVH5075_1234" 88ec000418ee6400:
        // 26.8 °C, 52.6 %, battery 100.
        let d = decode_h5075(&hex("000418ee6400")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct, d.battery_pct),
            (Some(26.8), Some(52.6), Some(100.0))
        );
        // Same file, "GVH5072_1234" 88ec0004344b6400: 27.5 °C, 53.1 %.
        let d = decode_h5075(&hex("0004344b6400")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(27.5), Some(53.1)));
    }

    #[test]
    fn h5075_negative_temperature() {
        // Same file, 88ec00811f096400: packed 0x811F09 = negative, 73481 ->
        // -7.3 °C and 48.1 %. (Theengs reports -7.3481: it keeps the humidity
        // digits in the temperature; the packing puts them in humidity only.)
        let d = decode_h5075(&hex("00811f096400")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(-7.3), Some(48.1)));
    }

    #[test]
    fn h5074_vectors() {
        // theengs/decoder tests/BLE/test_ble.cpp, "Govee_H5074_1234":
        // 88ec00c408231d6402 -> 22.44 °C, 74.59 %; 88ec00a0facc176402 -> -13.76 °C, 60.92 %.
        let d = decode_h5074(&hex("00c408231d6402")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct, d.battery_pct),
            (Some(22.44), Some(74.59), Some(100.0))
        );
        let d = decode_h5074(&hex("00a0facc176402")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct),
            (Some(-13.76), Some(60.92))
        );
    }

    #[test]
    fn h5100_family_vectors() {
        // theengs/decoder tests/BLE/test_ble.cpp: "GVH5102_1234" 0100 010103590e64
        // -> 21.9 °C, 40.6 %, 100 %; "GVH5174_1234" 0100 0101811a6764 -> -7.2 °C, 29.5 %;
        // "GV51082A7E" 0100 01010394686400 00 (8 bytes).
        let d = decode_h5100(&hex("010103590e64")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct, d.battery_pct),
            (Some(21.9), Some(40.6), Some(100.0))
        );
        let d = decode_h5100(&hex("0101811a6764")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(-7.2), Some(29.5)));
        assert!(decode_h5100(&hex("0101039468640000")).is_ok());
        assert!(decode_h5100(&hex("020103590e64")).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_leave_the_expressible_range(
            data in proptest::collection::vec(any::<u8>(), 0..10),
        ) {
            for d in [decode_h5075(&data), decode_h5074(&data), decode_h5100(&data)].into_iter().flatten() {
                let t = d.temperature_c.unwrap();
                let h = d.humidity_pct.unwrap();
                match d.format {
                    Format::GoveeH5074 => {
                        prop_assert!((-327.68..=327.67).contains(&t));
                        prop_assert!((0.0..=655.35).contains(&h));
                    }
                    _ => {
                        prop_assert!((-838.8..=838.8).contains(&t));
                        prop_assert!((0.0..=99.9).contains(&h));
                    }
                }
                prop_assert!((0.0..=255.0).contains(&d.battery_pct.unwrap()));
            }
        }
    }
}
